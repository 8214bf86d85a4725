import { Ajv } from "ajv";
import type { FastifySchemaCompiler } from "fastify";

/**
 * Bodies are validated strictly (a string where a number belongs is a 400, never silently
 * coerced); query strings and path params are text on the wire, so they are coerced. Unknown
 * properties are tolerated everywhere because clients send extra keys.
 */
const strict = new Ajv({ coerceTypes: false, useDefaults: true, removeAdditional: false, allErrors: false, strict: false });
const coercing = new Ajv({ coerceTypes: "array", useDefaults: true, removeAdditional: false, allErrors: false, strict: false });

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  const ajv = httpPart === "body" ? strict : coercing;
  return ajv.compile(schema as object) as ReturnType<FastifySchemaCompiler<unknown>>;
};
