// An in-memory imitation of the ConTree wire behaviour the SDK depends on (tag 302, spawn, operation
// documents, replayable SSE with Last-Event-Id/since, subprocesses, files, pagination). It does not run
// anything: a "run" replays a scripted event list. The real server replaces it in end-to-end tests.

import { createHash, randomUUID } from "node:crypto";
import type { ServerResponse } from "node:http";
import { type Stub, type StubRequest, sendJson, sseFrame, startStub } from "./http-stub.js";

export interface FakeEvent {
  id: number;
  ts: string;
  spid?: number;
  type: string;
  data: Record<string, unknown>;
}

export interface FakeOp {
  uuid: string;
  kind: "instance" | "image_import";
  status: string;
  image?: string;
  resultImage: string | null;
  events: FakeEvent[];
  stdout: string;
  stderr: string;
  exitCode: number;
  created_at: string;
  /** ms between live events. */
  pace: number;
  startedAt: number;
  subprocesses: Map<number, { stdin: string; closed: boolean; signals: string[] }>;
}

export interface FakeContree {
  url: string;
  stub: Stub;
  images: Map<
    string,
    { uuid: string; tag: string | null; created_at: string; operation_uuid: string | null }
  >;
  ops: Map<string, FakeOp>;
  files: Map<string, { uuid: string; sha256: string; size: number }>;
  /** Script for the next spawned run: returns stdout for a command. */
  script: (command: string) => { stdout: string; stderr?: string; exitCode?: number };
  /** Cut first (non-resumed) events connections after this many frames (0 = never). */
  dropEventsAfterFrames: number;
  close(): Promise<void>;
}

const b64 = (s: string) => Buffer.from(s).toString("base64");
const now = () => new Date().toISOString();

function eventsFor(op: FakeOp, stdout: string, stderr: string, exitCode: number): FakeEvent[] {
  const ev: Omit<FakeEvent, "id" | "ts">[] = [
    {
      spid: 0,
      type: "init",
      data: { started_at: now(), runtime_path: "/run/x", verbose: false, init_pid: 1 },
    },
    {
      spid: 1,
      type: "spawn",
      data: {
        pid: 2,
        command: "/bin/sh",
        args: [],
        shell: true,
        cwd: "/root",
        uid: 0,
        gid: 0,
        timeout: 60,
        truncate_at: 1 << 20,
      },
    },
  ];
  // Output in small pieces, base64 and ascii mixed, splitting multi-byte characters across chunks.
  const bytes = Buffer.from(stdout);
  for (let i = 0; i < bytes.length; i += 3) {
    const part = bytes.subarray(i, i + 3);
    ev.push({ spid: 1, type: "stdout", data: { value: part.toString("base64"), encoding: "base64" } });
  }
  if (stderr) ev.push({ spid: 1, type: "stderr", data: { value: stderr, encoding: "ascii" } });
  ev.push({
    spid: 1,
    type: "exit",
    data: { pid: 2, code: exitCode, signal: -1, timed_out: false, duration_ms: 3, resources: {} },
  });
  ev.push({
    spid: 0,
    type: "completion",
    data: { status: "SUCCESS", duration_ms: 5, result_image_uuid: op.resultImage },
  });
  return ev.map((e, i) => ({ ...e, id: i, ts: now() }));
}

function opDoc(op: FakeOp) {
  const done = op.status === "SUCCESS";
  const result = done
    ? {
        state: { exit_code: op.exitCode, signal: -1, pid: 2, timed_out: false },
        stdout: { value: b64(op.stdout), encoding: "base64" },
        stderr: { value: op.stderr, encoding: "ascii" },
      }
    : null;
  return {
    uuid: op.uuid,
    kind: op.kind,
    status: op.status,
    error: null,
    created_at: op.created_at,
    duration: 0.005,
    image_uuid: op.image,
    result_image_uuid: done ? op.resultImage : null,
    metadata:
      op.kind === "instance"
        ? { command: "x", image: op.image, result }
        : { registry: { url: "docker://x" } },
    result: done ? { image: op.resultImage, tag: null } : null,
  };
}

export async function startFakeContree(): Promise<FakeContree> {
  const images: FakeContree["images"] = new Map();
  const ops: FakeContree["ops"] = new Map();
  const files: FakeContree["files"] = new Map();
  const fake: Omit<FakeContree, "url" | "stub" | "close"> = {
    images,
    ops,
    files,
    script: () => ({ stdout: "" }),
    dropEventsAfterFrames: 0,
  };

  const addImage = (tag: string | null, operation: string | null) => {
    const uuid = randomUUID();
    images.set(uuid, { uuid, tag, created_at: now(), operation_uuid: operation });
    return uuid;
  };
  addImage("busybox:latest", null);

  const finishLater = (op: FakeOp) => {
    // Terminal once all events would have been emitted live.
    setTimeout(() => {
      op.status = "SUCCESS";
    }, op.pace * op.events.length);
  };

  const streamEvents = async (req: StubRequest, res: ServerResponse, op: FakeOp) => {
    const since = Math.max(Number(req.headers["last-event-id"] ?? -1), Number(req.query.get("since") ?? -1));
    const spid = req.query.get("spid");
    const follow = req.query.has("follow") && req.query.get("follow") !== "0";
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    res.write(": keepalive\n\n");
    // Only first connections (no resume cursor) are cut, so every reader sees exactly one drop.
    const first = req.headers["last-event-id"] === undefined;
    const dropAt = fake.dropEventsAfterFrames > 0 && first ? fake.dropEventsAfterFrames : Infinity;
    let sent = 0;
    for (const ev of op.events) {
      if (ev.id <= since) continue;
      if (spid !== null && ev.type !== "completion" && String(ev.spid) !== spid) continue;
      const due = op.startedAt + op.pace * (ev.id + 1);
      if (!follow && Date.now() < due) break; // replay only what "happened" so far
      if (Date.now() < due) await new Promise((r) => setTimeout(r, due - Date.now()));
      const frame = sseFrame(ev);
      if (sent === dropAt) {
        // Half a frame, then the connection dies (after the bytes are out, or destroy() would discard them).
        await new Promise<void>((r) => res.write(frame.slice(0, Math.floor(frame.length / 2)), () => r()));
        await new Promise((r) => setTimeout(r, 20));
        res.socket?.destroy();
        return;
      }
      res.write(frame);
      sent++;
    }
    res.end();
  };

  const stub = await startStub(async (req, res) => {
    const p = req.path;
    let m: (string | undefined)[] = [];
    const at = (re: RegExp): boolean => {
      const r = re.exec(p);
      m = r ? [...r] : [];
      return r !== null;
    };
    if (p === "/v1/whoami")
      return sendJson(res, 200, {
        token_uuid: "t",
        token_expiration: null,
        permissions: { list: true },
        operations_stat: {},
      });
    if (p === "/v1/inspect/") {
      const tag = req.query.get("tag");
      const img = [...images.values()].find((i) => i.tag === tag);
      if (!img) return sendJson(res, 404, { error: "tag not found", status: 404 });
      res.writeHead(302, { location: `${img.uuid}/` });
      return res.end();
    }
    if (at(/^\/v1\/inspect\/([^/]+)\/$/)) {
      const img = images.get(m[1]!);
      return img ? sendJson(res, 200, img) : sendJson(res, 404, { error: "image not found", status: 404 });
    }
    if (at(/^\/v1\/images\/([^/]+)\/tag$/)) {
      const img = images.get(m[1]!);
      if (!img) return sendJson(res, 404, { error: "image not found", status: 404 });
      if (req.method === "PATCH") {
        const { tag } = JSON.parse(req.body.toString()) as { tag: string };
        for (const other of images.values()) if (other.tag === tag) other.tag = null;
        img.tag = tag;
      } else {
        img.tag = null;
      }
      return sendJson(res, 200, img);
    }
    if (p === "/v1/images") {
      const limit = Number(req.query.get("limit") ?? 100);
      const offset = Number(req.query.get("offset") ?? 0);
      if (limit < 1 || limit > 1000)
        return sendJson(res, 400, { error: "limit must be between 1 and 1000", status: 400 });
      let all = [...images.values()];
      if (req.query.get("tagged") === "1") all = all.filter((i) => i.tag !== null);
      return sendJson(res, 200, { images: all.slice(offset, offset + limit) });
    }
    if (p === "/v1/instances" && req.method === "POST") {
      const body = JSON.parse(req.body.toString()) as {
        image: string;
        command: string;
        disposable?: boolean;
        files?: Record<string, { uuid: string }>;
      };
      const imageUuid = body.image.startsWith("tag:")
        ? [...images.values()].find((i) => i.tag === body.image.slice(4))?.uuid
        : images.get(body.image)?.uuid;
      if (!imageUuid) return sendJson(res, 404, { error: "image not found", status: 404 });
      for (const f of Object.values(body.files ?? {})) {
        if (![...files.values()].some((x) => x.uuid === f.uuid))
          return sendJson(res, 404, { error: "file not found", status: 404 });
      }
      const uuid = randomUUID();
      const out = fake.script(body.command);
      const op: FakeOp = {
        uuid,
        kind: "instance",
        status: "EXECUTING",
        image: imageUuid,
        resultImage: body.disposable ? null : addImage(null, uuid),
        events: [],
        stdout: out.stdout,
        stderr: out.stderr ?? "",
        exitCode: out.exitCode ?? 0,
        created_at: now(),
        pace: 5,
        startedAt: Date.now(),
        subprocesses: new Map(),
      };
      op.events = eventsFor(op, op.stdout, op.stderr, op.exitCode);
      ops.set(uuid, op);
      finishLater(op);
      return sendJson(res, 202, { uuid, status: "PENDING" }, { location: `/v1/operations/${uuid}` });
    }
    if (p === "/v1/images/import" && req.method === "POST") {
      const uuid = randomUUID();
      const op: FakeOp = {
        uuid,
        kind: "image_import",
        status: "EXECUTING",
        resultImage: addImage(null, uuid),
        events: [],
        stdout: "",
        stderr: "",
        exitCode: 0,
        created_at: now(),
        pace: 5,
        startedAt: Date.now(),
        subprocesses: new Map(),
      };
      op.events = [
        {
          id: 0,
          ts: now(),
          spid: 0,
          type: "completion",
          data: { status: "SUCCESS", duration_ms: 1, result_image_uuid: op.resultImage },
        },
      ];
      ops.set(uuid, op);
      finishLater(op);
      // Body without uuid: the SDK must fall back to Location.
      return sendJson(res, 202, {}, { location: `/v1/operations/${uuid}` });
    }
    if (at(/^\/v1\/operations\/([^/]+)(\/events|\/subprocesses(?:\/(\d+)(\/stdin)?)?)?$/)) {
      const op = ops.get(m[1]!);
      if (!op) return sendJson(res, 404, { error: "operation not found", status: 404 });
      if (m[2] === "/events") return streamEvents(req, res, op);
      if (m[2]?.startsWith("/subprocesses")) {
        if (!m[3]) {
          const spid = op.subprocesses.size + 2;
          op.subprocesses.set(spid, { stdin: "", closed: false, signals: [] });
          return sendJson(res, 201, { spid });
        }
        const sp = op.subprocesses.get(Number(m[3]));
        if (!sp) return sendJson(res, 404, { error: "no such process", status: 404 });
        if (m[4]) {
          const b = JSON.parse(req.body.toString()) as { value: string; encoding?: string; close?: boolean };
          sp.stdin += b.encoding === "base64" ? Buffer.from(b.value, "base64").toString() : b.value;
          if (b.close) sp.closed = true;
          res.writeHead(204);
          return res.end();
        }
        if (req.method === "DELETE") {
          sp.signals.push(req.query.get("signal") ?? "");
          res.writeHead(202);
          return res.end();
        }
        return sendJson(res, 200, {
          state: { exit_code: sp.closed ? 0 : -1, signal: -1, pid: 9, timed_out: false },
          stdout: { value: sp.stdin, encoding: "ascii" },
          stderr: { value: "", encoding: "ascii" },
        });
      }
      if (req.method === "DELETE") {
        if (op.status === "SUCCESS" || op.status === "CANCELLED")
          return sendJson(res, 409, { error: "operation is not cancellable", status: 409 });
        op.status = "CANCELLED";
        res.writeHead(202);
        return res.end();
      }
      return sendJson(res, 200, opDoc(op));
    }
    if (at(/^\/v1\/files\/([0-9a-f]{64})$/)) {
      const f = files.get(m[1]!);
      if (req.method === "HEAD") {
        res.writeHead(f ? 200 : 404);
        return res.end();
      }
      return f
        ? sendJson(res, 200, { ...f, created_at: now(), updated_at: now() })
        : sendJson(res, 404, { error: "file not found", status: 404 });
    }
    if (p === "/v1/files" && req.method === "POST") {
      const sha256 = createHash("sha256").update(req.body).digest("hex");
      const f = files.get(sha256) ?? { uuid: randomUUID(), sha256, size: req.body.length };
      files.set(sha256, f);
      return sendJson(res, 201, f);
    }
    return sendJson(res, 404, { error: `no route ${req.method} ${p}`, status: 404 });
  });

  return Object.assign(fake as FakeContree, { url: stub.url, stub, close: () => stub.close() });
}
