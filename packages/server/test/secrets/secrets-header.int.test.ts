/**
 * Project secrets in header mode, against the real server on every driver and HTTP hosts in a
 * network namespace of this machine: the sandbox sees only a placeholder; its plain-HTTP request
 * to the configured host arrives there with the real value in the configured header; the same
 * request to another host arrives with the placeholder; the use is audited with its destination;
 * the redirect is gone after the run; the value is nowhere afterwards. Over HTTPS (the same hosts
 * on port 443, with a certificate from a test CA the server is told to trust) the same holds, the
 * sandbox is pointed at the server's interception CA, and a destination whose certificate does
 * not verify, or a Host that differs from the TLS name, gets no request.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importBusybox } from "../harness/busybox-image.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import type { RegistryHandle } from "../harness/registry.js";
import { tenant, withoutCrun } from "../harness/tenant.js";
import { type HeaderTarget, startHeaderTarget } from "./header-target.js";
import { capturedLogger, filesHolding } from "./secrets-harness.js";

type Op = {
  uuid: string;
  status: string;
  error: string | null;
  result: { image: string | null };
  metadata: {
    result: { state: { exit_code: number }; stdout: { value: string }; stderr: { value: string } };
  };
};

const DRIVERS = [
  { name: "crun", runtime: "oci" },
  { name: "runc", runtime: "oci" },
  { name: "runsc", runtime: "gvisor" },
] as const;

const redirects = () =>
  execFileSync("iptables", ["-w", "-t", "nat", "-S", "PREROUTING"], { encoding: "utf8" })
    .split("\n")
    .filter((l) => l.includes("contree-secrets:"));

describe.each(DRIVERS)("secrets in header mode ($name)", ({ name, runtime }) => {
  let t: TestServer;
  let reg: RegistryHandle;
  let target: HeaderTarget;
  let me: Awaited<ReturnType<typeof tenant>>;
  const log = capturedLogger();
  const value = `sk-hdr-${randomBytes(18).toString("hex")}`;

  beforeAll(async () => {
    target = await startHeaderTarget();
    const start = () =>
      startTestServer(
        {
          runtime,
          secretProxyPrivate: [target.range],
          secretProxyCaFile: target.caFile,
          secretProxyHosts: { [target.aName]: target.a, [target.bName]: target.b, [target.cName]: target.a },
        },
        {},
        log.logger,
      );
    t = name === "runc" ? await withoutCrun(start) : await start();
    expect(t.server.runtime.name).toBe(name);
    ({ registry: reg } = await importBusybox(t));
    me = await tenant(t);
    const put = await t.api("/v1/admin/secrets/default/OPENAI", {
      method: "PUT",
      json: { value, hosts: [target.a, target.aName], allow_env: false },
    });
    expect(put.status).toBe(201);
    expect(await put.json()).toMatchObject({
      hosts: [target.a, target.aName],
      allow_env: false,
    });
  }, 180_000);
  afterAll(async () => {
    await t?.close();
    await reg?.stop();
    await target?.stop();
  });

  async function run(body: Record<string, unknown>): Promise<Op> {
    const r = await me.api("/v1/instances", {
      method: "POST",
      json: { shell: true, image: "tag:busybox:latest", networking: { enabled: true }, ...body },
    });
    expect(r.status, await r.clone().text()).toBe(202);
    const op = (await waitOperation(
      (p) => me.api(p),
      ((await r.json()) as { uuid: string }).uuid,
      120_000,
    )) as Op;
    expect(op.status, String(op.error)).toBe("SUCCESS");
    return op;
  }

  it("the configured host gets the value, another host the placeholder; the sandbox never sees it", async () => {
    const before = target.seen().length;
    const op = await run({
      command: [
        'echo "$OPENAI_API_KEY"',
        `wget -q -O - --header "Authorization: Bearer $OPENAI_API_KEY" http://${target.a}/a`,
        `wget -q -O - --header "Authorization: Bearer $OPENAI_API_KEY" --header "X-Other: $OPENAI_API_KEY" http://${target.b}/b`,
      ].join("; "),
      secrets: [{ name: "OPENAI", env: "OPENAI_API_KEY", header: { host: target.a, name: "Authorization" } }],
      disposable: true,
    });
    const out = op.metadata.result.stdout.value;
    expect(op.metadata.result.state.exit_code, op.metadata.result.stderr.value).toBe(0);
    const placeholder = out.split("\n")[0] ?? "";
    expect(placeholder).toMatch(/^contree-secret:OPENAI:[0-9a-f]{24}$/);
    expect(out).toBe(`${placeholder}\nok\nok\n`);
    const seen = target.seen().slice(before);
    expect(seen.map((s) => [s.local, s.path])).toEqual([
      [target.a, "/a"],
      [target.b, "/b"],
    ]);
    expect(seen[0]?.headers["authorization"]).toBe(`Bearer ${value}`);
    expect(seen[0]?.headers["host"]).toBe(target.a);
    // Another host: the bytes as sent, in every header.
    expect(seen[1]?.headers["authorization"]).toBe(`Bearer ${placeholder}`);
    expect(seen[1]?.headers["x-other"]).toBe(placeholder);
    const ev = await (await me.api(`/v1/operations/${op.uuid}/events`)).text();
    expect(ev).toContain(`"name":"OPENAI","mode":"header","destination":"${target.a}"`);
    expect(ev).not.toContain(`"destination":"${target.b}"`);
    expect(log.text()).toMatch(
      new RegExp(`"audit":"secret_used".*"mode":"header","destination":"${target.a.replace(/\./g, "\\.")}"`),
    );
    // The redirect went with the run.
    expect(redirects().filter((l) => l.includes(op.uuid))).toEqual([]);
  }, 180_000);

  // Names to the sandbox's own /etc/hosts (the proxy resolves them itself: pinned by the server config).
  const hosts = () =>
    `printf '%s %s\\n' ${target.a} ${target.aName} ${target.b} ${target.bName} ${target.a} ${target.cName} >> /etc/hosts`;
  /**
   * An HTTPS request by busybox's ssl_client behind `nc -e` (connected before any fork): its
   * wget forks an `openssl` helper first, whose exit under runsc can interrupt the connect
   * (EINTR, about 1 request in 50). Prints the status line and an "ok" body only.
   */
  const tls = (to: string, sni: string | null, host: string, path: string, ...headers: string[]) =>
    [
      `printf "GET ${path} HTTP/1.1\\r\\nHost: ${host}\\r\\n${headers.map((h) => `${h}\\r\\n`).join("")}Connection: close\\r\\n\\r\\n" > /tmp/req`,
      `printf 'exec 3<&0\\nexec ssl_client -s 3${sni === null ? "" : ` -n ${sni}`} </tmp/req >&2\\n' > /tmp/tls.sh`,
      `nc -w 5 ${to} 443 -e sh /tmp/tls.sh 2>&1 | tr -d '\\r' | grep -E '^(HTTP/1.1 [0-9]+|ok$)' | cut -c1-12`,
    ].join("; ");

  it("HTTPS: the configured host gets the value, another the placeholder; the sandbox trusts the server's CA", async () => {
    const before = target.seen().length;
    const op = await run({
      command: [
        hosts(),
        'echo "$OPENAI_API_KEY"',
        'echo "$SSL_CERT_FILE $NODE_EXTRA_CA_CERTS $REQUESTS_CA_BUNDLE $CURL_CA_BUNDLE"',
        tls(target.aName, target.aName, target.aName, "/sa", "Authorization: Bearer $OPENAI_API_KEY"),
        tls(target.bName, target.bName, target.bName, "/sb", "Authorization: Bearer $OPENAI_API_KEY"),
        "sed -n '1,/END CERTIFICATE/p' \"$SSL_CERT_FILE\"",
      ].join("; "),
      secrets: [
        { name: "OPENAI", env: "OPENAI_API_KEY", header: { host: target.aName, name: "Authorization" } },
      ],
      disposable: true,
    });
    const out = op.metadata.result.stdout.value;
    const [placeholder, trust, ...rest] = out.split("\n");
    expect(placeholder).toMatch(/^contree-secret:OPENAI:[0-9a-f]{24}$/);
    const path = "/dev/contree/ca-bundle.pem";
    expect(trust).toBe(`${path} ${path} ${path} ${path}`);
    const ca = readFileSync(join(t.dataDir, "proxy-ca", "ca.pem"), "utf8");
    expect(rest.join("\n")).toBe(`HTTP/1.1 200\nok\nHTTP/1.1 200\nok\n${ca}`);
    const seen = target.seen().slice(before);
    expect(seen.map((s) => [s.local, s.tls, s.path])).toEqual([
      [target.a, true, "/sa"],
      [target.b, true, "/sb"],
    ]);
    expect(seen[0]?.headers["authorization"]).toBe(`Bearer ${value}`);
    expect(seen[0]?.headers["host"]).toBe(target.aName);
    expect(seen[1]?.headers["authorization"]).toBe(`Bearer ${placeholder}`);
    const ev = await (await me.api(`/v1/operations/${op.uuid}/events`)).text();
    expect(ev).toContain(`"name":"OPENAI","mode":"header","destination":"${target.aName}"`);
    expect(ev).not.toContain(`"destination":"${target.bName}"`);
    expect(redirects().filter((l) => l.includes(op.uuid))).toEqual([]);
  }, 180_000);

  it("HTTPS: the CA file is bound on /dev's tmpfs: the run's image holds no trace of it", async () => {
    const op = await run({
      command: 'test -s "$SSL_CERT_FILE" && echo kept > /kept',
      secrets: [
        { name: "OPENAI", env: "OPENAI_API_KEY", header: { host: target.aName, name: "Authorization" } },
      ],
      disposable: false,
    });
    expect(op.metadata.result.state.exit_code).toBe(0);
    const image = op.result.image as string;
    // What the run changed, against the image it ran on: its own file, nothing of the bind.
    const r = await me.api(`/v1/inspect/${image}/diff`);
    const body = (await r.json()) as { entries: Array<{ path: string; status: string }> };
    expect(r.status, JSON.stringify(body)).toBe(200);
    const changed = body.entries.map((e) => `${e.status} ${e.path}`);
    expect(changed).toContain("added /kept");
    // (/etc/resolv.conf, absent from this image, shows up as its bind's mount point: not ours.)
    expect(changed.filter((c) => /\/dev|contree|\.pem/.test(c))).toEqual([]);
  }, 180_000);

  it("HTTPS: no request reaches a destination whose certificate does not verify, a Host other than the TLS name, or a client without one", async () => {
    const before = target.seen().length;
    const op = await run({
      command: [
        hosts(),
        // c's address serves a certificate for a and b only.
        tls(target.cName, target.cName, target.cName, "/sc", "Authorization: Bearer $OPENAI_API_KEY"),
        // The name the secret is for in Host, another in the TLS handshake.
        tls(target.bName, target.bName, target.aName, "/mismatch", "Authorization: Bearer $OPENAI_API_KEY"),
        // No SNI: no certificate to present.
        tls(target.a, null, target.aName, "/nosni", "Authorization: Bearer $OPENAI_API_KEY"),
      ].join("; "),
      secrets: [
        { name: "OPENAI", env: "OPENAI_API_KEY", header: { host: target.aName, name: "Authorization" } },
      ],
      disposable: true,
    });
    const out = op.metadata.result.stdout.value;
    expect(out).toBe("HTTP/1.1 502\nHTTP/1.1 421\n");
    expect(target.seen().slice(before)).toEqual([]);
    const ev = await (await me.api(`/v1/operations/${op.uuid}/events`)).text();
    expect(ev).not.toContain('"mode":"header","destination"');
  }, 180_000);

  it("HTTPS: the run's egress policy holds on port 443 too", async () => {
    const before = target.seen().length;
    const op = await run({
      command: [
        hosts(),
        tls(target.aName, target.aName, target.aName, "/in", "Authorization: Bearer $OPENAI_API_KEY"),
        tls(target.bName, target.bName, target.bName, "/out"),
      ].join("; "),
      networking: { enabled: true, allow: [`${target.a}/32`] },
      secrets: [
        { name: "OPENAI", env: "OPENAI_API_KEY", header: { host: target.aName, name: "Authorization" } },
      ],
      disposable: true,
    });
    const out = op.metadata.result.stdout.value;
    expect(out).toBe("HTTP/1.1 200\nok\nHTTP/1.1 403\n");
    expect(
      target
        .seen()
        .slice(before)
        .map((s) => [s.local, s.path]),
    ).toEqual([[target.a, "/in"]]);
  }, 180_000);

  it("the run's proxy listener serves only its sandbox: a host process is turned away", async () => {
    const r = await me.api("/v1/instances", {
      method: "POST",
      json: {
        // shell: true, so that it runs: "sleep 30" as a program name would end at once (127), its
        // redirect and listener with it, and the check below would pass against a closed port.
        command: "sleep 30",
        shell: true,
        image: "tag:busybox:latest",
        networking: { enabled: true },
        disposable: true,
        secrets: [{ name: "OPENAI", env: "K", header: { host: target.a, name: "Authorization" } }],
      },
    });
    expect(r.status, await r.clone().text()).toBe(202);
    const id = ((await r.json()) as { uuid: string }).uuid;
    let rule: string | undefined;
    for (let i = 0; i < 600 && rule === undefined; i++) {
      rule = redirects().find((l) => l.includes(id));
      if (rule === undefined) await new Promise((res) => setTimeout(res, 50));
    }
    const to = /--to-destination (\d+\.\d+\.\d+\.\d+:\d+)/.exec(rule ?? "")?.[1];
    if (to === undefined) {
      const op = await (await me.api(`/v1/operations/${id}`)).text();
      const ev = await (await me.api(`/v1/operations/${id}/events`)).text();
      expect.fail(
        `no redirect rule for the run; PREROUTING: ${redirects().join(" | ")}; op: ${op}; events: ${ev}`,
      );
    }
    const before = target.seen().length;
    // The listener is up (the run is live): only the address check can turn the host away.
    const live = (await (await me.api(`/v1/operations/${id}`)).json()) as { status: string };
    expect(live.status).toBe("EXECUTING");
    const answer = await fetch(`http://${to}/from-host`, {
      headers: { host: target.a, authorization: "Bearer x" },
    }).then(
      (res) => `status ${res.status}`,
      () => "refused",
    );
    expect(answer).toBe("refused");
    expect(target.seen().length).toBe(before);
    expect((await me.api(`/v1/operations/${id}`, { method: "DELETE" })).status).toBeLessThan(300);
    await waitOperation((p) => me.api(p), id, 60_000);
    expect(redirects().filter((l) => l.includes(id))).toEqual([]);
  }, 120_000);

  it("without the secret the same request reaches neither host (private addresses stay blocked)", async () => {
    const before = target.seen().length;
    const op = await run({
      command: `wget -q -T 3 -O - http://${target.a}/direct; echo "exit $?"`,
      disposable: true,
    });
    expect(op.metadata.result.stdout.value).toMatch(/exit [1-9]/);
    expect(target.seen().slice(before)).toEqual([]);
  }, 180_000);

  it("the run's egress policy holds for the proxied port 80 too: a host outside its allow list is refused", async () => {
    const before = target.seen().length;
    const op = await run({
      command: [
        `wget -q -O - --header "Authorization: Bearer $OPENAI_API_KEY" http://${target.a}/in`,
        `wget -q -O - http://${target.b}/out 2>&1; echo "exit $?"`,
      ].join("; "),
      networking: { enabled: true, allow: [`${target.a}/32`] },
      secrets: [{ name: "OPENAI", env: "OPENAI_API_KEY", header: { host: target.a, name: "Authorization" } }],
      disposable: true,
    });
    const out = op.metadata.result.stdout.value;
    expect(out).toMatch(/^ok\n/);
    expect(out).toMatch(/403[\s\S]*exit [1-9]/);
    expect(
      target
        .seen()
        .slice(before)
        .map((s) => [s.local, s.path]),
    ).toEqual([[target.a, "/in"]]);
  }, 180_000);

  it("the secret's own policy decides: no other host, no env mode (403 before the run is queued)", async () => {
    const spawn = (secrets: unknown[]) =>
      me.api("/v1/instances", {
        method: "POST",
        json: { command: "true", image: "tag:busybox:latest", networking: { enabled: true }, secrets },
      });
    const other = await spawn([
      { name: "OPENAI", env: "K", header: { host: target.b, name: "Authorization" } },
    ]);
    expect(other.status).toBe(403);
    expect(((await other.json()) as { error: string }).error).toBe(
      `secret "OPENAI" may not be sent to ${target.b} (not among its hosts)`,
    );
    const env = await spawn([{ name: "OPENAI", env: "K" }]);
    expect(env.status).toBe(403);
    expect(((await env.json()) as { error: string }).error).toMatch(/may not be given to a run as its value/);
  });

  it("header secrets need networking; the value is nowhere afterwards", async () => {
    const r = await me.api("/v1/instances", {
      method: "POST",
      json: {
        command: "true",
        image: "tag:busybox:latest",
        networking: { enabled: false },
        secrets: [{ name: "OPENAI", env: "K", header: { host: "x.test", name: "Authorization" } }],
      },
    });
    expect(r.status).toBe(400);
    const needles = [Buffer.from(value), Buffer.from(Buffer.from(value).toString("base64"))];
    expect((await filesHolding(t.dataDir, needles)).hits).toEqual([]);
    expect(log.text()).not.toContain(value);
  }, 60_000);
});
