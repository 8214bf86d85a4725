import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { apiUrlFromBase, NEBIUS_DEFAULT_URL, parseIni, resolveConfig, selectProfile } from "./config.js";
import { isConfigurationError } from "./errors.js";

describe("parseIni", () => {
  it("reads sections, both separators, comments, continuations, and DEFAULT inheritance", () => {
    const doc = parseIni(
      [
        "# comment",
        "[DEFAULT]",
        "profile = work",
        "Type: jwt",
        "",
        "[profile:work]",
        "token = abc",
        "  def",
        "; another comment",
        "url=http://127.0.0.1:9/pre/",
        "[profile:other]",
        "type = iam",
      ].join("\r\n"),
    );
    expect(doc.get("profile:work")?.get("token")).toBe("abc\ndef");
    expect(doc.get("profile:work")?.get("url")).toBe("http://127.0.0.1:9/pre/");
    expect(doc.get("profile:work")?.get("type")).toBe("jwt"); // inherited, key lower-cased
    expect(doc.get("profile:other")?.get("type")).toBe("iam");
  });

  it("selects profiles and applies the iam default URL", () => {
    const doc = parseIni(
      "[DEFAULT]\nprofile = a\n[profile:a]\ntoken = T\nurl = http://x\n[profile:b]\ntype = iam\ntoken = U\nproject = P\n",
    );
    expect(selectProfile(doc)).toEqual({ name: "a", type: "jwt", url: "http://x", token: "T" });
    expect(selectProfile(doc, "b")).toEqual({
      name: "b",
      type: "iam",
      url: NEBIUS_DEFAULT_URL,
      token: "U",
      project: "P",
    });
    expect(selectProfile(doc, "missing")).toBeUndefined();
  });
});

describe("apiUrlFromBase", () => {
  it("appends /v1 and keeps a path prefix", () => {
    expect(apiUrlFromBase("http://h:1")).toBe("http://h:1/v1");
    expect(apiUrlFromBase("http://h:1/sandboxes/")).toBe("http://h:1/sandboxes/v1");
    expect(apiUrlFromBase("https://api.contree.dev/v1")).toBe("https://api.contree.dev/v1");
  });

  it("rejects garbage", () => {
    expect(() => apiUrlFromBase("not a url")).toThrow(/invalid ConTree URL/);
  });
});

describe("resolveConfig", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "contree-sdk-config-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads cli.ini then lets auth.ini override, from CONTREE_HOME", async () => {
    await writeFile(
      join(dir, "cli.ini"),
      "[DEFAULT]\nprofile = p\n[profile:p]\nurl = http://cli\ntoken = cli-token\n",
    );
    await writeFile(join(dir, "auth.ini"), "[profile:p]\ntoken = auth-token\nproject = proj\n");
    const cfg = await resolveConfig({ env: { CONTREE_HOME: dir } });
    expect(cfg).toEqual({
      apiUrl: "http://cli/v1",
      token: "auth-token",
      project: "proj",
      source: "profile:p",
    });
  });

  it("falls back to $XDG_CONFIG_HOME/contree, then ~/.config/contree", async () => {
    await mkdir(join(dir, "contree"));
    await writeFile(
      join(dir, "contree", "auth.ini"),
      "[DEFAULT]\nprofile = x\n[profile:x]\nurl = http://xdg\ntoken = t\n",
    );
    expect((await resolveConfig({ env: { XDG_CONFIG_HOME: dir } })).apiUrl).toBe("http://xdg/v1");
    await mkdir(join(dir, ".config", "contree"), { recursive: true });
    await writeFile(
      join(dir, ".config", "contree", "auth.ini"),
      "[DEFAULT]\nprofile = h\n[profile:h]\nurl = http://home\ntoken = t\n",
    );
    expect((await resolveConfig({ env: { HOME: dir } })).apiUrl).toBe("http://home/v1");
  });

  it("CONTREE_PROFILE selects a profile; environment variables override profile fields", async () => {
    await writeFile(
      join(dir, "auth.ini"),
      "[DEFAULT]\nprofile = a\n[profile:a]\nurl = http://a\ntoken = ta\n[profile:b]\nurl = http://b\ntoken = tb\n",
    );
    expect((await resolveConfig({ env: { CONTREE_HOME: dir, CONTREE_PROFILE: "b" } })).token).toBe("tb");
    const cfg = await resolveConfig({ env: { CONTREE_HOME: dir, CONTREE_TOKEN: "env-token" } });
    expect(cfg.token).toBe("env-token");
    expect(cfg.apiUrl).toBe("http://a/v1");
  });

  it("options beat the environment; an explicit profile ignores the environment", async () => {
    await writeFile(join(dir, "auth.ini"), "[profile:p]\nurl = http://p\ntoken = tp\n");
    const env = { CONTREE_HOME: dir, CONTREE_URL: "http://env", CONTREE_TOKEN: "te", CONTREE_PROJECT: "pe" };
    expect(await resolveConfig({ env, url: "http://opt", token: "to" })).toEqual({
      apiUrl: "http://opt/v1",
      token: "to",
      project: "pe",
      source: "options",
    });
    expect(await resolveConfig({ env })).toEqual({
      apiUrl: "http://env/v1",
      token: "te",
      project: "pe",
      source: "env",
    });
    expect(await resolveConfig({ env, profile: "p" })).toEqual({
      apiUrl: "http://p/v1",
      token: "tp",
      source: "profile:p",
    });
  });

  it("fails with a ConfigurationError when nothing is configured or the profile is missing", async () => {
    const missing = await resolveConfig({ env: { CONTREE_HOME: dir } }).catch((e: unknown) => e);
    expect(isConfigurationError(missing)).toBe(true);
    const noProfile = await resolveConfig({ env: { CONTREE_HOME: dir }, profile: "nope" }).catch(
      (e: unknown) => e,
    );
    expect(isConfigurationError(noProfile)).toBe(true);
  });
});
