/**
 * The Admin view in chromium against a real server: only admin tokens see it; a token created in
 * the UI (permissions checkboxes, expiry) shows its secret once, works through the API with exactly
 * those permissions, and stops working when revoked in the UI.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ConsoleEnv, startConsole } from "./harness.js";

describe("web console: Admin view (chromium against a real server)", () => {
  let env: ConsoleEnv;
  const requested: string[] = [];
  let secret = "";
  let tokenId = "";

  const api = (path: string, token: string, init: RequestInit = {}) =>
    fetch(`${env.baseUrl}/v1${path}`, {
      ...init,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    });

  beforeAll(async () => {
    env = await startConsole();
    env.page.on("request", (r) => requested.push(r.url()));
    await env.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: env.baseUrl });
  });
  afterAll(async () => {
    await env?.close();
  });

  it("a non-admin token sees no Admin in the nav, and the page says why", async () => {
    const { page } = env;
    await env.signIn(env.userToken);
    await page.getByRole("heading", { name: "Images" }).waitFor();
    const nav = page.getByRole("navigation", { name: "Sections" });
    await nav.getByRole("link", { name: "Images" }).waitFor();
    expect(await nav.getByRole("link", { name: "Admin" }).count()).toBe(0);
    await page.goto(`${env.uiUrl}#/admin`);
    await page.getByRole("heading", { name: "Admin" }).waitFor();
    expect(await page.getByRole("alert").textContent()).toMatch(/needs an admin token/);
    // The view asked the server nothing it would refuse.
    expect(requested.filter((u) => u.includes("/v1/admin/"))).toEqual([]);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API token").waitFor();
  });

  it("an admin token sees projects with limits and usage, and storage totals", async () => {
    const { page } = env;
    await env.signIn(env.adminToken, "/admin");
    const nav = page.getByRole("navigation", { name: "Sections" });
    await nav.getByRole("link", { name: "Admin" }).waitFor();
    await page.getByTestId("projects-table").waitFor();
    const defaultRow = page.locator('tr[data-project="default"]');
    await defaultRow.waitFor();
    expect(await defaultRow.textContent()).toContain("3600"); // instance_max_timeout
    await page.locator('tr[data-project="public"]').waitFor();
    await page.getByTestId("storage-totals").waitFor();
    // A new project from the form.
    await page.getByLabel("New project").fill("team-x");
    await page.getByRole("button", { name: "Create project" }).click();
    await page.locator('tr[data-project="team-x"]').waitFor();
    expect(await env.server.server.store.projects.findByName("team-x")).toBeDefined();
    await env.screenshot("admin-projects");
  });

  it("creates a token with chosen permissions and expiry; the secret is shown once and copies", async () => {
    const { page } = env;
    await page.locator("#token-project").selectOption("team-x");
    await page.locator("#token-name").fill("e2e reader");
    await page.getByLabel("Expires after").selectOption({ label: "1 day" });
    const perms = page.getByRole("group", { name: "Permissions" });
    for (const p of ["spawn", "spawn_disposable", "import", "cancel", "set_image_tag", "delete_image"])
      await perms.getByLabel(p, { exact: true }).uncheck();
    expect(await perms.getByLabel("list", { exact: true }).isChecked()).toBe(true);
    await page.getByRole("button", { name: "Create token" }).click();
    const box = page.getByLabel("New token secret");
    await box.waitFor();
    secret = await box.inputValue();
    expect(secret).toMatch(/^ctr_/);
    expect(await page.getByRole("status").textContent()).toMatch(/shown this once/);
    await page.getByRole("button", { name: "Copy" }).click();
    await page.getByText("Copied.").waitFor();
    expect(await page.evaluate("navigator.clipboard.readText()")).toBe(secret);
    await env.screenshot("admin-token-created");

    // The token works through the API with exactly those permissions, in team-x, for a day.
    const who = (await (await api("/whoami", secret)).json()) as Record<string, unknown>;
    expect(who["project"]).toBe("team-x");
    expect(who["admin"]).toBe(false);
    expect(who["permissions"]).toMatchObject({
      list: true,
      spawn: false,
      import: false,
      delete_image: false,
    });
    const exp = who["token_expiration"] as number;
    expect(Math.abs(exp - (Date.now() / 1000 + 86_400))).toBeLessThan(120);
    tokenId = who["token_uuid"] as string;
    expect((await api("/images", secret)).status).toBe(200);
    const imp = await api("/images/import", secret, {
      method: "POST",
      body: JSON.stringify({ registry: { url: "docker://127.0.0.1:1/x:1" } }),
    });
    expect(imp.status).toBe(403);

    // Done: the secret leaves the page; the list shows the token without it.
    await page.getByRole("button", { name: "Done" }).click();
    const row = page.locator(`tr[data-token-id="${tokenId}"]`);
    await row.waitFor();
    expect(await row.getByTestId("token-state").textContent()).toBe("active");
    expect(await row.textContent()).toContain("team-x");
    expect(await page.content()).not.toContain(secret);
    for (const u of requested) expect(u).not.toContain(secret);
  });

  it("revokes in the UI after a confirmation; the token stops working at once", async () => {
    const { page } = env;
    const row = page.locator(`tr[data-token-id="${tokenId}"]`);
    await row.getByRole("button", { name: "Revoke e2e reader" }).click();
    // Nothing happens before the confirmation.
    expect((await api("/whoami", secret)).status).toBe(200);
    await row.getByRole("button", { name: "Confirm revoke" }).click();
    await row.getByText("revoked").waitFor();
    // The list, reloaded, shows when the API calls above last used it.
    expect(await row.getByTestId("token-last-used").textContent()).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d$/);
    await env.screenshot("admin-token-revoked");
    expect((await api("/whoami", secret)).status).toBe(401);
    expect((await api("/images", secret)).status).toBe(401);
  });

  it("an expiring admin is offered only shorter lifetimes; revoking its own token signs it out", async () => {
    const { page } = env;
    const r = await api("/admin/tokens", env.adminToken, {
      method: "POST",
      body: JSON.stringify({
        project: "default",
        name: "short admin",
        permissions: ["list"],
        admin: true,
        expires_in_seconds: 7200,
      }),
    });
    expect(r.status).toBe(201);
    const mortal = (await r.json()) as { id: string; token: string };
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API token").waitFor();
    await env.signIn(mortal.token, "/admin");
    await page.getByTestId("tokens-table").waitFor();
    const option = (label: string) => page.locator("#token-expiry option", { hasText: label });
    expect(await option("never").isDisabled()).toBe(true);
    expect(await option("1 day").isDisabled()).toBe(true);
    expect(await option("1 hour").isDisabled()).toBe(false);
    // Permissions it lacks cannot be ticked.
    const perms = page.getByRole("group", { name: "Permissions" });
    expect(await perms.getByLabel("spawn", { exact: true }).isDisabled()).toBe(true);

    const row = page.locator(`tr[data-token-id="${mortal.id}"]`);
    expect(await row.textContent()).toContain("you");
    await row.getByRole("button", { name: "Revoke short admin" }).click();
    // The confirmation takes the keyboard focus and says what follows.
    expect(await page.evaluate("document.activeElement?.textContent")).toBe("Confirm revoke");
    expect(await row.textContent()).toContain("you will be signed out");
    await page.keyboard.press("Enter");
    await page.getByLabel("API token").waitFor();
    expect(await page.evaluate('sessionStorage.getItem("contree.token")')).toBeNull();
    expect((await api("/whoami", mortal.token)).status).toBe(401);
    await env.screenshot("admin-self-revoked");
  });
});
