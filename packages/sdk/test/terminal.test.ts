// The SDK's terminal() against the real server: a `tty: true` run and a tty subprocess, over the SDK's
// own WebSocket client (Node 20) and over a WebSocket constructor given as an option (the `ws` package
// here, as a browser's would be: token in the subprotocol).

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import {
  type ContreeClient,
  type ImageHandle,
  isConflict,
  type Terminal,
  type WebSocketConstructor,
} from "../src/index.js";
import { type LiveServer, startLiveServer } from "./live-server.js";

const LONG = 240_000;
const SHELL_ENV = { PS1: "$ ", TERM: "xterm", ENV: "" };

/** Collects a terminal's output; `until` waits for it to hold something. */
function collect(term: Terminal) {
  let out = "";
  const decoder = new TextDecoder();
  term.onData((d) => {
    out += decoder.decode(d, { stream: true });
  });
  return {
    get out() {
      return out;
    },
    async until(text: string, ms = 20_000): Promise<void> {
      const deadline = Date.now() + ms;
      while (!out.includes(text)) {
        if (Date.now() > deadline) throw new Error(`no ${JSON.stringify(text)} in ${JSON.stringify(out)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

describe("SDK terminal() against the real server", () => {
  let live: LiveServer;
  let client: ContreeClient;
  let base: ImageHandle;

  beforeAll(async () => {
    live = await startLiveServer();
    client = live.client();
    base = client.images.handle(live.busybox);
  }, LONG);
  afterAll(async () => {
    await live?.close();
  }, LONG);

  it(
    "a tty run: write, resize, output via onData and the async iterator, the exit (SDK's own WebSocket client)",
    async () => {
      const op = await base.run("sh", {
        shell: false,
        tty: true,
        rows: 21,
        cols: 77,
        env: SHELL_ENV,
        disposable: true,
      });
      const term = await op.terminal();
      const seen = collect(term);
      const iterated: Uint8Array[] = [];
      const iterating = (async () => {
        for await (const chunk of term) iterated.push(chunk);
      })();
      term.write("test -t 0 && echo on-a-tty; stty size\n");
      await seen.until("21 77\r\n");
      expect(seen.out).toContain("on-a-tty\r\n");
      term.resize(40, 100);
      term.write(new TextEncoder().encode("stty size; exit 2\n"));
      await expect(term.exited).resolves.toEqual({ exitCode: 2, signal: -1, timedOut: false });
      await iterating;
      expect(seen.out).toContain("40 100\r\n");
      expect(Buffer.concat(iterated).toString()).toBe(seen.out);
      const r = await op.wait();
      expect(r.exitCode).toBe(2);
      expect(r.stdout).toContain("40 100\r\n");
    },
    LONG,
  );

  it(
    "a tty subprocess in a live run, through a WebSocket constructor given as an option",
    async () => {
      const op = await base.run("sleep 600", { disposable: true });
      try {
        const sub = await op.exec("sh", { shell: false, tty: true, env: SHELL_ENV });
        const term = await sub.terminal({ WebSocket: WebSocket as unknown as WebSocketConstructor });
        const seen = collect(term);
        term.write("echo sub-$((6*7))\n");
        await seen.until("sub-42\r\n");
        term.write("exit 5\n");
        expect((await term.exited).exitCode).toBe(5);
        // The main process has no terminal: a clear 409.
        const refused = await op.terminal().catch((e: unknown) => e);
        expect(isConflict(refused)).toBe(true);
      } finally {
        await op.cancel().catch(() => undefined);
      }
    },
    LONG,
  );
});
