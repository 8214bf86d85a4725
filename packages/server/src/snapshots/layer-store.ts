import { existsSync } from "node:fs";
import { chmod, lstat, mkdir, readdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { newId } from "../core/ids.js";
import { neutralizeDevices } from "../layers/inert-device.js";

/**
 * Immutable layer directories in overlayfs upper format, `<data>/layers/<id>`, plus a staging
 * area on the same filesystem so that publishing a layer is one rename. Layer ids are short on
 * purpose: overlay mount options are capped at 4 KiB and list every lower by name.
 */
export class LayerStore {
  readonly layersDir: string;
  readonly stagingDir: string;

  private constructor(private readonly dataDir: string) {
    this.layersDir = join(dataDir, "layers");
    this.stagingDir = join(dataDir, "staging");
  }

  static async open(dataDir: string): Promise<LayerStore> {
    const s = new LayerStore(dataDir);
    await mkdir(s.layersDir, { recursive: true, mode: 0o700 });
    await mkdir(s.stagingDir, { recursive: true, mode: 0o700 });
    // the data dir root is traversable (sandbox uids reach runs/): these are for the server only,
    // and older data dirs made them 0755
    await chmod(s.layersDir, 0o700);
    await chmod(s.stagingDir, 0o700);
    return s;
  }

  path(id: string): string {
    return join(this.layersDir, id);
  }

  paths(ids: readonly string[]): string[] {
    return ids.map((id) => this.path(id));
  }

  /** A fresh empty directory to build a layer in, named after this process (see reclaim). */
  async stage(): Promise<string> {
    const dir = join(this.stagingDir, `${process.pid}.${newId()}`);
    await mkdir(dir, { mode: 0o755 });
    return dir;
  }

  /**
   * Publishes a staged dir as layer `id`; if another writer won the race, ours is discarded.
   * True when the layer dir is ours (the caller removes it if its import then fails).
   */
  async publish(staged: string, id: string): Promise<boolean> {
    try {
      await rename(staged, this.path(id));
      return true;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== "ENOTEMPTY" && code !== "EEXIST") throw err;
      await this.discard(staged);
      return false;
    }
  }

  async discard(dir: string): Promise<void> {
    await rm(dir, { recursive: true, force: true });
  }

  /** Layer dirs with their modification times (GC: one without a row past the grace is an orphan). */
  async list(): Promise<Array<{ id: string; mtimeMs: number }>> {
    const ids = await readdir(this.layersDir);
    const out: Array<{ id: string; mtimeMs: number }> = [];
    // 64 at a time: one by one, 100,000 lstat calls are thread-pool latency
    for (let i = 0; i < ids.length; i += 64) {
      const part = ids.slice(i, i + 64);
      const sts = await Promise.all(part.map((id) => lstat(this.path(id)).catch(() => undefined)));
      sts.forEach((st, j) => {
        if (st) out.push({ id: part[j] as string, mtimeMs: st.mtimeMs });
      });
    }
    return out;
  }

  /**
   * Takes a layer dir out of the store with one rename (into staging, under this process's
   * name, so a crash leaves it to the staging sweep). Returns where it went; undefined if absent.
   */
  async detach(id: string): Promise<string | undefined> {
    const to = join(this.stagingDir, `${process.pid}.gc-${id}-${newId().slice(0, 8)}`);
    try {
      await rename(this.path(id), to);
      return to;
    } catch (err) {
      if ((err as { code?: string }).code === "ENOENT") return undefined;
      throw err;
    }
  }

  /** Puts a detached dir back; if another copy was published meanwhile, the detached one goes. */
  async reattach(detached: string, id: string): Promise<void> {
    await this.publish(detached, id);
  }

  /** Removes a layer dir (GC, after its row is gone). */
  async remove(id: string): Promise<void> {
    const d = await this.detach(id);
    if (d) await this.discard(d);
  }

  /** Staging entries: the process that owns each (from its name) and when it last changed. */
  async listStaging(): Promise<
    Array<{ name: string; path: string; pid: number | undefined; mtimeMs: number }>
  > {
    const out: Array<{ name: string; path: string; pid: number | undefined; mtimeMs: number }> = [];
    for (const name of await readdir(this.stagingDir)) {
      const path = join(this.stagingDir, name);
      const st = await lstat(path).catch(() => undefined);
      if (!st) continue;
      const pid = Number(name.split(".")[0]);
      out.push({ name, path, pid: Number.isInteger(pid) && pid > 0 ? pid : undefined, mtimeMs: st.mtimeMs });
    }
    return out;
  }

  /**
   * Start-up: removes staging dirs of processes that are gone and layer dirs no metadata row
   * refers to. An admin command importing beside the server owns live staging dirs and may be
   * between publishing a layer and recording it, so young orphans are left for a later start.
   */
  async reclaim(
    known: ReadonlySet<string>,
    graceMs = 10 * 60_000,
  ): Promise<{ staging: number; orphans: number }> {
    let staging = 0;
    for (const name of await readdir(this.stagingDir)) {
      const pid = Number(name.split(".")[0]);
      if (Number.isInteger(pid) && pid !== process.pid && isAlive(pid)) continue;
      staging++;
      await rm(join(this.stagingDir, name), { recursive: true, force: true });
    }
    let orphans = 0;
    const now = Date.now();
    for (const name of await readdir(this.layersDir)) {
      if (known.has(name)) continue;
      const st = await lstat(this.path(name)).catch(() => undefined);
      if (st && now - st.mtimeMs < graceMs) continue;
      orphans++;
      await rm(this.path(name), { recursive: true, force: true });
    }
    return { staging, orphans };
  }

  /**
   * Start-up, once per data dir: layers written before device nodes became stand-ins may still
   * hold live ones. Mounted nodev and under the device allow-list they could not be opened; this
   * replaces them too, so no live node is left at all. Returns how many (null: done before).
   */
  async neutralizeLegacyDevices(): Promise<number | null> {
    const marker = join(this.dataDir, DEVICES_MARKER);
    if (existsSync(marker)) return null;
    let replaced = 0;
    for (const name of await readdir(this.layersDir)) replaced += await neutralizeDevices(this.path(name));
    await writeFile(marker, "");
    return replaced;
  }
}

/** Written once every layer of a data dir holds device stand-ins only (see neutralizeLegacyDevices). */
const DEVICES_MARKER = "layers-devices-inert";

export function runLayerId(): string {
  return `r${newId().replace(/-/g, "").slice(0, 24)}`;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === "EPERM";
  }
}
