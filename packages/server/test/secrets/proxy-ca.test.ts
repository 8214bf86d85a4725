/**
 * The secrets proxy's interception CA: made once per directory (key 0600), kept across opens;
 * a leaf it mints verifies for its own name under the CA and for no other name; a name that
 * is not a host name gets no leaf.
 */
import { statSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, createServer } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProxyCa } from "../../src/secrets/proxy-ca.js";

/** Connects to a TLS server serving `ca`'s leaves, asking for `sni`, trusting `trust`; checks `name`. */
async function handshake(ca: ProxyCa, sni: string, name: string, trust = ca.certPem): Promise<string> {
  const server = createServer({
    SNICallback: (n, cb) => {
      ca.contextFor(n).then(
        (ctx) => cb(null, ctx),
        (err: Error) => cb(err, undefined),
      );
    },
  });
  server.on("secureConnection", (s) => s.end());
  server.on("tlsClientError", () => undefined);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    return await new Promise<string>((resolve) => {
      const s = connect({
        host: "127.0.0.1",
        port: (server.address() as AddressInfo).port,
        servername: sni,
        ca: trust,
        checkServerIdentity: (_h, cert) =>
          cert.subjectaltname === `DNS:${name}` ? undefined : new Error(`san ${cert.subjectaltname}`),
      });
      s.on("secureConnect", () => {
        resolve("verified");
        s.destroy();
      });
      s.on("error", (err) => resolve(err.message));
    });
  } finally {
    server.close();
  }
}

describe("proxy CA", () => {
  let dir: string;
  let ca: ProxyCa;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "proxy-ca-"));
    ca = await ProxyCa.open(join(dir, "ca"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("is made once, its key 0600, and kept across opens", async () => {
    expect(statSync(join(dir, "ca", "ca.key")).mode & 0o777).toBe(0o600);
    expect(ca.certPem).toMatch(/^-----BEGIN CERTIFICATE-----/);
    const again = await ProxyCa.open(join(dir, "ca"));
    expect(again.certPem).toBe(ca.certPem);
    const bundle = await readFile(await ca.bundleFile(), "utf8");
    expect(bundle.startsWith(ca.certPem)).toBe(true);
    expect(bundle.split("BEGIN CERTIFICATE").length).toBeGreaterThan(100);
  });

  it("mints a leaf that verifies for its name under the CA, and for that name only", async () => {
    expect(await handshake(ca, "api.example.test", "api.example.test")).toBe("verified");
    expect(await handshake(ca, "api.example.test", "other.example.test")).toBe("san DNS:api.example.test");
    // Cached: the same context object for the same name.
    expect(await ca.contextFor("api.example.test")).toBe(await ca.contextFor("api.example.test"));
  });

  it("a leaf of another CA does not verify", async () => {
    const other = await ProxyCa.open(join(dir, "other"));
    expect(other.certPem).not.toBe(ca.certPem);
    expect(await handshake(other, "x.test", "x.test")).toBe("verified");
    expect(await handshake(other, "x.test", "x.test", ca.certPem)).toMatch(/certificate/i);
  });

  it("refuses what is not a host name", async () => {
    for (const bad of ["", "a/b", "-x.test", "a..b", "UPPER.test", "x.test/CN=evil", "a b"])
      await expect(ca.contextFor(bad)).rejects.toThrow("not a host name");
  });
});
