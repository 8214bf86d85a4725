import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Image } from "../../src/api/types.js";
import { layout } from "../../src/tree/layout.js";
import { buildLineage, pathToRoot, viewTree } from "../../src/tree/model.js";
import { type ConsoleEnv, startConsole } from "./harness.js";

/**
 * The tree at size: 2,000 image rows inserted into the server's metadata (the tree reads only
 * rows), in long chains with forks, so folding, unfolding, zoom, pan and clicks are exercised.
 */
describe("web console: the image tree at 2,000 images", () => {
  let env: ConsoleEnv;
  const rows: Image[] = [];

  beforeAll(async () => {
    env = await startConsole();
    const store = env.server.server.store;
    const project = (await store.projects.findByName("default"))!;
    const t0 = Date.now();
    // Chains of 20 images. The first (images 1-19) is never forked from, so it folds; every later
    // chain starts from a random image of the chains after it.
    let seed = 3;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let i = 0; i < 2000; i++) {
      const parent =
        i === 0
          ? null
          : i === 20
            ? rows[0]!.uuid
            : i % 20 === 0
              ? rows[20 + rnd(i - 20)]!.uuid
              : rows[i - 1]!.uuid;
      const img: Image = {
        uuid: randomUUID(),
        parent_uuid: parent,
        tag: i === 0 ? "scale/root" : null,
        created_at: new Date(t0 + i).toISOString(),
        operation_uuid: null,
        size: 0,
      };
      rows.push(img);
      await store.images.insert({
        id: img.uuid,
        projectId: project.id,
        parentId: parent,
        layerId: null,
        mountChain: [],
        depth: 0,
        env: null,
        operationId: null,
        size: 0,
        source: null,
        createdAt: t0 + i,
      });
    }
    await store.images.setTag(project.id, "scale/root", rows[0]!.uuid);
  }, 120_000);
  afterAll(async () => {
    await env?.close();
  });

  it("draws the folded tree the model computes, unfolds a chain, zooms, pans, and opens a node by click", async () => {
    const { page } = env;
    const expected = layout(viewTree(buildLineage(rows), new Set())).length - 1;
    expect(expected).toBeLessThan(2000);
    await env.signIn(env.adminToken);
    const canvas = page.locator("canvas[data-nodes]");
    await canvas.waitFor();
    expect(Number(await canvas.getAttribute("data-nodes"))).toBe(expected);
    await page
      .getByTestId("tree-stats")
      .getByText(/2000 images, 1 root/)
      .waitFor();
    await env.screenshot("images-tree-2000");

    // Walk to a folded chain by keyboard and unfold it with Enter.
    const focusLine = page.getByTestId("tree-focus");
    await canvas.focus();
    let found = false;
    for (let i = 0; i < 40 && !found; i++) {
      await page.keyboard.press("ArrowRight");
      found = /in a straight line, folded/.test((await focusLine.textContent()) ?? "");
    }
    expect(found).toBe(true);
    await page.keyboard.press("Enter");
    await expect.poll(async () => Number(await canvas.getAttribute("data-nodes"))).toBeGreaterThan(expected);
    await page.getByRole("button", { name: "Fold chains again" }).waitFor();

    // Wheel zoom and drag pan move the focused node on screen.
    const box = (await canvas.boundingBox())!;
    const at = async () =>
      (await canvas.getAttribute("data-focus-at"))!.split(",").map(Number) as [number, number];
    const before = await at();
    await page.mouse.move(box.x + 50, box.y + 50);
    await page.mouse.wheel(0, -400);
    await expect.poll(async () => (await at()).join(",")).not.toBe(before.join(","));
    const zoomed = await at();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width / 2 + 60, box.y + box.height / 2 + 30, { steps: 5 });
    await page.mouse.up();
    await expect.poll(async () => (await at()).join(",")).not.toBe(zoomed.join(","));
    const panned = await at();
    expect(panned[0] - zoomed[0]).toBe(60);
    expect(panned[1] - zoomed[1]).toBe(30);

    // The root image: Home, then right; click where it is drawn → its image view.
    await canvas.focus();
    await page.keyboard.press("Home");
    await page.keyboard.press("ArrowRight");
    await focusLine.getByText(/tag scale\/root/).waitFor();
    const moved = (await at()).join(",");
    await page.keyboard.press("0");
    await expect.poll(async () => (await at()).join(",")).not.toBe(moved);
    const [x, y] = await at();
    await page.mouse.click(box.x + x, box.y + y);
    await page.waitForURL(`**/#/images/${rows[0]!.uuid}`);
  });

  it("finds an image inside a folded chain by UUID prefix: the chain unfolds and the image has the focus", async () => {
    const { page } = env;
    const folded = layout(viewTree(buildLineage(rows), new Set())).length - 1;
    await page.goto(`${env.uiUrl}#/images`);
    const canvas = page.locator("canvas[data-nodes]");
    await canvas.waitFor();
    expect(Number(await canvas.getAttribute("data-nodes"))).toBe(folded);
    const target = rows[5]!.uuid;
    await page.getByLabel("Find").fill(target.slice(0, 8));
    await page.getByRole("button", { name: "Go" }).click();
    await page
      .getByTestId("tree-focus")
      .getByText(`Image ${target.slice(0, 8)}`)
      .waitFor();
    expect(Number(await canvas.getAttribute("data-nodes"))).toBeGreaterThan(folded);
    // Enter opens the focused image.
    await canvas.focus();
    await page.keyboard.press("Enter");
    await page.waitForURL(`**/#/images/${target}`);
    // "Show in tree" comes back with the same image focused.
    await page.getByRole("link", { name: "Show in tree" }).click();
    await page
      .getByTestId("tree-focus")
      .getByText(`Image ${target.slice(0, 8)}`)
      .waitFor();
    // An unknown prefix says so.
    await page.getByLabel("Find").fill("zzzz");
    await page.getByRole("button", { name: "Go" }).click();
    await page
      .getByRole("status")
      .getByText(/No image has a tag or UUID starting with "zzzz"/)
      .waitFor();
  });

  it("an image deep in the tree lists its whole lineage to the root", async () => {
    const { page } = env;
    const deepest = rows.at(-1)!;
    const ancestors = pathToRoot(buildLineage(rows), deepest.uuid).slice(1);
    expect(ancestors.length).toBeGreaterThan(51);
    await page.goto(`${env.uiUrl}#/images/${deepest.uuid}`);
    const lineage = page.getByTestId("lineage");
    await lineage.getByText("(root)").waitFor();
    const items = await lineage.locator("li").allTextContents();
    // This image, 50 ancestors, "… N more", the root.
    expect(items).toHaveLength(53);
    expect(items[1]).toContain(ancestors[0]!.uuid.slice(0, 8));
    expect(items[50]).toContain(ancestors[49]!.uuid.slice(0, 8));
    expect(items[51]).toBe(`… ${ancestors.length - 51} more`);
    expect(items[52]).toContain(rows[0]!.uuid.slice(0, 8));
    expect(items[52]).toContain("scale/root");
  });
});
