import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isAppError } from "../core/errors.js";
import { parseNumeric, parsePax } from "../core/tar-header.js";
import { readTar, type TarEntry } from "./tar-reader.js";
import { encodePax, writeTar } from "./tar-writer.js";

interface Read extends Omit<TarEntry, "body" | "pax"> {
  data: Buffer;
}

async function readAll(src: AsyncIterable<Uint8Array> | Buffer): Promise<Read[]> {
  const it = Buffer.isBuffer(src) ? chunked(src, 777) : src;
  const out: Read[] = [];
  for await (const e of readTar(it)) {
    const parts: Buffer[] = [];
    for await (const c of e.body) parts.push(c);
    const { body: _b, pax: _p, ...rest } = e;
    out.push({ ...rest, data: Buffer.concat(parts) });
  }
  return out;
}

/** Odd-sized chunks so headers and bodies straddle chunk boundaries. */
async function* chunked(b: Buffer, n: number): AsyncGenerator<Buffer> {
  for (let o = 0; o < b.length; o += n) yield b.subarray(o, o + n);
}

async function kindOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (err) {
    return isAppError(err) ? err.kind : `non-AppError: ${String(err)}`;
  }
}

/** A minimal valid ustar header block, for corrupting by hand. */
function ustar(name: string, size: number, typeflag = "0"): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0);
  h.write("0000644\0", 100);
  h.write("0000000\0", 108);
  h.write("0000000\0", 116);
  h.write(`${size.toString(8).padStart(11, "0")}\0`, 124);
  h.write("14543210000\0", 136);
  h.write(typeflag, 156);
  h.write("ustar\u000000", 257, "latin1");
  return fixSum(h);
}

function fixSum(h: Buffer): Buffer {
  h.fill(0x20, 148, 156);
  let s = 0;
  for (const c of h) s += c;
  h.write(`${s.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return h;
}

function tarOf(...blocks: Buffer[]): Buffer {
  return Buffer.concat([...blocks, Buffer.alloc(1024)]);
}
function pad(b: Buffer): Buffer {
  return Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);
}

describe("tar reader", () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "contree-tarreader-"));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const gnuTar = (args: string[], cwd: string): Buffer =>
    execFileSync("tar", ["-cf", "-", "-C", cwd, ...args], { maxBuffer: 64 << 20 });

  it("reads a GNU tar PAX archive: long UTF-8 names, binary xattrs, owners, modes, links", async () => {
    const src = path.join(dir, "pax-src");
    const long = `${"d".repeat(120)}/${"f".repeat(150)}`;
    fs.mkdirSync(path.join(src, "d".repeat(120)), { recursive: true });
    fs.writeFileSync(path.join(src, long), "long\n");
    fs.writeFileSync(path.join(src, "ünï-ファイル"), "utf8\n");
    fs.writeFileSync(path.join(src, "cap"), "cap\n");
    // chown clears file capabilities: set them last
    fs.chownSync(path.join(src, "cap"), 1000, 42);
    fs.chmodSync(path.join(src, "cap"), 0o2755);
    execFileSync("setcap", ["cap_setfcap,cap_net_raw+ep", path.join(src, "cap")]);
    fs.symlinkSync(`/${"t".repeat(200)}`, path.join(src, "longlink"));
    fs.linkSync(path.join(src, "cap"), path.join(src, "hl"));
    const tar = gnuTar(
      ["--format=posix", "--xattrs", "--xattrs-include=*", "--numeric-owner", "--sort=name", "."],
      src,
    );
    const entries = await readAll(tar);
    const byName = new Map(entries.map((e) => [e.name.replace(/^\.\//, ""), e]));
    expect(byName.get(long)?.data.toString()).toBe("long\n");
    expect(byName.get("ünï-ファイル")?.type).toBe("file");
    const cap = byName.get("cap")!;
    expect(cap.mode).toBe(0o2755);
    expect([cap.uid, cap.gid]).toEqual([1000, 42]);
    const raw = execFileSync("getfattr", [
      "-n",
      "security.capability",
      "-e",
      "hex",
      "--only-values",
      path.join(src, "cap"),
    ]);
    expect(cap.xattrs.get("security.capability")).toEqual(raw);
    expect([...cap.xattrs.get("security.capability")!].some((b) => b >= 0x80)).toBe(true);
    expect(byName.get("longlink")).toMatchObject({ type: "symlink", linkname: `/${"t".repeat(200)}` });
    expect(byName.get("hl")).toMatchObject({ type: "hardlink", linkname: "./cap" });
    expect(byName.get("")?.type ?? byName.get(".")?.type).toBe("dir");
  });

  it("reads GNU long names and long links (L/K) and base-256 numbers", async () => {
    const src = path.join(dir, "gnu-src");
    const long = "n".repeat(180);
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, long), "x");
    fs.symlinkSync("l".repeat(160), path.join(src, "sym"));
    const tar = gnuTar(
      ["--format=gnu", "--owner=big:3000000", "--group=big:4000000", "--mtime=@99999999999", "."],
      src,
    );
    const entries = await readAll(tar);
    const f = entries.find((e) => e.name.endsWith(long))!;
    expect(f.data.toString()).toBe("x");
    expect([f.uid, f.gid, f.mtime]).toEqual([3000000, 4000000, 99999999999]);
    expect(entries.find((e) => e.name.endsWith("sym"))?.linkname).toBe("l".repeat(160));
    // the raw fields really were base-256
    const b = Buffer.alloc(12);
    b[0] = 0x80;
    b.writeUInt32BE(3000000, 8);
    expect(parseNumeric(b, 0, 12, "x")).toBe(3000000);
    b.fill(0xff);
    expect(parseNumeric(b, 0, 12, "x")).toBe(-1);
  });

  it("applies PAX global headers, with local records winning", async () => {
    const g = encodePax([
      ["uname", Buffer.from("global")],
      ["uid", Buffer.from("4242")],
    ]);
    const x = encodePax([
      ["uid", Buffer.from("7")],
      ["mtime", Buffer.from("1700000000.5")],
    ]);
    const gh = ustar("pax_global_header", g.length, "g");
    const xh = ustar("PaxHeaders/b", x.length, "x");
    const tar = tarOf(gh, pad(g), ustar("a", 0), xh, pad(x), ustar("b", 0));
    const [a, b] = await readAll(tar);
    expect(a).toMatchObject({ name: "a", uid: 4242, uname: "global" });
    expect(b).toMatchObject({ name: "b", uid: 7, uname: "global", mtime: 1700000000.5 });
  });

  it("parses PAX values as raw bytes", () => {
    const v = Buffer.from([0x01, 0x00, 0xff, 0x0a, 0x3d]);
    const rec = encodePax([["SCHILY.xattr.user.bin", v]]);
    expect(parsePax(rec).get("SCHILY.xattr.user.bin")).toEqual(v);
  });

  it("streams big bodies without buffering them and drains trailing padding", async () => {
    const size = 64 * 1024 * 1024 + 3;
    let pulled = 0;
    async function* source(): AsyncGenerator<Buffer> {
      const chunk = Buffer.alloc(1 << 20);
      const parts = [ustar("big", size)];
      for (const p of parts) {
        pulled += p.length;
        yield p;
      }
      let left = size + ((512 - (size % 512)) % 512) + 1024 + 8192; // body, pad, marker, extra zeros
      while (left > 0) {
        const c = chunk.subarray(0, Math.min(left, chunk.length));
        left -= c.length;
        pulled += c.length;
        yield c;
      }
    }
    let total = 0;
    let biggest = 0;
    for await (const e of readTar(source())) {
      for await (const c of e.body) {
        total += c.length;
        biggest = Math.max(biggest, c.length);
      }
    }
    expect(total).toBe(size);
    expect(biggest).toBeLessThanOrEqual(4 << 20);
    expect(pulled).toBe(512 + size + ((512 - (size % 512)) % 512) + 1024 + 8192);
  });

  it("skips bodies the consumer does not read", async () => {
    const tar = tarOf(ustar("a", 5), pad(Buffer.from("hello")), ustar("b", 3), pad(Buffer.from("bye")));
    const names: string[] = [];
    for await (const e of readTar(chunked(tar, 100))) names.push(e.name);
    expect(names).toEqual(["a", "b"]);
  });

  it("accepts an archive without the end-of-archive marker at an entry boundary", async () => {
    const tar = Buffer.concat([ustar("a", 1), pad(Buffer.from("x"))]);
    expect((await readAll(tar)).map((e) => e.name)).toEqual(["a"]);
  });

  it("round-trips our writer: long names, big ids, fractional mtime, xattrs, devices", async () => {
    const xv = Buffer.from([0x01, 0x00, 0x00, 0x02, 0xff, 0x80]);
    const tar = writeTar([
      { name: "dir", type: "dir", mode: 0o1777, uid: 0, gid: 0, mtime: 1 },
      {
        name: `dir/${"ü".repeat(90)}`,
        type: "file",
        mode: 0o4755,
        uid: 5_000_000,
        gid: 70_000,
        mtime: 1700000000.25,
        size: 3,
        xattrs: new Map([["security.capability", xv]]),
        body: async () => [Buffer.from("abc")],
      },
      { name: "dev", type: "char", mode: 0o666, uid: 0, gid: 0, mtime: 0, devmajor: 1, devminor: 3 },
      { name: "l", type: "symlink", mode: 0o777, uid: 0, gid: 0, mtime: 0, linkname: "x".repeat(300) },
    ]);
    const e = await readAll(tar);
    expect(e.map((x) => x.type)).toEqual(["dir", "file", "char", "symlink"]);
    expect(e[0]).toMatchObject({ name: "dir/", mode: 0o1777 });
    expect(e[1]).toMatchObject({
      name: `dir/${"ü".repeat(90)}`,
      mode: 0o4755,
      uid: 5_000_000,
      gid: 70_000,
      mtime: 1700000000.25,
    });
    expect(e[1]!.data.toString()).toBe("abc");
    expect(e[1]!.xattrs.get("security.capability")).toEqual(xv);
    expect(e[2]).toMatchObject({ devmajor: 1, devminor: 3 });
    expect(e[3]!.linkname).toBe("x".repeat(300));
  });

  describe("rejects malformed and truncated archives", () => {
    const body = pad(Buffer.from("hello"));
    it.each([
      [
        "bad checksum",
        () => {
          const h = ustar("a", 5);
          h[0] = 0x62;
          return tarOf(h, body);
        },
        "invalid_argument",
      ],
      [
        "non-octal size",
        () => {
          const h = ustar("a", 5);
          h.write("00000z00005\0", 124);
          return tarOf(fixSum(h), body);
        },
        "invalid_argument",
      ],
      ["truncated body", () => Buffer.concat([ustar("a", 5000), Buffer.alloc(1000)]), "data_loss"],
      [
        "truncated header",
        () => Buffer.concat([ustar("a", 5), body, ustar("b", 0).subarray(0, 300)]),
        "data_loss",
      ],
      [
        "PAX header over 1 MiB",
        () => {
          const x = encodePax([["comment", Buffer.alloc(1100 * 1024, 0x61)]]);
          return tarOf(ustar("p", x.length, "x"), pad(x), ustar("a", 0));
        },
        "invalid_argument",
      ],
      [
        "PAX record with a wrong length",
        () => {
          const x = Buffer.from("99 path=abc\n");
          return tarOf(ustar("p", x.length, "x"), pad(x), ustar("a", 0));
        },
        "invalid_argument",
      ],
      [
        "PAX record without '='",
        () => {
          const x = Buffer.from("9 pathab\n");
          return tarOf(ustar("p", x.length, "x"), pad(x), ustar("a", 0));
        },
        "invalid_argument",
      ],
      [
        "PAX size that is not a number",
        () => {
          const x = encodePax([["size", Buffer.from("12x")]]);
          return tarOf(ustar("p", x.length, "x"), pad(x), ustar("a", 0));
        },
        "invalid_argument",
      ],
      [
        "PAX header at the end",
        () => {
          const x = encodePax([["path", Buffer.from("a")]]);
          return tarOf(ustar("p", x.length, "x"), pad(x));
        },
        "invalid_argument",
      ],
      [
        "GNU long name over the limit",
        () => {
          const n = Buffer.alloc(70 * 1024, 0x61);
          return tarOf(ustar("././@LongLink", n.length, "L"), pad(n), ustar("a", 0));
        },
        "invalid_argument",
      ],
      [
        "non-UTF-8 name",
        () => {
          const h = ustar("a", 0);
          h[1] = 0xff;
          return tarOf(fixSum(h));
        },
        "invalid_argument",
      ],
      [
        "lone zero block then data",
        () => Buffer.concat([Buffer.alloc(512), ustar("a", 0), Buffer.alloc(1024)]),
        "invalid_argument",
      ],
      ["sparse file", () => tarOf(ustar("s", 0, "S")), "invalid_argument"],
      [
        "base-256 size beyond 2^53",
        () => {
          const h = ustar("a", 0);
          h.fill(0, 124, 136);
          h[124] = 0x80;
          h[125] = 0x7f;
          return tarOf(fixSum(h));
        },
        "invalid_argument",
      ],
    ] as const)("%s", async (_name, make, kind) => {
      expect(await kindOf(readAll(make()))).toBe(kind);
    });
  });
});
