import { describe, expect, it } from "vitest";
import type { Digest } from "../core/digest.js";
import { hostPlatform, selectPlatform } from "./platform.js";
import type { Descriptor, Platform } from "./registry-client.js";

const desc = (n: number, platform: Platform, annotations?: Record<string, string>): Descriptor => ({
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  digest: `sha256:${String(n).padStart(64, "0")}` as Digest,
  size: 1,
  platform,
  annotations,
});

describe("selectPlatform", () => {
  const index = [
    desc(1, { os: "linux", architecture: "amd64" }),
    desc(2, { os: "linux", architecture: "arm64", variant: "v8" }),
    desc(3, { os: "linux", architecture: "arm", variant: "v6" }),
    desc(
      4,
      { os: "unknown", architecture: "unknown" },
      { "vnd.docker.reference.type": "attestation-manifest" },
    ),
    desc(5, { os: "windows", architecture: "amd64" }),
  ];

  it("picks os + architecture", () => {
    expect(selectPlatform(index, { os: "linux", architecture: "amd64" })?.digest).toBe(index[0]?.digest);
    expect(selectPlatform(index, { os: "windows", architecture: "amd64" })?.digest).toBe(index[4]?.digest);
  });

  it("treats arm64 without variant as v8 in both directions", () => {
    expect(selectPlatform(index, { os: "linux", architecture: "arm64" })?.digest).toBe(index[1]?.digest);
    const noVariant = [desc(7, { os: "linux", architecture: "arm64" })];
    expect(selectPlatform(noVariant, { os: "linux", architecture: "arm64", variant: "v8" })?.digest).toBe(
      noVariant[0]?.digest,
    );
  });

  it("lets armv7 run v6 but not the other way", () => {
    expect(selectPlatform(index, { os: "linux", architecture: "arm", variant: "v7" })?.digest).toBe(
      index[2]?.digest,
    );
    const v7only = [desc(8, { os: "linux", architecture: "arm", variant: "v7" })];
    expect(selectPlatform(v7only, { os: "linux", architecture: "arm", variant: "v6" })).toBeUndefined();
  });

  it("prefers the exact variant and never picks attestations", () => {
    const both = [
      desc(9, { os: "linux", architecture: "amd64", variant: "v3" }),
      desc(10, { os: "linux", architecture: "amd64" }),
    ];
    expect(selectPlatform(both, { os: "linux", architecture: "amd64" })?.digest).toBe(both[1]?.digest);
    expect(selectPlatform(index, { os: "unknown", architecture: "unknown" })).toBeUndefined();
    expect(selectPlatform(index, { os: "linux", architecture: "s390x" })).toBeUndefined();
  });

  it("maps the host arch to OCI names", () => {
    const p = hostPlatform();
    expect(p.os).toBe("linux");
    if (process.arch === "x64") expect(p).toEqual({ os: "linux", architecture: "amd64" });
    if (process.arch === "arm64") expect(p).toEqual({ os: "linux", architecture: "arm64", variant: "v8" });
  });
});
