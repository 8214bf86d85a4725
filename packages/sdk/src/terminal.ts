// The terminal of a process started with `tty: true` (server docs/terminals.md): a WebSocket with raw
// bytes both ways and JSON control messages (resize from us, exit from the server).
//
// Which WebSocket: the `WebSocket` option when given, else the global one (browsers, Node ≥ 22), else
// the SDK's own minimal client over node:http (Node 20 has no stable global WebSocket, and the SDK
// takes no dependencies). The token goes as the subprotocol `contree.token.<token>` (a browser cannot
// set headers on a WebSocket); the SDK's own client sends the Authorization and Project headers instead.

import type { ResolvedConfig } from "./config.js";
import { errorForStatus, NetworkError } from "./errors.js";
import { seg, type Transport } from "./http.js";
import { NodeWebSocket, type SocketLike } from "./ws-client.js";

/** A WebSocket constructor (the standard one, or e.g. the `ws` package's). */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => SocketLike;

export interface TerminalOptions {
  /** WebSocket implementation; default the global one, else the SDK's own (Node). */
  WebSocket?: WebSocketConstructor;
}

/** How the process ended, as the server's exit message says. */
export interface TerminalExit {
  /** -1 when a signal ended the process. */
  exitCode: number;
  /** The terminating signal, -1 when it exited. */
  signal: number;
  timedOut: boolean;
}

/** The URL path (under `/v1`) of a process's terminal. */
export function terminalPath(operationId: string, spid: number): string {
  return spid === 1
    ? `/operations/${seg(operationId)}/terminal`
    : `/operations/${seg(operationId)}/subprocesses/${seg(spid)}/terminal`;
}

export class Terminal {
  readonly #ws: SocketLike;
  readonly #listeners = new Set<(data: Uint8Array) => void>();
  readonly #ended = new Set<() => void>();
  #done = false;
  /** Settles with the exit once the process has ended; rejects if the channel closes without one. */
  readonly exited: Promise<TerminalExit>;

  private constructor(ws: SocketLike, exited: Promise<TerminalExit>) {
    this.#ws = ws;
    this.exited = exited;
    // Not every caller awaits the exit (one that only closes must not see an unhandled rejection).
    exited.catch(() => undefined);
  }

  /**
   * Opens the terminal of process `spid` of operation `operationId`; resolves once connected.
   * @internal use `op.terminal()` or `subprocess.terminal()`.
   */
  static async open(
    transport: Transport,
    operationId: string,
    spid: number,
    opts: TerminalOptions = {},
  ): Promise<Terminal> {
    const config = await transport.config();
    const url = `${config.apiUrl.replace(/^http/, "ws")}${terminalPath(operationId, spid)}`;
    const ws = connect(url, config, opts);
    ws.binaryType = "arraybuffer";
    let settleExit: (e: TerminalExit) => void = () => undefined;
    let failExit: (e: Error) => void = () => undefined;
    const exited = new Promise<TerminalExit>((resolve, reject) => {
      settleExit = resolve;
      failExit = reject;
    });
    const term = new Terminal(ws, exited);
    let exit: TerminalExit | undefined;
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => undefined;
      ws.onmessage = (ev) => {
        if (typeof ev.data === "string") {
          const msg = parseControl(ev.data);
          if (msg) exit = msg;
          return;
        }
        const bytes = new Uint8Array(ev.data as ArrayBuffer);
        for (const l of term.#listeners) l(bytes);
      };
      ws.onclose = (ev) => {
        term.#done = true;
        for (const e of term.#ended) e();
        const refusal = ws instanceof NodeWebSocket ? ws.refusal : undefined;
        const err = refusal
          ? errorForStatus(refusal.status, errorMessage(refusal.body), {
              method: "GET",
              url: terminalPath(operationId, spid),
            })
          : new NetworkError(`terminal closed (${ev.code}${ev.reason ? `: ${ev.reason}` : ""})`);
        if (exit) settleExit(exit);
        else failExit(err);
        reject(err);
      };
    });
    return term;
  }

  /** Types into the terminal. */
  write(data: string | Uint8Array): void {
    this.#ws.send(typeof data === "string" ? new TextEncoder().encode(data) : data);
  }

  /** Sets the window size (the process gets SIGWINCH). */
  resize(rows: number, cols: number): void {
    this.#ws.send(JSON.stringify({ type: "resize", rows, cols }));
  }

  /** Calls `listener` with each chunk of output from now on; returns the unsubscribe. */
  onData(listener: (data: Uint8Array) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Output chunks until the channel closes (chunks wait in memory while the loop is busy). */
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    const queue: Uint8Array[] = [];
    let wake: (() => void) | undefined;
    const off = this.onData((d) => {
      queue.push(d);
      wake?.();
    });
    const ended = () => wake?.();
    this.#ended.add(ended);
    try {
      for (;;) {
        const next = queue.shift();
        if (next) {
          yield next;
          continue;
        }
        if (this.#done) return;
        await new Promise<void>((r) => {
          wake = r;
        });
        wake = undefined;
      }
    } finally {
      off();
      this.#ended.delete(ended);
    }
  }

  /** Closes the channel; the process goes on (signal or exit it to end it). */
  close(): void {
    this.#ws.close(1000);
  }
}

function connect(url: string, config: ResolvedConfig, opts: TerminalOptions): SocketLike {
  const protocols = ["contree.v1", `contree.token.${config.token}`];
  const Ctor = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (Ctor) return new Ctor(url, protocols);
  const headers: Record<string, string> = { Authorization: `Bearer ${config.token}` };
  if (config.project) headers["Project"] = config.project;
  return new NodeWebSocket(url, ["contree.v1"], headers);
}

function parseControl(text: string): TerminalExit | null {
  try {
    const m = JSON.parse(text) as Record<string, unknown>;
    if (m["type"] !== "exit") return null;
    return {
      exitCode: typeof m["exit_code"] === "number" ? m["exit_code"] : -1,
      signal: typeof m["signal"] === "number" ? m["signal"] : -1,
      timedOut: m["timed_out"] === true,
    };
  } catch {
    return null;
  }
}

function errorMessage(body: string): string {
  try {
    const m = JSON.parse(body) as { error?: unknown };
    if (typeof m.error === "string") return m.error;
  } catch {}
  return "terminal refused";
}
