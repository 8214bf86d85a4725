/** Output masking: values across reads, nothing else held back, what is held let out at the end. */
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { SecretMask } from "../../src/instances/secret-mask.js";

async function through(chunks: string[], values = [{ name: "K", bytes: Buffer.from("s3cr3t-value") }]) {
  const src = new PassThrough();
  const mask = src.pipe(new SecretMask(values));
  const seen: string[] = [];
  mask.on("data", (d: Buffer) => seen.push(d.toString()));
  const ended = new Promise((r) => mask.on("end", r));
  for (const c of chunks) {
    src.write(c);
    await new Promise((r) => setImmediate(r));
  }
  const beforeEnd = seen.join("");
  src.end();
  await ended;
  return { beforeEnd, all: seen.join("") };
}

describe("secret mask", () => {
  it("replaces a value, also one split over three reads", async () => {
    expect((await through(["a s3cr3t-value b\n"])).all).toBe("a <secret:K> b\n");
    const split = await through(["x=s3c", "r3t-va", "lue;"]);
    expect(split.all).toBe("x=<secret:K>;");
  });

  it("holds back only a possible start of a value, and lets it out at the end", async () => {
    const r = await through(["prompt> ", "almost s3cr3t"]);
    // "prompt> " went out at once; "s3cr3t" might have become the value.
    expect(r.beforeEnd).toBe("prompt> almost ");
    expect(r.all).toBe("prompt> almost s3cr3t");
  });

  it("several values, repeated", async () => {
    const r = await through(
      ["A1234567 B7654321 A1234567"],
      [
        { name: "A", bytes: Buffer.from("A1234567") },
        { name: "B", bytes: Buffer.from("B7654321") },
      ],
    );
    expect(r.all).toBe("<secret:A> <secret:B> <secret:A>");
  });
});
