import { existsSync } from "node:fs";
import { mkdir, stat } from "node:fs/promises";
import { resolve } from "node:path";
import type { Command } from "commander";
import { DEFAULT_PROJECT, PUBLIC_PROJECT } from "../auth/bootstrap.js";
import { loadConfig } from "../config/load-config.js";
import { invalidArgument, notFound } from "../core/errors.js";
import { isoMicros } from "../core/time.js";
import { importArchive } from "../images/archive-import.js";
import { validateTag } from "../images/tag-grammar.js";
import { dataLayout, openMetadata } from "../main.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import type { Project } from "../metadata/repos/project-repo.js";
import type { Platform } from "../registry/registry-client.js";
import { LayerStore } from "../snapshots/layer-store.js";

const out = (s: string) => process.stdout.write(`${s}\n`);
const note = (s: string) => process.stderr.write(`${s}\n`);

/**
 * The two built-in projects may not exist yet when an admin seeds a fresh data dir before the
 * first `serve`; creating them here is what bootstrap would do (it still issues the token later).
 */
async function projectFor(s: MetadataStore, name: string): Promise<Project> {
  if (name === DEFAULT_PROJECT || name === PUBLIC_PROJECT) {
    return s.transaction(async (tx) => (await tx.projects.findByName(name)) ?? tx.projects.create(name));
  }
  return s.projects.resolve(name);
}

function parsePlatform(text: string): Platform {
  const [os, architecture, variant, ...rest] = text.split("/");
  if (!os || !architecture || rest.length > 0)
    throw invalidArgument("--platform must look like os/arch[/variant], e.g. linux/amd64");
  return { os, architecture, variant: variant || undefined };
}

const fmtSize = (n: number) =>
  n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;

export function registerImagesCommands(program: Command): void {
  const images = program
    .command("images")
    .description("manage images directly in the data dir (works while the server runs)");
  images
    .command("import-archive <file>")
    .description(
      "import a `docker save` tarball, a Docker 25 archive or an OCI layout tar; prints the image UUID",
    )
    .requiredOption("--tag <tag>", "tag for the imported image, e.g. busybox:latest")
    .option(
      "--project <name>",
      `project to import into ("${PUBLIC_PROJECT}" makes it visible to every project)`,
      DEFAULT_PROJECT,
    )
    .option("--image <ref>", "which image of a multi-image archive (a RepoTag or OCI ref name)")
    .option("--platform <os/arch>", "platform to pick from a multi-platform archive (default: this host's)")
    .option("--data-dir <dir>", "data directory (env CONTREE_DATA_DIR)")
    .action(
      async (
        file: string,
        opts: { tag: string; project: string; image?: string; platform?: string; dataDir?: string },
      ) => {
        // Validate everything cheap before touching the data dir.
        const tag = validateTag(opts.tag);
        const path = resolve(file);
        // The admin named this file, so naming it back is fine here (the import itself never does).
        const st = await stat(path).catch(() => undefined);
        if (!st) throw notFound(`archive ${file} not found`);
        if (!st.isFile()) throw invalidArgument(`${file} is not a regular file`);
        const platform = opts.platform === undefined ? undefined : parsePlatform(opts.platform);
        const config = loadConfig({ dataDir: opts.dataDir });
        await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
        const store = openMetadata(config.dataDir);
        const abort = new AbortController();
        const onSignal = () => abort.abort("cancelled");
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
        try {
          const project = await projectFor(store, opts.project);
          const layers = await LayerStore.open(config.dataDir);
          const t0 = Date.now();
          const r = await importArchive({
            store,
            layers,
            project,
            path,
            tag,
            image: opts.image,
            platform,
            signal: abort.signal,
            progress: (p) => {
              note(
                `layer ${p.layer}/${p.layers} ${p.digest.slice(0, 19)} ${p.reused ? "reused" : `imported (${fmtSize(p.size)})`}`,
              );
            },
          });
          note(
            `imported ${r.reference} (${r.format} archive, ${r.layers} layer${r.layers === 1 ? "" : "s"}, ${r.reusedLayers} reused, ${fmtSize(r.size)}) ` +
              `as ${tag} in project ${project.name} in ${((Date.now() - t0) / 1000).toFixed(2)} s`,
          );
          out(r.image.id);
        } finally {
          process.off("SIGINT", onSignal);
          process.off("SIGTERM", onSignal);
          await store.close();
        }
      },
    );

  images
    .command("list")
    .description("list a project's images with their tags")
    .option("--project <name>", "project", DEFAULT_PROJECT)
    .option("--data-dir <dir>", "data directory (env CONTREE_DATA_DIR)")
    .action(async (opts: { project: string; dataDir?: string }) => {
      const config = loadConfig({ dataDir: opts.dataDir });
      // Listing must not create an empty database where there was none.
      if (!existsSync(dataLayout(config.dataDir).database))
        throw notFound(`no contree data in ${config.dataDir}`);
      const store = openMetadata(config.dataDir);
      try {
        const project = await store.projects.resolve(opts.project);
        out("UUID\tTAG\tSIZE\tCREATED\tSOURCE");
        const pageSize = 500;
        for (let offset = 0; ; offset += pageSize) {
          const rows = await store.images.list(project.id, "", { limit: pageSize, offset });
          for (const r of rows)
            out([r.id, r.tag ?? "-", String(r.size), isoMicros(r.createdAt), r.source ?? "-"].join("\t"));
          if (rows.length < pageSize) break;
        }
      } finally {
        await store.close();
      }
    });
}
