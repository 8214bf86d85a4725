import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueToken, parsePermissions } from "../../src/auth/tokens.js";
import type { FileItem } from "../../src/inspect/inspect-service.js";
import { FIXTURE_IMAGES } from "../harness/fixtures.js";
import { type InspectEnv, importImage, startInspectEnv } from "./helpers.js";

const execFileP = promisify(execFile);
const BUSYBOX_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";

interface Listing {
  path: string;
  files: FileItem[];
}

describe("inspect API", () => {
  let env: InspectEnv;
  let otherToken: string;
  let noListToken: string;
  let publicImage: string;

  beforeAll(async () => {
    env = await startInspectEnv();
    const store = env.t.server.store;
    const other = await store.projects.create("other-team");
    otherToken = (await issueToken(store, { projectId: other.id })).secret;
    const def = await store.projects.findByName("default");
    noListToken = (await issueToken(store, { projectId: def!.id, permissions: parsePermissions("spawn") }))
      .secret;
    publicImage = await importImage(env.t, env.reg, FIXTURE_IMAGES.busyboxOci, "shared:1", {
      project: "public",
    });
  }, 300_000);
  afterAll(async () => {
    await env?.close();
  });

  const api = (path: string, init?: RequestInit) => env.t.api(path, { redirect: "manual", ...init });
  const list = async (img: string, path: string): Promise<Listing> => {
    const r = await api(`/v1/inspect/${img}/list?path=${encodeURIComponent(path)}`);
    expect(r.status, await r.clone().text()).toBe(200);
    return (await r.json()) as Listing;
  };
  const item = async (img: string, dir: string, name: string): Promise<FileItem> => {
    const f = (await list(img, dir)).files.find((x) => x.path === name);
    expect(f, `${dir}/${name}`).toBeDefined();
    return f!;
  };
  const download = (img: string, path: string, init?: RequestInit) =>
    api(`/v1/inspect/${img}/download?path=${encodeURIComponent(path)}`, init);

  describe("tag lookup and image record", () => {
    it("redirects a tag with exactly 302 and a relative Location", async () => {
      const r = await api("/v1/inspect/?tag=busybox:latest");
      expect(r.status).toBe(302);
      expect(r.headers.get("location")).toBe(`${env.busybox}/`);
      // the Location resolves to the image record under the request URL
      const target = new URL(r.headers.get("location")!, `${env.t.url}/v1/inspect/`).pathname;
      expect(target).toBe(`/v1/inspect/${env.busybox}/`);
      const followed = await env.t.api("/v1/inspect/?tag=busybox:latest");
      expect(followed.status).toBe(200);
      expect(((await followed.json()) as { uuid: string }).uuid).toBe(env.busybox);
    });

    it("also answers without the trailing slash, with a Location that still resolves", async () => {
      const r = await api("/v1/inspect?tag=busybox:latest");
      expect(r.status).toBe(302);
      const target = new URL(r.headers.get("location")!, `${env.t.url}/v1/inspect`).pathname;
      expect(target).toBe(`/v1/inspect/${env.busybox}/`);
    });

    it("400 without a tag, 404 for an unknown tag", async () => {
      for (const q of ["", "?tag="]) {
        const r = await api(`/v1/inspect/${q}`);
        expect(r.status).toBe(400);
        expect(await r.json()).toEqual({ error: "tag is required", status: 400 });
      }
      const r = await api("/v1/inspect/?tag=nope:1");
      expect(r.status).toBe(404);
      expect(((await r.json()) as { error: string }).error).toMatch(/not found/);
    });

    it("finds public tags from any project, own tags first", async () => {
      const r = await api("/v1/inspect/?tag=shared:1", {
        headers: { authorization: `Bearer ${otherToken}` },
      });
      expect(r.status).toBe(302);
      expect(r.headers.get("location")).toBe(`${publicImage}/`);
      // the project's own tag of the same name wins over the public one
      await env.t.api(`/v1/images/${env.features}/tag`, { method: "PATCH", json: { tag: "shared:1" } });
      const own = await api("/v1/inspect/?tag=shared:1");
      expect(own.headers.get("location")).toBe(`${env.features}/`);
    });

    it("GET and HEAD of the image record", async () => {
      const r = await api(`/v1/inspect/${env.busybox}/`);
      expect(r.status).toBe(200);
      const img = (await r.json()) as Record<string, unknown>;
      expect(img["uuid"]).toBe(env.busybox);
      expect(img["tag"]).toBe("busybox:latest");
      expect(typeof img["created_at"]).toBe("string");
      expect(typeof img["operation_uuid"]).toBe("string");
      expect((await api(`/v1/inspect/${env.busybox}`)).status).toBe(200);
      const head = await api(`/v1/inspect/${env.busybox}/`, { method: "HEAD" });
      expect(head.status).toBe(200);
      expect(await head.text()).toBe("");
      for (const id of ["00000000-0000-4000-8000-000000000000", "not-a-uuid"]) {
        expect((await api(`/v1/inspect/${id}/`)).status).toBe(404);
        expect((await api(`/v1/inspect/${id}/`, { method: "HEAD" })).status).toBe(404);
      }
    });
  });

  describe("list", () => {
    it("lists a directory with FileItems exactly as the clients decode them", async () => {
      const l = await list(env.busybox, "/etc");
      expect(l.path).toBe("/etc");
      expect(l.files.map((f) => f.path)).toEqual(["group", "hostname", "passwd"]);
      const passwd = l.files.find((f) => f.path === "passwd")!;
      expect(passwd).toEqual({
        path: "passwd",
        size: Buffer.byteLength(BUSYBOX_PASSWD),
        owner: "root",
        group: "root",
        uid: 0,
        gid: 0,
        mode: 0o100644,
        mtime: 1700000000,
        nlink: 1,
        is_dir: false,
        is_regular: true,
        is_symlink: false,
        is_socket: false,
        is_fifo: false,
        symlink_to: "",
      });
      expect(Object.keys(passwd).sort()).toEqual(
        [
          "path",
          "size",
          "owner",
          "group",
          "uid",
          "gid",
          "mode",
          "mtime",
          "nlink",
          "is_dir",
          "is_regular",
          "is_symlink",
          "is_socket",
          "is_fifo",
          "symlink_to",
        ].sort(),
      );
    });

    it("reports directories, symlinks, fifos and devices with full st_mode", async () => {
      const root = await list(env.busybox, "/");
      expect(root.path).toBe("/");
      const tmp = root.files.find((f) => f.path === "tmp")!;
      expect(tmp.mode).toBe(0o41777);
      expect(tmp.is_dir).toBe(true);
      const sh = await item(env.busybox, "/bin", "sh");
      expect(sh).toMatchObject({
        mode: 0o120777,
        is_symlink: true,
        is_regular: false,
        symlink_to: "/bin/busybox",
        size: "/bin/busybox".length,
      });
      const feat = await list(env.features, "/opt/feat");
      const by = (n: string) => feat.files.find((f) => f.path === n)!;
      expect(by("fifo")).toMatchObject({ is_fifo: true, is_regular: false, is_dir: false, size: 0 });
      expect(by("fifo").mode & 0o170000).toBe(0o010000);
      expect(by("blockdev").mode & 0o170000).toBe(0o060000);
      expect(by("blockdev")).toMatchObject({
        is_dir: false,
        is_regular: false,
        is_symlink: false,
        is_fifo: false,
        is_socket: false,
      });
      expect((await item(env.features, "/dev", "null-test")).mode).toBe(0o020666);
      expect(by("suid").mode).toBe(0o104755);
      expect(by("sticky").mode).toBe(0o041777);
      expect(by("rel-symlink")).toMatchObject({ is_symlink: true, symlink_to: "../../bin/busybox" });
      expect(by("dangling-symlink").symlink_to).toBe("/nonexistent/target");
      expect(by("hl-a").nlink).toBe(2);
      expect(by("ünïcödé-ファイル.txt")).toMatchObject({ size: 5, is_regular: true });
      expect(feat.files.some((f) => f.path === "d".repeat(120) && f.is_dir)).toBe(true);
    });

    it("names owners and groups from the image's own /etc/passwd and /etc/group", async () => {
      const feat = await list(env.features, "/opt/feat");
      const by = (n: string) => feat.files.find((f) => f.path === n)!;
      expect(by("owned")).toMatchObject({
        uid: 1000,
        gid: 1000,
        owner: "1000",
        group: "1000",
        mode: 0o100640,
      });
      expect(by("nobody-dir")).toMatchObject({ owner: "nobody", group: "nogroup", mode: 0o040750 });
      expect(by("sgid-shadow")).toMatchObject({ owner: "root", gid: 42, group: "42", mode: 0o102755 });
      // uid 1000 is "alice"/"staff" only in the escape image
      expect(await item(env.escape, "/home", "alice")).toMatchObject({
        owner: "alice",
        group: "staff",
        uid: 1000,
      });
    });

    it("honours whiteouts and opaque directories of upper layers", async () => {
      const etc = (await list(env.features, "/etc")).files.map((f) => f.path);
      expect(etc).toContain("motd");
      expect(etc).not.toContain("hostname");
      expect((await list(env.features, "/home")).files.map((f) => f.path)).toEqual([
        "new.txt",
        "olddir-replaced",
      ]);
      expect((await list(env.features, "/")).files.map((f) => f.path)).not.toContain("linuxrc");
      expect((await list(env.busybox, "/")).files.map((f) => f.path)).toContain("linuxrc");
      expect((await download(env.features, "/etc/hostname")).status).toBe(404);
      expect((await download(env.features, "/home/basefile")).status).toBe(404);
      expect((await download(env.busybox, "/etc/hostname")).status).toBe(200);
    });

    it("normalises paths and follows a symlinked directory inside the image", async () => {
      expect((await list(env.busybox, "etc")).path).toBe("/etc");
      expect((await list(env.busybox, "/etc/../etc/./")).path).toBe("/etc");
      const r = await api(`/v1/inspect/${env.busybox}/list`);
      expect(((await r.json()) as Listing).path).toBe("/");
      const link = await list(env.escape, "/etc-link");
      expect(link.files.map((f) => f.path)).toEqual(["group", "hosts", "passwd"]);
    });

    it("404 for a missing directory, 422 for a file", async () => {
      for (const p of ["/nope", "/etc/nope/x"]) {
        const r = await api(`/v1/inspect/${env.busybox}/list?path=${p}`);
        expect(r.status).toBe(404);
      }
      const r = await api(`/v1/inspect/${env.busybox}/list?path=/etc/passwd`);
      expect(r.status).toBe(422);
      expect(((await r.json()) as { status: number }).status).toBe(422);
    });

    it("text form: ls -l-like, for text=1 and a bare text flag, not for text=0", async () => {
      for (const q of ["text=1", "text=", "text"]) {
        const r = await api(`/v1/inspect/${env.features}/list?path=/opt/feat&${q}`);
        expect(r.status).toBe(200);
        expect(r.headers.get("content-type")).toBe("text/plain; charset=utf-8");
        const body = await r.text();
        const lines = body.trimEnd().split("\n");
        expect(lines[0]).toMatch(/^total \d/);
        expect(body).toMatch(/^-rwsr-xr-x +1 root +root +5 Nov 14 +2023 suid$/m);
        expect(body).toMatch(/^drwxrwxrwt .* sticky$/m);
        expect(body).toMatch(/^-rw-r----- +1 1000 +1000 .* owned$/m);
        expect(body).toMatch(/^lrwxrwxrwx .* rel-symlink -> \.\.\/\.\.\/bin\/busybox$/m);
        expect(body).toMatch(/^prw-r--r-- .* fifo$/m);
        expect(body).toMatch(/^brw-r--r-- .* blockdev$/m);
      }
      const json = await api(`/v1/inspect/${env.features}/list?path=/opt/feat&text=0`);
      expect(json.headers.get("content-type")).toMatch(/^application\/json/);
      // control characters in names are escaped (a newline would forge a row)
      const esc = await (await api(`/v1/inspect/${env.escape}/list?path=/data&text=1`)).text();
      expect(esc).toContain(" a\\x09b\n");
    });
  });

  describe("download", () => {
    it("streams a file with its length", async () => {
      const r = await download(env.busybox, "/etc/passwd");
      expect(r.status).toBe(200);
      expect(r.headers.get("content-type")).toBe("application/octet-stream");
      expect(r.headers.get("content-length")).toBe(String(Buffer.byteLength(BUSYBOX_PASSWD)));
      expect(await r.text()).toBe(BUSYBOX_PASSWD);
      const big = await download(env.busybox, "/bin/busybox");
      const bytes = Buffer.from(await big.arrayBuffer());
      expect(bytes.equals(readFileSync("/bin/busybox"))).toBe(true);
      expect(Number(big.headers.get("content-length"))).toBe(bytes.length);
      expect(await (await download(env.features, "/opt/feat/ünïcödé-ファイル.txt")).text()).toBe("utf8\n");
      expect(
        await (await download(env.features, `/opt/feat/${"d".repeat(120)}/${"f".repeat(150)}`)).text(),
      ).toBe("long\n");
    });

    it("follows symlinks only inside the image", async () => {
      // absolute symlinks and ../ chains resolve against the image root, never the host's
      expect(await (await download(env.escape, "/abs-passwd")).text()).toContain("alice");
      expect(await (await download(env.escape, "/dotdot-hosts")).text()).toBe("image hosts\n");
      const shadow = await download(env.escape, "/abs-shadow");
      expect(shadow.status).toBe(404);
      expect(await shadow.json()).toEqual({ error: "file not found", status: 404 });
      expect((await download(env.escape, "/proc-environ")).status).toBe(404);
      expect(await (await download(env.escape, "/etc-link/hosts")).text()).toBe("image hosts\n");
      expect((await download(env.features, "/opt/feat/rel-symlink")).status).toBe(200);
      expect((await download(env.features, "/opt/feat/dangling-symlink")).status).toBe(404);
    });

    it("confines traversal attempts to the image", async () => {
      for (const p of [
        "../../../../etc/passwd",
        "/../../../../etc/passwd",
        "/bin/../../../etc/passwd",
        "etc/../../etc/./passwd",
        "//etc//passwd",
      ]) {
        const r = await download(env.escape, p);
        expect(r.status, p).toBe(200);
        expect(await r.text(), p).toContain("alice:x:1000");
      }
      for (const p of ["../../../../etc/shadow", "/../etc/shadow", "%2e%2e/%2e%2e/etc/shadow"]) {
        const r = await api(
          `/v1/inspect/${env.escape}/download?path=${p.includes("%") ? p : encodeURIComponent(p)}`,
        );
        expect(r.status, p).toBe(404);
      }
    });

    it("404 missing, 422 directory or special file; HEAD answers the same without a body", async () => {
      expect((await download(env.busybox, "/nope")).status).toBe(404);
      expect((await download(env.busybox, "/etc")).status).toBe(422);
      expect((await download(env.busybox, "/")).status).toBe(422);
      expect((await download(env.features, "/opt/feat/fifo")).status).toBe(422);
      expect((await download(env.features, "/dev/null-test")).status).toBe(422);
      expect((await download(env.busybox, "/etc/passwd/x")).status).toBeGreaterThanOrEqual(404);
      const head = await download(env.busybox, "/etc/passwd", { method: "HEAD" });
      expect(head.status).toBe(200);
      expect(head.headers.get("content-length")).toBe(String(Buffer.byteLength(BUSYBOX_PASSWD)));
      expect(await head.text()).toBe("");
      expect((await download(env.busybox, "/bin/sh", { method: "HEAD" })).status).toBe(200);
      expect((await download(env.busybox, "/nope", { method: "HEAD" })).status).toBe(404);
      expect((await download(env.busybox, "/etc", { method: "HEAD" })).status).toBe(422);
    });
  });

  describe("archive", () => {
    it("streams a PAX tar that GNU tar lists and extracts, names relative to /", async () => {
      const r = await api(`/v1/inspect/${env.features}/archive?path=/opt/feat`);
      expect(r.status).toBe(200);
      expect(r.headers.get("content-type")).toBe("application/x-tar");
      const dir = await mkdtemp(join(tmpdir(), "contree-inspect-tar-"));
      try {
        const tarFile = join(dir, "a.tar");
        await writeFile(tarFile, Buffer.from(await r.arrayBuffer()));
        const { stdout } = await execFileP("tar", ["--numeric-owner", "-tvf", tarFile]);
        expect(stdout).toMatch(/^drwxr-xr-x 0\/0 .* opt\/feat\/$/m);
        expect(stdout).toMatch(/^-rw-r----- 1000\/1000 .* opt\/feat\/owned$/m);
        expect(stdout).toMatch(/^-rwsr-xr-x 0\/0 .* opt\/feat\/suid$/m);
        expect(stdout).toMatch(/opt\/feat\/hl-b link to opt\/feat\/hl-a$/m);
        expect(stdout).toMatch(/opt\/feat\/rel-symlink -> \.\.\/\.\.\/bin\/busybox$/m);
        expect(stdout).toMatch(/^p.* opt\/feat\/fifo$/m);
        expect(stdout).toMatch(/^b.* 7,0 .* opt\/feat\/blockdev$/m);
        expect(stdout).toContain(`opt/feat/${"d".repeat(120)}/${"f".repeat(150)}`);
        expect(stdout).toContain("opt/feat/ünïcödé-ファイル.txt");
        expect(stdout).not.toMatch(/^[^ ]+ [^ ]+ +\d+ [^ ]+ [^ ]+ \//m); // no absolute member names
        await execFileP("tar", ["-xf", tarFile, "-C", dir, "--xattrs", "--xattrs-include=*"]);
        expect(await readFile(join(dir, "opt/feat/owned"), "utf8")).toBe("hello\n");
        expect(await readFile(join(dir, "opt/feat/ünïcödé-ファイル.txt"), "utf8")).toBe("utf8\n");
        const { stdout: attr } = await execFileP("getfattr", [
          "-n",
          "user.imglab",
          "--only-values",
          join(dir, "opt/feat/xattr"),
        ]);
        expect(attr).toBe("hello");
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it("archives a single file, honours whiteouts, 404s missing paths; HEAD 200/404", async () => {
      const one = Buffer.from(
        await (await api(`/v1/inspect/${env.busybox}/archive?path=/etc/passwd`)).arrayBuffer(),
      );
      const dir = await mkdtemp(join(tmpdir(), "contree-inspect-tar-"));
      try {
        await writeFile(join(dir, "one.tar"), one);
        expect((await execFileP("tar", ["-tf", join(dir, "one.tar")])).stdout).toBe("etc/passwd\n");
        const home = Buffer.from(
          await (await api(`/v1/inspect/${env.features}/archive?path=/home`)).arrayBuffer(),
        );
        await writeFile(join(dir, "home.tar"), home);
        expect((await execFileP("tar", ["-tf", join(dir, "home.tar")])).stdout).toBe(
          "home/\nhome/new.txt\nhome/olddir-replaced/\n",
        );
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
      const missing = await api(`/v1/inspect/${env.busybox}/archive?path=/nope`);
      expect(missing.status).toBe(404);
      expect(await missing.json()).toEqual({ error: "path not found", status: 404 });
      expect(
        (await api(`/v1/inspect/${env.busybox}/archive?path=../../../../root`, { method: "HEAD" })).status,
      ).toBe(200);
      expect(
        (await api(`/v1/inspect/${env.escape}/archive?path=/../../etc/shadow`, { method: "HEAD" })).status,
      ).toBe(404);
      const head = await api(`/v1/inspect/${env.busybox}/archive?path=/etc`, { method: "HEAD" });
      expect(head.status).toBe(200);
      expect(head.headers.get("content-type")).toBe("application/x-tar");
      expect(await head.text()).toBe("");
    });
  });

  describe("access", () => {
    it("another project's image is 404 on every endpoint; public images are visible", async () => {
      const other = { headers: { authorization: `Bearer ${otherToken}` } };
      for (const suffix of [
        "/",
        "/list?path=/",
        "/download?path=/etc/passwd",
        "/archive?path=/etc",
        "/grep?pattern=root",
      ]) {
        const r = await api(`/v1/inspect/${env.busybox}${suffix}`, other);
        expect(r.status, suffix).toBe(404);
      }
      expect(
        (await api(`/v1/inspect/${env.busybox}/download?path=/etc/passwd`, { ...other, method: "HEAD" }))
          .status,
      ).toBe(404);
      expect((await api("/v1/inspect/?tag=busybox:latest", other)).status).toBe(404);
      expect((await api(`/v1/inspect/${publicImage}/list?path=/etc`, other)).status).toBe(200);
    });

    it("needs a token with the list permission", async () => {
      expect(
        (await api(`/v1/inspect/${env.busybox}/list`, { headers: { authorization: "Bearer nope" } })).status,
      ).toBe(401);
      const noList = { headers: { authorization: `Bearer ${noListToken}` } };
      for (const suffix of ["/", "/list", "/download?path=/etc/passwd", "/archive", "/grep?pattern=x"]) {
        expect((await api(`/v1/inspect/${env.busybox}${suffix}`, noList)).status, suffix).toBe(403);
      }
      expect((await api("/v1/inspect/?tag=busybox:latest", noList)).status).toBe(403);
    });
  });
});
