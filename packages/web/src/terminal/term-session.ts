/**
 * The terminal view's heavy half, loaded with a dynamic `import()` so xterm.js stays out of the
 * main bundle: an xterm.js terminal attached to the terminal channel (docs/terminals.md).
 * Keystrokes go out as binary frames, output comes in as binary frames (xterm decodes UTF-8
 * across chunks), every fit sends a resize, the server's `exit` message ends the session, and any
 * other close is explained and, while the process lives, reconnected.
 */
import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";
import type { ApiClient } from "../api/client.js";
import { pruneCspStyles } from "./csp-style.js";
import { checkProcess } from "./term-process.js";
import {
  CLOSE_GOING_AWAY,
  type CloseVerdict,
  closeVerdict,
  type ExitMessage,
  exitText,
  parseExit,
  terminalProtocols,
  terminalUrl,
} from "./term-protocol.js";

export type TermPhase = "checking" | "connecting" | "live" | "retrying" | "ended" | "refused";

export interface TermStatus {
  phase: TermPhase;
  message: string;
  exit?: ExitMessage;
}

export interface TermOptions {
  client: ApiClient;
  /** `<prefix>/v1`, as the API client uses. */
  apiBase: string;
  opId: string;
  spid: number;
  host: HTMLElement;
  onStatus(s: TermStatus): void;
}

export interface TermHandle {
  focus(): void;
  dispose(): void;
}

/** Attempts in a row that never got a socket open before the view gives up. */
const MAX_FAILED_OPENS = 5;
const MAX_BACKOFF_MS = 5000;

type Outcome =
  | { kind: "exit"; exit: ExitMessage }
  | { kind: "closed"; code: number; opened: boolean }
  | { kind: "disposed" };

export function openTerminal(o: TermOptions): TermHandle {
  const term = new Terminal({
    cursorBlink: true,
    scrollback: 5000,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
    fontSize: 13,
    theme: { background: "#0d1117", foreground: "#e6edf3", cursor: "#e6edf3" },
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(o.host);
  const life = new AbortController();
  const encoder = new TextEncoder();
  let socket: WebSocket | undefined;

  const refit = () => {
    // A hidden or zero-sized host proposes nothing: keep the size the terminal has.
    if (fit.proposeDimensions() !== undefined) fit.fit();
  };
  refit();
  const observer = new ResizeObserver(refit);
  observer.observe(o.host);

  const sendBytes = (b: Uint8Array) => {
    if (socket?.readyState === WebSocket.OPEN) socket.send(b);
  };
  const sendSize = () => {
    if (socket?.readyState === WebSocket.OPEN)
      socket.send(JSON.stringify({ type: "resize", rows: term.rows, cols: term.cols }));
  };
  term.onData((d) => sendBytes(encoder.encode(d)));
  // Mouse reports in X10 mode are bytes, not UTF-8 text.
  term.onBinary((d) => sendBytes(Uint8Array.from(d, (c) => c.charCodeAt(0) & 0xff)));
  // The size on the host element too, for a reader's tools (and the e2e test) to compare with `stty size`.
  const showSize = () => {
    o.host.dataset["size"] = `${term.rows}x${term.cols}`;
  };
  showSize();
  term.onResize(() => {
    showSize();
    sendSize();
  });

  const status = (s: TermStatus) => {
    if (!life.signal.aborted) o.onStatus(s);
  };
  const notice = (text: string) => term.write(`\r\n\x1b[2m[${text}]\x1b[0m\r\n`);

  const attach = () =>
    new Promise<Outcome>((resolve) => {
      const ws = new WebSocket(
        terminalUrl(location.origin, o.apiBase, o.opId, o.spid),
        terminalProtocols(o.client.credentials.token, o.client.credentials.project),
      );
      ws.binaryType = "arraybuffer";
      socket = ws;
      let opened = false;
      let exit: ExitMessage | undefined;
      const onAbort = () => ws.close(1000, "view closed");
      life.signal.addEventListener("abort", onAbort, { once: true });
      ws.onopen = () => {
        opened = true;
        status({ phase: "live", message: "Attached." });
        sendSize();
      };
      ws.onmessage = (m: MessageEvent<ArrayBuffer | string>) => {
        if (typeof m.data === "string") exit = parseExit(m.data) ?? exit;
        else term.write(new Uint8Array(m.data));
      };
      ws.onclose = (c) => {
        life.signal.removeEventListener("abort", onAbort);
        socket = undefined;
        if (life.signal.aborted) resolve({ kind: "disposed" });
        else if (exit !== undefined) resolve({ kind: "exit", exit });
        else resolve({ kind: "closed", code: c.code, opened });
      };
    });

  const pause = (ms: number) =>
    new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      life.signal.addEventListener("abort", () => clearTimeout(t), { once: true });
      life.signal.addEventListener("abort", () => r(), { once: true });
    });

  const run = async () => {
    let failedOpens = 0;
    let backoff = 250;
    /** Since a 1001 (shutdown) and until the next open: refusals are the server leaving, not the process. */
    let leaving: CloseVerdict | undefined;
    for (;;) {
      status({ phase: "checking", message: "Checking the process…" });
      const ready = await checkProcess(o.client, o.opId, o.spid, life.signal);
      if (life.signal.aborted) return;
      if (ready.kind === "ended" || ready.kind === "refused") {
        status({ phase: ready.kind, message: ready.message });
        return;
      }
      if (ready.kind === "ready") {
        status({ phase: "connecting", message: "Attaching…" });
        const out = await attach();
        if (out.kind === "disposed") return;
        if (out.kind === "exit") {
          const message = exitText(out.exit);
          notice(message);
          status({ phase: "ended", message, exit: out.exit });
          return;
        }
        const v = (!out.opened ? leaving : undefined) ?? closeVerdict(out.code, out.opened);
        if (out.opened) {
          failedOpens = 0;
          backoff = 250;
          leaving = out.code === CLOSE_GOING_AWAY ? v : undefined;
          notice(v.message);
        } else if (leaving === undefined && ++failedOpens >= MAX_FAILED_OPENS) {
          status({
            phase: "refused",
            message: "The server refused the terminal; the process may have ended.",
          });
          return;
        }
        status({ phase: "retrying", message: v.message });
        if (v.immediate) {
          backoff = 250;
          continue;
        }
      } else status({ phase: "retrying", message: `${ready.message} Retrying…` });
      await pause(backoff);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  };
  void run();

  return {
    focus: () => term.focus(),
    dispose() {
      life.abort();
      observer.disconnect();
      term.dispose();
      pruneCspStyles();
    },
  };
}
