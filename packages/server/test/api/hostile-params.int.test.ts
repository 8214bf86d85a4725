/**
 * Issue 10 §7: every query and path parameter of every route, each with every hostile value
 * (huge, negative, fractional and non-numeric numbers, NUL, 10 KB strings, broken percent-encoding
 * and UTF-8, bad UUIDs), sent by a tenant with an ordinary token to the real server. Each must be
 * answered with a 4xx and the `{"error","status"}` body: no 500, no stack trace, no host path.
 */
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueToken } from "../../src/auth/tokens.js";
import { importBusybox } from "../harness/busybox-image.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import type { RegistryHandle } from "../harness/registry.js";

/**
 * Raw query/path text (already percent-encoded where meant: fetch would normalise some of it).
 * STRICT values are refused in every parameter; PLAIN values only where they are not a valid
 * value of the parameter (a tag filter "abc" or a path "../../etc/passwd" inside the image is fine).
 */
const STRICT: readonly string[] = [
  "%00",
  "a%00b",
  "%",
  "%zz",
  "%C0%AF",
  "%E0%A4%A",
  "%FF%FE",
  "%ED%A0%80",
  "x".repeat(10 * 1024),
  `/${"a/".repeat(5000)}`,
];
const PLAIN: readonly string[] = [
  "99999999999999999999",
  "-99999999999999999999",
  "-1",
  "1e400",
  "1.5",
  "NaN",
  "abc",
  "..%2F..%2Fetc%2Fpasswd",
  "not-a-uuid",
  "00000000-0000-0000-0000-00000000000g",
];

let t: TestServer;
let registry: RegistryHandle | undefined;
let tenant: string;
let image: string;
let op: string;

beforeAll(async () => {
  t = await startTestServer({ runtime: "oci" });
  const imported = await importBusybox(t);
  registry = imported.registry;
  image = imported.image;
  // The tenant works in the default project (where busybox was imported) without admin rights.
  const def = await t.server.store.projects.findByName("default");
  if (!def) throw new Error("no default project");
  tenant = (await issueToken(t.server.store, { projectId: def.id })).secret;
  const r = await t.api("/v1/instances", {
    method: "POST",
    json: { command: "true", image, disposable: true },
  });
  op = ((await r.json()) as { uuid: string }).uuid;
  await waitOperation(t, op);
});
afterAll(async () => {
  await t?.close();
  await registry?.stop();
});

interface Answer {
  status: number;
  body: string;
  type: string;
}

/** A raw HTTP request, so the path goes out byte for byte as written. */
function send(method: string, path: string): Promise<Answer> {
  const url = new URL(t.url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method,
        path,
        headers: { authorization: `Bearer ${tenant}` },
        // A fresh connection each: a refused request may close its connection.
        agent: false,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          if (body.length < 65536) body += c;
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body, type: String(res.headers["content-type"] ?? "") }),
        );
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/**
 * Each route with a placeholder `{}` where the hostile value goes (a query value or a path
 * segment), and whether PLAIN values may succeed there ("text": free text, "flag": any value
 * means true) or must be refused too ("strict").
 */
type Kind = "strict" | "text" | "flag" | "time";
/** PLAIN values each kind of parameter may accept. */
const MAY_PASS: Record<Kind, readonly string[]> = {
  strict: [],
  time: ["1.5"], // a duration: 1.5 seconds before now
  text: PLAIN,
  flag: PLAIN,
};
function routes(): [string, string, Kind][] {
  const I = image;
  const O = op;
  return [
    ["GET", "/v1/files?limit={}", "strict"],
    ["GET", "/v1/files?offset={}", "strict"],
    ["GET", "/v1/files?since={}", "time"],
    ["GET", "/v1/files?until={}", "time"],
    ["GET", "/v1/files?sha256={}", "strict"],
    ["GET", "/v1/files?uuid={}", "strict"],
    ["GET", "/v1/files/{}", "strict"],
    ["GET", "/v1/images?limit={}", "strict"],
    ["GET", "/v1/images?offset={}", "strict"],
    ["GET", "/v1/images?since={}", "time"],
    ["GET", "/v1/images?until={}", "time"],
    ["GET", "/v1/images?tagged={}", "flag"],
    ["GET", "/v1/images?tag={}", "text"],
    ["GET", "/v1/images?uuid={}", "text"],
    ["GET", "/v1/images?kind={}", "text"],
    ["PATCH", "/v1/images/{}/tag", "strict"],
    ["DELETE", "/v1/images/{}/tag", "strict"],
    ["DELETE", `/v1/images/${I}/tag?tag={}`, "text"],
    ["GET", "/v1/inspect/?tag={}", "text"],
    ["GET", "/v1/inspect/{}/", "strict"],
    ["GET", "/v1/inspect/{}/list", "strict"],
    ["GET", `/v1/inspect/${I}/list?path={}`, "text"],
    ["GET", `/v1/inspect/${I}/list?path=/&text={}&x={}`, "flag"],
    ["GET", "/v1/inspect/{}/download?path=/bin/sh", "strict"],
    ["GET", `/v1/inspect/${I}/download?path={}`, "text"],
    ["HEAD", `/v1/inspect/${I}/download?path={}`, "text"],
    ["GET", "/v1/inspect/{}/archive", "strict"],
    ["GET", `/v1/inspect/${I}/archive?path={}`, "text"],
    ["HEAD", `/v1/inspect/${I}/archive?path={}`, "text"],
    ["GET", "/v1/inspect/{}/grep?pattern=x", "strict"],
    ["GET", `/v1/inspect/${I}/grep?pattern={}&path=/nonexistent`, "text"],
    ["GET", `/v1/inspect/${I}/grep?pattern=x&path={}`, "text"],
    ["GET", `/v1/inspect/${I}/grep?pattern=x&path=/etc&glob={}`, "text"],
    ["GET", `/v1/inspect/${I}/grep?pattern=x&path=/etc&max_count={}`, "strict"],
    ["GET", `/v1/inspect/${I}/grep?pattern=x&path=/etc&max_total={}`, "strict"],
    ["GET", `/v1/inspect/${I}/grep?pattern=x&path=/etc&case={}`, "strict"],
    ["GET", `/v1/inspect/${I}/grep?pattern=x&path=/etc&before={}`, "strict"],
    ["GET", `/v1/inspect/${I}/grep?pattern=x&path=/etc&after={}`, "strict"],
    ["GET", "/v1/operations?limit={}", "strict"],
    ["GET", "/v1/operations?offset={}", "strict"],
    ["GET", "/v1/operations?since={}", "time"],
    ["GET", "/v1/operations?until={}", "time"],
    ["GET", "/v1/operations?status={}", "strict"],
    ["GET", "/v1/operations?kind={}", "strict"],
    ["GET", "/v1/operations/{}", "strict"],
    ["GET", `/v1/operations/${O}?inflight={}&x={}`, "flag"],
    ["DELETE", "/v1/operations/{}", "strict"],
    ["GET", "/v1/operations/{}/events", "strict"],
    ["GET", `/v1/operations/${O}/events?since={}`, "text"],
    ["GET", `/v1/operations/${O}/events?spid={}`, "strict"],
    ["GET", `/v1/operations/${O}/events?follow={}&spid={}`, "flag"],
    ["POST", "/v1/operations/{}/subprocesses", "strict"],
    ["GET", "/v1/operations/{}/subprocesses/1", "strict"],
    ["GET", `/v1/operations/${O}/subprocesses/{}`, "strict"],
    ["DELETE", `/v1/operations/${O}/subprocesses/{}`, "strict"],
    ["DELETE", `/v1/operations/${O}/subprocesses/1?signal={}`, "strict"],
    ["POST", `/v1/operations/${O}/subprocesses/{}/stdin`, "strict"],
  ];
}

/** Strings that must never reach a client: host paths and stack frames. */
function leaks(body: string): string | undefined {
  const needles = [t.dataDir, "/work/", "/tmp/", "node_modules", "/usr/", "    at ", ".ts:", ".js:"];
  return needles.find((n) => body.includes(n));
}

describe("hostile query and path parameters get a 4xx with the error body", () => {
  it("every route, every value", async () => {
    const problems: string[] = [];
    for (const [method, template, kind] of routes()) {
      for (const v of [...STRICT, ...PLAIN]) {
        // A path segment cannot hold a raw "/" or "%": encode those, keep the rest raw.
        const query = template.indexOf("?");
        const inPath = query < 0 || template.indexOf("{}") < query;
        const value = inPath ? v.replace(/\//g, "%2F") : v;
        const path = template.replaceAll("{}", value);
        const label = `${method} ${path.length > 120 ? `${path.slice(0, 120)}…` : path}`;
        const a = await send(method, path).catch((err: Error) => err);
        if (a instanceof Error) {
          problems.push(`${label} → no answer (${a.message})`);
          continue;
        }
        const mayPass = MAY_PASS[kind].includes(v);
        if (a.status >= 500 || (a.status < 400 && !mayPass)) {
          problems.push(`${label} → ${a.status} ${a.body.slice(0, 200)}`);
          continue;
        }
        const leak = a.status >= 400 ? leaks(a.body) : undefined;
        if (leak) problems.push(`${label} → leaks ${JSON.stringify(leak)}: ${a.body.slice(0, 200)}`);
        if (method === "HEAD" || a.status < 400) continue;
        let doc: unknown;
        try {
          doc = JSON.parse(a.body);
        } catch {
          problems.push(`${label} → ${a.status} not JSON: ${a.body.slice(0, 200)}`);
          continue;
        }
        const d = doc as { error?: unknown; status?: unknown };
        if (typeof d.error !== "string" || d.status !== a.status)
          problems.push(`${label} → ${a.status} body is not {"error","status"}: ${a.body.slice(0, 200)}`);
      }
    }
    expect(problems).toEqual([]);
  }, 300_000);
});
