/** Entry point of a grep worker thread (regex-worker-pool.ts): runs one match job per message. */
import { parentPort } from "node:worker_threads";
import { type MatchJob, matchFiles } from "./grep-matcher.js";

const port = parentPort;
if (port === null) throw new Error("regex-worker.ts runs only as a worker thread");
port.on("message", (job: MatchJob) => {
  try {
    port.postMessage({ ok: true, result: matchFiles(job) });
  } catch (err) {
    port.postMessage({ ok: false, error: err instanceof Error ? err.message : String(err) });
  }
});
