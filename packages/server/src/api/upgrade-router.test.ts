import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { notFound } from "../core/errors.js";
import { UpgradeRouter } from "./upgrade-router.js";

/** What an upgrade request got: the status of a refusal, or "upgraded" with the echoed bytes. */
function ask(port: number, path: string): Promise<{ status: number; body: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, headers: { connection: "Upgrade", upgrade: "x" } });
    req.once("upgrade", (res, socket) => {
      socket.write("ping");
      socket.once("data", (d) => {
        socket.destroy();
        resolve({ status: res.statusCode ?? 0, body: d.toString(), closed: false });
      });
    });
    req.once("response", (res) => {
      let body = "";
      res.on("data", (c) => {
        body += String(c);
      });
      // The socket is closed by the server after the refusal: the response ends.
      res.once("end", () => resolve({ status: res.statusCode ?? 0, body, closed: true }));
    });
    req.once("error", reject);
    req.end();
  });
}

describe("UpgradeRouter", () => {
  let server: Server;
  let port: number;
  let router: UpgradeRouter;
  const errors: unknown[] = [];

  beforeAll(async () => {
    server = createServer((_req, res) => res.end("plain"));
    router = new UpgradeRouter((e) => errors.push(e));
    router.register(
      (p) => (p === "/echo" ? {} : null),
      async (_req, socket) => {
        socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n");
        socket.on("data", (d) => socket.write(d));
        socket.on("end", () => socket.end());
      },
    );
    router.register(
      (p) => (p.startsWith("/gone/") ? { id: p.slice(6) } : null),
      async (_req, _socket, _head, params) => {
        throw notFound(`no ${params["id"]}`);
      },
    );
    router.register(
      (p) => (p === "/crash" ? {} : null),
      async () => {
        throw new Error("boom /internal/path");
      },
    );
    router.attach(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it("hands a matched upgrade to its handler", async () => {
    expect(await ask(port, "/echo?x=1")).toMatchObject({ status: 101, body: "ping" });
  });

  it("closeAll() closes the upgraded sockets still open (server shutdown)", async () => {
    const socket = await new Promise<import("node:stream").Duplex>((resolve, reject) => {
      const req = request({
        host: "127.0.0.1",
        port,
        path: "/echo",
        headers: { connection: "Upgrade", upgrade: "x" },
      });
      req.once("upgrade", (_res, s) => resolve(s));
      req.once("error", reject);
      req.end();
    });
    const closed = new Promise<void>((r) => socket.once("close", () => r()));
    router.closeAll();
    await closed;
  });

  it("answers an unmatched upgrade 404 and closes the socket", async () => {
    const r = await ask(port, "/nothing-here");
    expect(r).toMatchObject({ status: 404, closed: true });
    expect(JSON.parse(r.body)).toEqual({ error: "not found", status: 404 });
  });

  it("maps a handler's AppError to its status; any other error is a 500 that leaks nothing", async () => {
    const r = await ask(port, "/gone/abc");
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body)).toEqual({ error: "no abc", status: 404 });
    const c = await ask(port, "/crash");
    expect(c.status).toBe(500);
    expect(c.body).not.toContain("internal/path");
    expect(errors).toHaveLength(1);
    // The server goes on serving both kinds of request.
    expect(await ask(port, "/echo")).toMatchObject({ status: 101 });
    const plain = await fetch(`http://127.0.0.1:${port}/`);
    expect(await plain.text()).toBe("plain");
  });
});
