/**
 * Two "outside" HTTP hosts that exist only on this machine: one network namespace made for the
 * test, joined to the host by a veth pair, with two addresses (10.214.N.2 and 10.214.N.6, each on
 * its own /30 routed to the veth) and a listener on port 80 that answers "ok" and reports every
 * request's address, path and headers to the test (on its stdout, never to the client, so a
 * value it received does not travel back into the sandbox's output). `stop()` kills it and
 * deletes the namespace, which removes the veth pair.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { killProcess } from "../harness/registry.js";

export interface SeenRequest {
  local: string;
  path: string;
  headers: Record<string, string>;
}

export interface HeaderTarget {
  /** The host whose requests get the value. */
  readonly a: string;
  /** Another host. */
  readonly b: string;
  /** The private range both lie in (what the proxy is told it may reach). */
  readonly range: string;
  seen(): SeenRequest[];
  stop(): Promise<void>;
}

const LISTENER = `
const http = require("node:http");
http.createServer((req, res) => {
  process.stdout.write(JSON.stringify({ local: req.socket.localAddress, path: req.url, headers: req.headers }) + "\\n");
  req.resume();
  req.on("end", () => res.end("ok\\n"));
}).listen(80, "0.0.0.0", () => process.stdout.write("ready\\n"));
`;

function ip(args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

export async function startHeaderTarget(): Promise<HeaderTarget> {
  const n = randomInt(0, 256);
  const tag = `${process.pid.toString(36)}${randomInt(0, 1296).toString(36)}`.slice(-6);
  const ns = `ctsec-${tag}`;
  const hostIf = `csc${tag}`;
  const nsIf = `csc${tag}p`;
  const a = `10.214.${n}.2`;
  const b = `10.214.${n}.6`;
  let proc: ChildProcess | undefined;
  const seen: SeenRequest[] = [];
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
    ip(["addr", "add", `10.214.${n}.1/30`, "dev", hostIf]);
    ip(["addr", "add", `10.214.${n}.5/30`, "dev", hostIf]);
    ip(["link", "set", hostIf, "up"]);
    ip(["-n", ns, "addr", "add", `${a}/30`, "dev", nsIf]);
    ip(["-n", ns, "addr", "add", `${b}/30`, "dev", nsIf]);
    ip(["-n", ns, "link", "set", nsIf, "up"]);
    ip(["-n", ns, "link", "set", "lo", "up"]);
    const child = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", LISTENER], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    proc = child;
    let buf = "";
    await new Promise<void>((resolve, reject) => {
      child.once("exit", (code) => reject(new Error(`target listener exited (${code})`)));
      child.stdout?.on("data", (c: Buffer) => {
        buf += c.toString();
        for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line === "ready") resolve();
          else seen.push(JSON.parse(line) as SeenRequest);
        }
      });
    });
    return { a, b, range: "10.214.0.0/16", seen: () => [...seen], stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
