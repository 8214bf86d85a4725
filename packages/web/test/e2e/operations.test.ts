import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ConsoleEnv, startConsole } from "./harness.js";
import {
  ACTIVE,
  colourOf,
  gatedTicks,
  openGate,
  outputLines,
  replayText,
  spawn,
  statusOf,
  tickLines,
  userApi,
  waitStatus,
} from "./ops-helpers.js";

describe("web console: run, operation page, operations list (chromium against a real server)", () => {
  let env: ConsoleEnv;
  let cancelled = "";
  let finished = "";
  beforeAll(async () => {
    env = await startConsole({ busybox: true });
    await env.signIn(env.userToken, "/run");
  });
  afterAll(async () => {
    await env?.close();
  });

  it("runs a command from the form and shows its output live, before the run has finished", async () => {
    const { page } = env;
    await page.getByRole("heading", { name: "Run" }).waitFor();
    await page.getByLabel("Image (uuid or tag)").fill("busybox:latest");
    await page.getByLabel("Command", { exact: true }).fill(gatedTicks(8, 4));
    await env.screenshot("ops-run-form");
    await page.getByRole("button", { name: "Run", exact: true }).click();
    await page.waitForURL(/#\/operations\/[0-9a-f-]{36}$/);
    const id = new URL(page.url()).hash.split("/")[2]!;
    await page.locator('[data-testid="output"] .ol', { hasText: "tick 1" }).first().waitFor();
    // The first line is on screen while the run is still going: the output came live.
    expect(ACTIVE).toContain(await statusOf(env, id));
    await page.locator('[data-testid="output"] .ol', { hasText: "tick 4" }).waitFor();
    expect(await outputLines(page)).toEqual(tickLines(4));
    await env.screenshot("ops-operation-live");
    await openGate(env, id);
    await waitStatus(page, "SUCCESS");
    expect(await outputLines(page)).toEqual(tickLines(8));
    // The result image link, the resource chart and the timeline.
    const op = (await (await userApi(env, `/operations/${id}`)).json()) as { result_image_uuid: string };
    await page.getByTestId("result-image").waitFor();
    expect(await page.getByTestId("result-image").getAttribute("href")).toBe(
      `#/images/${op.result_image_uuid}`,
    );
    await page.getByTestId("resource-chart").waitFor();
    expect(await page.getByTestId("resource-chart").getAttribute("aria-label")).toMatch(/peak memory \d/);
    const timeline = await page.getByTestId("timeline").textContent();
    expect(timeline).toContain("spawn");
    expect(timeline).toContain("exit code 0");
    expect(timeline).toContain("completion: SUCCESS");
    expect(await page.getByTestId("stream-state").textContent()).toContain("complete");
    finished = id;
    await env.screenshot("ops-operation-finished");
  });

  it("renders ANSI colours as styled spans and never sandbox text as HTML", async () => {
    const { page } = env;
    const id = await spawn(env, {
      command: String.raw`printf '\033[31mred\033[0m plain \033[1;38;5;208mhot\033[0m <b>bold?</b>\033]0;title\007\n'; printf '\033[32merr-green\033[0m\nplain-err\n' >&2`,
    });
    await page.goto(`${env.uiUrl}#/operations/${id}`);
    await waitStatus(page, "SUCCESS");
    const out = page.getByTestId("output");
    const red = out.locator("span", { hasText: /^red$/ });
    expect(await red.getAttribute("class")).toBe("ansi-fg-1");
    expect(await colourOf(red)).toBe("rgb(255, 123, 114)");
    const plain = out.locator("span", { hasText: /^ plain $/ });
    expect(await plain.getAttribute("class")).toBeNull();
    const hot = out.locator("span", { hasText: /^hot$/ });
    expect(await hot.getAttribute("class")).toBe("ansi-bold");
    // 256-colour 208 = #ff8700, set through the CSSOM (the CSP forbids inline style attributes).
    expect(await colourOf(hot)).toBe("rgb(255, 135, 0)");
    const err = out.locator("span", { hasText: /^err-green$/ });
    expect(await err.getAttribute("class")).toBe("ol-err ansi-fg-2");
    expect(await colourOf(err)).toBe("rgb(63, 185, 80)");
    const plainErr = out.locator("span", { hasText: /^plain-err$/ });
    expect(await colourOf(plainErr)).toBe("rgb(255, 161, 152)");
    // The markup stays text, and escape sequences (the OSC title too) leave no trace.
    expect(await out.locator("b").count()).toBe(0);
    const text = (await out.textContent()) ?? "";
    expect(text).toContain("<b>bold?</b>");
    expect(text).not.toContain("\x1b");
    expect(text).not.toContain("[31m");
    expect(text).not.toContain("title");
    await env.screenshot("ops-operation-ansi");
  });

  it("cancels a long run from its page after a confirm, and shows CANCELLED", async () => {
    const { page } = env;
    const id = await spawn(env, { command: "echo started; sleep 300", timeout: 600 });
    await page.goto(`${env.uiUrl}#/operations/${id}`);
    await page.locator('[data-testid="output"] .ol', { hasText: "started" }).waitFor();
    await page.getByRole("button", { name: "Cancel…" }).click();
    // Nothing happens before the confirm.
    await page.getByRole("button", { name: "Keep it running" }).click();
    expect(ACTIVE).toContain(await statusOf(env, id));
    await page.getByRole("button", { name: "Cancel…" }).click();
    await env.screenshot("ops-operation-cancel-confirm");
    await page.getByRole("button", { name: "Yes, cancel it" }).click();
    await waitStatus(page, "CANCELLED");
    expect(await statusOf(env, id)).toBe("CANCELLED");
    expect(await page.getByRole("button", { name: "Cancel…" }).count()).toBe(0);
    cancelled = id;
  });

  it("a reloaded page replays the output once, and continues live", async () => {
    const { page } = env;
    const id = await spawn(env, { command: gatedTicks(10, 3) });
    await page.goto(`${env.uiUrl}#/operations/${id}`);
    await page.locator('[data-testid="output"] .ol', { hasText: "tick 3" }).waitFor();
    await page.reload();
    await page.locator('[data-testid="output"] .ol', { hasText: "tick 3" }).waitFor();
    expect(await page.getByTestId("stream-state").textContent()).toContain("live");
    await openGate(env, id);
    await waitStatus(page, "SUCCESS");
    expect(await outputLines(page)).toEqual(tickLines(10));
  });

  it("a stream that drops mid-run is resumed with Last-Event-Id: nothing lost, nothing twice", async () => {
    const { page } = env;
    const id = await spawn(env, { command: gatedTicks(10, 3) });
    // Wait (through the API) until some output exists, so the cut stream carries some.
    while (!(await replayText(env, id)).includes("tick 3")) await new Promise((r) => setTimeout(r, 100));
    const seen: { url: string; lastEventId: string | undefined }[] = [];
    page.on("request", (r) => {
      if (r.url().includes(`/operations/${id}/events`))
        seen.push({ url: r.url(), lastEventId: r.headers()["last-event-id"] });
    });
    // The first stream is cut short: the replay so far, then the end (no completion), as a
    // dropped connection would leave it.
    let cutAfter = -1;
    await page.route(
      `**/v1/operations/${id}/events*`,
      async (route) => {
        const response = await route.fetch({ url: route.request().url().replace("follow=1", "follow=0") });
        const body = await response.text();
        cutAfter = Math.max(...[...body.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1])));
        await route.fulfill({
          status: response.status(),
          headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" },
          body,
        });
      },
      { times: 1 },
    );
    await page.goto(`${env.uiUrl}#/operations/${id}`);
    // The second stream (the resumed one) is live before the run goes on.
    await page.locator('[data-testid="stream-state"]', { hasText: "live" }).waitFor();
    while (seen.length < 2) await new Promise((r) => setTimeout(r, 50));
    await openGate(env, id);
    await waitStatus(page, "SUCCESS");
    expect(await outputLines(page)).toEqual(tickLines(10));
    expect(cutAfter).toBeGreaterThan(0);
    expect(seen.length).toBe(2);
    expect(seen[0]?.lastEventId).toBeUndefined();
    expect(seen[1]?.lastEventId).toBe(String(cutAfter));
  });

  it("keeps at most 5,000 lines in the DOM and says how many it dropped", async () => {
    const { page } = env;
    const id = await spawn(env, { command: "seq 1 12000" });
    await page.goto(`${env.uiUrl}#/operations/${id}`);
    await waitStatus(page, "SUCCESS");
    expect(await page.locator('[data-testid="output"] .ol').count()).toBe(5000);
    const lines = await outputLines(page);
    expect(lines.at(-1)).toBe("12000");
    // 12,000 lines and the empty one after the last newline: 7,001 removed from the top.
    expect(lines[0]).toBe("7002");
    expect(await page.getByTestId("output-dropped").textContent()).toMatch(/first 7,001 lines/);
  });

  it("follows the tail until the reader scrolls up, and again after 'Follow the tail'", async () => {
    const { page } = env;
    const id = await spawn(env, {
      command: "seq 1 300; while [ ! -e /tmp/gate ]; do sleep 0.05; done; seq 301 600",
    });
    await page.goto(`${env.uiUrl}#/operations/${id}`);
    const out = page.getByTestId("output");
    await out.locator(".ol", { hasText: /^300$/ }).waitFor();
    // Read after the next frames: the pane scrolls in an animation frame after new lines.
    const atBottom = () =>
      out.evaluate(
        (el) =>
          new Promise<boolean>((resolve) => {
            const raf = (f: () => void) => el.ownerDocument.defaultView?.requestAnimationFrame(f);
            raf(() => raf(() => resolve(el.scrollHeight - el.scrollTop - el.clientHeight <= 8)));
          }),
      );
    const top = () => out.evaluate((el) => el.scrollTop);
    expect(await atBottom()).toBe(true);
    await out.evaluate((el) => {
      el.scrollTop = 0;
    });
    await page.getByRole("button", { name: "Follow the tail ↓" }).waitFor();
    await openGate(env, id);
    await waitStatus(page, "SUCCESS");
    await out.locator(".ol", { hasText: /^600$/ }).waitFor();
    expect(await top()).toBe(0);
    await page.getByRole("button", { name: "Follow the tail ↓" }).click();
    expect(await atBottom()).toBe(true);
    expect(await page.getByRole("button", { name: "Follow the tail ↓" }).count()).toBe(0);
  });

  it("lists operations newest first, filters by status and kind, and links each row to its page", async () => {
    const { page } = env;
    await page.goto(`${env.uiUrl}#/operations`);
    const rows = page.locator('[data-testid="ops-table"] tbody tr');
    // The table of one query (status|kind|page|per): the previous query's rows may still be on
    // screen for a moment after the address changes.
    const shows = (query: string) => page.locator(`[data-query="${query}"]`).waitFor();
    await shows("||1|25");
    const all = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-uuid")));
    const api = (await (await userApi(env, "/operations?limit=25")).json()) as { uuid: string }[];
    expect(all).toEqual(api.map((o) => o.uuid));
    await env.screenshot("ops-list");

    await page.getByLabel("Status").selectOption("CANCELLED");
    await page.waitForURL(/status=CANCELLED/);
    await shows("CANCELLED||1|25");
    await page.locator(`[data-testid="ops-table"] tr[data-uuid="${cancelled}"]`).waitFor();
    const statuses = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-status")));
    expect(statuses.length).toBeGreaterThan(0);
    expect(new Set(statuses)).toEqual(new Set(["CANCELLED"]));

    await page.getByLabel("Status").selectOption("SUCCESS");
    await page.getByLabel("Kind").selectOption("image_import");
    await page.waitForURL(/kind=image_import/);
    await shows("SUCCESS|image_import|1|25");
    // busybox was imported by the admin into this project: the only import.
    await page.getByTestId("ops-table").waitFor();
    await page.locator('[data-testid="ops-table"] tr[data-kind="image_import"]').first().waitFor();
    const kinds = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-kind")));
    expect(new Set(kinds)).toEqual(new Set(["image_import"]));

    await page.getByLabel("Status").selectOption("FAILED");
    await shows("FAILED|image_import|1|25");
    await page.getByTestId("ops-empty").waitFor();
    expect(await page.getByRole("button", { name: "Older →" }).isDisabled()).toBe(true);

    // Pages: newest first across them, as the API pages them.
    await page.getByLabel("Status").selectOption("");
    await page.getByLabel("Kind").selectOption("");
    await page.getByLabel("Per page").selectOption("5");
    await page.waitForURL(/per=5/);
    await shows("||1|5");
    const ids = (await (await userApi(env, "/operations?limit=10")).json()) as { uuid: string }[];
    expect(ids.length).toBeGreaterThan(5);
    const firstPage = ids.slice(0, 5).map((o) => o.uuid);
    const secondPage = ids.slice(5, 10).map((o) => o.uuid);
    await page.locator(`[data-testid="ops-table"] tr[data-uuid="${firstPage[4]}"]`).waitFor();
    expect(await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-uuid")))).toEqual(firstPage);
    await page.getByRole("button", { name: "Older →" }).click();
    await page.waitForURL(/page=2/);
    await shows("||2|5");
    await page.locator(`[data-testid="ops-table"] tr[data-uuid="${secondPage[0]}"]`).waitFor();
    expect(await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-uuid")))).toEqual(
      secondPage,
    );
    expect(await page.getByTestId("ops-page").textContent()).toBe("Page 2");
    await page.getByRole("button", { name: "← Newer" }).click();
    await shows("||1|5");
    await page.locator(`[data-testid="ops-table"] tr[data-uuid="${firstPage[0]}"]`).waitFor();

    // A row's link opens its page.
    await page.getByLabel("Status").selectOption("");
    await page.getByLabel("Kind").selectOption("instance");
    await page.getByLabel("Per page").selectOption("100");
    await page.getByRole("link", { name: `operation ${finished}`, exact: true }).click();
    await page.waitForURL(new RegExp(`#/operations/${finished}$`));
    await waitStatus(page, "SUCCESS");
  });

  it("shows field messages next to the fields and the server's error as its message", async () => {
    const { page } = env;
    env.allowError(/status of 404/);
    await page.goto(`${env.uiUrl}#/run`);
    await page.getByRole("heading", { name: "Run" }).waitFor();
    await page.getByLabel("Working directory").fill("relative/dir");
    await page.getByRole("button", { name: "Run", exact: true }).click();
    expect(await page.getByTestId("run-image-error").textContent()).toMatch(/image uuid or tag/);
    expect(await page.getByTestId("run-command-error").textContent()).toMatch(/Give a command/);
    expect(await page.getByTestId("run-cwd-error").textContent()).toMatch(/absolute/);
    expect(await page.getByLabel("Command", { exact: true }).getAttribute("aria-invalid")).toBe("true");
    await env.screenshot("ops-run-validation");
    await page.getByLabel("Working directory").fill("");
    await page.getByLabel("Image (uuid or tag)").fill("no-such-tag:1");
    await page.getByLabel("Command", { exact: true }).fill("true");
    await page.getByRole("button", { name: "Run", exact: true }).click();
    const alert = page.getByTestId("run-server-error");
    await alert.waitFor();
    expect(await alert.textContent()).toMatch(/no-such-tag:1/);
    expect(new URL(page.url()).hash).toBe("#/run");
  });

  it("uploads files from the form through the files API and runs with them", async () => {
    const { page } = env;
    await page.goto(`${env.uiUrl}#/run`);
    await page.getByLabel("Image (uuid or tag)").fill("busybox:latest");
    await page
      .getByLabel("Command", { exact: true })
      .fill('cat /data/hello.txt; echo "GREETING=$GREETING"; pwd');
    await page.getByLabel("Name").fill("GREETING");
    await page.getByLabel("Value").fill("bonjour");
    await page.getByLabel("Working directory").fill("/tmp");
    await page.getByLabel("Into directory").fill("/data");
    await page.getByLabel("Files", { exact: true }).setInputFiles({
      name: "hello.txt",
      mimeType: "text/plain",
      buffer: Buffer.from("hello from a file\n"),
    });
    await page.getByLabel("Networking").selectOption("off");
    await page.getByRole("button", { name: "Run", exact: true }).click();
    await page.waitForURL(/#\/operations\/[0-9a-f-]{36}$/);
    await waitStatus(page, "SUCCESS");
    expect(await outputLines(page)).toEqual(["hello from a file", "GREETING=bonjour", "/tmp"]);
    const id = new URL(page.url()).hash.split("/")[2]!;
    const op = (await (await userApi(env, `/operations/${id}`)).json()) as {
      metadata: { files: Record<string, { uuid: string }>; networking: { enabled: boolean } };
    };
    expect(Object.keys(op.metadata.files)).toEqual(["/data/hello.txt"]);
    expect(op.metadata.networking.enabled).toBe(false);
  });
});
