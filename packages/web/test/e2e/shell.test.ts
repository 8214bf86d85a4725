import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { audit } from "./a11y.js";
import { type ConsoleEnv, startConsole } from "./harness.js";

describe("web console shell (chromium against a real server)", () => {
  let env: ConsoleEnv;
  const requested: string[] = [];
  beforeAll(async () => {
    env = await startConsole();
    env.page.on("request", (r) => requested.push(r.url()));
  });
  afterAll(async () => {
    await env?.close();
  });

  it("serves the console at /ui/ with a strict CSP, nosniff, and cache rules", async () => {
    const bare = await fetch(`${env.baseUrl}/ui`, { redirect: "manual" });
    expect(bare.status).toBe(301);
    expect(bare.headers.get("location")).toBe("/ui/");
    const index = await fetch(env.uiUrl);
    expect(index.status).toBe(200);
    expect(index.headers.get("content-type")).toMatch(/^text\/html/);
    expect(index.headers.get("content-security-policy")).toContain("default-src 'self'");
    expect(index.headers.get("content-security-policy")).not.toContain("unsafe-inline");
    expect(index.headers.get("x-content-type-options")).toBe("nosniff");
    expect(index.headers.get("cache-control")).toBe("no-cache");
    const html = await index.text();
    // No inline script: every <script> has a src.
    expect(html.match(/<script(?![^>]*\bsrc=)[^>]*>/g)).toBeNull();
    const asset = /src="\.\/(assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(asset).toBeDefined();
    const js = await fetch(`${env.uiUrl}${asset}`);
    expect(js.status).toBe(200);
    expect(js.headers.get("cache-control")).toContain("immutable");
    expect(js.headers.get("content-type")).toMatch(/^text\/javascript/);
    // A route typed by hand gets the console; a missing asset or a path escape does not.
    const spa = await fetch(`${env.uiUrl}images/abc`);
    expect(spa.status).toBe(200);
    expect(await spa.text()).toBe(html);
    expect((await fetch(`${env.uiUrl}assets/nope.js`)).status).toBe(404);
    expect((await fetch(`${env.uiUrl}..%2f..%2fpackage.json`)).status).toBe(404);
    expect((await fetch(`${env.uiUrl}%2e%2e/%2e%2e/package.json`)).status).toBe(404);
    // The console at a deeper path still finds its assets (a <base> names /ui/).
    expect(html).toContain('<base href="/ui/">');
    await env.page.goto(`${env.uiUrl}images/abc`);
    await env.page.getByLabel("API token").waitFor();
    // Only /ui/ paths fall back to the console.
    expect((await fetch(`${env.baseUrl}/elsewhere`)).status).toBe(404);
  });

  it("signs in with the form and shows the images view", async () => {
    const { page } = env;
    await page.goto(env.uiUrl);
    await page.getByLabel("API token").fill(env.userToken);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Images" }).waitFor();
    expect(await page.getByTestId("project-name").textContent()).toBe("default");
    expect(new URL(page.url()).hash).toBe("#/images");
    await env.screenshot("shell-images");
  });

  it("signs out: the token leaves sessionStorage and the form comes back", async () => {
    const { page } = env;
    expect(await page.evaluate('sessionStorage.getItem("contree.token")')).toBe(env.userToken);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API token").waitFor();
    expect(await page.evaluate("sessionStorage.length")).toBe(0);
    await page.reload();
    await page.getByLabel("API token").waitFor();
  });

  it("a #token= deep link signs in, then the token is gone from the address and never sent in a URL", async () => {
    const { page } = env;
    requested.length = 0;
    await page.goto(`${env.uiUrl}#token=${encodeURIComponent(env.adminToken)}`);
    await page.getByRole("heading", { name: "Images" }).waitFor();
    expect(page.url()).not.toContain(env.adminToken);
    expect(page.url()).not.toContain("token=");
    expect(new URL(page.url()).hash).toBe("#/images");
    expect(requested.length).toBeGreaterThan(0);
    for (const u of requested) expect(u).not.toContain(env.adminToken);
    // Reload: the session survives in this tab without the link.
    await page.reload();
    await page.getByRole("heading", { name: "Images" }).waitFor();
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API token").waitFor();
  });

  it("a bad token gets a clear message on the sign-in form", async () => {
    const { page } = env;
    env.allowError(/status of 401/);
    await page.getByLabel("API token").fill("not-a-real-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    const alert = page.getByRole("alert");
    await alert.waitFor();
    expect(await alert.textContent()).toMatch(/refused this token/);
    expect(await page.evaluate('sessionStorage.getItem("contree.token")')).toBeNull();
    await env.screenshot("shell-bad-token");
    expect(await audit(page)).toEqual([]);
    // A bad deep link lands on the form with the same message, and the token leaves the address.
    // From a blank page: a hash change alone would leave the first message on screen.
    await page.goto("about:blank");
    await page.goto(`${env.uiUrl}#token=also-bad`);
    await page.getByRole("alert").waitFor();
    expect(await page.getByRole("alert").textContent()).toMatch(/refused this token/);
    expect(page.url()).not.toContain("also-bad");
  });

  it("an admin switches project: every API call then carries the Project header; a user token cannot", async () => {
    const { page } = env;
    await env.server.server.store.projects.create("other");
    env.allowError(/status of 403/);
    const headers: Record<string, string>[] = [];
    const onRequest = (r: { url(): string; headers(): Record<string, string> }) => {
      if (r.url().includes("/v1/")) headers.push(r.headers());
    };
    page.on("request", onRequest);
    await env.signIn(env.adminToken);
    expect(await page.getByTestId("project-name").textContent()).toBe("default");
    await page.getByLabel("Switch to project (admin tokens)").fill("other");
    await page.getByRole("button", { name: "Switch" }).click();
    await expect.poll(() => page.getByTestId("project-name").textContent()).toBe("other");
    await page.getByRole("heading", { name: "Images" }).waitFor();
    await page.getByText("No images yet.").waitFor();
    expect(headers.at(-1)?.["project"]).toBe("other");
    expect(await page.evaluate('sessionStorage.getItem("contree.project")')).toBe("other");
    page.off("request", onRequest);
    await page.getByRole("button", { name: "Sign out" }).click();

    await env.signIn(env.userToken);
    await page.getByLabel("Switch to project (admin tokens)").fill("other");
    await page.getByRole("button", { name: "Switch" }).click();
    await page
      .getByRole("alert")
      .getByText(/may not/)
      .waitFor();
    expect(await page.getByTestId("project-name").textContent()).toBe("default");
    await page.getByRole("button", { name: "Sign out" }).click();
  });
});
