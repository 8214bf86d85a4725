import { describe, expect, it } from "vitest";
import type { Image, OperationSummary } from "../api/types.js";
import { layout } from "./layout.js";
import { buildLineage, pathToRoot, type ViewNode, viewTree } from "./model.js";

const img = (uuid: string, parent: string | null, tag: string | null = null, i = 0): Image => ({
  uuid,
  parent_uuid: parent,
  tag,
  created_at: `2026-01-01T00:00:${String(i).padStart(2, "0")}Z`,
  operation_uuid: null,
  size: 0,
});

const shape = (n: ViewNode): unknown =>
  n.kind === "chain"
    ? { chain: n.images.length, children: n.children.map(shape) }
    : { id: n.id, children: n.children.map(shape) };

describe("image lineage model", () => {
  it("links images by parent, folds straight chains longer than 3, keeps tagged images visible", () => {
    // r → c1 → c2 → c3 → c4 → c5 (tagged) → {a, b}
    const imgs = [
      img("r", null, null, 0),
      ...["c1", "c2", "c3", "c4"].map((id, i) => img(id, i === 0 ? "r" : `c${i}`, null, i + 1)),
      img("c5", "c4", "keep", 6),
      img("a", "c5", null, 7),
      img("b", "c5", null, 8),
    ];
    const l = buildLineage(imgs);
    expect(l.roots.map((r) => r.uuid)).toEqual(["r"]);
    // r and c1..c4 each have one child: five in a row fold into one node.
    expect(shape(viewTree(l, new Set()))).toEqual({
      id: "project",
      children: [
        {
          chain: 5,
          children: [
            {
              id: "c5",
              children: [
                { id: "a", children: [] },
                { id: "b", children: [] },
              ],
            },
          ],
        },
      ],
    });
    // Unfolding by the chain's first image shows every image of it.
    const open = viewTree(l, new Set(["r"]));
    const ids: string[] = [];
    for (let n: ViewNode | undefined = open; n !== undefined; n = n.children[0]) ids.push(n.id);
    expect(ids).toEqual(["project", "r", "c1", "c2", "c3", "c4", "c5", "a"]);
    expect(pathToRoot(l, "b").map((i) => i.uuid)).toEqual(["b", "c5", "c4", "c3", "c2", "c1", "r"]);
  });

  it("marks failed and unchanged runs on the image they ran on; orphans become roots", () => {
    const run = (image: string, status: string, result: string | null): OperationSummary => ({
      uuid: `op-${image}-${status}-${result}`,
      kind: "instance",
      status,
      error: null,
      created_at: "",
      started_at: null,
      finished_at: null,
      duration: 0,
      image_uuid: image,
      result_image_uuid: result,
    });
    const l = buildLineage(
      [img("r", null), img("x", "deleted-parent")],
      [
        run("r", "FAILED", null),
        run("r", "SUCCESS", "r"),
        run("r", "SUCCESS", "x"),
        run("x", "CANCELLED", null),
      ],
    );
    expect(l.roots.map((r) => r.uuid).sort()).toEqual(["r", "x"]);
    expect(l.marks.get("r")).toEqual({ failed: 1, unchanged: 1 });
    expect(l.marks.get("x")).toEqual({ failed: 1, unchanged: 0 });
  });

  it("lays out a 10,000-deep chain and a 5,000-wide fan without recursion", () => {
    const deep = Array.from({ length: 10_000 }, (_, i) => img(`d${i}`, i === 0 ? null : `d${i - 1}`));
    const l = buildLineage(deep);
    const placed = layout(viewTree(l, new Set(["d0"])));
    expect(placed).toHaveLength(10_001);
    expect(placed.at(-1)!.x).toBeGreaterThan(placed[1]!.x);
    const fan = [img("root", null), ...Array.from({ length: 5000 }, (_, i) => img(`f${i}`, "root"))];
    expect(layout(viewTree(buildLineage(fan), new Set()))).toHaveLength(5002);
  });
});
