/**
 * An "outside world" for egress-policy tests, entirely on this machine: a network namespace
 * holding a few addresses of 203.0.113.0/24 (TEST-NET-3) and two of 10.97.K.0/28 (routed to its
 * veth: no packet leaves the host), with
 *  - a DNS server (UDP and TCP, port 53, on `dns`) answering the names of `records`, NXDOMAIN
 *    for the rest, and counting the queries it got;
 *  - an HTTP server on port 8080 of every address that answers `hello <address it was reached on>`.
 * Each test process takes its own /28 (the namespace's name is the lock). `stop()` kills both
 * servers and deletes the namespace (and with it the veth pair and its route).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { runCommand } from "../../src/sys/run-command.js";

export interface EgressOutside {
  /** The DNS server's address. */
  dns: string;
  /** More addresses inside the namespace, each serving HTTP on 8080. */
  hosts: string[];
  /** Two private addresses inside the namespace (HTTP on 8080 too), in `privateNet`. */
  privates: string[];
  privateNet: string;
  /** DNS queries the server got so far (names). */
  queries(): Promise<string[]>;
  stop(): Promise<void>;
}

const SERVER = `
const dgram = require("node:dgram"), net = require("node:net"), http = require("node:http");
const records = JSON.parse(process.argv[1]);
const seen = [];
function answer(q) {
  let off = 12; const labels = [];
  while (q[off] !== 0) { labels.push(q.toString("latin1", off + 1, off + 1 + q[off])); off += q[off] + 1; }
  const name = labels.join(".").toLowerCase(); const type = q.readUInt16BE(off + 1);
  seen.push(name);
  const qend = off + 5;
  const addrs = type === 1 ? (records[name] || []) : [];
  const h = Buffer.from(q.subarray(0, qend));
  h.writeUInt16BE(0x8180 | (records[name] ? 0 : 3), 2);
  h.writeUInt16BE(addrs.length, 6); h.writeUInt16BE(0, 8); h.writeUInt16BE(0, 10);
  const rr = addrs.map((a) => { const b = Buffer.alloc(16); b.writeUInt16BE(0xc00c, 0); b.writeUInt16BE(1, 2); b.writeUInt16BE(1, 4); b.writeUInt32BE(5, 6); b.writeUInt16BE(4, 10); a.split(".").forEach((x, i) => { b[12 + i] = Number(x); }); return b; });
  return Buffer.concat([h, ...rr]);
}
const u = dgram.createSocket("udp4");
u.on("message", (m, r) => { try { u.send(answer(m), r.port, r.address); } catch {} });
u.bind(53, process.argv[2]);
net.createServer((s) => { s.on("error", () => {}); let buf = Buffer.alloc(0); s.on("data", (c) => { buf = Buffer.concat([buf, c]);
  while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) { const m = buf.subarray(2, 2 + buf.readUInt16BE(0)); buf = buf.subarray(2 + m.length);
    const a = answer(m); const l = Buffer.alloc(2); l.writeUInt16BE(a.length); s.write(Buffer.concat([l, a])); } }); }).listen(53, process.argv[2]);
http.createServer((req, res) => res.end("hello " + req.socket.localAddress + "\\n")).listen(8080, "0.0.0.0");
process.stdin.on("data", () => process.stdout.write("seen " + JSON.stringify(seen) + "\\n"));
setTimeout(() => process.stdout.write("ready\\n"), 100);
`;

async function ip(args: string[]): Promise<void> {
  const r = await runCommand("ip", args);
  if (r.code !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr}`);
}

/** `records`: name → addresses (which may lie outside the namespace, e.g. private ones). */
export async function startEgressOutside(
  records: (hosts: string[], privates: string[]) => Record<string, string[]>,
): Promise<EgressOutside> {
  let k = 1;
  for (; k < 16; k++) {
    if ((await runCommand("ip", ["netns", "add", `tegr-${k}`])).code === 0) break;
  }
  if (k === 16) throw new Error("no free egress-outside slot");
  const ns = `tegr-${k}`;
  const veth = `tegr${k}`;
  const base = 16 * k;
  const gw = `203.0.113.${base + 1}`;
  const dns = `203.0.113.${base + 2}`;
  const hosts = [3, 4, 5, 6, 7].map((i) => `203.0.113.${base + i}`);
  const privateNet = `10.97.${k}.0/28`;
  const privates = [`10.97.${k}.2`, `10.97.${k}.3`];
  let proc: ChildProcess | undefined;
  const stop = async () => {
    if (proc !== undefined && proc.exitCode === null) {
      const p = proc;
      await new Promise<void>((res) => {
        p.once("exit", () => res());
        p.kill("SIGKILL");
      });
    }
    await runCommand("ip", ["netns", "del", ns]);
    await runCommand("ip", ["link", "del", veth]);
  };
  try {
    await ip(["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns]);
    await ip(["addr", "add", `${gw}/28`, "dev", veth]);
    await ip(["addr", "add", `10.97.${k}.1/28`, "dev", veth]);
    await ip(["link", "set", veth, "up"]);
    const inside = [dns, ...hosts, ...privates].map((a) => `addr add ${a}/28 dev eth0`).join("\n");
    const r = await runCommand("ip", ["-n", ns, "-batch", "-"], {
      input: `${inside}\nlink set eth0 up\nlink set lo up\nroute add default via ${gw}\n`,
    });
    if (r.code !== 0) throw new Error(`netns setup: ${r.stderr}`);
    const child = spawn(
      "nsenter",
      [
        `--net=/run/netns/${ns}`,
        process.execPath,
        "-e",
        SERVER,
        JSON.stringify(records(hosts, privates)),
        dns,
      ],
      { stdio: ["pipe", "pipe", "pipe"] },
    );
    proc = child;
    const waiting: Array<(names: string[]) => void> = [];
    let buf = "";
    let errText = "";
    child.stderr?.on("data", (c: Buffer) => {
      errText += c.toString();
    });
    await new Promise<void>((resolve, reject) => {
      child.once("exit", (code) => reject(new Error(`outside servers exited (${code}): ${errText}`)));
      child.stdout?.on("data", (c: Buffer) => {
        buf += c.toString();
        for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line === "ready") resolve();
          else if (line.startsWith("seen ")) waiting.shift()?.(JSON.parse(line.slice(5)) as string[]);
        }
      });
    });
    return {
      dns,
      hosts,
      privates,
      privateNet,
      queries: () =>
        new Promise<string[]>((resolve) => {
          waiting.push(resolve);
          child.stdin?.write("?\n");
        }),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
