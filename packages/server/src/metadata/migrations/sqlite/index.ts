import { sql as m0001 } from "./0001-init.js";
import { sql as m0002 } from "./0002-storage-lifecycle.js";
import { sql as m0003 } from "./0003-gc.js";
import { sql as m0004 } from "./0004-token-last-used.js";
import { sql as m0005 } from "./0005-secrets.js";

/** Numbered migrations, applied in order; never edit one that has shipped, add the next. */
export const SQLITE_MIGRATIONS: ReadonlyArray<{ version: number; name: string; sql: string }> = [
  { version: 1, name: "init", sql: m0001 },
  { version: 2, name: "storage-lifecycle", sql: m0002 },
  { version: 3, name: "gc", sql: m0003 },
  { version: 4, name: "token-last-used", sql: m0004 },
  { version: 5, name: "secrets", sql: m0005 },
];
