import { hierarchy, tree } from "d3-hierarchy";
import type { ViewNode } from "./model.js";

/** Depth runs left to right (screens are wide, lineage is deep); siblings stack downwards. */
export const DEPTH_GAP = 110;
export const SIBLING_GAP = 30;

export interface Placed {
  node: ViewNode;
  x: number;
  y: number;
  /** Index of the parent in the placed array (-1 for the root). */
  parent: number;
  /** Indices of the children, in order. */
  children: number[];
}

/** Tidy-tree layout (d3-hierarchy, linear time); the result is flat arrays for the canvas. */
export function layout(root: ViewNode): Placed[] {
  const h = hierarchy(root, (n) => n.children);
  tree<ViewNode>().nodeSize([SIBLING_GAP, DEPTH_GAP])(h);
  const out: Placed[] = [];
  const index = new Map<ViewNode, number>();
  // eachBefore is iterative (pre-order): parents get their index before their children.
  h.eachBefore((d) => {
    const parent = d.parent === null ? -1 : index.get(d.parent.data)!;
    index.set(d.data, out.length);
    if (parent >= 0) out[parent]!.children.push(out.length);
    out.push({ node: d.data, x: d.y ?? 0, y: d.x ?? 0, parent, children: [] });
  });
  return out;
}

export interface Bounds {
  minX: number;
  minY: number;
  maxX: number;
  maxY: number;
}

export function boundsOf(placed: readonly Placed[]): Bounds {
  let minX = 0;
  let minY = 0;
  let maxX = 0;
  let maxY = 0;
  for (const p of placed) {
    if (p.x < minX) minX = p.x;
    if (p.x > maxX) maxX = p.x;
    if (p.y < minY) minY = p.y;
    if (p.y > maxY) maxY = p.y;
  }
  return { minX, minY, maxX, maxY };
}
