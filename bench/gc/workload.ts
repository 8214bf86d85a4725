/**
 * The tree-search workload: what an agent exploring a tree of sandbox states does to the store.
 *
 * `width` branches are open at a time. A client picks an idle branch, runs one step from its
 * tip (a command writing a few files of random content, 2 KiB to 320 KiB, some overwriting what
 * an ancestor wrote) and moves the tip to the result. Most branches are abandoned after 1 to
 * `shallowMax` steps; a `deepShare` of them go `deepMin` to `deepMax` steps (past the flatten
 * threshold of 24). An abandoned branch is replaced by a new one forking from the best state so
 * far, a recent state (backtracking), another branch's tip, or the root. Every `tagEvery` runs
 * the best state gets the moving tag `search/best:latest`; `keepTags` times it also gets a tag of
 * its own that is never moved. Some steps upload a file first and name it in the run.
 *
 * Decisions come from a seeded generator, so two phases replay the same search (up to the order
 * in which concurrent clients finish).
 */
import { randomBytes } from "node:crypto";
import type { BenchServer } from "./server.js";
import { ok, type RunResult, timedRun, why } from "./timed-run.js";

export interface WorkloadOptions {
  runs: number;
  clients: number;
  width: number;
  seed: number;
  shallowMax: number;
  deepShare: number;
  deepMin: number;
  deepMax: number;
  uploadShare: number;
  tagEvery: number;
  keepTags: number;
}

export interface WorkloadResult {
  /** Successful runs, in completion order. */
  runs: RunResult[];
  failed: number;
  /** Runs refused because their image was gone (expired under a client holding it too long). */
  gone: number;
  firstFailure: string | null;
  branches: number;
  deepBranches: number;
  maxDepth: number;
  tagMoves: number;
  keptTags: number;
  uploads: number;
}

interface Node {
  image: string;
  depth: number;
  score: number;
}

interface Branch {
  tip: Node;
  steps: number;
  budget: number;
  busy: boolean;
}

/** mulberry32: small, seedable, good enough to make decisions. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const MIN_FILE = 2 * 1024;
const MAX_FILE = 320 * 1024;
/** Files are named from a small set so later steps overwrite what ancestors wrote (copy-up). */
const FILE_NAMES = 12;
const RECENT = 32;

export async function treeSearch(
  t: BenchServer,
  root: string,
  o: WorkloadOptions,
  onRun: (r: RunResult) => void,
): Promise<WorkloadResult> {
  const rng = generator(o.seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)] as T;
  const rootNode: Node = { image: root, depth: 0, score: 0 };
  const res: WorkloadResult = {
    runs: [],
    failed: 0,
    gone: 0,
    firstFailure: null,
    branches: 0,
    deepBranches: 0,
    maxDepth: 0,
    tagMoves: 0,
    keptTags: 0,
    uploads: 0,
  };
  let best = rootNode;
  /** The state holding `search/best:latest`: retention never takes it. */
  let tagged = rootNode;
  const recent: Node[] = [];
  const open: Branch[] = [];
  // Runs after which one more never-moved tag is set: spread over the whole search.
  const keepAt = new Set(
    Array.from({ length: o.keepTags }, (_, k) => Math.floor((o.runs * (k + 1)) / (o.keepTags + 1))),
  );

  const newBranch = (): Branch => {
    const r = rng();
    let from: Node;
    if (r < 0.05) from = rootNode;
    else if (r < 0.25) from = best;
    else if (r < 0.5 && recent.length > 0) from = pick(recent);
    else if (open.length > 0) from = pick(open).tip;
    else from = rootNode;
    const deep = rng() < o.deepShare;
    res.branches++;
    if (deep) res.deepBranches++;
    return {
      tip: from,
      steps: 0,
      budget: deep ? int(o.deepMin, o.deepMax) : int(1, o.shallowMax),
      busy: false,
    };
  };
  for (let i = 0; i < o.width; i++) open.push(newBranch());

  const command = (score: number): string => {
    const parts = ["mkdir -p /work"];
    for (let n = int(1, 4); n > 0; n--) {
      const size = Math.round(Math.exp(Math.log(MIN_FILE) + rng() * Math.log(MAX_FILE / MIN_FILE)));
      parts.push(`head -c ${size} /dev/urandom > /work/f${int(0, FILE_NAMES - 1)}`);
    }
    parts.push(`echo ${score.toFixed(4)} > /work/score`);
    return parts.join(" && ");
  };

  /** False when the image is gone (expired before its tag came). */
  const tag = async (image: string, name: string): Promise<boolean> => {
    const r = await t.api(`/v1/images/${image}/tag`, { method: "PATCH", json: { tag: name } });
    if (r.status === 404) {
      await r.body?.cancel();
      res.gone++;
      return false;
    }
    if (r.status !== 200) throw new Error(`tagging ${image} ${name} answered ${r.status}: ${await r.text()}`);
    await r.body?.cancel();
    return true;
  };

  let issued = 0;
  let completed = 0;
  const maxFailures = Math.max(10, Math.ceil(o.runs / 100));
  const fail = (msg: string) => {
    res.failed++;
    res.firstFailure ??= msg;
    if (res.failed > maxFailures)
      throw new Error(`more than ${maxFailures} failed runs; first: ${res.firstFailure}`);
  };

  const client = async () => {
    while (issued < o.runs) {
      const idle = open.filter((b) => !b.busy);
      const branch = pick(idle);
      branch.busy = true;
      issued++;
      const score = branch.tip.score + (rng() - 0.45);
      const body: Record<string, unknown> = {
        command: command(score),
        shell: true,
        image: branch.tip.image,
        timeout: 120,
      };
      if (rng() < o.uploadShare) {
        const up = await t.api("/v1/files", {
          method: "POST",
          headers: { "content-type": "application/octet-stream" },
          body: randomBytes(int(4, 64) * 1024),
        });
        if (up.status !== 201 && up.status !== 200) throw new Error(`upload answered ${up.status}`);
        const { uuid } = (await up.json()) as { uuid: string };
        body["files"] = { "/work/input": { uuid } };
        res.uploads++;
      }
      let r: RunResult | undefined;
      try {
        r = await timedRun(t, body);
      } catch (e) {
        fail(String(e));
      }
      let end = true;
      if (r?.status === "gone") {
        res.gone++;
        // The best state expired before it was tagged: fall back to the tagged one.
        if (branch.tip === best) best = tagged;
      } else if (r !== undefined && (!ok(r) || r.image === null))
        fail(`run from ${branch.tip.image}: ${why(r)}`);
      else if (r?.image != null) {
        onRun(r);
        res.runs.push(r);
        const node: Node = { image: r.image, depth: branch.tip.depth + 1, score };
        res.maxDepth = Math.max(res.maxDepth, node.depth);
        if (node.score > best.score) best = node;
        recent.push(node);
        if (recent.length > RECENT) recent.shift();
        branch.tip = node;
        branch.steps++;
        end = branch.steps >= branch.budget;
        completed++;
        if (completed % o.tagEvery === 0 && best !== tagged) {
          const candidate = best;
          if (await tag(candidate.image, "search/best:latest")) {
            tagged = candidate;
            res.tagMoves++;
          } else if (best === candidate) best = tagged;
        }
        if (keepAt.has(completed) && best !== rootNode) {
          if (await tag(best.image, `search/best:keep-${res.keptTags + 1}`)) res.keptTags++;
        }
      }
      branch.busy = false;
      if (end) open.splice(open.indexOf(branch), 1, newBranch());
    }
  };
  await Promise.all(Array.from({ length: o.clients }, client));
  return res;
}
