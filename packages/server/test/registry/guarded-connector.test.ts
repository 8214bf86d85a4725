/**
 * A name with many addresses: the connector tries at most the first MAX_ADDRESSES of them (a
 * hostile DNS answer of dozens of black-holed addresses must not cost a connect timeout each).
 */
import { createServer, type Server } from "node:http";
import { request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { DestinationPolicy } from "../../src/registry/destination-policy.js";
import { guardedAgent, MAX_ADDRESSES, type Resolver } from "../../src/registry/guarded-connector.js";

let server: Server | undefined;
afterEach(async () => {
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  server = undefined;
});

/** Listens on 127.0.0.<last> only; answers 200. */
async function listenOn(last: number): Promise<number> {
  server = createServer((_req, res) => res.end("ok"));
  await new Promise<void>((r) => server!.listen(0, `127.0.0.${last}`, r));
  const a = server.address();
  return typeof a === "object" && a ? a.port : 0;
}

/** "many.test" resolves to 127.0.0.2 … 127.0.0.9 in that order; only one of them listens. */
const resolver: Resolver = async () =>
  Array.from({ length: 8 }, (_, i) => ({ address: `127.0.0.${i + 2}`, family: 4 }));

async function statusVia(port: number): Promise<number | string> {
  const agent = guardedAgent({ policy: new DestinationPolicy(["127.0.0.0/8"]), resolver });
  try {
    const r = await request(`http://many.test:${port}/`, { dispatcher: agent });
    await r.body.text();
    return r.statusCode;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  } finally {
    await agent.close();
  }
}

describe("guarded connector, many resolved addresses", () => {
  it(`reaches a listener among the first ${MAX_ADDRESSES}`, async () => {
    expect(await statusVia(await listenOn(1 + MAX_ADDRESSES))).toBe(200);
  });

  it(`does not try past the first ${MAX_ADDRESSES}`, async () => {
    expect(await statusVia(await listenOn(2 + MAX_ADDRESSES))).toBe("ECONNREFUSED");
  });
});
