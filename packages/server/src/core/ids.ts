import { randomUUID } from "node:crypto";

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function newId(): string {
  return randomUUID();
}

/** Lowercase canonical 8-4-4-4-12, as every client recognises it. */
export function isUuid(s: string): boolean {
  return UUID_RE.test(s);
}
