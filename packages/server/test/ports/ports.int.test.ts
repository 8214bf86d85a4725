/**
 * Exposed ports (issue 16 §2), on every driver, with networking disabled (the default): a server
 * listening inside the sandbox (busybox httpd with CGI scripts, an nc upgrade echo) is reached
 * through `/v1/operations/{id}/ports/{port}/…` and through a signed URL; the API token never
 * reaches the sandbox; two instances of one image serve the same port side by side; 100 MiB go
 * up and down with bounded server memory; ending the instance closes its connections.
 */
import { readFileSync } from "node:fs";
import { request as httpRequest, type IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PortUrlSigner } from "../../src/auth/port-url-signer.js";
import { importBusybox } from "../harness/busybox-image.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import type { RegistryHandle } from "../harness/registry.js";
import { tenant, withoutCrun } from "../harness/tenant.js";

const DRIVERS = [
  { name: "crun", runtime: "oci" },
  { name: "runc", runtime: "oci" },
  { name: "runsc", runtime: "gvisor" },
] as const;

const HTTP_PORT = 8080;
const UPGRADE_PORT = 9001;
const MiB = 1024 * 1024;
const BIG = 100 * MiB;

/** A CGI script that prints a text/plain header and then runs `body`. */
const cgi = (file: string, body: string, type = "text/plain") =>
  `cat > ${file} <<'EOF'\n#!/bin/sh\nprintf 'Content-Type: ${type}\\r\\n\\r\\n'\n${body}\nEOF`;

/** The instance's main process: httpd with CGI scripts, an upgrade echo, then it waits. */
const SERVE = [
  "mkdir -p /tmp/www/cgi-bin",
  cgi(
    "/tmp/www/cgi-bin/echo",
    [
      'echo "who=$WHO"',
      'echo "uri=$REQUEST_URI"',
      'echo "method=$REQUEST_METHOD"',
      'echo "auth=$HTTP_AUTHORIZATION"',
      'echo "project=$HTTP_PROJECT"',
      'echo "fwd=$HTTP_X_FORWARDED_PREFIX"',
    ].join("\n"),
  ),
  cgi("/tmp/www/cgi-bin/count", "wc -c"),
  // 100 MiB in 1 MiB steps, each step counted in /tmp/sent (how far the sandbox got).
  cgi(
    "/tmp/www/cgi-bin/big",
    `i=0; while [ $i -lt ${BIG / MiB} ]; do head -c ${MiB} /dev/zero; i=$((i+1)); echo $i > /tmp/sent; done`,
    "application/octet-stream",
  ),
  // The upgrade echo: reads the request head, answers 101, then echoes bytes.
  "cat > /tmp/ws.sh <<'EOF'",
  "#!/bin/sh",
  'while read -r l; do l=$(printf "%s" "$l" | tr -d "\\r"); [ -z "$l" ] && break; done',
  "printf 'HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: echo\\r\\nConnection: Upgrade\\r\\n\\r\\n'",
  "exec cat",
  "EOF",
  "chmod +x /tmp/www/cgi-bin/* /tmp/ws.sh",
  `httpd -f -p 127.0.0.1:${HTTP_PORT} -h /tmp/www &`,
  `nc -ll -p ${UPGRADE_PORT} -e /tmp/ws.sh &`,
  "echo ready",
  "exec sleep 600",
].join("\n");

describe.each(DRIVERS)("exposed ports ($name)", ({ name, runtime }) => {
  let t: TestServer;
  let reg: RegistryHandle;
  const running: string[] = [];
  const base = () => `${t.url}${t.config.pathPrefix}`;

  const startServing = async (who: string, extra: Record<string, unknown> = {}): Promise<string> => {
    const r = await t.api("/v1/instances", {
      method: "POST",
      json: {
        image: "tag:busybox:latest",
        disposable: true,
        timeout: 300,
        command: SERVE,
        shell: true,
        env: { WHO: who },
        ...extra,
      },
    });
    const { uuid } = (await r.json()) as { uuid: string };
    running.push(uuid);
    // Until httpd listens: 425 before the instance runs, 502 while nothing listens yet.
    const until = Date.now() + 60_000;
    for (;;) {
      const res = await t.api(`/v1/operations/${uuid}/ports/${HTTP_PORT}/cgi-bin/echo`);
      const text = await res.text();
      if (res.status === 200) return uuid;
      expect([425, 502], text).toContain(res.status);
      if (Date.now() > until) throw new Error(`port ${HTTP_PORT} never answered: ${res.status} ${text}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  };

  /** An upgrade through the proxy; resolves with the raw socket once the sandbox answered 101. */
  const upgrade = (path: string, headers: Record<string, string>) =>
    new Promise<{ socket: Socket; head: Buffer } | { status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(`${base()}${path}`, {
        headers: { connection: "Upgrade", upgrade: "echo", ...headers },
      });
      req.once("upgrade", (_res, socket, head) => resolve({ socket, head }));
      req.once("response", async (res: IncomingMessage) => {
        let body = "";
        for await (const c of res) body += String(c);
        resolve({ status: res.statusCode ?? 0, body });
      });
      req.once("error", reject);
      req.end();
    });

  const echoOnce = (socket: Socket, text: string) =>
    new Promise<string>((resolve) => {
      let got = "";
      const onData = (c: Buffer) => {
        got += c.toString();
        if (got.includes(text)) {
          socket.off("data", onData);
          resolve(got);
        }
      };
      socket.on("data", onData);
      socket.write(text);
    });

  let op: string;

  /** Runs a shell command in instance `id` and returns its stdout. */
  const shell = async (id: string, command: string): Promise<string> => {
    const r = await t.api(`/v1/operations/${id}/subprocesses`, {
      method: "POST",
      json: { command, shell: true },
    });
    const { spid } = (await r.json()) as { spid: number };
    for (;;) {
      const doc = (await (await t.api(`/v1/operations/${id}/subprocesses/${spid}`)).json()) as {
        state: { exit_code: number; signal: number };
        stdout: { value: string; encoding: string };
      };
      if (doc.state.exit_code !== -1 || doc.state.signal !== -1)
        return doc.stdout.encoding === "base64"
          ? Buffer.from(doc.stdout.value, "base64").toString()
          : doc.stdout.value;
      await new Promise((res) => setTimeout(res, 50));
    }
  };

  beforeAll(async () => {
    const start = () =>
      startTestServer({ runtime, ports: { maxConnectionsPerInstance: 3, urlKey: undefined } });
    t = name === "runc" ? await withoutCrun(start) : await start();
    expect(t.server.runtime.name).toBe(name);
    ({ registry: reg } = await importBusybox(t));
    op = await startServing("a");
  }, 180_000);
  afterAll(async () => {
    for (const id of running)
      await t?.api(`/v1/operations/${id}`, { method: "DELETE" }).catch(() => undefined);
    await t?.close();
    await reg?.stop();
  });

  it("HTTP reaches the sandbox's port with networking disabled; path and query go as they came; no token inside", async () => {
    // Instances get no network unless they ask: the relay reached the sandbox's own loopback.
    expect(t.config.defaultNetworking).toBe(false);
    const res = await t.api(`/v1/operations/${op}/ports/${HTTP_PORT}/cgi-bin/echo?a=b%20c&x=%2F`, {
      headers: { project: "default" },
    });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    expect(text).toContain("who=a");
    expect(text).toContain("uri=/cgi-bin/echo?a=b%20c&x=%2F");
    expect(text).toContain("method=GET");
    expect(text).toMatch(/^auth=$/m);
    expect(text).toMatch(/^project=$/m);
    expect(text).toContain(`fwd=${t.config.pathPrefix}/v1/operations/${op}/ports/${HTTP_PORT}`);
    const r = await t.api(`/v1/operations/${op}/ports/${HTTP_PORT}/cgi-bin/echo`, {
      method: "POST",
      body: "x",
    });
    expect(r.status).toBe(200);
    expect(await r.text()).toContain("method=POST");
  });

  it("validates the port, hides other projects' operations, answers 502 when nothing listens", async () => {
    for (const bad of ["0", "65536", "99999", "x", "-1"]) {
      const r = await t.api(`/v1/operations/${op}/ports/${bad}/`);
      expect(r.status, bad).toBe(400);
    }
    const other = await tenant(t, "ports-other");
    const r = await other.api(`/v1/operations/${op}/ports/${HTTP_PORT}/cgi-bin/echo`);
    expect(r.status).toBe(404);
    const u = await upgrade(`/v1/operations/${op}/ports/${UPGRADE_PORT}/`, {
      authorization: `Bearer ${other.token}`,
    });
    expect("status" in u && u.status).toBe(404);
    const none = await t.api(`/v1/operations/${op}/ports/4711/`);
    expect(none.status).toBe(502);
    const noToken = await fetch(`${base()}/v1/operations/${op}/ports/${HTTP_PORT}/cgi-bin/echo`);
    expect(noToken.status).toBe(401);
  });

  it("WebSocket-style upgrades are relayed both ways", async () => {
    const u = await upgrade(`/v1/operations/${op}/ports/${UPGRADE_PORT}/ws`, {
      authorization: `Bearer ${t.token}`,
    });
    if ("status" in u) throw new Error(`no upgrade: ${u.status} ${u.body}`);
    expect(await echoOnce(u.socket, "hello through the proxy\n")).toContain("hello through the proxy");
    expect(await echoOnce(u.socket, "second\n")).toContain("second");
    u.socket.destroy();
  });

  it("an instance with networking enabled is reached the same way (its egress netns)", async () => {
    const id = await startServing("net", { networking: { enabled: true } });
    const r = await t.api(`/v1/operations/${id}/ports/${HTTP_PORT}/cgi-bin/echo`);
    expect(r.status).toBe(200);
    expect(await r.text()).toContain("who=net");
    await t.api(`/v1/operations/${id}`, { method: "DELETE" });
  });

  it("the same port on two instances of one image is reachable side by side", async () => {
    const b = await startServing("b");
    const [ra, rb] = await Promise.all([
      t.api(`/v1/operations/${op}/ports/${HTTP_PORT}/cgi-bin/echo`),
      t.api(`/v1/operations/${b}/ports/${HTTP_PORT}/cgi-bin/echo`),
    ]);
    expect(await ra.text()).toContain("who=a");
    expect(await rb.text()).toContain("who=b");
  });

  it("a signed URL works without a token; forged and expired ones get 403", async () => {
    const r = await t.api(`/v1/operations/${op}/ports/${HTTP_PORT}/url`, {
      method: "POST",
      json: { expires_in_seconds: 600 },
    });
    const signed = (await r.json()) as { url: string; path: string; expires_at: string };
    expect(r.status, JSON.stringify(signed)).toBe(201);
    expect(Date.parse(signed.expires_at)).toBeGreaterThan(Date.now());
    const ok = await fetch(`${signed.url}cgi-bin/echo?q=1`);
    const text = await ok.text();
    expect(ok.status, text).toBe(200);
    expect(text).toContain("uri=/cgi-bin/echo?q=1");
    expect(text).toMatch(/^auth=$/m);
    // Forged: another port, another signature, another expiry under the same signature.
    const [, , , , exp, sig] = signed.path.split("/").slice(-7);
    const forged = [
      signed.url.replace(`/${HTTP_PORT}/`, `/${UPGRADE_PORT}/`),
      signed.url.replace(String(sig), `${String(sig).slice(0, -2)}AA`),
      signed.url.replace(`/${exp}/`, `/${Number(exp) + 1000}/`),
    ];
    for (const f of forged) expect((await fetch(`${f}cgi-bin/echo`)).status, f).toBe(403);
    // Expired: signed with the server's own key, for a moment already past.
    const signer = new PortUrlSigner(readFileSync(join(t.dataDir, "port-url.key")));
    const past = Math.floor(Date.now() / 1000) - 1;
    const expired = `${base()}/v1/p/${op}/${HTTP_PORT}/${past}/${signer.sign(op, HTTP_PORT, past)}/cgi-bin/echo`;
    expect((await fetch(expired)).status).toBe(403);
    // The upgrade path honours it too, and refuses a forged one.
    const wsPath = (await (
      await t.api(`/v1/operations/${op}/ports/${UPGRADE_PORT}/url`, { method: "POST", json: {} })
    ).json()) as { path: string };
    const u = await upgrade(wsPath.path.slice(t.config.pathPrefix.length), {});
    if ("status" in u) throw new Error(`no upgrade: ${u.status} ${u.body}`);
    expect(await echoOnce(u.socket, "signed\n")).toContain("signed");
    u.socket.destroy();
    const bad = await upgrade(
      `/v1/p/${op}/${UPGRADE_PORT}/${past}/${signer.sign(op, UPGRADE_PORT, past)}/`,
      {},
    );
    expect("status" in bad && bad.status).toBe(403);
  });

  it("100 MiB up and down stream through with bounded server memory, with a slow reader", async () => {
    const chunk = Buffer.alloc(MiB, 7);
    let sent = 0;
    const body = new Readable({
      read() {
        if (sent >= BIG) return void this.push(null);
        sent += MiB;
        this.push(chunk);
      },
    });
    const up = await t.api(`/v1/operations/${op}/ports/${HTTP_PORT}/cgi-bin/count`, {
      method: "POST",
      headers: { "content-length": String(BIG), "content-type": "application/json" },
      body: Readable.toWeb(body) as ReadableStream,
      duplex: "half",
    } as RequestInit);
    expect(up.status).toBe(200);
    expect((await up.text()).trim()).toBe(String(BIG));

    global.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 20);
    const res = await t.api(`/v1/operations/${op}/ports/${HTTP_PORT}/cgi-bin/big`);
    expect(res.status).toBe(200);
    let got = 0;
    let stalled = false;
    let sentDuringStall = -1;
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        got += value.length;
        // A client that stops reading for 12 s after the first 4 MiB, long enough for the sandbox to
        // send the rest (without backpressure the server held 32–49 MiB after 4–6 s of it).
        if (!stalled && got >= 4 * MiB) {
          stalled = true;
          await new Promise((r) => setTimeout(r, 12_000));
          sentDuringStall = Number((await shell(op, "cat /tmp/sent")).trim());
        }
      }
    } finally {
      clearInterval(sampler);
    }
    expect(got).toBe(BIG);
    const growth = peak - before;
    console.log(
      `[ports/${name}] 100 MiB download with a slow reader: server RSS grew ${(growth / MiB).toFixed(1)} MiB`,
    );
    // Backpressure reaches the sandbox: it stopped writing while the client did not read (what
    // it got out is held in pipe, socket and stream buffers, a few MiB each at most).
    console.log(`[ports/${name}] the sandbox had sent ${sentDuringStall} MiB after 12 s of a stalled reader`);
    expect(sentDuringStall).toBeGreaterThan(0);
    expect(sentDuringStall).toBeLessThan(40);
    expect(growth).toBeLessThan(40 * MiB);
  }, 180_000);

  it("connections beyond the per-instance limit get 429; ending the instance closes the open ones", async () => {
    const id = await startServing("c");
    const open: Socket[] = [];
    for (let i = 0; i < 3; i++) {
      const u = await upgrade(`/v1/operations/${id}/ports/${UPGRADE_PORT}/`, {
        authorization: `Bearer ${t.token}`,
      });
      if ("status" in u) throw new Error(`no upgrade: ${u.status} ${u.body}`);
      await echoOnce(u.socket, `conn ${i}\n`);
      open.push(u.socket);
    }
    const over = await t.api(`/v1/operations/${id}/ports/${HTTP_PORT}/cgi-bin/echo`);
    expect(over.status).toBe(429);
    const closed = open.map(
      (s) => new Promise<void>((r) => (s.destroyed ? r() : s.once("close", () => r()))),
    );
    expect((await t.api(`/v1/operations/${id}`, { method: "DELETE" })).status).toBeLessThan(300);
    await Promise.all(closed);
    await waitOperation(t, id);
    const after = await t.api(`/v1/operations/${id}/ports/${HTTP_PORT}/cgi-bin/echo`);
    expect(after.status).toBe(409);
    expect(((await after.json()) as { error: string }).error).toMatch(/finished/);
  }, 120_000);
});
