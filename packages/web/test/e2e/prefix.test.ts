import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ConsoleEnv, startConsole } from "./harness.js";

describe("web console under a path prefix", () => {
  let env: ConsoleEnv;
  const requested: string[] = [];
  beforeAll(async () => {
    env = await startConsole({ config: { pathPrefix: "/sandboxes" } });
    env.page.on("request", (r) => requested.push(new URL(r.url()).pathname));
  });
  afterAll(async () => {
    await env?.close();
  });

  it("is served at <prefix>/ui/ and calls <prefix>/v1", async () => {
    expect(env.uiUrl).toBe(`${env.baseUrl}/sandboxes/ui/`);
    await env.signIn(env.userToken);
    await env.page.getByRole("heading", { name: "Images" }).waitFor();
    await env.page.getByText("No images yet.").waitFor();
    expect(requested).toContain("/sandboxes/v1/whoami");
    expect(requested).toContain("/sandboxes/v1/images");
    expect(requested.filter((p) => p.startsWith("/v1/"))).toEqual([]);
    // A deeper path under the prefix still loads the console.
    await env.page.goto(`${env.uiUrl}images/x`);
    await env.page.getByRole("heading", { name: "Images" }).waitFor();
  });
});
