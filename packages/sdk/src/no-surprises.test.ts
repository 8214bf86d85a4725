// The "no surprises" rules that need no sandbox: values checked before anything is sent, the
// defaults on the wire, strings as content, local-file errors naming the path, Docker's `:latest`,
// and handles that print without the token. The real-server side is test/shapes.e2e.test.ts.

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeContree, startFakeContree } from "../test/fake-contree.js";
import { ContreeClient } from "./client.js";
import {
  type CommandFailedError,
  isCommandFailed,
  isInvalidArgument,
  isLocalFileError,
  type LocalFileError,
} from "./errors.js";
import { DEFAULTS } from "./index.js";

const TOKEN = "tok-SECRET-7f3a9c";

describe("no surprises (fake server)", () => {
  let fake: FakeContree;
  let client: ContreeClient;
  let dir: string;
  const spawns = () => fake.stub.requests.filter((r) => r.path === "/v1/instances");
  const lastSpawn = () => JSON.parse(spawns().at(-1)!.body.toString()) as Record<string, unknown>;

  beforeAll(async () => {
    fake = await startFakeContree();
    client = new ContreeClient({ url: fake.url, token: TOKEN, env: {}, retry: false });
    dir = await mkdtemp(join(tmpdir(), "contree-sdk-surprises-"));
  });
  afterAll(async () => {
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("sends the official CLI's defaults: timeout 120 s, 64 KiB of output per stream", async () => {
    expect(DEFAULTS).toMatchObject({ timeoutSec: 120, truncateOutputAt: 65536, sandboxTimeoutSec: 300 });
    const base = await client.images.get("busybox");
    await base.runAndWait("true");
    expect(lastSpawn()).toMatchObject({ timeout: 120, truncate_output_at: 65536 });
    await base.runAndWait("true", { timeoutSec: 7, truncateOutputAt: 10 });
    expect(lastSpawn()).toMatchObject({ timeout: 7, truncate_output_at: 10 });
    await base.runAndWait("true", { timeout: 9 }); // the deprecated spelling still works
    expect(lastSpawn()).toMatchObject({ timeout: 9 });
  });

  it.each([
    [{ timeoutSec: 1.5 }, /timeoutSec must be a positive whole number of seconds, got 1\.5/],
    [{ timeoutSec: 0 }, /timeoutSec .* got 0/],
    [{ timeoutSec: "30" as unknown as number }, /timeoutSec .* got "30"/],
    [{ timeoutSec: Number.NaN }, /timeoutSec .* got NaN/],
    [{ timeout: 5, timeoutSec: 6 }, /disagree/],
    [{ truncateOutputAt: -1 }, /truncateOutputAt must be a non-negative whole number of bytes/],
    [{ waitTimeoutMs: -5 }, /waitTimeoutMs must be a non-negative number of milliseconds/],
    [{ timeoutMs: Number.POSITIVE_INFINITY }, /timeoutMs must be a non-negative number/],
  ])("refuses %o before sending anything", async (opts, message) => {
    const base = client.images.handle([...fake.images.keys()][0]!);
    const before = spawns().length;
    const err = await base.runAndWait("true", opts).catch((e: unknown) => e);
    expect(isInvalidArgument(err), String(err)).toBe(true);
    expect((err as Error).message).toMatch(message);
    expect(spawns().length).toBe(before);
  });

  it("an empty command and a bad checkout target are clear errors too", async () => {
    const base = client.images.handle([...fake.images.keys()][0]!);
    expect(isInvalidArgument(await base.run("").catch((e: unknown) => e))).toBe(true);
    expect(isInvalidArgument(await base.run([]).catch((e: unknown) => e))).toBe(true);
    const s = await client.session(base);
    expect(() => s.checkout(3)).toThrow(/no such step/);
    expect(() => s.checkout("busybox")).toThrow(/image UUID/);
    expect(() => s.fork(0)).toThrow(/positive whole number/);
    await s.run(["echo", "x"]);
    // History hands out checkpoints that a caller cannot move.
    expect(
      s.history.every((h) => Object.isFrozen(h) && (h.result === null || Object.isFrozen(h.result))),
    ).toBe(true);
    expect(() => {
      (s.history[1] as { image: unknown }).image = null;
    }).toThrow(TypeError);
  });

  it("check: true turns a non-zero exit into CommandFailedError carrying the result", async () => {
    fake.script = () => ({ stdout: "partial\n", stderr: "boom\n", exitCode: 3 });
    const base = await client.images.get("busybox");
    const unchecked = await base.runAndWait("false");
    expect(unchecked.exitCode).toBe(3);
    const err = await base.runAndWait("false", { check: true }).catch((e: unknown) => e);
    expect(isCommandFailed(err)).toBe(true);
    const failed = err as CommandFailedError;
    expect(failed.exitCode).toBe(3);
    expect(failed.stdout).toBe("partial\n");
    expect(failed.message).toMatch(/run "false" \(operation .*\) exited with code 3: boom/);
    // run(…, {check}) makes it the default of wait() and result().
    const op = await base.run("false", { check: true });
    expect(isCommandFailed(await op.result().catch((e: unknown) => e))).toBe(true);
    fake.script = () => ({ stdout: "" });
  });

  it("files: a string is content; { path } reads a local file; a bad path names itself", async () => {
    const base = await client.images.get("busybox");
    await base.runAndWait("cat /x.txt", { files: { "/x.txt": "text" } });
    const sha = (await import("node:crypto")).createHash("sha256").update("text").digest("hex");
    const stored = fake.files.get(sha);
    expect(stored, "the string was uploaded as content").toBeDefined();
    expect(lastSpawn()["files"]).toEqual({ "/x.txt": { uuid: stored!.uuid, mode: "0644" } });

    const script = join(dir, "run.sh");
    await writeFile(script, "#!/bin/sh\necho hi\n", { mode: 0o750 });
    await base.runAndWait("/run.sh", { files: { "/run.sh": { path: script } } });
    expect((lastSpawn()["files"] as Record<string, { mode: string }>)["/run.sh"]?.mode).toBe("0750");

    const missing = join(dir, "nope.txt");
    for (const attempt of [
      () => base.runAndWait("true", { files: { "/y": { path: missing } } }),
      () => client.files.ensure({ path: missing }),
      () => client.files.upload({ path: dir }), // a directory
    ]) {
      const err = await attempt().catch((e: unknown) => e);
      expect(isLocalFileError(err), String(err)).toBe(true);
      expect((err as LocalFileError).path).toMatch(/nope\.txt$|contree-sdk-surprises-\w+$/);
      expect((err as Error).message).toContain((err as LocalFileError).path);
    }
    const both = await base
      .runAndWait("true", { files: { "/z": { path: script, content: "x" } } })
      .catch((e: unknown) => e);
    expect(isInvalidArgument(both)).toBe(true);
  });

  it('images.get("busybox") means busybox:latest, a free-form tag still resolves, and tags are all listed', async () => {
    const latest = [...fake.images.values()].find((i) => i.tag === "busybox:latest")!;
    const got = await client.images.get("busybox");
    expect(got.uuid).toBe(latest.uuid);
    expect(got.tags).toEqual(["busybox:latest"]);
    const other = [...fake.images.values()].find((i) => i.tag === null)!;
    other.tag = "team/free-form";
    expect((await client.images.get("team/free-form")).uuid).toBe(other.uuid);
    expect((await client.images.get("tag:team/free-form")).uuid).toBe(other.uuid);
  });

  it("printing or serialising any handle or result never shows the token or the transport", async () => {
    const base = await client.images.get("busybox");
    const op = await base.run("echo hi");
    const result = await op.wait();
    const sub = await op.exec("cat", { keepStdinOpen: true });
    const imported = await client.images.import("busybox");
    const session = await client.session(base);
    const things: Record<string, unknown> = {
      client,
      api: client.api,
      transport: client.api.transport,
      images: client.images,
      files: client.files,
      operations: client.operations,
      image: base,
      run: op,
      result,
      subprocess: sub,
      main: op.main,
      import: imported,
      session,
      forks: session.fork(2),
      history: session.history,
      page: client.images.list(),
    };
    for (const [name, value] of Object.entries(things)) {
      for (const text of [
        inspect(value, { depth: Number.POSITIVE_INFINITY }),
        inspect(value, { depth: Number.POSITIVE_INFINITY, showHidden: true }),
        JSON.stringify(value) ?? "",
        String(value),
      ]) {
        expect(text, name).not.toContain(TOKEN);
        expect(text, name).not.toMatch(/authorization|bearer|fetchImpl|retryPolicy/i);
      }
    }
    expect(inspect(base, { breakLength: Number.POSITIVE_INFINITY })).toBe(
      `ImageHandle { uuid: '${base.uuid}', tags: [ 'busybox:latest' ] }`,
    );
    expect(JSON.parse(JSON.stringify(result))).toMatchObject({
      exitCode: 0,
      image: { uuid: result.image!.uuid },
    });
    expect(JSON.stringify(client)).toBe(JSON.stringify({ url: `${fake.url}/`, timeoutMs: 300000 }));
  });
});
