/**
 * Project secrets in header mode, against the real server on every driver and HTTP hosts in a
 * network namespace of this machine: the sandbox sees only a placeholder; its plain-HTTP request
 * to the configured host arrives there with the real value in the configured header; the same
 * request to another host arrives with the placeholder; the use is audited with its destination;
 * the redirect is gone after the run; the value is nowhere afterwards.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
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
    const start = () => startTestServer({ runtime, secretProxyPrivate: [target.range] }, {}, log.logger);
    t = name === "runc" ? await withoutCrun(start) : await start();
    expect(t.server.runtime.name).toBe(name);
    ({ registry: reg } = await importBusybox(t));
    me = await tenant(t);
    const put = await t.api("/v1/admin/secrets/default/OPENAI", {
      method: "PUT",
      json: { value, hosts: [target.a], allow_env: false },
    });
    expect(put.status).toBe(201);
    expect(await put.json()).toMatchObject({ hosts: [target.a], allow_env: false });
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
