import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FIXTURE_IMAGES } from "../../../server/test/harness/fixtures.js";
import { type ConsoleEnv, startConsole } from "./harness.js";
import { userApi, waitStatus } from "./ops-helpers.js";

describe("web console: import from a registry (chromium against a real server and the fixture registry)", () => {
  let env: ConsoleEnv;
  beforeAll(async () => {
    env = await startConsole({ busybox: true });
    await env.signIn(env.userToken, "/import");
  });
  afterAll(async () => {
    await env?.close();
  });

  it("imports with a progress bar that reaches 100% and links to the imported image", async () => {
    const { page } = env;
    await page.getByRole("heading", { name: "Import" }).waitFor();
    const reference = `docker://${env.registry!.host}/${FIXTURE_IMAGES.features}`;
    await page.getByLabel("Image reference").fill(reference);
    await page.getByLabel("Tag (optional)").fill("features:e2e");
    await env.screenshot("ops-import-form");
    await page.getByRole("button", { name: "Import", exact: true }).click();
    await page.waitForURL(/#\/import\?op=[0-9a-f-]{36}$/);
    const id = new URL(page.url()).hash.split("op=")[1]!;
    const link = page.getByRole("link", { name: /^image [0-9a-f-]{36}$/ });
    await link.waitFor();
    expect(await page.getByTestId("import-progress").getAttribute("value")).toBe("100");
    expect(await page.getByTestId("import-percent").textContent()).toBe("100%");
    // Every layer counted, in layers and in bytes (the resolved event's total_bytes).
    const figures = (await page.getByTestId("import-figures").textContent()) ?? "";
    const m = /^(\d+) of (\d+) layers · (.+) of (.+?) ·/.exec(figures);
    expect(m, figures).not.toBeNull();
    expect(m?.[1]).toBe(m?.[2]);
    expect(Number(m?.[2])).toBe(3);
    expect(m?.[3]).toBe(m?.[4]);
    const op = (await (await userApi(env, `/operations/${id}`)).json()) as {
      status: string;
      result_image_uuid: string;
    };
    expect(op.status).toBe("SUCCESS");
    expect(await link.getAttribute("href")).toBe(`#/images/${op.result_image_uuid}`);
    await env.screenshot("ops-import-done");
    // The import's own operation page shows the same bar, from a replay of its events.
    await page.getByRole("link", { name: id }).click();
    await waitStatus(page, "SUCCESS");
    expect(await page.getByTestId("import-progress").getAttribute("value")).toBe("100");
    expect(await page.getByTestId("timeline").textContent()).toContain("layer 3/3");
  });

  it("shows field messages, and the server's refusal as its message", async () => {
    const { page } = env;
    env.allowError(/status of 400/);
    await page.goto(`${env.uiUrl}#/import`);
    await page.getByLabel("Image reference").fill("");
    await page.getByLabel("Tag (optional)").fill("bad tag");
    await page.getByLabel("Username").fill("someone");
    await page.getByRole("button", { name: "Import", exact: true }).click();
    expect(await page.getByTestId("imp-ref-error").textContent()).toMatch(/Give an image reference/);
    expect(await page.getByTestId("imp-tag-error").textContent()).toMatch(/Letters, digits/);
    expect(await page.getByTestId("imp-user-error").textContent()).toMatch(/both/);
    await env.screenshot("ops-import-validation");
    // A reference the server cannot parse: its sentence, not a status code.
    await page.getByLabel("Image reference").fill("docker://");
    await page.getByLabel("Tag (optional)").fill("");
    await page.getByLabel("Username").fill("");
    await page.getByRole("button", { name: "Import", exact: true }).click();
    const alert = page.getByTestId("import-server-error");
    await alert.waitFor();
    expect(await alert.textContent()).not.toMatch(/^HTTP/);
    expect(new URL(page.url()).hash).toBe("#/import");
  });
});
