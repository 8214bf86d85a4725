import { Ajv } from "ajv";
import type { FastifySchemaCompiler } from "fastify";

/**
 * Bodies are validated strictly (a string where a number belongs is a 400, never silently
 * coerced); query strings and path params are text on the wire, so they are coerced. Unknown
 * properties are tolerated everywhere because clients send extra keys. Any schema may carry
 * "x-error" (the message a violation of it gives) and "x-limit" (the per-project limit its
 * maximum stands for), see error-handler.ts, so limits declared in the schema keep the wording
 * clients know.
 */
export function buildValidator(
  externalSchemas: Record<string, unknown> = {},
): FastifySchemaCompiler<unknown> {
  const make = (coerceTypes: false | "array") => {
    const ajv = new Ajv({
      coerceTypes,
      // Errors carry their schema, so a schema may name its own message ("x-error").
      verbose: true,
      useDefaults: true,
      removeAdditional: false,
      allErrors: false,
      strict: false,
    });
    for (const s of Object.values(externalSchemas)) ajv.addSchema(s as object);
    return ajv;
  };
  const strict = make(false);
  const coercing = make("array");
  return ({ schema, httpPart }) => {
    const ajv = httpPart === "body" ? strict : coercing;
    return ajv.compile(schema as object) as ReturnType<FastifySchemaCompiler<unknown>>;
  };
}
