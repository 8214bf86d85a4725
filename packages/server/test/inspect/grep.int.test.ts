import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type InspectEnv, startInspectEnv } from "./helpers.js";

interface Row {
  path: string;
  line_number: number;
  absolute_offset: number;
  line_text: string;
  line_bytes: number;
  submatches: Array<{ text: string; start: number; end: number }>;
  type: "match" | "context";
}
interface GrepResult {
  path: string;
  patterns: string[];
  truncated: boolean;
  matches: Row[];
}

describe("inspect grep", () => {
  let env: InspectEnv;

  beforeAll(async () => {
    env = await startInspectEnv();
  }, 300_000);
  afterAll(async () => {
    await env?.close();
  });

  async function grep(img: string, query: string, status = 200): Promise<GrepResult> {
    const r = await env.t.api(`/v1/inspect/${img}/grep?${query}`);
    const body = await r.text();
    expect(r.status, body).toBe(status);
    return JSON.parse(body) as GrepResult;
  }
  const q = (params: Array<[string, string]>) => new URLSearchParams(params).toString();

  it("finds matches in one file, with the documented shape", async () => {
    const res = await grep(
      env.busybox,
      q([
        ["pattern", "root"],
        ["path", "/etc/passwd"],
      ]),
    );
    expect(res).toEqual({
      path: "/etc/passwd",
      paths: ["/etc/passwd"],
      patterns: ["root"],
      truncated: false,
      matches: [
        {
          path: "/etc/passwd",
          line_number: 1,
          absolute_offset: 0,
          line_text: "root:x:0:0:root:/root:/bin/sh\n",
          line_bytes: 30,
          submatches: [
            { text: "root", start: 0, end: 4 },
            { text: "root", start: 11, end: 15 },
            { text: "root", start: 17, end: 21 },
          ],
          type: "match",
        },
      ],
    });
    const second = await grep(
      env.busybox,
      q([
        ["pattern", "nobody"],
        ["path", "/etc/passwd"],
      ]),
    );
    expect(second.matches[0]).toMatchObject({ line_number: 2, absolute_offset: 30 });
    const none = await grep(
      env.busybox,
      q([
        ["pattern", "zzz-nothing"],
        ["path", "/etc"],
      ]),
    );
    expect(none).toMatchObject({ truncated: false, matches: [] });
  });

  it("walks directories: hidden files searched, binary skipped, symlinks not followed", async () => {
    const res = await grep(
      env.escape,
      q([
        ["pattern", "hello|secret"],
        ["path", "/data"],
        ["max_total", "100"],
        ["glob", "!many.txt"],
      ]),
    );
    const files = [...new Set(res.matches.map((m) => m.path))];
    expect(files).toEqual([
      "/data/.hidden",
      "/data/ctx.txt",
      "/data/hello.txt",
      "/data/notes.bak",
      "/data/sub/deep.txt",
    ]);
    // whole image: the etc-link symlink and /abs-passwd are not entered, so /etc/passwd shows up once
    const all = await grep(env.escape, q([["pattern", "alice"]]));
    expect(all.path).toBe("/");
    expect(all.matches.map((m) => m.path)).toEqual(["/etc/passwd"]);
    // an explicitly given symlink is followed (inside the image)
    const viaLink = await grep(
      env.escape,
      q([
        ["pattern", "alice"],
        ["path", "/etc-link"],
      ]),
    );
    expect(viaLink.matches.map((m) => m.path)).toEqual(["/etc-link/passwd"]);
  });

  it("accepts repeated patterns, paths and globs", async () => {
    const res = await grep(
      env.escape,
      q([
        ["pattern", "deep"],
        ["pattern", "backup"],
        ["path", "/data/sub"],
        ["path", "/data/notes.bak"],
      ]),
    );
    expect(res.patterns).toEqual(["deep", "backup"]);
    expect(res.matches.map((m) => m.path)).toEqual(["/data/sub/deep.txt", "/data/notes.bak"]);
    const globs = await grep(
      env.escape,
      q([
        ["pattern", "hello"],
        ["path", "/data"],
        ["glob", "*.txt"],
        ["glob", "!many*"],
      ]),
    );
    expect([...new Set(globs.matches.map((m) => m.path))]).toEqual([
      "/data/ctx.txt",
      "/data/hello.txt",
      "/data/sub/deep.txt",
    ]);
    const rel = await grep(
      env.escape,
      q([
        ["pattern", "hello"],
        ["path", "/data"],
        ["glob", "sub/*.txt"],
      ]),
    );
    expect(rel.matches.map((m) => m.path)).toEqual(["/data/sub/deep.txt"]);
    const excludeDir = await grep(
      env.escape,
      q([
        ["pattern", "hello"],
        ["path", "/data"],
        ["glob", "!sub"],
        ["glob", "!many.txt"],
      ]),
    );
    expect(excludeDir.matches.map((m) => m.path)).not.toContain("/data/sub/deep.txt");
  });

  it("case: sensitive by default, insensitive, smart, and (?i)", async () => {
    const paths: Array<[string, string]> = [
      ["path", "/data/hello.txt"],
      ["path", "/data/HELLO.md"],
    ];
    const count = async (pattern: string, mode?: string) =>
      (
        await grep(
          env.escape,
          q([["pattern", pattern], ...paths, ...(mode ? ([["case", mode]] as Array<[string, string]>) : [])]),
        )
      ).matches.length;
    expect(await count("hello")).toBe(1);
    expect(await count("hello", "sensitive")).toBe(1);
    expect(await count("hello", "insensitive")).toBe(2);
    expect(await count("hello", "smart")).toBe(2);
    expect(await count("Hello", "smart")).toBe(1);
    expect(await count("(?i)HELLO")).toBe(2);
    expect(await count("\\Ahello world\\z")).toBe(1);
    await grep(
      env.escape,
      q([
        ["pattern", "x"],
        ["case", "loud"],
      ]),
      400,
    );
  });

  it("context lines before and after", async () => {
    const res = await grep(
      env.escape,
      q([
        ["pattern", "hello"],
        ["path", "/data/ctx.txt"],
        ["before", "1"],
        ["after", "1"],
      ]),
    );
    expect(res.matches.map((m) => [m.line_number, m.type, m.line_text])).toEqual([
      [2, "context", "two\n"],
      [3, "match", "three hello\n"],
      [4, "context", "four\n"],
      [5, "context", "five\n"],
      [6, "match", "six hello\n"],
      [7, "context", "seven\n"],
    ]);
    expect(res.matches[1]!.submatches).toEqual([{ text: "hello", start: 6, end: 11 }]);
    expect(res.matches[0]!.absolute_offset).toBe(4);
  });

  it("limits: max_count per file, max_total overall, truncated when matches were left out", async () => {
    const perFile = await grep(
      env.escape,
      q([
        ["pattern", "hello"],
        ["path", "/data/many.txt"],
        ["path", "/data/ctx.txt"],
        ["max_count", "2"],
      ]),
    );
    expect(perFile.matches.map((m) => `${m.path}:${m.line_number}`)).toEqual([
      "/data/many.txt:1",
      "/data/many.txt:2",
      "/data/ctx.txt:3",
      "/data/ctx.txt:6",
    ]);
    expect(perFile.truncated).toBe(true);
    const exact = await grep(
      env.escape,
      q([
        ["pattern", "hello"],
        ["path", "/data/ctx.txt"],
        ["max_total", "2"],
      ]),
    );
    expect(exact.matches).toHaveLength(2);
    expect(exact.truncated).toBe(false);
    const total = await grep(
      env.escape,
      q([
        ["pattern", "hello"],
        ["path", "/data"],
        ["max_total", "5"],
      ]),
    );
    expect(total.matches.filter((m) => m.type === "match")).toHaveLength(5);
    expect(total.truncated).toBe(true);
    const all = await grep(
      env.escape,
      q([
        ["pattern", "line$"],
        ["path", "/data/many.txt"],
      ]),
    );
    expect(all.matches).toHaveLength(3000);
    expect(all.truncated).toBe(false);
  });

  it("a catastrophic pattern is stopped at the deadline; the server stays responsive", async () => {
    const started = Date.now();
    const pending = grep(
      env.escape,
      q([
        ["pattern", "(a*a*)*b"],
        ["path", "/data/redos.txt"],
      ]),
    );
    await new Promise((r) => setTimeout(r, 300));
    const t = Date.now();
    expect((await env.t.api("/v1/whoami")).status).toBe(200);
    expect(Date.now() - t).toBeLessThan(1000);
    const res = await pending;
    expect(res.truncated).toBe(true);
    expect(Date.now() - started).toBeLessThan(15_000);
    // and the next search works (the worker was replaced)
    expect(
      (
        await grep(
          env.busybox,
          q([
            ["pattern", "root"],
            ["path", "/etc/passwd"],
          ]),
        )
      ).matches,
    ).toHaveLength(1);
  });

  it("rejects bad requests: no pattern 400, untranslatable regex 400, missing path 404", async () => {
    const e1 = await grep(env.busybox, "path=/etc", 400);
    expect(e1).toMatchObject({ status: 400 });
    for (const p of ["(?=x)", "(a)\\1", "a{", "[z-a]"]) await grep(env.busybox, q([["pattern", p]]), 400);
    const missing = await grep(
      env.busybox,
      q([
        ["pattern", "x"],
        ["path", "/etc"],
        ["path", "/nope"],
      ]),
      404,
    );
    expect((missing as unknown as { error: string }).error).toContain("/nope");
    await grep(
      env.busybox,
      q([
        ["pattern", "x"],
        ["max_count", "-1"],
      ]),
      400,
    );
    await grep(
      env.busybox,
      q([
        ["pattern", "x"],
        ["before", "many"],
      ]),
      400,
    );
  });

  it("stays inside the image and honours whiteouts", async () => {
    const res = await grep(
      env.escape,
      q([
        ["pattern", "root"],
        ["path", "../../../../etc"],
      ]),
    );
    expect(res.path).toBe("/etc");
    expect(new Set(res.matches.map((m) => m.path))).toEqual(new Set(["/etc/passwd", "/etc/group"]));
    await grep(
      env.escape,
      q([
        ["pattern", "root"],
        ["path", "/../../etc/shadow"],
      ]),
      404,
    );
    await grep(
      env.features,
      q([
        ["pattern", "busybox"],
        ["path", "/etc/hostname"],
      ]),
      404,
    );
    const home = await grep(
      env.features,
      q([
        ["pattern", "."],
        ["path", "/home"],
      ]),
    );
    expect(home.matches.map((m) => m.path)).toEqual(["/home/new.txt"]);
  });
});
