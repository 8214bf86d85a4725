/**
 * The secrets proxy's interception CA: one key and self-signed certificate per data dir
 * (`proxy-ca/ca.key`, 0600, and `proxy-ca/ca.pem`), made once with the `openssl` CLI (node:crypto
 * signs, but cannot write X.509). Leaf certificates for the names sandboxes connect to are minted
 * on demand (SAN = that name only, valid two days, one leaf key made at start-up and held in memory only) and kept
 * in memory; a leaf older than a day is minted again. RSA keys: small TLS stacks (busybox's wget)
 * offer no ECDSA-signed suites it could use. Only header-mode runs are served by it, and
 * only the CA's public part ever enters a sandbox (docs/secrets.md).
 */
import { generateKeyPairSync } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { isIPv4 } from "node:net";
import path from "node:path";
import { createSecureContext, rootCertificates, type SecureContext } from "node:tls";
import { internal } from "../core/errors.js";
import { runCommand } from "../sys/run-command.js";

const LEAF_DAYS = 2;
const LEAF_REMINT_MS = 24 * 3600_000;
const CA_DAYS = 3650;
/** Leaves kept at once; beyond, the oldest goes (a sandbox can name any number of hosts). */
const LEAF_CACHE = 1024;
/**
 * For the sandbox's side only. A TLS 1.2 client that sends no signature_algorithms (busybox's
 * wget) means SHA-1 signatures (RFC 5246 §7.4.1.4.1), which OpenSSL 3 refuses at its default
 * security level: level 0 lets such a client in; clients that offer better still get the best.
 */
export const SANDBOX_CIPHERS = "DEFAULT:@SECLEVEL=0";
const NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

export class ProxyCa {
  readonly #leaves = new Map<string, { at: number; ctx: Promise<SecureContext> }>();

  private constructor(
    private readonly dir: string,
    /** The CA certificate (PEM): what sandboxes are told to trust. */
    readonly certPem: string,
    private readonly leafKeyPem: string,
  ) {}

  /** Opens the CA of `dir`, making it on first use; the leaf key is new on every start. */
  static async open(dir: string): Promise<ProxyCa> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const key = path.join(dir, "ca.key");
    const cert = path.join(dir, "ca.pem");
    if (!existsSync(key) || !existsSync(cert)) {
      const tmpKey = `${key}.${process.pid}.tmp`;
      const tmpCert = `${cert}.${process.pid}.tmp`;
      const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
      await writeFile(tmpKey, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
      await chmod(tmpKey, 0o600);
      await openssl([
        ...["req", "-x509", "-new", "-key", tmpKey, "-out", tmpCert, "-days", String(CA_DAYS)],
        ...["-subj", "/O=contree/CN=contree secrets proxy CA"],
        ...["-addext", "basicConstraints=critical,CA:TRUE,pathlen:0"],
        ...["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
      ]);
      await rename(tmpKey, key);
      await rename(tmpCert, cert);
    }
    // Kept in memory only (openssl reads it from a pipe).
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const leafKeyPem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    return new ProxyCa(dir, await readFile(cert, "utf8"), leafKeyPem);
  }

  /**
   * A PEM file for sandboxes to trust: this CA plus Node's bundled public roots (never a file of
   * this host's), so TLS on ports the proxy does not intercept still verifies under SSL_CERT_FILE.
   */
  async bundleFile(): Promise<string> {
    const file = path.join(this.dir, "bundle.pem");
    await writeFile(file, [this.certPem, ...rootCertificates].join("\n"), { mode: 0o644 });
    return file;
  }

  /** A TLS context presenting a leaf for `name` (lowercase DNS name or IPv4); rejects others. */
  contextFor(name: string): Promise<SecureContext> {
    if (!NAME.test(name) && !isIPv4(name)) return Promise.reject(new Error("not a host name"));
    const hit = this.#leaves.get(name);
    if (hit !== undefined && Date.now() - hit.at < LEAF_REMINT_MS) return hit.ctx;
    const ctx = this.#mint(name);
    this.#leaves.delete(name);
    this.#leaves.set(name, { at: Date.now(), ctx });
    if (this.#leaves.size > LEAF_CACHE) this.#leaves.delete(this.#leaves.keys().next().value as string);
    ctx.catch(() => this.#leaves.delete(name));
    return ctx;
  }

  async #mint(name: string): Promise<SecureContext> {
    const san = isIPv4(name) ? `IP:${name}` : `DNS:${name}`;
    const pem = await openssl(
      [
        ...["req", "-x509", "-new", "-key", "/dev/stdin"],
        ...["-CA", path.join(this.dir, "ca.pem"), "-CAkey", path.join(this.dir, "ca.key")],
        ...["-days", String(LEAF_DAYS), "-subj", `/CN=${name}`],
        ...["-addext", `subjectAltName=${san}`],
        ...["-addext", "basicConstraints=critical,CA:FALSE"],
        ...["-addext", "extendedKeyUsage=serverAuth"],
      ],
      this.leafKeyPem,
    );
    return createSecureContext({
      key: this.leafKeyPem,
      cert: `${pem}${this.certPem}`,
      ciphers: SANDBOX_CIPHERS,
    });
  }
}

async function openssl(args: string[], input?: string): Promise<string> {
  const r = await runCommand("openssl", args, input === undefined ? {} : { input });
  if (r.code !== 0) throw internal("secrets proxy CA: openssl failed", { cause: new Error(r.stderr.trim()) });
  return r.stdout;
}
