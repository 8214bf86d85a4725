// The two tar users — the streaming layer reader and the image archive index — share one header
// codec (core/tar-header.ts): every archive here must read the same through both, and every
// malformed one must be refused by both for the same reason.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isAppError } from "../../src/core/errors.js";
import { readTar } from "../../src/layers/tar-reader.js";
import { encodePax } from "../../src/layers/tar-writer.js";
import { TarIndex } from "../../src/registry/tar-index.js";

function ustar(name: string | Buffer, size: number, typeflag = "0"): Buffer {
  const h = Buffer.alloc(512);
  (Buffer.isBuffer(name) ? name : Buffer.from(name)).copy(h, 0);
  h.write("0000644\0", 100);
  h.write("0000000\0", 108);
  h.write("0000000\0", 116);
  h.write(`${size.toString(8).padStart(11, "0")}\0`, 124);
  h.write("14543210000\0", 136);
  h.write(typeflag, 156);
  h.write("ustar\u000000", 257, "latin1");
  return fixSum(h);
}

/** GNU tar's sum (bytes unsigned), or the signed sum some old writers store. */
function fixSum(h: Buffer, signed = false): Buffer {
  h.fill(0x20, 148, 156);
  let s = 0;
  for (const c of h) s += signed && c > 127 ? c - 256 : c;
  h.write(`${s.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return h;
}

const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);
const body = pad(Buffer.from("hello"));
/** A valid first member, so the index's "not a tar file" check for block 0 is not what fails. */
const lead = () => [ustar("lead", 5), body];
const tarOf = (...blocks: Buffer[]) => Buffer.concat([...lead(), ...blocks, Buffer.alloc(1024)]);
const paxEntry = (x: Buffer, flag = "x") => [ustar("PaxHeaders/a", x.length, flag), pad(x)];

interface Outcome {
  kind: string;
  message: string;
}

async function viaReader(tar: Buffer): Promise<Outcome | Map<string, string>> {
  try {
    const files = new Map<string, string>();
    for await (const e of readTar(Readable.from([tar]))) {
      const parts: Buffer[] = [];
      for await (const c of e.body) parts.push(c);
      files.set(e.name, Buffer.concat(parts).toString());
    }
    return files;
  } catch (err) {
    return isAppError(err) ? { kind: err.kind, message: err.message } : { kind: "?", message: String(err) };
  }
}

describe("one tar header codec for the layer reader and the archive index", () => {
  let dir: string;
  let n = 0;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "contree-tarcodec-"));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function viaIndex(tar: Buffer): Promise<Outcome | Map<string, string>> {
    const file = path.join(dir, `${n++}.tar`);
    fs.writeFileSync(file, tar);
    try {
      const index = await TarIndex.open(file);
      const files = new Map<string, string>();
      for (const name of index.names) {
        const m = index.resolve(name);
        if (m) files.set(name, (await index.readBounded(m, 1 << 20, name)).toString());
      }
      return files;
    } catch (err) {
      return isAppError(err) ? { kind: err.kind, message: err.message } : { kind: "?", message: String(err) };
    }
  }

  describe("refuses malformed headers the same way through both", () => {
    it.each([
      [
        "bad checksum",
        () => {
          const h = ustar("a", 5);
          h[0] = 0x62;
          return tarOf(h, body);
        },
        /checksum mismatch at offset 1024/,
      ],
      [
        "PAX record length not a number",
        () => tarOf(...paxEntry(Buffer.from("x9 path=a\n")), ustar("a", 0)),
        /bad record length/,
      ],
      [
        "PAX record length of zero",
        () => tarOf(...paxEntry(Buffer.from("0 path=a\n")), ustar("a", 0)),
        /bad record length/,
      ],
      [
        "PAX record length past the block",
        () => tarOf(...paxEntry(Buffer.from("99 path=abc\n")), ustar("a", 0)),
        /bad record length/,
      ],
      [
        "PAX record not ending in a newline",
        () => tarOf(...paxEntry(Buffer.from("10 path=abX")), ustar("a", 0)),
        /bad record length/,
      ],
      [
        "PAX record without '='",
        () => tarOf(...paxEntry(Buffer.from("9 pathab\n")), ustar("a", 0)),
        /record without key/,
      ],
      [
        "PAX record with an empty key",
        () => tarOf(...paxEntry(Buffer.from("8 =abcd\n")), ustar("a", 0)),
        /record without key/,
      ],
      [
        "PAX path that is not UTF-8",
        () => tarOf(...paxEntry(encodePax([["path", Buffer.from([0x61, 0xff, 0x62])]])), ustar("a", 0)),
        /name is not valid UTF-8/,
      ],
      [
        "global PAX header with a bad record",
        () => tarOf(...paxEntry(Buffer.from("99 path=abc\n"), "g"), ustar("a", 0)),
        /bad record length/,
      ],
      [
        "global PAX records past the bound (each would apply to every later member)",
        () =>
          tarOf(
            ...paxEntry(
              encodePax(
                Array.from({ length: 300 }, (_, i) => [`k${i}`, Buffer.from("v")] as [string, Buffer]),
              ),
              "g",
            ),
            ustar("a", 0),
          ),
        /global PAX headers too large/,
      ],
      [
        "two PAX headers for one member",
        () =>
          tarOf(
            ...paxEntry(encodePax([["path", Buffer.from("x")]])),
            ...paxEntry(encodePax([["path", Buffer.from("y")]])),
            ustar("a", 0),
          ),
        /two PAX headers/,
      ],
      [
        "PAX header describing no member",
        () => tarOf(...paxEntry(encodePax([["path", Buffer.from("x")]]))),
        /metadata header/,
      ],
      [
        "PAX size that is not a number",
        () => tarOf(...paxEntry(encodePax([["size", Buffer.from("12x")]])), ustar("a", 0)),
        /malformed PAX size/,
      ],
      [
        "PAX header over 1 MiB",
        () => tarOf(...paxEntry(encodePax([["comment", Buffer.alloc(1100 * 1024, 0x61)]])), ustar("a", 0)),
        /PAX header too large/,
      ],
      [
        "GNU long name over 64 KiB",
        () =>
          tarOf(ustar("././@LongLink", 70 * 1024, "L"), pad(Buffer.alloc(70 * 1024, 0x61)), ustar("a", 0)),
        /long name too large/,
      ],
      [
        "GNU long name that is not UTF-8",
        () => tarOf(ustar("././@LongLink", 3, "L"), pad(Buffer.from([0x61, 0xff, 0x62])), ustar("a", 0)),
        /long name is not valid UTF-8/,
      ],
      [
        "header name that is not UTF-8",
        () => tarOf(ustar(Buffer.from([0x61, 0xff]), 0)),
        /name is not valid UTF-8/,
      ],
      ["sparse member", () => tarOf(ustar("s", 0, "S")), /sparse/],
      [
        "base-256 size beyond 2^53",
        () => {
          const h = ustar("a", 0);
          h.fill(0, 124, 136);
          h[124] = 0x80;
          h[125] = 0x7f;
          return tarOf(fixSum(h));
        },
        /size out of range/,
      ],
    ] as const)("%s", async (_name, make, reason) => {
      const tar = make();
      const reader = await viaReader(tar);
      const index = await viaIndex(tar);
      expect(reader).toMatchObject({ kind: "invalid_argument", message: expect.stringMatching(reason) });
      expect(index).toEqual({
        kind: "invalid_argument",
        message: `not a valid image archive: ${(reader as Outcome).message}`,
      });
    });
  });

  describe("reads well-formed headers the same way through both", () => {
    it.each([
      [
        "a checksum summed over signed bytes",
        () => {
          const h = ustar("ü-signed", 5);
          return tarOf(fixSum(h, true), body);
        },
        "ü-signed",
      ],
      [
        "a GNU long name",
        () => {
          const long = `${"d".repeat(150)}/${"f".repeat(120)}`;
          return tarOf(
            ustar("././@LongLink", long.length + 1, "L"),
            pad(Buffer.from(`${long}\0`)),
            ustar("short", 5),
            body,
          );
        },
        `${"d".repeat(150)}/${"f".repeat(120)}`,
      ],
      [
        "a PAX path and a global header",
        () =>
          tarOf(
            ...paxEntry(encodePax([["comment", Buffer.from("g")]]), "g"),
            ...paxEntry(encodePax([["path", Buffer.from("pax/ñame")]])),
            ustar("ignored", 5),
            body,
          ),
        "pax/ñame",
      ],
      [
        "a base-256 size",
        () => {
          const h = ustar("b256", 0);
          h.fill(0, 124, 136);
          h[124] = 0x80;
          h[135] = 5;
          return tarOf(fixSum(h), body);
        },
        "b256",
      ],
    ] as const)("%s", async (_name, make, name) => {
      const tar = make();
      const reader = await viaReader(tar);
      const index = await viaIndex(tar);
      expect(reader).toEqual(
        new Map([
          ["lead", "hello"],
          [name, "hello"],
        ]),
      );
      expect(index).toEqual(reader);
    });
  });
});
