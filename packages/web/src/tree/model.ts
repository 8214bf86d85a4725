/**
 * The lineage tree of a project's images, as the console draws it: images linked by
 * `parent_uuid` (an image whose parent is not listed — deleted, or in another project — is a
 * root), runs that made no image hung on the image they ran on (failed, or unchanged: the run
 * wrote nothing, so its result is its input), and long linear chains folded into one node.
 */
import type { Image, OperationSummary } from "../api/types.js";

export interface RunMarks {
  /** Runs on this image that ended FAILED or CANCELLED. */
  failed: number;
  /** Runs on this image that succeeded without changing anything (result = input). */
  unchanged: number;
}

export interface Lineage {
  byId: Map<string, Image>;
  children: Map<string, Image[]>;
  roots: Image[];
  marks: Map<string, RunMarks>;
}

const byCreated = (a: Image, b: Image) =>
  a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.uuid < b.uuid ? -1 : 1;

export function buildLineage(images: readonly Image[], runs: readonly OperationSummary[] = []): Lineage {
  const byId = new Map<string, Image>();
  for (const img of images) byId.set(img.uuid, img);
  const children = new Map<string, Image[]>();
  const roots: Image[] = [];
  for (const img of byId.values()) {
    const p = img.parent_uuid;
    if (p === null || p === img.uuid || !byId.has(p)) {
      roots.push(img);
      continue;
    }
    let list = children.get(p);
    if (list === undefined) {
      list = [];
      children.set(p, list);
    }
    list.push(img);
  }
  for (const list of children.values()) list.sort(byCreated);
  roots.sort(byCreated);
  const marks = new Map<string, RunMarks>();
  for (const op of runs) {
    if (op.kind !== "instance" || op.image_uuid === null || !byId.has(op.image_uuid)) continue;
    const failed = op.status === "FAILED" || op.status === "CANCELLED";
    const unchanged = op.status === "SUCCESS" && op.result_image_uuid === op.image_uuid;
    if (!failed && !unchanged) continue;
    const m = marks.get(op.image_uuid) ?? { failed: 0, unchanged: 0 };
    if (failed) m.failed++;
    else m.unchanged++;
    marks.set(op.image_uuid, m);
  }
  return { byId, children, roots, marks };
}

/** A node as drawn: an image, a folded chain of images, or the project (the one root). */
export type ViewNode =
  | { kind: "project"; id: string; children: ViewNode[] }
  | { kind: "image"; id: string; image: Image; children: ViewNode[] }
  | { kind: "chain"; id: string; images: Image[]; children: ViewNode[] };

/** Chains longer than this (single-child, untagged, unmarked images) fold into one node. */
export const FOLD_OVER = 3;

/**
 * The tree to draw. A chain is a run of images each with exactly one child, no tag and no
 * marked runs (what is interesting stays visible); more than FOLD_OVER of them become one
 * "… N images" node keyed by its first image, unless that key is in `expanded`.
 * Iterative: lineage can be thousands deep, deeper than the JS stack.
 */
export function viewTree(l: Lineage, expanded: ReadonlySet<string>): ViewNode {
  const root: ViewNode = { kind: "project", id: "project", children: [] };
  const stack: { img: Image; into: ViewNode[] }[] = [];
  for (let i = l.roots.length - 1; i >= 0; i--) stack.push({ img: l.roots[i]!, into: root.children });
  /** Members of expanded chains: drawn one by one. */
  const unfolded = new Set<string>();
  const foldable = (img: Image) =>
    (l.children.get(img.uuid)?.length ?? 0) === 1 &&
    img.tag === null &&
    !l.marks.has(img.uuid) &&
    !unfolded.has(img.uuid);
  while (stack.length > 0) {
    const { img, into } = stack.pop()!;
    if (foldable(img) && expanded.has(img.uuid)) {
      for (let cur: Image | undefined = img; cur !== undefined && foldable(cur); ) {
        unfolded.add(cur.uuid);
        cur = l.children.get(cur.uuid)![0];
      }
    } else if (foldable(img)) {
      const chain: Image[] = [];
      let cur: Image | undefined = img;
      while (cur !== undefined && foldable(cur)) {
        chain.push(cur);
        cur = l.children.get(cur.uuid)![0];
      }
      if (chain.length > FOLD_OVER && cur !== undefined) {
        const node: ViewNode = { kind: "chain", id: `chain:${img.uuid}`, images: chain, children: [] };
        into.push(node);
        stack.push({ img: cur, into: node.children });
        continue;
      }
    }
    const node: ViewNode = { kind: "image", id: img.uuid, image: img, children: [] };
    into.push(node);
    const kids = l.children.get(img.uuid) ?? [];
    for (let i = kids.length - 1; i >= 0; i--) stack.push({ img: kids[i]!, into: node.children });
  }
  return root;
}

/** The path from an image up to its root (the image first). */
export function pathToRoot(l: Pick<Lineage, "byId">, uuid: string): Image[] {
  const out: Image[] = [];
  const seen = new Set<string>();
  let cur = l.byId.get(uuid);
  while (cur !== undefined && !seen.has(cur.uuid)) {
    out.push(cur);
    seen.add(cur.uuid);
    cur = cur.parent_uuid === null ? undefined : l.byId.get(cur.parent_uuid);
  }
  return out;
}

/** The first image of the folded chain that holds `uuid` in this view (undefined: it is drawn). */
export function chainHolding(root: ViewNode, uuid: string): string | undefined {
  const stack: ViewNode[] = [root];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (n.kind === "chain" && n.images.some((i) => i.uuid === uuid)) return n.images[0]!.uuid;
    for (const c of n.children) stack.push(c);
  }
  return undefined;
}

/** Images whose tag or UUID starts with `text` (case-insensitive), at most `max`. */
export function findImages(l: Pick<Lineage, "byId">, text: string, max = 20): Image[] {
  const q = text.trim().toLowerCase();
  if (q === "") return [];
  const out: Image[] = [];
  for (const img of l.byId.values()) {
    if (img.uuid.startsWith(q) || img.tag?.toLowerCase().startsWith(q)) out.push(img);
    if (out.length >= max) break;
  }
  return out;
}
