import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { contentStoreConformance } from "../testsuite.js";
import { LocalContentStore } from "./local-content-store.js";

contentStoreConformance("local", async () => {
  const root = await mkdtemp(join(tmpdir(), "contree-content-"));
  const store = await LocalContentStore.open(root);
  let n = 0;
  return {
    store,
    pendingIngests: async () => (await readdir(join(root, "ingest"))).sort(),
    simulateCrashedIngest: async () => {
      n += 1;
      await writeFile(join(root, "ingest", `crashed-${n}`), Buffer.alloc(1000, n));
    },
    reopen: () => LocalContentStore.open(root),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
});
