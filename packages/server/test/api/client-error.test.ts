/**
 * Requests Node's HTTP parser refuses never reach Fastify; they still get the usual JSON error
 * body, with the status that says what was wrong (not a 400 for everything).
 */
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { onClientError } from "../../src/api/request-url.js";
import { startApi, type TestApi } from "./api-harness.js";

let api: TestApi;
let url: URL;
beforeAll(async () => {
  api = await startApi();
  url = new URL(await api.listen());
});
afterAll(async () => api?.close());

/** Sends raw bytes and reads until the server closes the connection. */
function raw(request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(Number(url.port), url.hostname);
    let got = "";
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => {
      got += d;
    });
    sock.on("error", reject);
    sock.on("close", () => resolve(got));
    sock.write(request);
  });
}

function parse(response: string): { status: number; body: unknown } {
  const [head, body] = response.split("\r\n\r\n", 2);
  return { status: Number(head!.split(" ")[1]), body: JSON.parse(body!) };
}

describe("parser-level refusals", () => {
  it("headers over the size limit: 431 with the JSON error body", async () => {
    const r = parse(
      await raw(`GET /v1/whoami HTTP/1.1\r\nhost: x\r\nx-big: ${"a".repeat(64 * 1024)}\r\n\r\n`),
    );
    expect(r).toEqual({ status: 431, body: { error: expect.stringMatching(/too large/), status: 431 } });
  });

  it("a malformed request line: 400", async () => {
    const r = parse(await raw("NOT A REQUEST\r\n\r\n"));
    expect(r).toEqual({ status: 400, body: { error: "malformed request", status: 400 } });
  });

  it("each parser code maps to its status (timeout and chunk extensions cannot be provoked cheaply)", () => {
    for (const [code, status] of [
      ["HPE_HEADER_OVERFLOW", 431],
      ["ERR_HTTP_REQUEST_TIMEOUT", 408],
      ["HPE_CHUNK_EXTENSIONS_OVERFLOW", 413],
      ["HPE_INVALID_METHOD", 400],
    ] as const) {
      let written = "";
      const sock = {
        destroyed: false,
        writable: true,
        write(s: string) {
          written += s;
          return true;
        },
        destroy() {
          this.destroyed = true;
        },
      };
      onClientError(Object.assign(new Error("x"), { code }), sock as unknown as Socket);
      expect(sock.destroyed).toBe(true);
      const r = parse(written);
      expect(r.status).toBe(status);
      expect(r.body).toEqual({ error: expect.any(String), status });
    }
  });
});
