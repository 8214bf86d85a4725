import { startDaemon, memoryOf } from "./daemon.js";
const t0 = Date.now();
const d = await startDaemon();
console.log("ready in", Date.now() - t0, d.url, d.pid, await memoryOf(d.pid));
const r = await fetch(`${d.url}/v1/whoami`, { headers: { authorization: `Bearer ${d.token}` } });
console.log(r.status, await r.text());
console.log("stdout:", d.stdout());
console.log(await d.stop());
