/**
 * The terminal channel as the console speaks it (docs/terminals.md), free of xterm and the DOM so
 * it is unit-tested on its own: the socket URL (never carrying the token), the subprotocols that
 * carry it instead, the server's `exit` message, and what each close means to the reader.
 */

export const TERMINAL_PROTOCOL = "contree.v1";
export const CLOSE_TOO_SLOW = 4008;
export const CLOSE_GOING_AWAY = 1001;

/** `ws(s)://host<apiBase>/operations/<id>[/subprocesses/<spid>]/terminal`. */
export function terminalUrl(origin: string, apiBase: string, opId: string, spid: number): string {
  const ws = origin.replace(/^http/, "ws");
  const op = `${apiBase}/operations/${encodeURIComponent(opId)}`;
  return `${ws}${spid === 1 ? op : `${op}/subprocesses/${spid}`}/terminal`;
}

/**
 * Browsers cannot set headers on a WebSocket: the token (and an admin's picked project, the
 * `Project` header's value) ride as subprotocols, which the server never echoes.
 */
export function terminalProtocols(token: string, project?: string): string[] {
  const p = [TERMINAL_PROTOCOL, `contree.token.${token}`];
  return project === undefined || project === "" ? p : [...p, `contree.project.${project}`];
}

export interface ExitMessage {
  exitCode: number;
  signal: number;
  timedOut: boolean;
}

/** The server's `{"type":"exit",…}` text frame; undefined for anything else. */
export function parseExit(text: string): ExitMessage | undefined {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (j === null || typeof j !== "object") return undefined;
  const m = j as Record<string, unknown>;
  if (m["type"] !== "exit") return undefined;
  const n = (v: unknown) => (typeof v === "number" && Number.isInteger(v) ? v : -1);
  return { exitCode: n(m["exit_code"]), signal: n(m["signal"]), timedOut: m["timed_out"] === true };
}

const SIGNALS: Record<number, string> = {
  1: "SIGHUP",
  2: "SIGINT",
  3: "SIGQUIT",
  6: "SIGABRT",
  9: "SIGKILL",
  13: "SIGPIPE",
  15: "SIGTERM",
};

export function exitText(e: ExitMessage): string {
  if (e.timedOut) return "The process ran out of time (its timeout) and was stopped.";
  if (e.signal > 0) {
    const name = SIGNALS[e.signal];
    return `The process was ended by signal ${e.signal}${name === undefined ? "" : ` (${name})`}.`;
  }
  return `The process exited with code ${e.exitCode}.`;
}

/** What to do after a close that did not follow an exit message. */
export interface CloseVerdict {
  message: string;
  /** Reconnect at once (the process is fine, this view fell behind). */
  immediate: boolean;
}

export function closeVerdict(code: number, opened: boolean): CloseVerdict {
  if (code === CLOSE_TOO_SLOW)
    return {
      message:
        "This view fell more than 4 MiB behind the output and the server cut it off; reconnected (the skipped output is in the operation's log).",
      immediate: true,
    };
  if (code === CLOSE_GOING_AWAY)
    return { message: "The server is shutting down; trying to reconnect…", immediate: false };
  if (!opened) return { message: "Could not attach to the terminal; checking why…", immediate: false };
  return { message: `The connection was lost (close code ${code}); reconnecting…`, immediate: false };
}
