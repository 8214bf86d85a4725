/**
 * Private and link-local destinations that exist only on this machine: a network namespace made
 * for the test, joined to the host by a veth pair, with a listener inside that counts TCP
 * connections and answers every HTTP request with 404. Its addresses (10.213.N.2,
 * 169.254.213.M.2, fdcd:5a5f:213:N::2) are routed to the veth, so even a broken destination
 * check sends nothing off this machine. `stop()` kills the listener and deletes the namespace
 * (which removes the veth pair).
 *
 *   const t = await startNetnsTarget();
 *   try { … `${t.v4}:${t.port}` … t.connections() … } finally { await t.stop(); }
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { killProcess } from "./registry.js";

export interface NetnsTarget {
  /** Private IPv4 inside the namespace (10.213.N.2). */
  readonly v4: string;
  /** Link-local IPv4 inside the namespace (169.254.213.M). */
  readonly linkLocal: string;
  /** Unique-local IPv6 inside the namespace. */
  readonly v6: string;
  /** Port of the plain-HTTP listener (on every address). */
  readonly port: number;
  /** Port of a listener that only counts (a TLS client's handshake lands here). */
  readonly tlsPort: number;
  /**
   * TCP connections accepted so far, on any address and port. Asked of the listener itself, so
   * every connection a client has seen an answer on (or a reset from) is counted.
   */
  connections(): Promise<number>;
  stop(): Promise<void>;
}

const LISTENER = `
const net = require("node:net");
let n = 0;
const serve = (port, answer) => net.createServer((s) => {
  n++;
  s.on("error", () => {});
  s.once("data", () => { if (answer) s.end("HTTP/1.1 404 Not Found\\r\\ncontent-type: application/json\\r\\ncontent-length: 2\\r\\nconnection: close\\r\\n\\r\\n{}"); else s.destroy(); });
}).listen({ port, host: "::", ipv6Only: false });
serve(5000, true);
serve(443, false);
process.stdin.on("data", () => process.stdout.write("count " + n + "\\n"));
setTimeout(() => process.stdout.write("ready\\n"), 50);
`;

function ip(args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

export async function startNetnsTarget(): Promise<NetnsTarget> {
  const n = randomInt(0, 256);
  const m = randomInt(0, 64) * 4;
  const tag = `${process.pid.toString(36)}${randomInt(0, 1296).toString(36)}`.slice(-6);
  const ns = `ctssrf-${tag}`;
  const hostIf = `cts${tag}`;
  const nsIf = `cts${tag}p`;
  const v4 = `10.213.${n}.2`;
  const linkLocal = `169.254.213.${m + 2}`;
  const v6 = `fdcd:5a5f:213:${n.toString(16)}::2`;
  let proc: ChildProcess | undefined;
  const stop = async () => {
    if (proc) await killProcess(proc);
    try {
      ip(["netns", "del", ns]);
    } catch {}
    try {
      ip(["link", "del", hostIf]);
    } catch {}
  };
  try {
    ip(["netns", "add", ns]);
    ip(["link", "add", hostIf, "type", "veth", "peer", "name", nsIf]);
    ip(["link", "set", nsIf, "netns", ns]);
    ip(["addr", "add", `10.213.${n}.1/30`, "dev", hostIf]);
    ip(["addr", "add", `169.254.213.${m + 1}/30`, "dev", hostIf]);
    ip(["-6", "addr", "add", `fdcd:5a5f:213:${n.toString(16)}::1/64`, "dev", hostIf, "nodad"]);
    ip(["link", "set", hostIf, "up"]);
    ip(["-n", ns, "addr", "add", `${v4}/30`, "dev", nsIf]);
    ip(["-n", ns, "addr", "add", `${linkLocal}/30`, "dev", nsIf]);
    ip(["-n", ns, "-6", "addr", "add", `${v6}/64`, "dev", nsIf, "nodad"]);
    ip(["-n", ns, "link", "set", nsIf, "up"]);
    ip(["-n", ns, "link", "set", "lo", "up"]);
    const child = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", LISTENER], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    proc = child;
    const waiting: ((n: number) => void)[] = [];
    let buf = "";
    const ready = new Promise<void>((resolve, reject) => {
      child.once("exit", (code) => reject(new Error(`netns listener exited (${code})`)));
      child.stdout?.on("data", (c: Buffer) => {
        buf += c.toString();
        for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line === "ready") resolve();
          else if (line.startsWith("count ")) waiting.shift()?.(Number(line.slice(6)));
        }
      });
    });
    await ready;
    return {
      v4,
      linkLocal,
      v6,
      port: 5000,
      tlsPort: 443,
      connections: () =>
        new Promise<number>((resolve) => {
          waiting.push(resolve);
          child.stdin?.write("?\n");
        }),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
