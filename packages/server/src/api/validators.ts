import { Ajv } from "ajv";
import type { FastifySchemaCompiler } from "fastify";

/**
 * Bodies are validated strictly (a string where a number belongs is a 400, never silently
 * coerced); query strings and path params are text on the wire, so they are coerced. Unknown
 * properties are tolerated everywhere because clients send extra keys.
 */
export function buildValidator(
  externalSchemas: Record<string, unknown> = {},
): FastifySchemaCompiler<unknown> {
  const make = (coerceTypes: false | "array") => {
    const ajv = new Ajv({
      coerceTypes,
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
