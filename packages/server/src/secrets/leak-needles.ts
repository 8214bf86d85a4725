/**
 * The byte strings whose presence in a run's writes means a secret's value would enter a layer:
 * the value itself, its base64 (standard and URL-safe, at each of the three alignments it can
 * have inside a longer base64 text) and its hex (lower and upper case). Other encodings
 * (gzip, a cipher, a value split across files, reversed…) are not looked for: a process that
 * holds the value can always hide it; what this stops is the accidental write (a config file, a
 * cache, a shell history, a .env).
 */
export interface Needle {
  /** The secret's name (what a refusal reports). */
  secret: string;
  encoding: "raw" | "base64" | "base64url" | "hex";
  bytes: Buffer;
}

/** Encoded forms shorter than this would match ordinary text; the raw value is always looked for. */
const MIN_ENCODED = 8;

/** The part of base64(pad ‖ value) that depends only on the value, for each pad of 0..2 bytes. */
function base64Cores(value: Buffer): string[] {
  const out: string[] = [];
  for (let shift = 0; shift < 3; shift++) {
    const text = Buffer.concat([Buffer.alloc(shift), value]).toString("base64");
    const first = Math.ceil((8 * shift) / 6);
    const last = 4 * Math.floor((shift + value.length) / 3);
    const core = text.slice(first, last);
    if (core.length >= MIN_ENCODED) out.push(core);
  }
  return out;
}

export function leakNeedles(secret: string, value: Buffer): Needle[] {
  const out: Needle[] = [{ secret, encoding: "raw", bytes: value }];
  const seen = new Set<string>([value.toString("latin1")]);
  const add = (encoding: Needle["encoding"], text: string) => {
    if (text.length < MIN_ENCODED || seen.has(text)) return;
    seen.add(text);
    out.push({ secret, encoding, bytes: Buffer.from(text, "latin1") });
  };
  for (const core of base64Cores(value)) {
    add("base64", core);
    add("base64url", core.replace(/\+/g, "-").replace(/\//g, "_"));
  }
  const hex = value.toString("hex");
  add("hex", hex);
  add("hex", hex.toUpperCase());
  return out;
}
