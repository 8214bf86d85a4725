/**
 * Two "outside" HTTP hosts that exist only on this machine: one network namespace made for the
 * test, joined to the host by a veth pair, with two addresses (10.214.N.2 and 10.214.N.6, each on
 * its own /30 routed to the veth) and a listener on port 80 that answers "ok" and reports every
 * request's address, path and headers to the test (on its stdout, never to the client, so a
 * value it received does not travel back into the sandbox's output). The same listener answers
 * HTTPS on port 443 with a certificate for the names `aName` and `bName` (not `cName`) from a CA
 * made for the test (`caFile`). `stop()` kills it and deletes the namespace (and the veth pair)
 * and the CA's directory.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { killProcess } from "../harness/registry.js";

export interface SeenRequest {
  local: string;
  tls: boolean;
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
  /** Names for HTTPS: a and b have a certificate that verifies under `caFile`, c has none. */
  readonly aName: string;
  readonly bName: string;
  readonly cName: string;
  /** The test CA (PEM file) that signed the target's certificate. */
  readonly caFile: string;
  seen(): SeenRequest[];
  stop(): Promise<void>;
}

const LISTENER = `
const fs = require("node:fs");
const handler = (req, res) => {
  process.stdout.write(JSON.stringify({ local: req.socket.localAddress, tls: req.socket.encrypted === true, path: req.url, headers: req.headers }) + "\\n");
  req.resume();
  req.on("end", () => res.end("ok\\n"));
};
const [key, cert] = process.argv.slice(1);
let up = 0;
const ready = () => { if (++up === 2) process.stdout.write("ready\\n"); };
require("node:http").createServer(handler).listen(80, "0.0.0.0", ready);
require("node:https").createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, handler).listen(443, "0.0.0.0", ready);
`;

function openssl(args: string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

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
  const names = {
    aName: `a-${tag}.secrets.test`,
    bName: `b-${tag}.secrets.test`,
    cName: `c-${tag}.secrets.test`,
  };
  const dir = mkdtempSync(join(tmpdir(), "ctsec-ca-"));
  const caFile = join(dir, "ca.pem");
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
    rmSync(dir, { recursive: true, force: true });
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
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    openssl(
      ["req", "-x509", ...ec, "-keyout", join(dir, "ca.key"), "-out", caFile, "-days", "1"].concat([
        "-subj",
        "/CN=contree test target CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
      ]),
    );
    openssl(
      ["req", "-x509", ...ec, "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")]
        .concat(["-CA", caFile, "-CAkey", join(dir, "ca.key"), "-days", "1", "-subj", `/CN=${names.aName}`])
        .concat(["-addext", `subjectAltName=DNS:${names.aName},DNS:${names.bName}`]),
    );
    const child = spawn(
      "ip",
      ["netns", "exec", ns, process.execPath, "-e", LISTENER, join(dir, "key.pem"), join(dir, "cert.pem")],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
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
    return { a, b, range: "10.214.0.0/16", ...names, caFile, seen: () => [...seen], stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
