import { describe, expect, it } from "vitest";
import { AppError } from "../core/errors.js";
import {
  familiarName,
  formatReference,
  isLoopbackHost,
  parseImageReference,
  registryApiHost,
} from "./reference.js";

const D = `sha256:${"a".repeat(64)}`;

describe("parseImageReference", () => {
  it.each([
    ["busybox", "docker.io/library/busybox:latest"],
    ["busybox:1.36", "docker.io/library/busybox:1.36"],
    ["docker://busybox", "docker.io/library/busybox:latest"],
    ["oci://busybox:musl", "docker.io/library/busybox:musl"],
    ["docker://docker.io/library/ubuntu:latest", "docker.io/library/ubuntu:latest"],
    ["nimlang/nim", "docker.io/nimlang/nim:latest"],
    ["index.docker.io/nimlang/nim:2", "docker.io/nimlang/nim:2"],
    ["registry-1.docker.io/library/alpine", "docker.io/library/alpine:latest"],
    ["docker.io/alpine", "docker.io/library/alpine:latest"],
    ["ghcr.io/owner/repo/sub:v1.2.3", "ghcr.io/owner/repo/sub:v1.2.3"],
    ["GHCR.IO/owner/app", "ghcr.io/owner/app:latest"],
    ["localhost/app", "localhost/app:latest"],
    ["localhost:5000/app:dev", "localhost:5000/app:dev"],
    ["127.0.0.1:5000/fixtures/busybox", "127.0.0.1:5000/fixtures/busybox:latest"],
    ["[::1]:5000/app:1", "[::1]:5000/app:1"],
    ["host:5000/app", "host:5000/app:latest"],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`],
    [`quay.io/a/b:1@${D}`, `quay.io/a/b:1@${D}`],
    ["  busybox  ", "docker.io/library/busybox:latest"],
    ["a_b__c-d---e/x.y", "docker.io/a_b__c-d---e/x.y:latest"],
  ])("%s → %s", (input, want) => {
    expect(formatReference(parseImageReference(input))).toBe(want);
  });

  it("splits the parts", () => {
    expect(parseImageReference(`docker://127.0.0.1:5000/fixtures/busybox:1@${D}`)).toEqual({
      registry: "127.0.0.1:5000",
      repository: "fixtures/busybox",
      tag: "1",
      digest: D,
    });
    expect(parseImageReference(`busybox@${D}`).tag).toBeUndefined();
  });

  it.each([
    ["", /empty/],
    ["Busybox", /lowercase/],
    ["docker.io/Library/x", /lowercase/],
    ["busybox:", /invalid tag/],
    ["busybox:-x", /invalid tag/],
    [`busybox:${"t".repeat(129)}`, /invalid tag/],
    ["a_b__c-d---e.f/x", /invalid registry host/],
    ["busybox@sha256:abc", /invalid digest/],
    [`busybox@sha512:${"a".repeat(128)}`, /only sha256/],
    ["http://host/app", /unsupported reference scheme/],
    ["docker://", /empty|missing repository/],
    ["host:5000/", /missing repository/],
    ["a//b", /missing repository/],
    ["a/../b", /bad repository name/],
    ["bad_host.-x/app", /invalid registry host/],
    ["host:99999/app", /invalid registry port/],
    ["bu sybox", /whitespace/],
    ["busybox\n", /.*/],
    ["-busybox", /bad repository name/],
    [`x/${"a".repeat(300)}`, /longer than 255/],
    ["a".repeat(2000), /too long/],
  ])("rejects input #%# (%s)", (input, msg) => {
    if (input === "busybox\n") {
      // trailing whitespace is trimmed, like the CLI does with pasted references
      expect(formatReference(parseImageReference(input))).toBe("docker.io/library/busybox:latest");
      return;
    }
    let err: unknown;
    try {
      parseImageReference(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).kind).toBe("invalid_argument");
    expect((err as AppError).message).toMatch(msg);
  });
});

describe("reference helpers", () => {
  it("familiar names follow the CLI's tag derivation", () => {
    expect(familiarName(parseImageReference("docker://docker.io/library/ubuntu:latest"))).toBe(
      "ubuntu:latest",
    );
    expect(familiarName(parseImageReference("nimlang/nim"))).toBe("nimlang/nim:latest");
    expect(familiarName(parseImageReference("ghcr.io/o/a:1"))).toBe("ghcr.io/o/a:1");
  });

  it("docker.io is served by registry-1.docker.io", () => {
    expect(registryApiHost(parseImageReference("busybox"))).toBe("registry-1.docker.io");
    expect(registryApiHost(parseImageReference("ghcr.io/o/a"))).toBe("ghcr.io");
  });

  it.each([
    ["127.0.0.1:5000", true],
    ["127.1.2.3", true],
    ["localhost:80", true],
    ["[::1]:5000", true],
    ["128.0.0.1", false],
    ["ghcr.io", false],
    ["localhost.example.com", false],
  ])("isLoopbackHost(%s) = %s", (host, want) => {
    expect(isLoopbackHost(host)).toBe(want);
  });
});
