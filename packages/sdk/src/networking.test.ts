import { describe, expect, it } from "vitest";
import type { ContreeApi } from "./api.js";
import { spawnRequest } from "./image-handle.js";

describe("networking option", () => {
  const api = {} as ContreeApi;
  it("true and false are networking on and off", async () => {
    expect((await spawnRequest(api, "img", "true", { networking: true })).networking).toEqual({
      enabled: true,
    });
    expect((await spawnRequest(api, "img", "true", { networking: false })).networking).toEqual({
      enabled: false,
    });
  });
  it("an egress policy turns networking on and sends its lists", async () => {
    const req = await spawnRequest(api, "img", "true", {
      networking: { allow: ["api.example.com", "*.pypi.org"], deny: ["203.0.113.0/24"] },
    });
    expect(req.networking).toEqual({
      enabled: true,
      allow: ["api.example.com", "*.pypi.org"],
      deny: ["203.0.113.0/24"],
    });
    expect((await spawnRequest(api, "img", "true", { networking: { deny: ["x.test"] } })).networking).toEqual(
      {
        enabled: true,
        deny: ["x.test"],
      },
    );
  });
});
