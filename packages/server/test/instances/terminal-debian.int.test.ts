/**
 * Terminals with a mainstream userland (Debian bookworm: bash with readline and job control,
 * coreutils' stty and tty) on every driver: busybox's ash could hide a gap. runsc 20221219 needs
 * the statx workaround for coreutils here (developers' guide), which the server turns on itself.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { pushDebian } from "../harness/debian-image.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import { type RegistryHandle, startRegistry } from "../harness/registry.js";

let reg: RegistryHandle;
let ref: string;

beforeAll(async () => {
  reg = await startRegistry();
  ref = await pushDebian(reg);
}, 15 * 60_000);
afterAll(async () => {
  await reg?.stop();
});

/** Opens the terminal; `out` accumulates the output, `until` waits for a pattern after `from`. */
async function terminal(url: string, token: string) {
  const ws = new WebSocket(url, ["contree.v1", `contree.token.${token}`]);
  let out = "";
  const messages: Array<Record<string, unknown>> = [];
  ws.on("message", (d: Buffer, binary: boolean) => {
    if (binary) out += d.toString("utf8");
    else messages.push(JSON.parse(d.toString("utf8")) as Record<string, unknown>);
  });
  const closed = new Promise<number>((resolve) => ws.on("close", (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  return {
    ws,
    messages,
    closed,
    get out() {
      return out;
    },
    type: (s: string) => ws.send(Buffer.from(s), { binary: true }),
    async until(re: RegExp, what: string, from = 0, ms = 30_000): Promise<void> {
      const deadline = Date.now() + ms;
      while (!re.test(out.slice(from))) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(out)}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
}

for (const driver of ["crun", "runc", "runsc"] as const) {
  describe(`terminals with Debian bookworm on ${driver}`, () => {
    let t: TestServer;
    let base: string;

    beforeAll(async () => {
      t = await startTestServer({ runtime: driver });
      const r = await t.api("/v1/images/import", {
        method: "POST",
        json: { registry: { url: ref }, tag: "debian:bookworm" },
      });
      const { uuid } = (await r.json()) as { uuid: string };
      const op = await waitOperation(t, uuid, 300_000);
      expect(op["status"], String(op["error"])).toBe("SUCCESS");
      base = String(op["result_image_uuid"]);
    }, 600_000);
    afterAll(async () => {
      await t?.close();
    });

    it("bash -i: a pts of the sandbox's own, stty size and resize, ^C ends the job and bash goes on", async () => {
      const r = await t.api("/v1/instances", {
        method: "POST",
        json: {
          image: base,
          command: "bash",
          args: ["--norc", "--noprofile", "-i"],
          env: { PS1: "$ ", TERM: "xterm" },
          tty: true,
          rows: 30,
          cols: 90,
          disposable: true,
          timeout: 120,
        },
      });
      const { uuid } = (await r.json()) as { uuid: string };
      expect(r.status).toBe(202);
      // The channel answers 425 until the main process has started.
      let term: Awaited<ReturnType<typeof terminal>> | undefined;
      for (let i = 0; term === undefined; i++) {
        try {
          term = await terminal(`${t.url.replace(/^http/, "ws")}/v1/operations/${uuid}/terminal`, t.token);
        } catch (e) {
          if (i > 200) throw e;
          await new Promise((res) => setTimeout(res, 100));
        }
      }
      term.type("tty; test -t 0 && test -t 1 && echo both-ttys; stty size\n");
      await term.until(/30 90\r\n/, "stty size");
      expect(term.out).toMatch(/\/dev\/pts\/\d+\r\n/);
      expect(term.out).toContain("both-ttys\r\n");
      term.ws.send(JSON.stringify({ type: "resize", rows: 45, cols: 120 }));
      term.type("stty size\n");
      await term.until(/45 120\r\n/, "the new size");
      // The job prints once it runs in the foreground process group (bash hands the terminal to
      // it before exec), then sleeps; ^C must end it.
      term.type("bash -c 'echo slee\"\"ping; exec sleep 1000'; echo after-sle''ep-$?\n");
      await term.until(/sleeping\r\n/, "the job");
      const before = term.out.length;
      term.type("\x03");
      await term.until(/\$ $/, "the prompt after ^C", before, 10_000);
      // bash abandons the whole list on SIGINT: the echo after sleep never ran.
      expect(term.out).not.toContain("after-sleep-");
      term.type("echo still-here-$((6*7)); exit 7\n");
      expect(await term.closed).toBe(1000);
      expect(term.out).toContain("still-here-42\r\n");
      expect(term.messages.at(-1)).toMatchObject({ type: "exit", exit_code: 7 });
      const doc = (await waitOperation(t, uuid, 60_000)) as {
        metadata: { result: { state: { exit_code: number }; stderr: { value: string } } };
      };
      expect(doc.metadata.result.state.exit_code).toBe(7);
      expect(doc.metadata.result.stderr.value).toBe("");
    });
  });
}
