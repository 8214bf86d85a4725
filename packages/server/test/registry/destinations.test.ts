/**
 * Where the registry client may connect: loopback, private, link-local and this host's own
 * addresses are refused unless allowed, on the address actually connected to (also after
 * redirects, for token realms and for names that resolve there), and a refused destination fails
 * byte for byte like a closed port. Listeners count connections: a refusal must make none.
 * Private and link-local targets live in a network namespace made by the test (netns-target.ts);
 * nothing is ever sent off this machine.
 */
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createTcpServer, type Server as TcpServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppError } from "../../src/core/errors.js";
import type { ResolvedAddress, Resolver } from "../../src/registry/guarded-connector.js";
import {
  HttpRegistryClient,
  type HttpRegistryClientOptions,
} from "../../src/registry/http-registry-client.js";
import { parseImageReference } from "../../src/registry/reference.js";
import { UNREACHABLE } from "../../src/registry/retry.js";
import { FIXTURE_IMAGES, fixtures } from "../harness/fixtures.js";
import { type NetnsTarget, startNetnsTarget } from "../harness/netns-target.js";
import { appErrorOf } from "../harness/pull.js";
import { freePort, REGISTRY_PASSWORD, REGISTRY_USER, startRegistry } from "../harness/registry.js";

const retry = { baseDelayMs: 5, maxDelayMs: 20, attempts: 3 };

interface Counter {
  port: number;
  count: number;
  server: TcpServer;
}

/** A TCP listener that counts connections and answers any request with an HTTP 404. */
async function counter(host: string): Promise<Counter> {
  const c: Counter = { port: 0, count: 0, server: createTcpServer() };
  c.server.on("connection", (s) => {
    c.count++;
    s.on("error", () => {});
    s.once("data", () => s.end("HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"));
  });
  await new Promise<void>((r) => c.server.listen(0, host, r));
  const addr = c.server.address();
  c.port = typeof addr === "object" && addr ? addr.port : 0;
  return c;
}

/** A tiny "registry" whose every answer is chosen by the test. */
async function fakeRegistry(
  host: string,
  answer: (path: string) => { status: number; headers?: Record<string, string> },
): Promise<{ host: string; server: HttpServer }> {
  const server = createHttpServer((req, res) => {
    const a = answer(req.url ?? "/");
    res.writeHead(a.status, { connection: "close", "content-length": "0", ...a.headers }).end();
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  const addr = server.address();
  return { host: `${host}:${typeof addr === "object" && addr ? addr.port : 0}`, server };
}

const resolverOf =
  (names: Record<string, string[]>): Resolver =>
  async (hostname) => {
    const list = names[hostname];
    if (!list) throw Object.assign(new Error("not found"), { code: "ENOTFOUND" });
    return list.map((address): ResolvedAddress => ({ address, family: address.includes(":") ? 6 : 4 }));
  };

async function errorOf(reference: string, o: HttpRegistryClientOptions = {}): Promise<AppError> {
  return appErrorOf(new HttpRegistryClient({ retry, ...o }).resolveManifest(parseImageReference(reference)));
}

let v4: Counter;
let v6: Counter;
let closed4: number;
let closed6: number;
const servers: (TcpServer | HttpServer)[] = [];

beforeAll(async () => {
  v4 = await counter("127.0.0.1");
  v6 = await counter("::1");
  servers.push(v4.server, v6.server);
  closed4 = await freePort();
  closed6 = await freePort("::1");
});
afterAll(async () => {
  for (const s of servers) await new Promise((r) => s.close(r));
});

describe("loopback destinations are refused by default, indistinguishable from closed ports", () => {
  const forms: [string, (p4: number, p6: number) => string][] = [
    ["127.0.0.1", (p) => `127.0.0.1:${p}/x/y`],
    ["[::1]", (_, p6) => `[::1]:${p6}/x/y`],
    ["localhost", (p) => `localhost:${p}/x/y`],
    ["0.0.0.0", (p) => `0.0.0.0:${p}/x/y`],
    ["[::]", (_, p6) => `[::]:${p6}/x/y`],
    ["IPv4-mapped [::ffff:127.0.0.1]", (p) => `[::ffff:127.0.0.1]:${p}/x/y`],
    ["127.1 (short form)", (p) => `127.1:${p}/x/y`],
    ["2130706433 (decimal)", (p) => `2130706433:${p}/x/y`],
    ["0x7f000001 (hex)", (p) => `0x7f000001:${p}/x/y`],
  ];
  // (IPv4-compatible ::127.0.0.1 is refused as well, see net-address.test.ts, but Linux does not
  // route it to loopback, so a listener here could not tell a refusal from a failure.)
  it.each(forms)("%s", async (_name, ref) => {
    const before = v4.count + v6.count;
    const open = await errorOf(ref(v4.port, v6.port));
    const shut = await errorOf(ref(closed4, closed6));
    expect(open.kind).toBe("unavailable");
    expect(open.message).toBe(UNREACHABLE);
    expect(shut.kind).toBe(open.kind);
    expect(shut.message).toBe(open.message);
    expect(v4.count + v6.count).toBe(before);
  });

  it("a name that resolves to loopback is refused too", async () => {
    const before = v4.count + v6.count;
    const resolver = resolverOf({ "sneaky.example": ["127.0.0.1"], "sneaky6.example": ["::1"] });
    for (const ref of [`sneaky.example:${v4.port}/x/y`, `sneaky6.example:${v6.port}/x/y`]) {
      const e = await errorOf(ref, { resolver, insecureRegistries: ["sneaky.example", "sneaky6.example"] });
      expect(e.message).toBe(UNREACHABLE);
    }
    expect(v4.count + v6.count).toBe(before);
  });

  it("the same listener is reached once the operator allows it (the check is what blocked)", async () => {
    const e = await errorOf(`127.0.0.1:${v4.port}/x/y`, { privateRegistries: [`127.0.0.1:${v4.port}`] });
    expect(e.message).toMatch(/manifest unknown/);
    expect(v4.count).toBeGreaterThan(0);
    // Allowing one port does not open the others.
    const other = await counter("127.0.0.1");
    servers.push(other.server);
    const refused = await errorOf(`127.0.0.1:${other.port}/x/y`, {
      privateRegistries: [`127.0.0.1:${v4.port}`],
    });
    expect(refused.message).toBe(UNREACHABLE);
    expect(other.count).toBe(0);
  });
});

describe("an allowed registry cannot send us elsewhere", () => {
  it("a redirect to loopback (http or https, open or closed port) fails like a closed port", async () => {
    let target = "";
    const front = await fakeRegistry("127.0.0.2", (path) => ({
      status: 307,
      headers: { location: `${target}${path}` },
    }));
    servers.push(front.server);
    const allow = { privateRegistries: [front.host] };
    const before = v4.count + v6.count;
    const messages = new Set<string>();
    for (const to of [
      `http://127.0.0.1:${v4.port}`,
      `http://127.0.0.1:${closed4}`,
      `https://127.0.0.1:${v4.port}`,
      `http://[::1]:${v6.port}`,
      `http://localhost:${v4.port}`,
      `http://[::ffff:7f00:1]:${v4.port}`,
    ]) {
      target = to;
      messages.add((await errorOf(`${front.host}/x/y`, allow)).message);
    }
    expect([...messages]).toEqual([UNREACHABLE]);
    expect(v4.count + v6.count).toBe(before);
  });

  it("a token realm on loopback is refused, open or closed", async () => {
    let realm = "";
    const front = await fakeRegistry("127.0.0.2", () => ({
      status: 401,
      headers: { "www-authenticate": `Bearer realm="${realm}",service="x"` },
    }));
    servers.push(front.server);
    const before = v4.count;
    realm = `http://127.0.0.1:${v4.port}/token`;
    const open = await errorOf(`${front.host}/x/y`, { privateRegistries: [front.host] });
    realm = `http://127.0.0.1:${closed4}/token`;
    const shut = await errorOf(`${front.host}/x/y`, { privateRegistries: [front.host] });
    expect(open.message).toBe(UNREACHABLE);
    expect(shut.message).toBe(open.message);
    expect(v4.count).toBe(before);
  });

  it("a real registry's token service on loopback: refused unless allowed as well", async () => {
    const fx = await fixtures();
    const reg = await startRegistry({ auth: "token", seedFrom: fx.registryData });
    try {
      const ref = parseImageReference(`${reg.host}/${FIXTURE_IMAGES.busybox}`);
      const credentials = { username: REGISTRY_USER, password: REGISTRY_PASSWORD };
      const onlyRegistry = new HttpRegistryClient({ retry, privateRegistries: [reg.host] });
      expect((await appErrorOf(onlyRegistry.resolveManifest(ref, { credentials }))).message).toBe(
        UNREACHABLE,
      );
      const tokenHost = new URL(reg.tokenUrl as string).host;
      const both = new HttpRegistryClient({ retry, privateRegistries: [reg.host, tokenHost] });
      expect((await both.resolveManifest(ref, { credentials })).manifest.layers.length).toBeGreaterThan(0);
    } finally {
      await reg.stop();
    }
  });

  it("DNS rebinding: the address checked is the address connected to", async () => {
    // rebind.test answers an allowed address first, then a refused one. A client that checked
    // one lookup and connected after another would reach the second listener.
    const good = await fakeRegistry("127.0.0.2", () => ({
      status: 401,
      headers: { "www-authenticate": `Bearer realm="http://rebind.test:${port}/token"` },
    }));
    const port = Number(good.host.split(":")[1]);
    let evilCount = 0;
    const evil = createTcpServer((s) => {
      evilCount++;
      s.destroy();
    });
    await new Promise<void>((r) => evil.listen(port, "127.0.0.3", r));
    servers.push(good.server, evil);
    let lookups = 0;
    const resolver: Resolver = async (name) => {
      if (name !== "rebind.test") throw Object.assign(new Error("nx"), { code: "ENOTFOUND" });
      lookups++;
      return [{ address: lookups === 1 ? "127.0.0.2" : "127.0.0.3", family: 4 }];
    };
    const e = await errorOf(`rebind.test:${port}/x/y`, {
      resolver,
      privateRegistries: ["127.0.0.2"],
      insecureRegistries: [`rebind.test:${port}`],
    });
    expect(e.message).toBe(UNREACHABLE);
    expect(lookups).toBeGreaterThan(1);
    expect(evilCount).toBe(0);
  });
});

describe("private, link-local and unique-local destinations (in a namespace made for the test)", () => {
  let t: NetnsTarget;
  beforeAll(async () => {
    t = await startNetnsTarget();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("are refused before any connection, over http and https, by address or by name", async () => {
    const resolver = resolverOf({
      "private.example": [t.v4],
      "linklocal.example": [t.linkLocal],
      "mixed.example": [t.v4, "127.0.0.1"],
    });
    const insecure = [
      `${t.v4}:${t.port}`,
      `${t.linkLocal}:${t.port}`,
      `[${t.v6}]:${t.port}`,
      `private.example:${t.port}`,
      `linklocal.example:${t.port}`,
      `mixed.example:${t.port}`,
    ];
    for (const ref of [
      `${t.v4}:${t.port}/x/y`,
      `${t.linkLocal}:${t.port}/x/y`,
      `[${t.v6}]:${t.port}/x/y`,
      `${t.v4}:${t.tlsPort}/x/y`, // https
      `${t.linkLocal}:${t.tlsPort}/x/y`, // https
      `[::ffff:${t.v4}]:${t.port}/x/y`,
      `private.example:${t.port}/x/y`,
      `linklocal.example:${t.port}/x/y`,
    ])
      expect((await errorOf(ref, { resolver, insecureRegistries: insecure })).message, ref).toBe(UNREACHABLE);
    // One refused address refuses the name, even when the other would be allowed.
    const mixed = await errorOf(`mixed.example:${t.port}/x/y`, {
      resolver,
      insecureRegistries: insecure,
      privateRegistries: [t.v4],
    });
    expect(mixed.message).toBe(UNREACHABLE);
    expect(await t.connections()).toBe(0);
  });

  it("are reached once allowed (by range, address or name)", async () => {
    const resolver = resolverOf({ "private.example": [t.v4] });
    const plain = { resolver, insecureRegistries: [`${t.v4}:${t.port}`, `private.example:${t.port}`] };
    const viaRange = await errorOf(`${t.v4}:${t.port}/x/y`, {
      ...plain,
      privateRegistries: ["10.213.0.0/16"],
    });
    expect(viaRange.message).toMatch(/manifest unknown/);
    const viaName = await errorOf(`private.example:${t.port}/x/y`, {
      ...plain,
      privateRegistries: ["private.example"],
    });
    expect(viaName.message).toMatch(/manifest unknown/);
    const before = await t.connections();
    expect(before).toBeGreaterThanOrEqual(2);
    // https: the listener resets the handshake, but the connection was made.
    await errorOf(`${t.linkLocal}:${t.tlsPort}/x/y`, { privateRegistries: [t.linkLocal] });
    expect(await t.connections()).toBeGreaterThan(before);
  });
});
