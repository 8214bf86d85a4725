import { type Static, Type } from "@sinclair/typebox";
import { LIMITS } from "../config/limits.js";
import { Maybe, Open } from "../core/schema.js";
import { TAG_PATTERN } from "./tag-grammar.js";

const Credentials = Open(
  {
    username: Maybe(Type.String({ maxLength: 4096, "x-error": "{path} must be a string" })),
    password: Maybe(Type.String({ maxLength: 65_536, "x-error": "{path} must be a string" })),
  },
  'registry credentials; both empty (MCP sends {"username": "", "password": ""}) means anonymous',
);

const Reference = Type.String({
  minLength: 1,
  maxLength: 4096,
  pattern: "\\S",
  description: "image reference, normally docker://<registry>/<path>:<tag>",
  "x-error": "registry.url must be a non-empty string",
});

/** `POST /v1/images/import`: `{registry: {url, credentials}}`, or the older `{registry: "ref", credentials}`. */
export const ImportBodySchema = Open({
  registry: Type.Union([Reference, Open({ url: Reference, credentials: Maybe(Credentials) })], {
    "x-error": "registry.url is required",
  }),
  credentials: Maybe(Credentials),
  tag: Maybe(
    Type.String({
      maxLength: 256,
      pattern: `^(${TAG_PATTERN})?$`,
      description: "tag to put on the imported image",
      "x-error":
        'tag must be letters, digits, "_" and "-" separated by ":", "/" or "." (at most 256 characters)',
    }),
  ),
  timeout: Maybe(
    Type.Integer({
      minimum: 1,
      maximum: LIMITS.images_import_max_timeout.ceiling,
      "x-limit": "images_import_max_timeout",
      "x-error": "timeout must be a positive integer number of seconds",
      description: "seconds, at most limits.images_import_max_timeout (whoami; default 300)",
    }),
  ),
});
export type ImportBody = Static<typeof ImportBodySchema>;
