/**
 * The contract checker itself: documented examples pass, and each regression a strict client
 * would trip over is caught (so the end-to-end walk cannot pass vacuously).
 */
import { createServer, type Server } from "node:http";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  checkEvent,
  checkModel,
  checkOperation,
  DirectoryList,
  File,
  Image,
  OperationSummary,
  WhoAmI,
} from "./client-models.js";
import { contractApi } from "./contract-api.js";

const OP = "87654321-9abc-4aba-8eda-0123456789ab";
const IMG = "12345678-9abc-4aba-8eda-0123456789ab";
const T = "2026-05-18T09:16:55.185199Z";

function instanceOp(): Record<string, unknown> {
  return {
    uuid: OP,
    kind: "instance",
    status: "SUCCESS",
    error: null,
    created_at: T,
    duration: 1.5,
    image_uuid: IMG,
    result_image_uuid: IMG,
    image_size: 4096,
    consumed_cpu: 0.02,
    consumed_memory: 2097152,
    metadata: {
      command: "echo hi",
      image: "tag:busybox:latest",
      shell: true,
      args: [],
      env: {},
      cwd: "/root",
      hostname: "linuxkit",
      uid: 0,
      gid: 0,
      disposable: false,
      preserve_env: false,
      timeout: 60,
      truncate_output_at: 1048576,
      files: { "/a": { uuid: IMG, uid: 0, gid: 0, mode: "0644" } },
      stdin: { value: "", encoding: "ascii" },
      result: {
        state: {
          exit_code: 0,
          signal: -1,
          pid: 42,
          timed_out: false,
          stopped: false,
          continued: false,
          core_dump: false,
        },
        stdout: { value: "aGkK", encoding: "base64", truncated: false },
        stderr: { value: "", encoding: "ascii", truncated: false },
        resources: { elapsed_time: 0.2, max_rss: 1024 },
      },
    },
    result: { image: IMG, tag: null },
  };
}

const DROP = Symbol("drop");
/** Sets (or with DROP deletes) the value at a dotted path of a JSON document. */
function mutate(doc: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split(".");
  let cur = doc;
  for (const k of keys.slice(0, -1)) cur = cur[k] as Record<string, unknown>;
  const last = keys.at(-1) as string;
  if (value === DROP) delete cur[last];
  else cur[last] = value;
}

describe("client models", () => {
  it("accept the documented examples", () => {
    expect(checkOperation(instanceOp())).toEqual([]);
    expect(checkModel(Image, { uuid: IMG, tag: null, created_at: T, operation_uuid: null })).toEqual([]);
    expect(
      checkModel(File, { uuid: IMG, sha256: "a".repeat(64), size: 5, created_at: T, updated_at: T }),
    ).toEqual([]);
    expect(
      checkModel(WhoAmI, {
        token_uuid: "x",
        token_expiration: null,
        permissions: {
          list: true,
          spawn: true,
          spawn_disposable: true,
          import: true,
          cancel: true,
          set_image_tag: false,
        },
        operations_stat: {},
      }),
    ).toEqual([]);
  });

  const regressions: Array<[string, string, unknown]> = [
    ["created_at null (MCP)", "created_at", null],
    ["created_at with 2 fraction digits (CLI fromisoformat)", "created_at", "2026-05-18T09:16:55.18Z"],
    ["duration null (MCP)", "duration", null],
    ["status outside the enum", "status", "DONE"],
    ["stdout missing from the result (MCP)", "metadata.result.stdout", DROP],
    ["stream encoding utf-8", "metadata.result.stderr.encoding", "utf-8"],
    ["stdin null (MCP)", "metadata.stdin", null],
    ["timeout 0 (MCP positive int)", "metadata.timeout", 0],
    ["file mode as an integer (MCP string)", "metadata.files./a.mode", 420],
    ["exit_code as a float", "metadata.result.state.exit_code", 0.5],
    ["result.image and result_image_uuid disagree", "result.image", null],
    ["SUCCESS instance without a result", "metadata.result", null],
    ["uppercase uuid", "uuid", OP.toUpperCase()],
  ];
  it.each(regressions)("reject an operation with %s", (_name, path, value) => {
    const d = instanceOp();
    mutate(d, path, value);
    expect(checkOperation(d)).not.toEqual([]);
  });

  it("reject import metadata with null credentials (MCP: object or absent)", () => {
    const d = {
      ...instanceOp(),
      kind: "image_import",
      metadata: { registry: { url: "docker://x/y:1", credentials: null }, tag: null, timeout: 300 },
    };
    expect(checkOperation(d)).not.toEqual([]);
    d.metadata.registry.credentials = { username: "", password: "<MASKED>" } as never;
    expect(checkOperation(d)).toEqual([]);
  });

  it("reject list rows without a string created_at, listings with a missing FileItem field, non-int event resources", () => {
    expect(
      checkModel(OperationSummary, {
        uuid: OP,
        kind: "instance",
        status: "PENDING",
        created_at: null,
        duration: 0,
      }),
    ).not.toEqual([]);
    const item = {
      path: "a",
      size: 1,
      owner: "root",
      group: "root",
      uid: 0,
      gid: 0,
      mode: 33188,
      mtime: 0,
      nlink: 1,
      is_dir: false,
      is_regular: true,
      is_symlink: false,
      is_socket: false,
      is_fifo: false,
      symlink_to: "",
    };
    expect(checkModel(DirectoryList, { path: "/", files: [item] })).toEqual([]);
    const { symlink_to: _drop, ...partial } = item;
    expect(checkModel(DirectoryList, { path: "/", files: [partial] })).not.toEqual([]);
    const resources = Object.fromEntries(
      [
        "user_time_us",
        "sys_time_us",
        "max_rss_kb",
        "shared_memory",
        "unshared_memory",
        "swaps",
        "minor_faults",
        "major_faults",
        "voluntary_ctx_switches",
        "involuntary_ctx_switches",
        "block_input_ops",
        "block_output_ops",
        "ipc_msgs_sent",
        "ipc_msgs_received",
        "signals_received",
      ].map((k) => [k, 0]),
    );
    const exit = {
      id: 3,
      ts: T,
      spid: 1,
      type: "exit",
      data: { pid: 1, code: 0, signal: -1, timed_out: false, duration_ms: 5, resources },
    };
    expect(checkEvent(exit)).toEqual([]);
    expect(
      checkEvent({ ...exit, data: { ...exit.data, resources: { ...resources, max_rss_kb: 1.5 } } }),
    ).not.toEqual([]);
    expect(checkEvent({ ...exit, data: { ...exit.data, duration_ms: undefined } })).not.toEqual([]);
    expect(
      checkEvent({ id: 4, ts: T, spid: 0, type: "completion", data: { status: "SUCCESS" } }),
    ).not.toEqual([]);
  });
});

describe("contractApi transport rules (against a misbehaving fake server)", () => {
  let server: Server;
  let url = "";
  const big = JSON.stringify({ ...instanceOp(), pad: "x".repeat(70 * 1024) });
  beforeAll(async () => {
    server = createServer((req, res) => {
      const path = req.url ?? "";
      if (path.includes("framed")) {
        res
          .writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(big) })
          .end(big);
      } else if (path.includes("gzip-unasked")) {
        const z = gzipSync(JSON.stringify(instanceOp()));
        res
          .writeHead(200, {
            "content-type": "application/json",
            "content-encoding": "gzip",
            "content-length": z.length,
          })
          .end(z);
      } else if (path.startsWith(`/v1/operations/${OP}/events`)) {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write(
          `id: 0\nevent: init\ndata: ${JSON.stringify({ id: 0, ts: T, spid: 0, type: "init", data: { started_at: T, runtime_path: "/x", verbose: false, init_pid: 1 } })}\n\n`,
        );
        res.end(); // follow stream that stops before completion
      } else if (path.startsWith("/v1/inspect/?tag=")) {
        res.writeHead(307, { location: `${IMG}/` }).end();
      } else if (path === `/v1/operations/${OP}`) {
        res.writeHead(200, { "content-type": "application/json" }).end(big);
      } else if (path === "/v1/whoami") {
        res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ message: "nope" }));
      } else {
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const api = () => contractApi({ url, token: "t", config: { pathPrefix: "" } as never });

  it("large JSON without Content-Length passes; with it, fails", async () => {
    const a = api();
    expect((await a(`/v1/operations/${OP}`)).status).toBe(200);
    await expect(a(`/v1/operations/${OP}?framed=1`)).rejects.toThrow(/Content-Length/);
  });
  it("gzip not asked for fails", async () => {
    await expect(api()(`/v1/operations/${OP}?gzip-unasked=1`)).rejects.toThrow(/content-encoding/);
  });
  it("error bodies without {error, status} fail", async () => {
    await expect(api()("/v1/whoami")).rejects.toThrow(/status/);
  });
  it("a tag lookup answered with 307 fails", async () => {
    await expect(api()("/v1/inspect/?tag=x")).rejects.toThrow(/302/);
  });
  it("a follow stream that ends before completion fails", async () => {
    const a = api();
    const res = await a(`/v1/operations/${OP}/events?follow=1`);
    await expect(res.text()).rejects.toThrow();
    expect(a.violations.join("\n")).toMatch(/not completion/);
  });
  it("an unknown route is itself a violation", async () => {
    await expect(api()("/v1/unknown")).rejects.toThrow(/no contract/);
  });
});
