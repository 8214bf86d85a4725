/**
 * `networking.allow` / `networking.deny` through the API, against the real server and runtime
 * (CONTREE_TEST_RUNTIME, default oci): hostile rule lists are a 400 naming the bad entry; a run
 * reaches what its policy allows, nothing else, and each refused destination is an
 * `egress_denied` event on its operation. The "outside" is a network namespace of this test,
 * and the server's sandbox resolvers are pointed at its DNS server (CONTREE_SANDBOX_DNS).
 */
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { removeFirewallIfUnused } from "../../src/runtime/network.js";
import { openEvents, outputOf } from "../events/sse-client.js";
import { importBusybox } from "../harness/busybox-image.js";
import { type EgressOutside, startEgressOutside } from "../harness/egress-outside.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import type { RegistryHandle } from "../harness/registry.js";

let t: TestServer;
let reg: RegistryHandle;
let outside: EgressOutside;

beforeAll(async () => {
  outside = await startEgressOutside((h) => ({
    "allowed.test": [h[0] as string],
    "denied.test": [h[1] as string],
    "rebind.test": ["10.1.2.3"],
  }));
  t = await startTestServer(
    { runtime: (process.env["CONTREE_TEST_RUNTIME"] as "oci" | undefined) ?? "oci" },
    { CONTREE_SANDBOX_DNS: outside.dns },
  );
  ({ registry: reg } = await importBusybox(t));
}, 120_000);

afterAll(async () => {
  await t?.close();
  await reg?.stop();
  await outside?.stop();
  await removeFirewallIfUnused().catch(() => false);
});

async function spawn(
  body: Record<string, unknown>,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await t.api("/v1/instances", {
    method: "POST",
    json: { image: "tag:busybox:latest", shell: true, disposable: true, ...body },
  });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

describe("networking.allow / networking.deny", () => {
  it.each([
    [
      "a name with a bad label",
      { allow: ["ok.test", "bad..test"] },
      /^networking\.allow\[1\] "bad\.\.test" is not a valid/,
    ],
    [
      "a wildcard in the middle",
      { allow: ["a.*.test"] },
      /^networking\.allow\[0\] "a\.\*\.test" may use \* only as a leading/,
    ],
    [
      "a CIDR with host bits",
      { deny: ["203.0.113.5/24"] },
      /^networking\.deny\[0\] "203\.0\.113\.5\/24" has bits set past its prefix length/,
    ],
    ["an IPv6 address", { allow: ["::1"] }, /networking\.allow\[0\] must be a domain/],
    [
      "a prefix over 32",
      { allow: ["10.0.0.0/33"] },
      /^networking\.allow\[0\] "10\.0\.0\.0\/33" is not an IPv4 address or CIDR/,
    ],
    [
      "a bare *.",
      { allow: ["*.test"] },
      /^networking\.allow\[0\] "\*\.test" is not a valid \*\.domain pattern/,
    ],
    ["too many rules", { allow: Array.from({ length: 257 }, (_, i) => `h${i}.test`) }, /at most 256 rules/],
    ["a rule too long", { allow: [`${"a".repeat(250)}.test`] }, /networking\.allow\[0\] must be a domain/],
    ["not a list", { allow: "x.test" }, /networking\.allow must be an array/],
  ])("%s is a 400 naming it", async (_name, rules, why) => {
    const r = await spawn({ command: "true", networking: { enabled: true, ...rules } });
    expect(r.status, JSON.stringify(r.json)).toBe(400);
    expect(Object.keys(r.json).sort()).toEqual(["error", "status"]);
    expect(String(r.json["error"])).toMatch(why);
  });

  it("rules without networking are a 400", async () => {
    const r = await spawn({ command: "true", networking: { enabled: false, allow: ["a.test"] } });
    expect(r.status).toBe(400);
    expect(String(r.json["error"])).toBe("networking.allow and networking.deny need networking.enabled");
  });

  it("a run reaches its allowed name only; each refusal is an egress_denied event naming it", async () => {
    const [allowedIp, deniedIp] = outside.hosts as [string, string];
    const http = (label: string, host: string) =>
      `b=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${host} 8080 | grep '^hello'); echo "${label}=\${b:-fail}"`;
    const r = await spawn({
      command: [
        "nslookup allowed.test >/dev/null 2>&1; nslookup denied.test >/dev/null 2>&1; nslookup rebind.test >/dev/null 2>&1",
        http("allowed", allowedIp),
        http("direct", deniedIp),
      ].join("\n"),
      networking: { enabled: true, allow: ["Allowed.Test", "rebind.test"] },
    });
    expect(r.status, JSON.stringify(r.json)).toBe(202);
    const id = String(r.json["uuid"]);
    const op = await waitOperation(t, id, 120_000);
    expect(op["status"], String(op["error"])).toBe("SUCCESS");
    // The rules are kept in their canonical spelling.
    expect((op["metadata"] as { networking: unknown }).networking).toEqual({
      enabled: true,
      allow: ["allowed.test", "rebind.test"],
    });
    const events = await (await openEvents({ url: t.url, token: t.token }, id)).done(10_000);
    const out = outputOf(events, "stdout");
    expect(out).toContain(`allowed=hello ${allowedIp}`);
    expect(out).toContain("direct=fail");
    const denied = events.filter((e) => e.type === "egress_denied").map((e) => e.data);
    expect(denied).toContainEqual({ destination: "denied.test", reason: "denied_name" });
    expect(denied).toContainEqual({
      destination: "rebind.test",
      reason: "private_answer",
      addresses: ["10.1.2.3"],
    });
    expect(denied).toContainEqual({
      destination: `${deniedIp}:8080`,
      reason: "not_allowed",
      protocol: "tcp",
    });
    // Every denial comes before the exit event.
    const exitAt = events.findIndex((e) => e.type === "exit");
    expect(events.findLastIndex((e) => e.type === "egress_denied")).toBeLessThan(exitAt);
  }, 120_000);

  it("project defaults: whoami shows them, every networked run gets them, a run may only narrow them", async () => {
    const who = (await (await t.api("/v1/whoami")).json()) as { project: string; egress?: unknown };
    expect(who.egress).toBeUndefined();
    const project = await t.server.store.projects.findByName(who.project);
    if (project === undefined) throw new Error("no project");
    await t.server.store.projects.setEgress(project.id, {
      allow: ["allowed.test", "*.wild.test"],
      deny: ["denied.test"],
    });
    try {
      const after = (await (await t.api("/v1/whoami")).json()) as { egress?: unknown; limits: unknown };
      expect(after.egress).toEqual({ allow: ["allowed.test", "*.wild.test"], deny: ["denied.test"] });
      // The limits document is untouched by the rules stored beside them.
      expect(Object.values(after.limits as Record<string, unknown>).every((v) => typeof v === "number")).toBe(
        true,
      );

      const wider = await spawn({
        command: "true",
        networking: { enabled: true, allow: ["allowed.test", "other.test"] },
      });
      expect(wider.status).toBe(400);
      expect(String(wider.json["error"])).toBe(
        `networking.allow[1] "other.test" is outside the project's allow list`,
      );
      const widerSuffix = await spawn({ command: "true", networking: { enabled: true, allow: ["*.test"] } });
      expect(widerSuffix.status).toBe(400);

      const [allowedIp] = outside.hosts as [string];
      const r = await spawn({
        command: `nslookup denied.test >/dev/null 2>&1; b=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${allowedIp} 8080 | grep '^hello'); echo "allowed=\${b:-fail}"`,
        networking: { enabled: true },
      });
      expect(r.status, JSON.stringify(r.json)).toBe(202);
      const id = String(r.json["uuid"]);
      const op = await waitOperation(t, id, 120_000);
      expect((op["metadata"] as { networking: unknown }).networking).toEqual({
        enabled: true,
        allow: ["allowed.test", "*.wild.test"],
        deny: ["denied.test"],
      });
      const events = await (await openEvents({ url: t.url, token: t.token }, id)).done(10_000);
      // No name was resolved: the project's allow list holds even for a run that names none.
      expect(outputOf(events, "stdout")).toContain("allowed=fail");
      const denied = events.filter((e) => e.type === "egress_denied").map((e) => e.data);
      expect(denied).toContainEqual({ destination: "denied.test", reason: "denied_name" });

      const narrow = await spawn({
        command: "true",
        networking: { enabled: true, allow: ["api.wild.test"], deny: ["x.wild.test"] },
      });
      expect(narrow.status, JSON.stringify(narrow.json)).toBe(202);
      const nop = await waitOperation(t, String(narrow.json["uuid"]), 120_000);
      expect((nop["metadata"] as { networking: unknown }).networking).toEqual({
        enabled: true,
        allow: ["api.wild.test"],
        deny: ["denied.test", "x.wild.test"],
      });
      // Without networking the rules do not apply (and are not shown).
      const off = await spawn({ command: "true" });
      const oop = await waitOperation(t, String(off.json["uuid"]), 120_000);
      expect((oop["metadata"] as { networking: unknown }).networking).toEqual({ enabled: false });
    } finally {
      await t.server.store.projects.setEgress(project.id, undefined);
    }
  }, 180_000);

  it("contree-server project update sets, replaces and clears a project's rules (checked first)", async () => {
    const bin = path.resolve(import.meta.dirname, "../../bin/contree-server.js");
    const cli = (...args: string[]) =>
      promisify(execFile)(
        process.execPath,
        [bin, "project", "update", "default", ...args, "--data-dir", t.dataDir],
        {
          timeout: 60_000,
        },
      );
    const egress = async () => ((await (await t.api("/v1/whoami")).json()) as { egress?: unknown }).egress;
    try {
      const set = await cli(
        "--egress-allow",
        "API.test",
        "--egress-allow",
        "*.wild.test",
        "--egress-deny",
        "203.0.113.0/24",
      );
      expect(set.stdout).toContain("egress.allow\tapi.test,*.wild.test");
      expect(set.stdout).toContain("egress.deny\t203.0.113.0/24");
      expect(await egress()).toEqual({ allow: ["api.test", "*.wild.test"], deny: ["203.0.113.0/24"] });
      await cli("--egress-deny", "bad.test");
      expect(await egress()).toEqual({ allow: ["api.test", "*.wild.test"], deny: ["bad.test"] });
      const bad = await cli("--egress-allow", "a..test").catch((e: { code?: number; stderr?: string }) => e);
      expect((bad as { code?: number }).code).not.toBe(0);
      expect(String((bad as { stderr?: string }).stderr)).toContain(
        '--egress-allow "a..test" is not a valid domain name',
      );
      expect(await egress()).toEqual({ allow: ["api.test", "*.wild.test"], deny: ["bad.test"] });
      await cli("--egress-clear");
      expect(await egress()).toBeUndefined();
    } finally {
      await cli("--egress-clear").catch(() => undefined);
    }
  }, 120_000);
});
