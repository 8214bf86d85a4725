/**
 * A real CNCF distribution registry (Debian's docker-registry) on 127.0.0.1 for tests.
 *
 *   const reg = await startRegistry({ auth: "token", seedFrom: (await fixtures()).registryData });
 *   try { … reg.url … } finally { await reg.stop(); }
 *
 * auth "htpasswd" and "token" accept REGISTRY_USER / REGISTRY_PASSWORD (exported below).
 * "token" also starts test/fixtures/token-server.mjs (anonymous pull is granted for the
 * repositories in `publicRepos`). Every process runs on 127.0.0.1 and is killed by stop(),
 * which also removes the temp dir.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { hostPlatform } from "../../src/registry/platform.js";

export const REGISTRY_BIN = "/usr/bin/docker-registry";
export const REGISTRY_USER = "testuser";
export const REGISTRY_PASSWORD = "testpass";
export const TOKEN_SERVICE = "contree-test-registry";
export const TOKEN_ISSUER = "contree-test-issuer";

const FIXTURES_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "fixtures");

export type RegistryAuth = "none" | "htpasswd" | "token";

export interface StartRegistryOptions {
  auth?: RegistryAuth;
  /** Fixed port; default: a free one. */
  port?: number;
  /** A registry storage root (e.g. fixtures().registryData) copied in before start. */
  seedFrom?: string;
  /** Keep the storage here instead of a temp dir (used to build the fixture cache). */
  storageDir?: string;
  /** Token auth: repositories anyone may pull (default: none). */
  publicRepos?: string[];
}

export interface RegistryHandle {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** 127.0.0.1:PORT — what goes into image references. */
  readonly host: string;
  readonly auth: RegistryAuth;
  /** Token auth only: the realm server. */
  readonly tokenUrl: string | undefined;
  stop(): Promise<void>;
}

export async function startRegistry(options: StartRegistryOptions = {}): Promise<RegistryHandle> {
  if (!existsSync(REGISTRY_BIN)) throw new Error(`${REGISTRY_BIN} missing: apt-get install docker-registry`);
  const auth = options.auth ?? "none";
  const dir = mkdtempSync(join(tmpdir(), "contree-registry-"));
  const procs: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(procs.map((p) => killProcess(p)));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const storage = options.storageDir ?? join(dir, "data");
    mkdirSync(storage, { recursive: true });
    if (options.seedFrom) cpSync(options.seedFrom, storage, { recursive: true });

    let authBlock = "";
    let tokenUrl: string | undefined;
    if (auth === "htpasswd") {
      const line = execFileSync("htpasswd", ["-Bbn", REGISTRY_USER, REGISTRY_PASSWORD], { encoding: "utf8" });
      writeFileSync(join(dir, "htpasswd"), line);
      authBlock = `auth:\n  htpasswd: {realm: test-realm, path: ${join(dir, "htpasswd")}}\n`;
    } else if (auth === "token") {
      const { key, cert } = signingKeyPair();
      const token = await startTokenServer(key, cert, options.publicRepos ?? []);
      procs.push(token.proc);
      tokenUrl = token.url;
      authBlock = `auth:\n  token:\n    realm: ${token.url}/token\n    service: ${TOKEN_SERVICE}\n    issuer: ${TOKEN_ISSUER}\n    rootcertbundle: ${cert}\n`;
    }

    for (let tries = 0; ; tries++) {
      const port = options.port ?? (await freePort());
      const host = `127.0.0.1:${port}`;
      const config = join(dir, "config.yml");
      writeFileSync(
        config,
        `version: 0.1\nlog: {level: warn, accesslog: {disabled: true}}\nstorage:\n  filesystem: {rootdirectory: ${storage}}\n  delete: {enabled: true}\nhttp: {addr: ${host}, secret: fixture-secret}\n${authBlock}`,
      );
      const log = join(dir, `log-${tries}.txt`);
      const proc = spawn(REGISTRY_BIN, ["serve", config], { stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      proc.stderr?.on("data", (c: Buffer) => {
        if (stderr.length < 16384) stderr += c.toString("utf8");
      });
      procs.push(proc);
      const ready = await waitReady(`http://${host}/v2/`, proc, 10_000);
      if (ready) return { url: `http://${host}`, host, auth, tokenUrl, stop };
      await killProcess(proc);
      procs.splice(procs.indexOf(proc), 1);
      writeFileSync(log, stderr);
      if (options.port !== undefined || tries >= 3 || !/address already in use/.test(stderr))
        throw new Error(`docker-registry did not start: ${stderr.slice(0, 2000)}`);
    }
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A port the kernel just handed out (tiny race; startRegistry retries on EADDRINUSE). */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function waitReady(url: string, proc: ChildProcess, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) return false;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      if (res.status === 200 || res.status === 401) return true;
    } catch {}
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

export function killProcess(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => p.kill("SIGKILL"), 2000);
    p.once("exit", () => {
      clearTimeout(t);
      resolve();
    });
    p.kill("SIGTERM");
  });
}

let keyPair: { key: string; cert: string } | undefined;
/** RSA key + self-signed cert for the token server, made once per process. */
function signingKeyPair(): { key: string; cert: string } {
  if (keyPair && existsSync(keyPair.key)) return keyPair;
  const d = mkdtempSync(join(tmpdir(), "contree-token-keys-"));
  const key = join(d, "key.pem");
  const cert = join(d, "cert.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "30",
      "-subj",
      "/CN=contree-test-token-signer",
    ],
    {
      stdio: "ignore",
    },
  );
  process.once("exit", () => rmSync(d, { recursive: true, force: true }));
  keyPair = { key, cert };
  return keyPair;
}

async function startTokenServer(
  key: string,
  cert: string,
  publicRepos: string[],
): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, [join(FIXTURES_DIR, "token-server.mjs"), "0", key, cert], {
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      USERS: `${REGISTRY_USER}:${REGISTRY_PASSWORD}`,
      PUBLIC: publicRepos.join(","),
      ISSUER: TOKEN_ISSUER,
    },
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    const t = setTimeout(() => reject(new Error(`token server did not start: ${out}`)), 10_000);
    proc.stdout?.on("data", (c: Buffer) => {
      out += c.toString("utf8");
      const m = /token server on (127\.0\.0\.1:\d+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(t);
        resolve(`http://${m[1]}`);
      }
    });
    proc.once("exit", (code) => {
      clearTimeout(t);
      reject(new Error(`token server exited ${code}: ${out}`));
    });
  }).catch(async (err: unknown) => {
    await killProcess(proc);
    throw err;
  });
  return { proc, url };
}

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const sha256 = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** Uploads a blob to a no-auth registry with the upload API; returns its digest. */
export async function pushBlob(reg: RegistryHandle, repo: string, data: Buffer): Promise<string> {
  const digest = sha256(data);
  const start = await fetch(`${reg.url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  const location = start.headers.get("location");
  await start.arrayBuffer();
  if (start.status !== 202 || !location) throw new Error(`blob upload not started: ${start.status}`);
  const u = new URL(location, reg.url);
  u.searchParams.set("digest", digest);
  const put = await fetch(u, {
    method: "PUT",
    headers: { "content-type": "application/octet-stream" },
    body: data,
  });
  await put.arrayBuffer();
  if (put.status !== 201) throw new Error(`blob upload failed: ${put.status}`);
  return digest;
}

/**
 * Pushes an OCI image of the host platform as `repo:latest`: its layers (gzip unless a media
 * type says otherwise), a config naming their diff ids, the manifest. Returns the layer digests.
 */
export async function pushImage(
  reg: RegistryHandle,
  repo: string,
  layers: Array<{ blob: Buffer; diffId: string; mediaType?: string }>,
): Promise<string[]> {
  const p = hostPlatform();
  const config = Buffer.from(
    JSON.stringify({
      architecture: p.architecture,
      os: p.os,
      ...(p.variant ? { variant: p.variant } : {}),
      config: {},
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    }),
  );
  const digests = await Promise.all(layers.map((l) => pushBlob(reg, repo, l.blob)));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: await pushBlob(reg, repo, config),
        size: config.length,
      },
      layers: layers.map((l, i) => ({
        mediaType: l.mediaType ?? "application/vnd.oci.image.layer.v1.tar+gzip",
        digest: digests[i],
        size: l.blob.length,
      })),
    }),
  );
  const r = await fetch(`${reg.url}/v2/${repo}/manifests/latest`, {
    method: "PUT",
    headers: { "content-type": OCI_MANIFEST },
    body: manifest,
  });
  if (r.status !== 201) throw new Error(`manifest push failed: ${r.status} ${await r.text()}`);
  return digests;
}
