// The MCP server driven by the MCP SDK's own client over both transports (stdio: the contree-mcp
// bin; streamable HTTP: contree-server's /mcp) against a real server with real sandboxes.

import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tenant } from "../../server/test/harness/tenant.js";
import {
  connect,
  errorText,
  type Live,
  startLive,
  stdoutOf,
  structured,
  type TransportName,
} from "./live.js";

const OFFICIAL_TOOLS = [
  "contree_run",
  "contree_import_image",
  "contree_list_images",
  "contree_get_image",
  "contree_set_tag",
  "contree_upload",
  "contree_rsync",
  "contree_download",
  "contree_list_files",
  "contree_read_file",
  "contree_get_operation",
  "contree_list_operations",
  "contree_wait_operations",
  "contree_cancel_operation",
  "contree_get_guide",
];
/** Extensions of this server's MCP (beyond the official tool set). */
const EXTRA_TOOLS = ["contree_fork", "contree_diff"];

let live: Live;
beforeAll(async () => {
  live = await startLive();
}, 240_000);
afterAll(async () => {
  await live?.close();
});

/** The one operation of the project not yet terminal (tests here run one at a time). */
async function runningOperation(): Promise<string> {
  for (;;) {
    const r = await live.t.api("/v1/operations?limit=50");
    const rows = (await r.json()) as Array<Record<string, unknown>>;
    const active = rows.find((o) => o["status"] === "EXECUTING");
    if (active) return String(active["uuid"]);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function statusOf(id: string): Promise<string> {
  const r = await live.t.api(`/v1/operations/${id}`);
  return String(((await r.json()) as Record<string, unknown>)["status"]);
}

for (const transport of ["stdio", "http"] as TransportName[]) {
  describe(`contree-mcp over ${transport}`, () => {
    let client: Client;
    beforeAll(async () => {
      client = await connect(live, transport);
    });
    afterAll(async () => {
      await client?.close();
    });

    it("lists the official tools, contree_fork, and the resource templates", async () => {
      const names = (await client.listTools()).tools.map((t) => t.name);
      for (const n of [...OFFICIAL_TOOLS, ...EXTRA_TOOLS]) expect(names).toContain(n);
      const templates = (await client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate);
      expect(templates).toEqual(
        expect.arrayContaining([
          "contree://image/{image}/read/{+path}",
          "contree://image/{image}/ls/{+path}",
          "contree://image/{image}/lineage",
          "contree://operations/instance/{operation_id}",
          "contree://operations/import/{operation_id}",
        ]),
      );
      const resources = (await client.listResources()).resources.map((r) => r.uri);
      expect(resources).toContain("contree://guide/workflow");
    });

    it("runs a command and streams its output as progress notifications", async () => {
      const progress: string[] = [];
      const r = await client.callTool(
        {
          name: "contree_run",
          arguments: {
            // The output comes well before the end: notifications sent just before the
            // response can reach the SDK client in the same read as the response, and its
            // Protocol dispatches notifications a microtask later than responses (the
            // progress handler is gone by then). Live output is what is asserted here.
            command: "echo hello-$X; echo oops >&2; sleep 2",
            image: "tag:busybox:latest",
            env: { X: transport },
          },
        },
        undefined,
        { onprogress: (p) => progress.push(String(p.message ?? "")) },
      );
      const op = structured(r);
      expect(op["status"]).toBe("SUCCESS");
      expect(op["kind"]).toBe("instance");
      expect(stdoutOf(op)).toBe(`hello-${transport}\n`);
      expect((op["result"] as Record<string, unknown>)["image"]).toBeNull();
      expect(progress).toContain(`stdout: hello-${transport}\n`);
      expect(progress).toContain("stderr: oops\n");
    });

    it("saves a run, reads and lists its files, and answers lineage from the server's tree", async () => {
      const op = structured(
        await client.callTool({
          name: "contree_run",
          arguments: { command: `echo saved-${transport} > /note`, image: live.busybox, disposable: false },
        }),
      );
      const image = String((op["result"] as Record<string, unknown>)["image"]);
      expect(image).toMatch(/^[0-9a-f-]{36}$/);

      const file = structured(
        await client.callTool({ name: "contree_read_file", arguments: { image, path: "/note" } }),
      );
      expect(file).toEqual({
        path: "/note",
        content: `saved-${transport}\n`,
        encoding: "utf-8",
        bytes_size: 6 + transport.length + 1,
      });

      const ls = structured(
        await client.callTool({ name: "contree_list_files", arguments: { image, path: "/" } }),
      );
      const note = (ls["files"] as Array<Record<string, unknown>>).find((f) => f["name"] === "note");
      expect(note).toMatchObject({ type: "file", size: 6 + transport.length + 1 });
      expect(ls["count"]).toBe((ls["files"] as unknown[]).length);

      const res = await client.readResource({ uri: `contree://image/${image}/read/note` });
      expect(res.contents[0]).toMatchObject({ text: `saved-${transport}\n` });

      const lineage = await client.readResource({ uri: `contree://image/${image}/lineage` });
      const doc = JSON.parse(String((lineage.contents[0] as { text: string }).text)) as Record<
        string,
        unknown
      >;
      expect(doc).toMatchObject({
        image,
        parent: live.busybox,
        ancestors: [live.busybox],
        root: live.busybox,
        depth: 1,
      });
      expect((doc["data"] as Record<string, unknown>)["command"]).toBe(`echo saved-${transport} > /note`);
      const up = await client.readResource({ uri: `contree://image/${live.busybox}/lineage` });
      const parentDoc = JSON.parse(String((up.contents[0] as { text: string }).text)) as Record<
        string,
        unknown
      >;
      expect(parentDoc["children"]).toContain(image);
      expect(parentDoc["depth"]).toBe(0);
    });

    it("diffs an image against its parent and against any image (contree_diff)", async () => {
      const run = async (image: string, command: string) => {
        const op = structured(
          await client.callTool({ name: "contree_run", arguments: { command, image, disposable: false } }),
        );
        return String((op["result"] as Record<string, unknown>)["image"]);
      };
      const a = await run(live.busybox, "mkdir /dd && printf 'one\\ntwo\\n' > /dd/t && echo x > /dd/gone");
      const b = await run(a, "printf 'one\\n2\\n' > /dd/t && rm /dd/gone && chmod 700 /dd");
      const d = structured(
        await client.callTool({ name: "contree_diff", arguments: { image: b, path: "/dd", text: true } }),
      );
      expect(d).toMatchObject({
        image: b,
        against: a,
        counts: { added: 0, removed: 1, changed: 2 },
        truncated: false,
      });
      const entries = d["entries"] as Array<Record<string, unknown>>;
      expect(entries.map((e) => [e["path"], e["status"]])).toEqual([
        ["/dd", "changed"],
        ["/dd/gone", "removed"],
        ["/dd/t", "changed"],
      ]);
      expect(entries[0]).toMatchObject({ changes: ["mode"], old: { mode: "0o755" }, new: { mode: "0o700" } });
      expect(entries[2]!["diff"]).toBe("--- a/dd/t\n+++ b/dd/t\n@@ -1,2 +1,2 @@\n one\n-two\n+2\n");
      const fromBase = structured(
        await client.callTool({
          name: "contree_diff",
          arguments: { image: b, against: "tag:busybox:latest", path: "/dd", limit: 1 },
        }),
      );
      expect(fromBase).toMatchObject({ counts: { added: 1 }, truncated: true, truncated_reason: "limit" });
      expect(
        errorText(await client.callTool({ name: "contree_diff", arguments: { image: live.busybox } })),
      ).toMatch(/no parent/);
    });

    it("forks N commands from one image into N result images in one call", async () => {
      const fork = structured(
        await client.callTool({
          name: "contree_fork",
          arguments: {
            image: "tag:busybox:latest",
            commands: ["echo a > /branch; echo A", "echo b > /branch; echo B", "exit 3"],
          },
        }),
      );
      const results = fork["results"] as Array<Record<string, unknown>>;
      expect(results.map((r) => [r["status"], r["exit_code"], r["stdout"]])).toEqual([
        ["SUCCESS", 0, "A\n"],
        ["SUCCESS", 0, "B\n"],
        ["SUCCESS", 3, ""],
      ]);
      const images = results.slice(0, 2).map((r) => String(r["result_image"]));
      expect(new Set(images).size).toBe(2);
      const contents = await Promise.all(
        images.map(
          async (image) =>
            structured(
              await client.callTool({ name: "contree_read_file", arguments: { image, path: "/branch" } }),
            )["content"],
        ),
      );
      expect(contents).toEqual(["a\n", "b\n"]);
    });

    it("starts runs with wait=false and waits for them", async () => {
      const ids = await Promise.all(
        ["echo w1", "echo w2"].map(async (command) => {
          const r = structured(
            await client.callTool({
              name: "contree_run",
              arguments: { command, image: live.busybox, wait: false },
            }),
          );
          return String(r["operation_id"]);
        }),
      );
      const w = structured(
        await client.callTool({ name: "contree_wait_operations", arguments: { operation_ids: ids } }),
      );
      expect(new Set(w["completed"] as string[])).toEqual(new Set(ids));
      expect(w["timed_out"]).toBe(false);
      const results = w["results"] as Record<string, Record<string, unknown>>;
      expect(ids.map((id) => stdoutOf(results[id] ?? {}))).toEqual(["w1\n", "w2\n"]);
      const got = structured(
        await client.callTool({ name: "contree_get_operation", arguments: { operation_id: ids[0] } }),
      );
      expect(got["status"]).toBe("SUCCESS");
      const list = structured(
        await client.callTool({ name: "contree_list_operations", arguments: { limit: 5, type: "instance" } }),
      );
      expect((list["operations"] as Array<Record<string, unknown>>).map((o) => o["uuid"])).toEqual(
        expect.arrayContaining(ids),
      );
    });

    it("cancels the operation when the tool call is cancelled", async () => {
      const abort = new AbortController();
      const call = client.callTool(
        { name: "contree_run", arguments: { command: "sleep 60", image: live.busybox, timeout: 120 } },
        undefined,
        { signal: abort.signal, timeout: 120_000 },
      );
      const settled = call.then(
        () => "resolved",
        () => "rejected",
      );
      const id = await runningOperation();
      abort.abort();
      expect(await settled).toBe("rejected");
      while ((await statusOf(id)) !== "CANCELLED") await new Promise((r) => setTimeout(r, 50));
      // The session is still usable.
      const r = structured(
        await client.callTool({ name: "contree_get_operation", arguments: { operation_id: id } }),
      );
      expect(r["status"]).toBe("CANCELLED");
    });

    it("answers bad arguments and server errors with tool errors, and the session goes on", async () => {
      expect(
        errorText(await client.callTool({ name: "contree_run", arguments: { command: "true", image: 5 } })),
      ).toMatch(/image/);
      expect(
        errorText(await client.callTool({ name: "contree_run", arguments: { image: live.busybox } })),
      ).toMatch(/command/);
      expect(
        errorText(
          await client.callTool({ name: "contree_run", arguments: { command: "true", image: "busybox" } }),
        ),
      ).toMatch(/tag:NAME/);
      expect(
        errorText(
          await client.callTool({ name: "contree_get_operation", arguments: { operation_id: "not-a-uuid" } }),
        ),
      ).toMatch(/operation_id/);
      expect(
        errorText(
          await client.callTool({
            name: "contree_read_file",
            arguments: { image: live.busybox, path: "/no/such/file" },
          }),
        ),
      ).toMatch(/HTTP 404/);
      expect(
        errorText(
          await client.callTool({ name: "contree_get_image", arguments: { image: "tag:no-such-tag" } }),
        ),
      ).toMatch(/HTTP 404/);
      expect(
        errorText(await client.callTool({ name: "contree_get_guide", arguments: { section: "nope" } })),
      ).toMatch(/Available sections: async, errors/);
      const op = structured(
        await client.callTool({
          name: "contree_run",
          arguments: { command: "echo still-here", image: live.busybox },
        }),
      );
      expect(stdoutOf(op)).toBe("still-here\n");
    });

    it("uploads content and injects it into a run; tags and resolves images", async () => {
      const f = structured(
        await client.callTool({ name: "contree_upload", arguments: { content: "print me\n" } }),
      );
      expect(f["sha256"]).toMatch(/^[0-9a-f]{64}$/);
      const op = structured(
        await client.callTool({
          name: "contree_run",
          arguments: { command: "cat /in.txt", image: live.busybox, files: { "/in.txt": f["uuid"] } },
        }),
      );
      expect(stdoutOf(op)).toBe("print me\n");
      const tag = `mcp-test/${transport}:v1`;
      const tagged = structured(
        await client.callTool({ name: "contree_set_tag", arguments: { image_uuid: live.busybox, tag } }),
      );
      expect(tagged).toMatchObject({ uuid: live.busybox, tag });
      const got = structured(
        await client.callTool({ name: "contree_get_image", arguments: { image: `tag:${tag}` } }),
      );
      expect(got["uuid"]).toBe(live.busybox);
      const listed = structured(
        await client.callTool({
          name: "contree_list_images",
          arguments: { tag_prefix: `mcp-test/${transport}` },
        }),
      );
      expect((listed["images"] as Array<Record<string, unknown>>).map((i) => i["uuid"])).toContain(
        live.busybox,
      );
    });
  });
}

describe("contree-mcp over stdio: local files", () => {
  it("syncs a local directory into a run (rsync, excludes, modes) and downloads a file back", async () => {
    const client = await connect(live, "stdio");
    const dir = mkdtempSync(join(tmpdir(), "contree-mcp-rsync-"));
    try {
      mkdirSync(join(dir, "src"));
      mkdirSync(join(dir, "__pycache__"));
      writeFileSync(join(dir, "src", "main.sh"), "echo from-main\n");
      chmodSync(join(dir, "src", "main.sh"), 0o755);
      writeFileSync(join(dir, "__pycache__", "junk"), "x");
      writeFileSync(join(dir, "skip.pyc"), "x");
      const r = await client.callTool({
        name: "contree_rsync",
        arguments: { source: dir, destination: "/app/", exclude: ["__pycache__", "*.pyc"] },
      });
      const id = Number(structured(r)["result"]);
      expect(Number.isInteger(id)).toBe(true);
      const op = structured(
        await client.callTool({
          name: "contree_run",
          arguments: {
            command: "/app/src/main.sh; find /app | sort",
            image: live.busybox,
            directory_state_id: id,
            disposable: false,
          },
        }),
      );
      expect(stdoutOf(op)).toBe("from-main\n/app\n/app/src\n/app/src/main.sh\n");
      const image = String((op["result"] as Record<string, unknown>)["image"]);
      const dest = join(dir, "out", "main.sh");
      const d = structured(
        await client.callTool({
          name: "contree_download",
          arguments: { image, path: "/app/src/main.sh", destination: dest, executable: true },
        }),
      );
      expect(d).toMatchObject({ success: true, destination: dest, size: 15, executable: true });
      expect(readFileSync(dest, "utf8")).toBe("echo from-main\n");
      expect(statSync(dest).mode & 0o777).toBe(0o755);
      expect(
        errorText(
          await client.callTool({
            name: "contree_run",
            arguments: { command: "true", image: live.busybox, directory_state_id: 999 },
          }),
        ),
      ).toMatch(/directory state 999 not found/);
    } finally {
      await client.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("/mcp on contree-server", () => {
  it("refuses requests without a valid bearer token", async () => {
    const res = await fetch(`${live.url}/mcp`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: {} }),
    });
    expect(res.status).toBe(401);
    await expect(connect(live, "http", "wrong-token")).rejects.toThrow();
  });

  it("binds a session to the token that opened it, and acts with that token's permissions", async () => {
    const other = await tenant(live.t, "mcp-other");
    const transport = new StreamableHTTPClientTransport(new URL(`${live.url}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${live.t.token}` } },
    });
    const owner = new Client({ name: "owner", version: "0" });
    await owner.connect(transport);
    const intruder = await connect(live, "http", other.token);
    try {
      const sid = String(transport.sessionId);
      const res = await fetch(`${live.url}/mcp`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${other.token}`,
          "mcp-session-id": sid,
          "mcp-protocol-version": "2025-06-18",
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
        },
        body: JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/list", params: {} }),
      });
      expect(res.status).toBe(404);
      // The session still works for its owner.
      expect((await owner.listTools()).tools.length).toBeGreaterThan(0);
      // Another project's token does not see this project's images through MCP either.
      expect(
        errorText(await intruder.callTool({ name: "contree_get_image", arguments: { image: live.busybox } })),
      ).toMatch(/HTTP 404/);
    } finally {
      await owner.close();
      await intruder.close();
    }
  });

  it("keeps local-file tools off: they would touch the server host's filesystem", async () => {
    const client = await connect(live, "http");
    try {
      for (const [name, args] of [
        ["contree_rsync", { source: "/etc", destination: "/app" }],
        ["contree_upload", { path: "/etc/passwd" }],
        ["contree_download", { image: live.busybox, path: "/bin/sh", destination: "/tmp/x" }],
      ] as const)
        expect(errorText(await client.callTool({ name, arguments: args }))).toMatch(
          /not available over the HTTP endpoint/,
        );
    } finally {
      await client.close();
    }
  });
});
