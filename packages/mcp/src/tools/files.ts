import { chmod, lstat, mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, posix, relative, sep } from "node:path";
import { z } from "zod";
import type { Json } from "../contree-api.js";
import type { StateFile } from "../directory-states.js";
import { ok, requireLocalFiles, type ToolContext } from "../tool-kit.js";

function expandHome(p: string): string {
  return p === "~" || p.startsWith("~/") ? join(homedir(), p.slice(1)) : p;
}

/** fnmatch-style pattern (`*`, `?`) → a matcher of a name or a relative path. */
function globMatcher(patterns: readonly string[]): (rel: string) => boolean {
  const res = patterns.map(
    (p) =>
      new RegExp(
        `^${p
          .split("")
          .map((c) => (c === "*" ? ".*" : c === "?" ? "." : c.replace(/[\\^$.|+()[\]{}]/g, "\\$&")))
          .join("")}$`,
      ),
  );
  return (rel) => {
    const name = rel.split("/").pop() ?? rel;
    return res.some((r) => r.test(name) || r.test(rel));
  };
}

async function walk(root: string, excluded: (rel: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  const visit = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      const rel = relative(root, full).split(sep).join("/");
      if (excluded(rel)) continue;
      if (entry.isDirectory()) await visit(full);
      else if (entry.isFile()) out.push(full);
    }
  };
  await visit(root);
  return out;
}

function fileType(f: Json): string {
  if (f["is_symlink"]) return "symlink";
  if (f["is_dir"]) return "directory";
  return "file";
}

function normalizeDir(path: string): string {
  const p = path.startsWith("/") ? path : `/${path}`;
  return p === "/." ? "/" : p;
}

export function registerFileTools(ctx: ToolContext): void {
  const { server, api } = ctx;

  server.registerTool(
    "contree_upload",
    {
      description:
        "Upload one file and get its uuid for contree_run's files={\"/path/in/sandbox\": uuid} (free, no sandbox). Give exactly one of content (text), content_base64 (binary) or path (a file on the MCP server's machine; stdio only). Returns uuid, sha256.",
      inputSchema: {
        path: z.string().max(4096).optional(),
        content: z.string().optional(),
        content_base64: z.string().optional(),
      },
    },
    async (a) => {
      let data: Uint8Array;
      if (a.path) {
        requireLocalFiles(ctx, "contree_upload with path");
        data = await readFile(expandHome(a.path)).catch(() => {
          throw new Error(`file not found or unreadable: ${a.path}`);
        });
      } else if (a.content_base64) data = Buffer.from(a.content_base64, "base64");
      else if (a.content !== undefined && a.content !== "") data = Buffer.from(a.content, "utf8");
      else throw new Error("one of 'path', 'content' or 'content_base64' is required");
      return ok(await api.ensureFile(data));
    },
  );

  server.registerTool(
    "contree_rsync",
    {
      description:
        'Upload a local directory (on the MCP server\'s machine; stdio only) for injection into runs: returns a directory_state_id to pass to contree_run. Unchanged files are not re-uploaded. Exclude caches: exclude=["__pycache__", ".git", "node_modules", ".venv"].',
      inputSchema: {
        source: z.string().min(1).max(4096),
        destination: z.string().min(1).max(4096),
        exclude: z.array(z.string().max(256)).optional(),
      },
    },
    async (a) => {
      requireLocalFiles(ctx, "contree_rsync");
      const source = expandHome(a.source);
      if (!isAbsolute(source)) throw new Error(`source must be an absolute path, got: ${a.source}`);
      const st = await lstat(source).catch(() => undefined);
      if (!st) throw new Error(`source path does not exist: ${source}`);
      const dest = a.destination.replace(/\/+$/, "") || "/";
      const excluded = globMatcher(a.exclude ?? []);
      const paths = st.isDirectory() ? await walk(source, excluded) : [source];
      const files: StateFile[] = [];
      for (const p of paths) {
        const rel = st.isDirectory() ? relative(source, p).split(sep).join("/") : posix.basename(p);
        const { uuid } = await api.ensureFile(await readFile(p));
        files.push({ target: posix.join(dest, rel), uuid, mode: (await lstat(p)).mode });
      }
      if (files.length === 0) throw new Error(`nothing to sync under ${source} (everything excluded?)`);
      const id = ctx.states.add(files);
      return { content: [{ type: "text" as const, text: String(id) }], structuredContent: { result: id } };
    },
  );

  server.registerTool(
    "contree_download",
    {
      description:
        "Save a file of an image to the MCP server's machine (stdio only; free, no sandbox). destination is an absolute local path; parent directories are created. executable=true marks it 0755.",
      inputSchema: {
        image: z.string().min(1).max(300),
        path: z.string().min(1).max(4096),
        destination: z.string().min(1).max(4096),
        executable: z.boolean().default(false),
      },
    },
    async (a) => {
      requireLocalFiles(ctx, "contree_download");
      const uuid = await api.resolveImage(a.image);
      const dest = expandHome(a.destination);
      if (!isAbsolute(dest)) throw new Error(`destination must be an absolute path, got: ${a.destination}`);
      const data = await api.raw({
        method: "GET",
        path: `/v1/inspect/${uuid}/download`,
        query: { path: a.path },
      });
      await mkdir(dirname(dest), { recursive: true });
      const tmp = `${dest}.download-${process.pid}.tmp`;
      await writeFile(tmp, data);
      await rename(tmp, dest);
      if (a.executable) await chmod(dest, 0o755);
      return ok({
        success: true,
        source: { image: uuid, path: a.path },
        destination: dest,
        size: data.length,
        executable: a.executable,
      });
    },
  );

  server.registerTool(
    "contree_list_files",
    {
      description:
        "List a directory of an image without starting a sandbox (free). Prefer it over running ls. Returns path, count, files[] with name, path, type (file/directory/symlink), size, mode, target.",
      inputSchema: { image: z.string().min(1).max(300), path: z.string().max(4096).default("/") },
    },
    async (a) => {
      const uuid = await api.resolveImage(a.image);
      const path = normalizeDir(a.path);
      const doc = await api.json({ method: "GET", path: `/v1/inspect/${uuid}/list`, query: { path } });
      const files = ((doc["files"] as Json[] | undefined) ?? []).map((f) => {
        const p = String(f["path"]);
        return {
          name: p.includes("/") ? (p.split("/").pop() ?? p) : p,
          path: p,
          type: fileType(f),
          size: f["size"],
          mode: typeof f["mode"] === "number" ? `0o${f["mode"].toString(8)}` : null,
          target: f["is_symlink"] && f["symlink_to"] ? f["symlink_to"] : null,
        };
      });
      return ok({ path: doc["path"] ?? path, count: files.length, files });
    },
  );

  server.registerTool(
    "contree_read_file",
    {
      description:
        "Read a file of an image without starting a sandbox (free). Prefer it over running cat. Returns path, content (utf-8, or base64 when not text: see encoding), encoding, bytes_size.",
      inputSchema: { image: z.string().min(1).max(300), path: z.string().min(1).max(4096) },
    },
    async (a) => {
      const uuid = await api.resolveImage(a.image);
      const data = await api.raw({
        method: "GET",
        path: `/v1/inspect/${uuid}/download`,
        query: { path: a.path },
      });
      const decoded = utf8(data);
      return ok({
        path: a.path,
        content: decoded ?? Buffer.from(data).toString("base64"),
        encoding: decoded === undefined ? "base64" : "utf-8",
        bytes_size: data.length,
      });
    },
  );
}

export function utf8(data: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(data);
  } catch {
    return undefined;
  }
}
