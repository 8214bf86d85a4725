import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { audit } from "./a11y.js";
import { type ConsoleEnv, startConsole } from "./harness.js";

/**
 * The image tree and image views against a real server: busybox imported from the fixture
 * registry, forked twice by real runs.
 */
describe("web console: image tree and image view", () => {
  let env: ConsoleEnv;
  let left: string;
  let right: string;
  const XSS = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';

  beforeAll(async () => {
    env = await startConsole({ busybox: true });
    const busybox = env.busybox!;
    const a = await env.run(
      busybox,
      `mkdir -p /data && printf 'one\\ntwo\\nthree\\n' > /data/notes.txt && echo left > /data/left.txt && yes hello | head -c 600000 > /data/big.txt && printf '%s\\n' '${XSS}' > /data/page.html`,
    );
    const b = await env.run(
      busybox,
      "mkdir -p /data && printf 'one\\nTWO\\nthree\\nfour\\n' > /data/notes.txt",
    );
    const same = await env.run(busybox, "true");
    for (const op of [a, b, same]) expect(op["status"], String(op["error"])).toBe("SUCCESS");
    left = String(a["result_image_uuid"]);
    right = String(b["result_image_uuid"]);
    expect(same["result_image_uuid"]).toBe(busybox);
  }, 300_000);
  afterAll(async () => {
    await env?.close();
  });

  it("shows the fork as three image nodes under the project, walkable by keyboard", async () => {
    const { page } = env;
    await env.signIn(env.userToken);
    const canvas = page.locator("canvas[data-nodes]");
    await canvas.waitFor();
    expect(await canvas.getAttribute("data-nodes")).toBe("3");
    await page
      .getByTestId("tree-stats")
      .getByText(/3 images, 1 root/)
      .waitFor();
    expect(await page.getByTestId("tree-stats").textContent()).toContain("1 run(s) that changed nothing");
    await env.screenshot("images-tree");
    expect(await audit(page)).toEqual([]);

    const focusLine = page.getByTestId("tree-focus");
    await canvas.focus();
    expect(await focusLine.textContent()).toMatch(/^Project: 1 root image/);
    await page.keyboard.press("ArrowRight");
    expect(await focusLine.textContent()).toMatch(
      /tag busybox:latest, 2 child\(ren\), 1 run\(s\) that changed nothing/,
    );
    await page.keyboard.press("ArrowRight");
    expect(await focusLine.textContent()).toContain(`Image ${left.slice(0, 8)}`);
    await page.keyboard.press("ArrowDown");
    expect(await focusLine.textContent()).toContain(`Image ${right.slice(0, 8)}`);
    // Zoom keys redraw without errors.
    await page.keyboard.press("+");
    await page.keyboard.press("-");
    await page.keyboard.press("0");
    await page.keyboard.press("Enter");
    await page.waitForURL(`**/#/images/${right}`);
    await page.getByRole("heading", { name: new RegExp(right) }).waitFor();
  });

  it("image view: metadata, lineage to the root, tag set and remove", async () => {
    const { page } = env;
    await page.goto(`${env.uiUrl}#/images/${left}`);
    await page.getByTestId("lineage").waitFor();
    await page.getByTestId("lineage").getByText(env.busybox!.slice(0, 8)).waitFor();
    expect(await page.getByTestId("image-tag").textContent()).toBe("—");
    await page.getByLabel("Set tag").fill("web/left:v1");
    await page.getByRole("button", { name: "Set", exact: true }).click();
    await page.getByRole("status").getByText("Tagged web/left:v1.").waitFor();
    expect(await page.getByTestId("image-tag").textContent()).toBe("web/left:v1");
    const listed = await env.server.api(`/v1/images?tag=web/left:v1`);
    expect(((await listed.json()) as { images: { uuid: string }[] }).images.map((i) => i.uuid)).toEqual([
      left,
    ]);
    await env.screenshot("image-view");
    expect(await audit(page)).toEqual([]);
    await page.getByRole("button", { name: "Remove tag web/left:v1" }).click();
    await page.getByRole("status").getByText("Removed web/left:v1.").waitFor();
    expect(await page.getByTestId("image-tag").textContent()).toBe("—");
    const after = await env.server.api(`/v1/images?tag=web/left:v1`);
    expect(((await after.json()) as { images: unknown[] }).images).toEqual([]);
    // A bad tag gets the server's sentence.
    env.allowError(/status of 400/);
    await page.getByLabel("Set tag").fill("bad tag!");
    await page.getByRole("button", { name: "Set", exact: true }).click();
    await page
      .getByRole("alert")
      .getByText(/tag must be/)
      .waitFor();
  });

  it("browses files by keyboard and shows file contents as text, never as markup", async () => {
    const { page } = env;
    await page.goto(`${env.uiUrl}#/images/${left}`);
    const list = page.getByTestId("file-list");
    await list.locator('button[data-name="data"]').waitFor();
    // Keyboard: focus the first entry, arrow down to "data", Enter opens it.
    await list.locator("button").first().focus();
    const names = await list
      .locator("button[data-name]")
      .evaluateAll((bs) => bs.map((b) => b.getAttribute("data-name")));
    const at = names.indexOf("data");
    for (let i = 0; i < at; i++) await page.keyboard.press("ArrowDown");
    await page.keyboard.press("Enter");
    await list.locator('button[data-name="notes.txt"]').waitFor();
    await list.locator('button[data-name="notes.txt"]').click();
    await page.getByTestId("file-text").getByText("three").waitFor();
    await env.screenshot("image-files");
    expect(await audit(page)).toEqual([]);

    await list.locator('button[data-name="page.html"]').click();
    const text = page.getByTestId("file-text");
    await text.getByText("onerror").waitFor();
    expect(await text.textContent()).toContain(XSS);
    expect(await text.locator("img, script").count()).toBe(0);
    expect(await page.evaluate("window.__pwned")).toBeUndefined();

    // Grep across the directory with the server's grep.
    await page.getByLabel(/Grep in/).fill("left|TWO|two");
    await page.getByRole("button", { name: "Search" }).click();
    const hits = page.getByTestId("grep-results");
    await hits.getByText("/data/left.txt:1").waitFor();
    await hits.getByText("/data/notes.txt:2").waitFor();
    // A hit in a file too large to show (its size unknown from grep): the read stops at the limit.
    await page.getByLabel(/Grep in/).fill("hello");
    await page.getByRole("button", { name: "Search" }).click();
    await hits.getByText("/data/big.txt:1", { exact: true }).click();
    await page.getByText("Too large to show here (over 512.0 KiB): download it.").waitFor();
    await list.locator('button[data-name="big.txt"]').click();
    await page.getByText("Too large to show here (over 512.0 KiB): download it.").waitFor();
  });

  it("diffs two images: the changed file, and its lines inline", async () => {
    const { page } = env;
    await page.goto(`${env.uiUrl}#/images/${right}`);
    await page.getByRole("tab", { name: "Diff" }).click();
    // Default: against the parent.
    expect(await page.getByLabel("Compare with image").inputValue()).toBe(env.busybox);
    await page.getByLabel("Compare with image").fill(left);
    await page.getByRole("button", { name: "Diff", exact: true }).click();
    const entries = page.getByTestId("diff-entries");
    await entries.waitFor();
    const rows = await entries
      .locator("tbody tr")
      .evaluateAll((trs) =>
        trs.map((tr) => [...tr.querySelectorAll("td")].slice(0, 2).map((td) => td.textContent ?? "")),
      );
    expect(rows).toEqual(
      expect.arrayContaining([
        ["changed", "/data/notes.txt"],
        ["removed", "/data/left.txt"],
        ["removed", "/data/page.html"],
      ]),
    );
    await entries.getByRole("button", { name: "/data/notes.txt" }).click();
    const inline = page.getByTestId("inline-diff");
    await inline.waitFor();
    const lines = await inline.locator(".diff-line").evaluateAll((ls) => ls.map((l) => l.textContent));
    expect(lines).toEqual(["  one", "- two", "+ TWO", "  three", "+ four"]);
    await env.screenshot("image-diff");
    expect(await audit(page)).toEqual([]);
  });
});
