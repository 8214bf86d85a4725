import { describe, expect, it } from "vitest";
import { AppError } from "../core/errors.js";
import { checkRealm, parseWwwAuthenticate } from "./auth-challenge.js";
import {
  manifestMediaType,
  parseImageConfig,
  parseImageManifest,
  parseIndex,
  parseJsonObject,
} from "./manifest.js";
import { DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST } from "./media-types.js";

const D = `sha256:${"b".repeat(64)}`;
const bytes = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v));

function kindOf(f: () => unknown): { kind: string; message: string } {
  try {
    f();
  } catch (e) {
    if (e instanceof AppError) return { kind: e.kind, message: e.message };
    throw e;
  }
  throw new Error("did not throw");
}

describe("manifest parsing rejects hostile shapes", () => {
  it("refuses oversized and non-object JSON", () => {
    expect(kindOf(() => parseJsonObject(Buffer.alloc(5 * 1024 * 1024, 0x20), "m")).message).toMatch(
      /larger than/,
    );
    expect(kindOf(() => parseJsonObject(bytes("[1]"), "m")).kind).toBe("unprocessable");
    expect(kindOf(() => parseJsonObject(bytes("{"), "m")).message).toMatch(/not valid JSON/);
    const deep = "[".repeat(200_000) + "]".repeat(200_000);
    expect(kindOf(() => parseJsonObject(bytes(deep), "m")).kind).toBe("unprocessable");
  });

  it("validates descriptors", () => {
    const ok = {
      schemaVersion: 2,
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: D, size: 2 },
      layers: [],
    };
    expect(parseImageManifest(ok, OCI_MANIFEST, "m").config.digest).toBe(D);
    const bad = (layers: unknown) => kindOf(() => parseImageManifest({ ...ok, layers }, OCI_MANIFEST, "m"));
    expect(bad([{ mediaType: "x", digest: "sha256:../../etc", size: 1 }]).message).toMatch(/invalid digest/);
    expect(bad([{ mediaType: "x", digest: D, size: -1 }]).message).toMatch(/invalid size/);
    expect(bad([{ mediaType: "x", digest: D, size: 2 ** 60 }]).message).toMatch(/invalid size/);
    expect(bad([{ mediaType: "x", digest: `sha512:${"c".repeat(128)}`, size: 1 }]).kind).toBe(
      "invalid_argument",
    );
    expect(bad(Array.from({ length: 1001 }, () => ({ mediaType: "x", digest: D, size: 1 }))).message).toMatch(
      /more than 1000/,
    );
    expect(bad("nope").message).toMatch(/layers must be an array/);
    const helm = { ...ok, config: { ...ok.config, mediaType: "application/vnd.cncf.helm.config.v1+json" } };
    expect(kindOf(() => parseImageManifest(helm, OCI_MANIFEST, "m")).message).toMatch(
      /not a container image/,
    );
  });

  it("bounds index entries", () => {
    const many = {
      schemaVersion: 2,
      manifests: Array.from({ length: 1025 }, () => ({ mediaType: OCI_MANIFEST, digest: D, size: 1 })),
    };
    expect(kindOf(() => parseIndex(many, "i")).message).toMatch(/more than 1024/);
  });

  it("recognises media types from header or body, and refuses schema1", () => {
    expect(manifestMediaType(`${OCI_INDEX}; charset=utf-8`, { schemaVersion: 2 }, "m")).toEqual({
      mediaType: OCI_INDEX,
      kind: "index",
    });
    expect(
      manifestMediaType("application/json", { schemaVersion: 2, mediaType: DOCKER_MANIFEST }, "m").kind,
    ).toBe("manifest");
    expect(manifestMediaType(undefined, { schemaVersion: 2, manifests: [] }, "m").kind).toBe("index");
    expect(
      kindOf(() => manifestMediaType(OCI_MANIFEST, { schemaVersion: 2, mediaType: OCI_INDEX }, "m")).message,
    ).toMatch(/does not match/);
    const s1 = kindOf(() =>
      manifestMediaType(
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        { schemaVersion: 1 },
        "m",
      ),
    );
    expect(s1).toEqual({
      kind: "invalid_argument",
      message: expect.stringMatching(/schema1 manifests are not supported/),
    });
    expect(kindOf(() => manifestMediaType("text/html", {}, "m")).kind).toBe("invalid_argument");
  });

  it("parses config diff_ids strictly", () => {
    const cfg = {
      architecture: "amd64",
      os: "linux",
      rootfs: { type: "layers", diff_ids: [D] },
      config: { Env: ["A=1", 3], Cmd: ["/bin/sh"] },
    };
    const c = parseImageConfig(bytes(cfg), "c");
    expect(c.diffIds).toEqual([D]);
    expect(c.env).toEqual(["A=1"]);
    expect(
      kindOf(() => parseImageConfig(bytes({ ...cfg, rootfs: { type: "layers", diff_ids: ["x"] } }), "c"))
        .kind,
    ).toBe("unprocessable");
    expect(kindOf(() => parseImageConfig(bytes({ os: "linux" }), "c")).message).toMatch(/diff_ids missing/);
  });
});

describe("WWW-Authenticate", () => {
  it("parses bearer and basic challenges", () => {
    const c = parseWwwAuthenticate(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull",error="insufficient_scope"',
    );
    expect(c).toEqual([
      {
        scheme: "bearer",
        params: {
          realm: "https://auth.docker.io/token",
          service: "registry.docker.io",
          scope: "repository:library/busybox:pull",
          error: "insufficient_scope",
        },
      },
    ]);
    expect(parseWwwAuthenticate('Basic realm="test-realm"')).toEqual([
      { scheme: "basic", params: { realm: "test-realm" } },
    ]);
    expect(parseWwwAuthenticate('Basic realm="a\\"b", Bearer realm=x')).toEqual([
      { scheme: "basic", params: { realm: 'a"b' } },
      { scheme: "bearer", params: { realm: "x" } },
    ]);
  });

  it("checks the realm", () => {
    const https = new URL("https://ghcr.io/");
    expect(checkRealm("https://ghcr.io/token", https).host).toBe("ghcr.io");
    expect(kindOf(() => checkRealm("file:///etc/passwd", https)).message).toMatch(/not http/);
    expect(kindOf(() => checkRealm("http://auth.example/token", https)).message).toMatch(/plain-http/);
    // Where a realm may point is the destination policy's decision, made when connecting.
    expect(checkRealm("https://127.0.0.1:8080/token", https).hostname).toBe("127.0.0.1");
    expect(kindOf(() => checkRealm("https://u:p@auth.example/token", https)).message).toMatch(
      /embedded credentials/,
    );
    expect(checkRealm("http://127.0.0.1:9/token", new URL("http://127.0.0.1:5000/")).port).toBe("9");
  });
});
