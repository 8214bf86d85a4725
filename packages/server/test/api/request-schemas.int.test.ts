/**
 * Issue 11 §3: the route schemas are the validation of every body, nested parts included.
 * Hostile bodies (wrong types deep inside, extra nesting, huge arrays, NUL, negative and huge
 * numbers) get a 400 naming what is wrong, never a 500; what the official clients send still
 * passes; and each limit whoami advertises is the one enforced, with the same number in the
 * error: at the limit accepted, one past it refused.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LIMITS } from "../../src/config/limits.js";
import { importBusybox } from "../harness/busybox-image.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import type { RegistryHandle } from "../harness/registry.js";
import { tenant } from "../harness/tenant.js";

let t: TestServer;
let reg: RegistryHandle;
let base: string;
const FILE = "00000000-0000-4000-8000-000000000000";
const OP = "00000000-0000-4000-8000-00000000000a";

beforeAll(async () => {
  t = await startTestServer({ runtime: (process.env["CONTREE_TEST_RUNTIME"] as "oci" | undefined) ?? "oci" });
  ({ registry: reg, image: base } = await importBusybox(t));
});
afterAll(async () => {
  await t?.close();
  await reg?.stop();
});

async function send(
  path: string,
  body: unknown,
  method = "POST",
  api = t.api.bind(t),
): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await api(path, {
    method,
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

/** A 400 in the one error shape, with a message matching `why`. */
async function refused(path: string, body: unknown, why: RegExp, method = "POST"): Promise<void> {
  const r = await send(path, body, method);
  expect(r.status, JSON.stringify(r.body)).toBe(400);
  expect(Object.keys(r.body).sort()).toEqual(["error", "status"]);
  expect(r.body["status"]).toBe(400);
  expect(String(r.body["error"])).toMatch(why);
}

const spawn = (extra: Record<string, unknown>) => ({
  command: "true",
  image: "tag:busybox:latest",
  ...extra,
});
const big = (n: number, v: unknown) => Array.from({ length: n }, () => v);

describe("POST /v1/instances: hostile bodies are 400 with a clear message", () => {
  it.each<[string, Record<string, unknown>, RegExp]>([
    ["command missing", { image: FILE }, /command/],
    [
      "command with NUL",
      spawn({ command: "ls\u0000-la" }),
      /^command must be a non-empty string without NUL$/,
    ],
    ["command as an array", spawn({ command: ["ls"] }), /^command must be/],
    ["image not a UUID or tag", spawn({ image: "nope" }), /^image must be an image UUID or "tag:NAME"$/],
    ["args nested arrays", spawn({ args: [["a"]] }), /^args must be strings without NUL$/],
    ["args with NUL", spawn({ args: ["a\u0000b"] }), /^args must be strings without NUL$/],
    ["args huge", spawn({ args: big(70_000, "a") }), /^args must be an array of at most 65536 strings$/],
    ["env value a number", spawn({ env: { A: 1 } }), /^env\.A must be a string without NUL$/],
    ["env value an object", spawn({ env: { A: { deep: "x" } } }), /^env\.A must be a string/],
    ["env value with NUL", spawn({ env: { A: "x\u0000" } }), /^env\.A must be a string without NUL$/],
    ["env name with =", spawn({ env: { "A=B": "x" } }), /^env names must be non-empty, without "=" or NUL$/],
    ["env name with a newline", spawn({ env: { "A\nB": 5 } }), /env/],
    ["env an array", spawn({ env: ["A=1"] }), /^env must be an object/],
    [
      "one file given twice under two spellings",
      spawn({ files: { "/a": { uuid: FILE }, "//a": { uuid: FILE } } }),
      /^files: "\/a" is given twice$/,
    ],
    ["cwd relative", spawn({ cwd: "relative" }), /^cwd must be an absolute path/],
    ["cwd with NUL", spawn({ cwd: "/a\u0000b" }), /^cwd must be an absolute path/],
    ["hostname too long", spawn({ hostname: "h".repeat(64) }), /^hostname must be a valid host name/],
    ["uid negative", spawn({ uid: -1 }), /^uid must be an integer between 0 and 4294967294$/],
    ["uid huge", spawn({ uid: 1e300 }), /^uid must be an integer between 0 and 4294967294$/],
    ["gid fractional", spawn({ gid: 1.5 }), /^gid must be an integer/],
    ["shell a string", spawn({ shell: "true" }), /^shell must be a boolean$/],
    ["timeout zero", spawn({ timeout: 0 }), /^timeout must be a positive integer number of seconds$/],
    ["timeout a string", spawn({ timeout: "5" }), /^timeout must be a positive integer/],
    [
      "truncate negative",
      spawn({ truncate_output_at: -1 }),
      /^truncate_output_at must be a non-negative integer$/,
    ],
    ["stdin a number", spawn({ stdin: 5 }), /^stdin must be an object \{value, encoding, close\}$/],
    ["stdin.value an object", spawn({ stdin: { value: { v: "x" } } }), /^stdin\.value must be a string$/],
    [
      "stdin.encoding unknown",
      spawn({ stdin: { value: "x", encoding: "latin1" } }),
      /^stdin\.encoding must be "ascii" or "base64"$/,
    ],
    [
      "stdin.close a string",
      spawn({ stdin: { value: "", close: "yes" } }),
      /^stdin\.close must be a boolean$/,
    ],
    ["stdin bad base64", spawn({ stdin: { value: "%%%", encoding: "base64" } }), /^stdin: invalid base64$/],
    ["files an array", spawn({ files: [FILE] }), /^files must be an object/],
    [
      "files key relative",
      spawn({ files: { "etc/x": { uuid: FILE } } }),
      /^files keys must be an absolute path/,
    ],
    ["files key /", spawn({ files: { "/./": { uuid: FILE } } }), /^files: cannot write to \/$/],
    ["files spec a string", spawn({ files: { "/a": FILE } }), /files\["\/a"\]/],
    ["files uuid missing", spawn({ files: { "/a": { mode: "0644" } } }), /uuid/],
    [
      "files uuid not a UUID",
      spawn({ files: { "/a": { uuid: "x" } } }),
      /^files\["\/a"\]\.uuid must be a file UUID$/,
    ],
    [
      "files uid deep wrong type",
      spawn({ files: { "/a": { uuid: FILE, uid: "0" } } }),
      /^files\["\/a"\]\.uid must be an integer between 0 and 4294967294$/,
    ],
    [
      "files mode not octal",
      spawn({ files: { "/a": { uuid: FILE, mode: "rwx" } } }),
      /^files\["\/a"\]\.mode must be an octal mode like "0644"$/,
    ],
    [
      "files mode negative",
      spawn({ files: { "/a": { uuid: FILE, mode: -1 } } }),
      /mode must be an octal mode/,
    ],
    ["resources_limits a number", spawn({ resources_limits: 5 }), /resources_limits/],
    [
      "max_layer_bytes zero",
      spawn({ resources_limits: { max_layer_bytes: 0 } }),
      /^resources_limits\.max_layer_bytes must be a positive integer$/,
    ],
    [
      "max_layer_bytes nested",
      spawn({ resources_limits: { max_layer_bytes: { v: 1 } } }),
      /max_layer_bytes must be a positive integer/,
    ],
    [
      "networking.enabled a string",
      spawn({ networking: { enabled: "no" } }),
      /^networking\.enabled must be a boolean$/,
    ],
    ["networking an array", spawn({ networking: [true] }), /networking/],
  ])("%s", async (_name, body, why) => {
    await refused("/v1/instances", body, why);
  });

  it("a body that is not an object, or deeply nested junk, is a 400", async () => {
    await refused("/v1/instances", [1, 2], /^body must be object$/);
    await refused("/v1/instances", "null", /^body must be object$/);
    const deep = `${"[".repeat(5000)}"x"${"]".repeat(5000)}`;
    const body = (at: string) => JSON.stringify(spawn({ marker: 1 })).replace('"marker":1', at);
    await refused("/v1/instances", body(`"env":{"A":${deep}}`), /^env\.A must be a string/);
    await refused("/v1/instances", body(`"files":{"/a":{"uuid":"${FILE}","mode":${deep}}}`), /mode/);
  });

  it("what the official clients send passes, unknown keys and nulls included", async () => {
    const r = await send("/v1/instances", {
      command: "cat",
      image: "tag:busybox:latest",
      args: null,
      env: null,
      cwd: "",
      hostname: "",
      stdin: { value: "aGk=", encoding: "base64", truncated: false },
      files: null,
      timeout: 30,
      truncate_output_at: 8000,
      resources_limits: null,
      networking: { enabled: false, extra: 1 },
      disposable: true,
      some_future_field: { nested: [1] },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    expect(r.body).toMatchObject({ cwd: "/root", hostname: "linuxkit", args: [], env: {}, timeout: 30 });
    const op = await waitOperation(t, String(r.body["uuid"]));
    expect(op["status"], String(op["error"])).toBe("SUCCESS");
  });
});

describe("other bodies", () => {
  it.each<[string, string, unknown, RegExp]>([
    ["import: registry missing", "/v1/images/import", { tag: "x" }, /registry/],
    ["import: registry a number", "/v1/images/import", { registry: 5 }, /^registry/],
    [
      "import: url blank",
      "/v1/images/import",
      { registry: { url: "   " } },
      /^registry\.url must be a non-empty string$/,
    ],
    [
      "import: url nested",
      "/v1/images/import",
      { registry: { url: { u: "x" } } },
      /^registry\.url must be a non-empty string$/,
    ],
    [
      "import: password a number",
      "/v1/images/import",
      { registry: { url: "busybox", credentials: { username: "u", password: 5 } } },
      /^registry\.credentials\.password must be a string$/,
    ],
    [
      "import: top-level credentials wrong",
      "/v1/images/import",
      { registry: "busybox", credentials: { username: ["u"] } },
      /^credentials\.username must be a string$/,
    ],
    [
      "import: bad tag",
      "/v1/images/import",
      { registry: "busybox", tag: "a b" },
      /^tag must be letters, digits/,
    ],
    [
      "import: tag too long",
      "/v1/images/import",
      { registry: "busybox", tag: "a".repeat(257) },
      /at most 256 characters/,
    ],
    [
      "import: timeout negative",
      "/v1/images/import",
      { registry: "busybox", timeout: -5 },
      /^timeout must be a positive integer/,
    ],
    ["exec: command missing", `/v1/operations/${OP}/subprocesses`, { args: [] }, /command/],
    [
      "exec: env value deep",
      `/v1/operations/${OP}/subprocesses`,
      { command: "x", env: { A: [1] } },
      /^env\.A must be a string/,
    ],
    [
      "exec: uid huge",
      `/v1/operations/${OP}/subprocesses`,
      { command: "x", uid: 2 ** 40 },
      /^uid must be an integer between/,
    ],
    ["exec: stdin a string", `/v1/operations/${OP}/subprocesses`, { command: "x", stdin: "hi" }, /stdin/],
    [
      "exec: stdin.close deep",
      `/v1/operations/${OP}/subprocesses`,
      { command: "x", stdin: { close: [true] } },
      /^stdin\.close must be a boolean$/,
    ],
    [
      "exec: args NUL",
      `/v1/operations/${OP}/subprocesses`,
      { command: "x", args: ["\u0000"] },
      /^args must be strings without NUL$/,
    ],
    [
      "stdin write: encoding",
      `/v1/operations/${OP}/subprocesses/1/stdin`,
      { value: "x", encoding: "utf-16" },
      /^encoding must be "ascii" or "base64"$/,
    ],
    [
      "stdin write: value a number",
      `/v1/operations/${OP}/subprocesses/1/stdin`,
      { value: 1 },
      /^value must be a string$/,
    ],
  ])("%s", async (_name, path, body, why) => {
    await refused(path, body, why);
  });

  it.each<[string, unknown, RegExp]>([
    ["missing", {}, /tag/],
    ["a number", { tag: 5 }, /^tag must be letters/],
    ["with NUL", { tag: "a\u0000" }, /^tag must be letters/],
    ["empty", { tag: "" }, /^tag must be letters/],
  ])("PATCH tag: %s", async (_name, body, why) => {
    await refused(`/v1/images/${base}/tag`, body, why, "PATCH");
  });
});

describe("limits agree: whoami, the schema, the check and the error text", () => {
  async function whoamiLimits(api: (p: string, i?: RequestInit) => Promise<Response>) {
    return ((await (await api("/v1/whoami")).json()) as { limits: Record<string, number> }).limits;
  }

  it("instance_max_timeout: the advertised value is accepted, one more is refused naming it", async () => {
    const limit = (await whoamiLimits(t.api.bind(t)))["instance_max_timeout"];
    expect(limit).toBe(LIMITS.instance_max_timeout.default);
    const ok = await send("/v1/instances", spawn({ timeout: limit, disposable: true }));
    expect(ok.status, JSON.stringify(ok.body)).toBe(202);
    expect(ok.body["timeout"]).toBe(limit);
    const msg = `timeout must be at most ${limit} seconds (instance_max_timeout)`;
    await refused("/v1/instances", spawn({ timeout: (limit ?? 0) + 1 }), new RegExp(`^${esc(msg)}$`));
    // Past the ceiling of any configuration the schema refuses it, in the same words.
    await refused("/v1/instances", spawn({ timeout: 999_999 }), new RegExp(`^${esc(msg)}$`));
    await waitOperation(t, String(ok.body["uuid"]));
  });

  it("a project's own limits are the ones advertised and enforced", async () => {
    // The default project holds busybox, so a run at the limit can start.
    const me = await tenant(t, "default");
    await t.server.store.projects.setLimits(me.projectId, {
      instance_max_timeout: 100,
      instance_max_layer_bytes: 64 * 1024 * 1024,
      images_import_max_timeout: 50,
    });
    try {
      const limits = await whoamiLimits(me.api);
      expect(limits).toMatchObject({
        instance_max_timeout: 100,
        instance_max_layer_bytes: 64 * 1024 * 1024,
        images_import_max_timeout: 50,
      });
      const api = me.api;
      const at = await send(
        "/v1/instances",
        spawn({
          image: "tag:busybox:latest",
          timeout: 100,
          resources_limits: { max_layer_bytes: 64 * 1024 * 1024 },
        }),
        "POST",
        api,
      );
      expect(at.status, JSON.stringify(at.body)).toBe(202);
      const over = await send(
        "/v1/instances",
        spawn({ image: "tag:busybox:latest", timeout: 101 }),
        "POST",
        api,
      );
      expect(over).toEqual({
        status: 400,
        body: { error: "timeout must be at most 100 seconds (instance_max_timeout)", status: 400 },
      });
      const huge = await send(
        "/v1/instances",
        spawn({ image: "tag:busybox:latest", timeout: 10 ** 9 }),
        "POST",
        api,
      );
      expect(huge.body["error"]).toBe("timeout must be at most 100 seconds (instance_max_timeout)");
      const layer = await send(
        "/v1/instances",
        spawn({ image: "tag:busybox:latest", resources_limits: { max_layer_bytes: 64 * 1024 * 1024 + 1 } }),
        "POST",
        api,
      );
      expect(layer).toEqual({
        status: 400,
        body: {
          error: `resources_limits.max_layer_bytes must be at most ${64 * 1024 * 1024} bytes (instance_max_layer_bytes)`,
          status: 400,
        },
      });
      const layerHuge = await send(
        "/v1/instances",
        spawn({ image: "tag:busybox:latest", resources_limits: { max_layer_bytes: 1e20 } }),
        "POST",
        api,
      );
      expect(layerHuge.body["error"]).toBe(
        `resources_limits.max_layer_bytes must be at most ${64 * 1024 * 1024} bytes (instance_max_layer_bytes)`,
      );

      const url = `docker://${reg.host}/busybox-missing:latest`;
      const importAt = await send("/v1/images/import", { registry: { url }, timeout: 50 }, "POST", api);
      expect(importAt.status, JSON.stringify(importAt.body)).toBe(202);
      const importOver = await send("/v1/images/import", { registry: { url }, timeout: 51 }, "POST", api);
      expect(importOver).toEqual({
        status: 400,
        body: { error: "timeout must be at most 50 seconds (images_import_max_timeout)", status: 400 },
      });
      const importHuge = await send(
        "/v1/images/import",
        { registry: { url }, timeout: 10 ** 7 },
        "POST",
        api,
      );
      expect(importHuge.body["error"]).toBe("timeout must be at most 50 seconds (images_import_max_timeout)");
      // No timeout given: the default (300 s) bends to the project's lower limit, as a spawn's does.
      const importDefault = await send("/v1/images/import", { registry: { url } }, "POST", api);
      expect(importDefault.status, JSON.stringify(importDefault.body)).toBe(202);
      await waitOperation(t, String(at.body["uuid"]));
      await waitOperation(t, String(importAt.body["uuid"]));
      await waitOperation(t, String(importDefault.body["uuid"]));
    } finally {
      await t.server.store.projects.setLimits(me.projectId, {});
    }
  });

  it("instance_max_concurrency: that many run at once, the next waits PENDING (queued, as the contract allows)", async () => {
    const me = await tenant(t, "default");
    await t.server.store.projects.setLimits(me.projectId, { instance_max_concurrency: 1 });
    try {
      expect((await whoamiLimits(me.api))["instance_max_concurrency"]).toBe(1);
      const first = await send(
        "/v1/instances",
        spawn({ image: "tag:busybox:latest", command: "sleep 2", shell: true, disposable: true }),
        "POST",
        me.api,
      );
      const second = await send(
        "/v1/instances",
        spawn({ image: "tag:busybox:latest", disposable: true }),
        "POST",
        me.api,
      );
      expect([first.status, second.status]).toEqual([202, 202]);
      const status = async (id: unknown) =>
        ((await (await me.api(`/v1/operations/${String(id)}`)).json()) as { status: string }).status;
      while ((await status(first.body["uuid"])) !== "EXECUTING") await new Promise((r) => setTimeout(r, 20));
      expect(await status(second.body["uuid"])).toBe("PENDING");
      const done = await waitOperation(me.api, String(first.body["uuid"]));
      expect(done["status"]).toBe("SUCCESS");
      expect((await waitOperation(me.api, String(second.body["uuid"])))["status"]).toBe("SUCCESS");
    } finally {
      await t.server.store.projects.setLimits(me.projectId, {});
    }
  });

  it("every limit has a ceiling a configuration cannot pass, and whoami never shows more", async () => {
    const me = await tenant(t, "limits-absurd");
    await t.server.store.projects.setLimits(me.projectId, { instance_max_timeout: 10 ** 12 });
    expect((await whoamiLimits(me.api))["instance_max_timeout"]).toBe(LIMITS.instance_max_timeout.ceiling);
  });
});

function esc(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
