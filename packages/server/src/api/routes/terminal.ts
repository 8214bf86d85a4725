import { Type } from "@sinclair/typebox";
import { invalidArgument } from "../../core/errors.js";
import type { ApiApp } from "../api-app.js";
import { ErrorSchema } from "../pagination.js";
import { IdParamSchema } from "../params.js";
import { principalOf } from "../request-context.js";
import type { Services } from "../services.js";

const DESCRIPTION = [
  "WebSocket (extension, docs/terminals.md) to the terminal of a process started with `tty: true`.",
  "Binary frames: raw terminal bytes both ways. Text frames: JSON control messages; the client sends",
  '`{"type":"resize","rows":R,"cols":C}`, the server ends with `{"type":"exit","exit_code":N,"signal":S,"timed_out":B}`',
  "and close code 1000. A client that falls more than 4 MiB behind is closed with 4008 (the event log keeps the output).",
  "Authenticate with `Authorization: Bearer`, or offer the subprotocols `contree.v1, contree.token.<token>`",
  "(only `contree.v1` is echoed; a browser names the project as `contree.project.<name>`).",
  "Refused before the upgrade: 401, 403, 404, 409 (finished, or no terminal), 425.",
  "The upgrade is served by api/terminal-socket.ts; a plain GET is a 400.",
].join(" ");

const Params = Type.Object({ operation_id: IdParamSchema });
const SpidParams = Type.Object({ operation_id: IdParamSchema, spid: Type.String({ maxLength: 16 }) });
const RESPONSES = {
  101: Type.Null({ description: "switching to WebSocket" }),
  400: ErrorSchema,
  401: ErrorSchema,
};

/** The terminal channel's paths in the OpenAPI document; the upgrade itself never reaches a route. */
export function terminalRoutes(_d: Services) {
  return async (app: ApiApp): Promise<void> => {
    const plain = async (req: Parameters<typeof principalOf>[0]) => {
      principalOf(req);
      throw invalidArgument("this endpoint speaks WebSocket: send an Upgrade request (docs/terminals.md)");
    };
    app.get(
      "/operations/:operation_id/terminal",
      {
        schema: {
          summary: "Terminal of the main process (WebSocket)",
          description: DESCRIPTION,
          params: Params,
          response: RESPONSES,
        },
      },
      plain,
    );
    app.get(
      "/operations/:operation_id/subprocesses/:spid/terminal",
      {
        schema: {
          summary: "Terminal of a process (WebSocket)",
          description: DESCRIPTION,
          params: SpidParams,
          response: RESPONSES,
        },
      },
      plain,
    );
  };
}
