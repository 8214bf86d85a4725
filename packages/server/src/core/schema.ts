/**
 * Building blocks of the request schemas (TypeBox → JSON Schema). The schemas are the
 * validation (Fastify runs them before a handler) and the OpenAPI document. Unknown keys are
 * allowed everywhere (clients send extras: MCP's stdin.truncated and more), and an explicit
 * null means "not given" (clients send `"env": null`). A schema's "x-error" is the message a
 * violation of it gives, "{path}" standing for where in the body (api/error-handler.ts);
 * "x-limit" names the per-project limit (config/limits.ts) a maximum stands for.
 */
import { type Static, type TObject, type TProperties, type TSchema, Type } from "@sinclair/typebox";

/** Optional, and null means the default. */
export const Maybe = <T extends TSchema>(t: T) => Type.Optional(Type.Union([t, Type.Null()]));

/** An object that tolerates keys it does not describe. */
export const Open = <P extends TProperties>(props: P, description?: string): TObject<P> =>
  Type.Object(props, { additionalProperties: true, ...(description ? { description } : {}) });

/**
 * A map from any key to `value`. Not Type.Record: its `patternProperties: {"^(.*)$": …}` lets a
 * key holding a newline through with an unchecked value.
 */
export const Dict = <T extends TSchema>(value: T, options: Record<string, unknown> = {}) =>
  Type.Unsafe<Record<string, Static<T>>>({ type: "object", additionalProperties: value, ...options });

/** Pattern of a string without NUL (nothing passed to the kernel may hold one). */
export const NO_NUL = "^[^\\u0000]*$";
