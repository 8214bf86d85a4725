import { invalidArgument } from "./errors.js";

/** RFC 3339 UTC with exactly six fraction digits: the one form every client parses. */
export function isoMicros(epochMs: number): string {
  const iso = new Date(Math.floor(epochMs)).toISOString(); // 2026-01-02T03:04:05.678Z
  const micros = Math.floor((epochMs - Math.floor(epochMs)) * 1000)
    .toString()
    .padStart(3, "0");
  return `${iso.slice(0, 23)}${micros}Z`;
}

const UNIT_SECONDS: Readonly<Record<string, number>> = {
  s: 1,
  m: 60,
  h: 3600,
  d: 86400,
  w: 7 * 86400,
  M: 30 * 86400,
  y: 365 * 86400,
};

/** The range of a JavaScript Date, in ms either side of the epoch. */
const MAX_DATE_MS = 8.64e15;

/**
 * Parses a `since`/`until` value in every form the clients send: ISO-8601 (Z or offset),
 * bare integer seconds or durations (`15m`, `2h`, `3d`, `1w`, `3600s`) meaning "that long
 * before now". Returns epoch milliseconds.
 */
export function parseTimeBound(raw: string, name: string, now: number = Date.now()): number {
  const s = raw.trim();
  const rel = /^(\d+(?:\.\d+)?)([smhdwMy]?)$/.exec(s);
  if (rel) {
    const unit = UNIT_SECONDS[rel[2] === "" ? "s" : (rel[2] as string)] as number;
    const t = now - Number(rel[1]) * unit * 1000;
    // Further back than a Date can be (about 270,000 years) is a typo, not a bound.
    if (Number.isFinite(t) && t >= -MAX_DATE_MS) return t;
  }
  if (/^\d{4}-\d{2}-\d{2}/.test(s)) {
    // Python's isoformat() may carry up to 6 fraction digits, Date only reads 3.
    const normalised = s.replace(" ", "T").replace(/(\.\d{3})\d+/, "$1");
    const withZone =
      /([zZ]|[+-]\d{2}:?\d{2})$/.test(normalised) || normalised.length <= 10 ? normalised : `${normalised}Z`;
    const t = Date.parse(withZone);
    if (!Number.isNaN(t)) return t;
  }
  throw invalidArgument(
    `${name} must be an ISO-8601 time or a duration like 15m, 2h, 3d, got ${JSON.stringify(raw.slice(0, 64))}`,
  );
}

/** Flag query parameters: present and not "0" (including empty) is true; absent or "0" is false. */
export function parseFlag(v: string | undefined): boolean {
  if (v === undefined) return false;
  const s = v.trim().toLowerCase();
  return !(s === "0" || s === "false" || s === "no");
}
