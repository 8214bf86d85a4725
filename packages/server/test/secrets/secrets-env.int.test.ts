/**
 * Project secrets in env mode, against the real server on every driver: the admin API (never a
 * value back, 403 for ordinary tokens), a run that reads the value from its environment, a
 * commit that would write it (raw, base64 at another alignment) refused with the reason, forks
 * that get no value, audit events, and the value found nowhere afterwards: not in the database
 * (sealed), the event log, the server log, operation metadata, layers or outputs.
 */
import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importBusybox } from "../harness/busybox-image.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import type { RegistryHandle } from "../harness/registry.js";
import { tenant, withoutCrun } from "../harness/tenant.js";
import { capturedLogger, filesHolding, runDirsGone } from "./secrets-harness.js";

type Op = {
  uuid: string;
  status: string;
  error: string | null;
  result: { image: string | null };
  metadata: {
    result: { stdout: { value: string } };
    commit_refused?: { reason: string; secret: string; path: string; encoding: string };
  };
};

const DRIVERS = [
  { name: "crun", runtime: "oci" },
  { name: "runc", runtime: "oci" },
  { name: "runsc", runtime: "gvisor" },
] as const;

/** Runs stay on a tmpfs scratch (cap ≤ 1 GiB): no loop image holds their freed blocks. */
const SMALL_CAP = { max_layer_bytes: 64 * 1024 * 1024 };

describe.each(DRIVERS)("secrets in env mode ($name)", ({ name, runtime }) => {
  let t: TestServer;
  let reg: RegistryHandle;
  let me: Awaited<ReturnType<typeof tenant>>;
  const log = capturedLogger();
  const value = `sk-live-${randomBytes(18).toString("hex")}`;
  const sha = createHash("sha256").update(value).digest("hex");
  const ops: string[] = [];

  beforeAll(async () => {
    const start = () => startTestServer({ runtime }, {}, log.logger);
    t = name === "runc" ? await withoutCrun(start) : await start();
    expect(t.server.runtime.name).toBe(name);
    ({ registry: reg } = await importBusybox(t));
    me = await tenant(t);
  }, 180_000);
  afterAll(async () => {
    await t?.close();
    await reg?.stop();
  });

  async function run(body: Record<string, unknown>, expectStatus = "SUCCESS"): Promise<Op> {
    const r = await me.api("/v1/instances", {
      method: "POST",
      json: { shell: true, image: "tag:busybox:latest", resources_limits: SMALL_CAP, ...body },
    });
    expect(r.status, await r.clone().text()).toBe(202);
    const id = ((await r.json()) as { uuid: string }).uuid;
    ops.push(id);
    const op = (await waitOperation((p) => me.api(p), id, 120_000)) as Op;
    expect(op.status, String(op.error)).toBe(expectStatus);
    return op;
  }

  const events = async (id: string) => (await me.api(`/v1/operations/${id}/events`)).text();

  it("admin API: stored, listed by name and size only, never returned; ordinary tokens get 403", async () => {
    const put = await t.api("/v1/admin/secrets/default/OPENAI", { method: "PUT", json: { value } });
    expect(put.status).toBe(201);
    const created = (await put.json()) as Record<string, unknown>;
    expect(created).toMatchObject({ name: "OPENAI", size: value.length, last_used_at: null });
    expect(JSON.stringify(created)).not.toContain(value);
    const again = await t.api("/v1/admin/secrets/default/OPENAI", { method: "PUT", json: { value } });
    expect(again.status).toBe(200);
    const list = await (await t.api("/v1/admin/secrets/default")).text();
    expect(JSON.parse(list)).toMatchObject({ secrets: [{ name: "OPENAI", size: value.length }] });
    expect(list).not.toContain(value);
    // A tenant's own token: refused whatever it asks, its project's secrets included.
    for (const [method, path] of [
      ["PUT", "/v1/admin/secrets/default/OPENAI"],
      ["GET", "/v1/admin/secrets/default"],
      ["DELETE", "/v1/admin/secrets/default/OPENAI"],
    ] as const) {
      const r = await me.api(path, {
        method,
        ...(method === "PUT" ? { json: { value: "x".repeat(16) } } : {}),
      });
      expect(r.status, `${method} ${path}`).toBe(403);
    }
    // Too short to scan for, or unknown project: refused with the reason.
    const short = await t.api("/v1/admin/secrets/default/SHORT", { method: "PUT", json: { value: "abc" } });
    expect(short.status).toBe(400);
    expect(((await short.json()) as { error: string }).error).toMatch(/8 to 65536 bytes/);
    expect((await t.api("/v1/admin/secrets/nope/X", { method: "PUT", json: { value } })).status).toBe(404);
  });

  it("a run sees the value in its env; its image keeps neither the variable nor the value; forks get none", async () => {
    const op = await run({
      command:
        'printf %s "$OPENAI_API_KEY" | sha256sum | cut -d" " -f1; mkdir -p /data; echo kept > /data/ok',
      secrets: [{ name: "OPENAI", env: "OPENAI_API_KEY" }],
      preserve_env: true,
      env: { PLAIN: "visible" },
    });
    expect(op.metadata.result.stdout.value).toBe(`${sha}\n`);
    expect(op.result.image).not.toBeNull();
    expect(op.metadata.commit_refused).toBeUndefined();
    const ev = await events(op.uuid);
    expect(ev).toContain('"secret_used"');
    expect(ev).toMatch(/"name":"OPENAI","mode":"env","env":"OPENAI_API_KEY"/);
    expect(ev).toMatch(/"OPENAI_API_KEY":"<REDACTED>"/);
    expect(log.text()).toMatch(/"audit":"secret_used".*"secret":"OPENAI"/);
    // A fork of the result: the image's env (preserve_env) has PLAIN but not the secret's variable.
    const fork = await run({
      image: op.result.image,
      command: 'if [ -n "$OPENAI_API_KEY" ]; then echo "$PLAIN:set"; else echo "$PLAIN:unset"; fi',
      disposable: true,
    });
    expect(fork.metadata.result.stdout.value).toBe("visible:unset\n");
    // It names the secret again: the value comes from the store, not from the image.
    const again = await run({
      image: op.result.image,
      command: 'printf %s "$K" | sha256sum | cut -d" " -f1; cat /data/ok',
      secrets: [{ name: "OPENAI", env: "K" }],
      disposable: true,
    });
    expect(again.metadata.result.stdout.value).toBe(`${sha}\nkept\n`);
    const listed = (await (await t.api("/v1/admin/secrets/default")).json()) as {
      secrets: { last_used_at: string | null }[];
    };
    expect(listed.secrets[0]?.last_used_at).not.toBeNull();
  }, 300_000);

  it("a commit that would write the value is refused: raw, and base64 at another alignment", async () => {
    const raw = await run({
      command: 'mkdir -p /root/app; echo "key=$OPENAI_API_KEY" > /root/app/.env; echo wrote',
      secrets: [{ name: "OPENAI", env: "OPENAI_API_KEY" }],
    });
    expect(raw.result.image).toBeNull();
    expect(raw.metadata.result.stdout.value).toBe("wrote\n");
    expect(raw.error).toBe(
      'the run wrote the value of secret "OPENAI" into /root/app/.env: no image was made',
    );
    expect(raw.metadata.commit_refused).toEqual({
      reason: "secret",
      secret: "OPENAI",
      path: "/root/app/.env",
      encoding: "raw",
    });
    expect(await events(raw.uuid)).toMatch(/"secret_in_layer".*"secret":"OPENAI","path":"\/root\/app\/.env"/);

    const b64 = await run({
      command: '{ printf x; printf %s "$OPENAI_API_KEY"; } | base64 > /tmp/blob',
      secrets: [{ name: "OPENAI", env: "OPENAI_API_KEY" }],
    });
    expect(b64.result.image).toBeNull();
    expect(b64.metadata.commit_refused).toMatchObject({
      secret: "OPENAI",
      path: "/tmp/blob",
      encoding: "base64",
    });

    // A file named after the value: the refusal names its directory, not the name.
    const named = await run({
      command: 'mkdir /w; touch "/w/$OPENAI_API_KEY"',
      secrets: [{ name: "OPENAI", env: "OPENAI_API_KEY" }],
    });
    expect(named.result.image).toBeNull();
    expect(named.metadata.commit_refused).toMatchObject({ secret: "OPENAI", path: "/w" });

    // The same writes without the secret commit as usual (the scan is what refused them).
    const plain = await run({ command: "mkdir -p /root/app; echo key=none > /root/app/.env" });
    expect(plain.result.image).not.toBeNull();
  }, 300_000);

  it("what the process prints of the value is masked, in the result and the events", async () => {
    const op = await run({
      command: 'echo "got $OPENAI_API_KEY"; env | grep ^OPENAI_API_KEY= >&2',
      secrets: [{ name: "OPENAI", env: "OPENAI_API_KEY" }],
      disposable: true,
    });
    expect(op.metadata.result.stdout.value).toBe("got <secret:OPENAI>\n");
    expect((op.metadata.result as unknown as { stderr: { value: string } }).stderr.value).toBe(
      "OPENAI_API_KEY=<secret:OPENAI>\n",
    );
    expect(await events(op.uuid)).not.toContain(value);
  }, 120_000);

  it("a run naming a secret the project lacks is a 404 before it is queued", async () => {
    const r = await me.api("/v1/instances", {
      method: "POST",
      json: { command: "true", image: "tag:busybox:latest", secrets: [{ name: "MISSING", env: "X" }] },
    });
    expect(r.status).toBe(404);
    expect(((await r.json()) as { error: string }).error).toBe('secret "MISSING" not found');
    const clash = await me.api("/v1/instances", {
      method: "POST",
      json: {
        command: "true",
        image: "tag:busybox:latest",
        env: { X: "1" },
        secrets: [{ name: "OPENAI", env: "X" }],
      },
    });
    expect(clash.status).toBe(400);
  });

  it("the value is nowhere: database (sealed), events, metadata, layers, outputs, server log", async () => {
    const needles = [Buffer.from(value), Buffer.from(Buffer.from(value).toString("base64"))];
    // The runs above all finished; their teardowns (which remove the bundles) too.
    await runDirsGone(t.dataDir, ops);
    const found = await filesHolding(t.dataDir, needles);
    expect(found.read).toBeGreaterThan(5);
    expect(found.hits).toEqual([]);
    for (const id of ops) {
      const doc = await (await me.api(`/v1/operations/${id}`)).text();
      expect(doc).not.toContain(value);
      expect(await events(id)).not.toContain(value);
    }
    expect(log.text().length).toBeGreaterThan(1000);
    expect(log.text()).not.toContain(value);
    expect(log.text()).not.toContain(needles[1]?.toString());
    // Deleted: gone from the list, and a run naming it is refused.
    expect((await t.api("/v1/admin/secrets/default/OPENAI", { method: "DELETE" })).status).toBe(200);
    expect((await t.api("/v1/admin/secrets/default/OPENAI", { method: "DELETE" })).status).toBe(404);
    expect(await (await t.api("/v1/admin/secrets/default")).json()).toEqual({ secrets: [] });
  }, 120_000);
});
