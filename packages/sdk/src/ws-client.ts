// A minimal WebSocket client (RFC 6455) over node:http(s), for Node 20, which has no stable global
// WebSocket: the upgrade handshake (key and accept checked), client frames masked, fragmented messages
// joined, ping answered with pong, the close handshake. No extensions (no compression). It offers
// the subset of the standard WebSocket interface the terminal uses, so either can back a Terminal.

import { NetworkError, ProtocolError } from "./errors.js";

/** What Terminal needs of a WebSocket: the standard one (browsers, Node ≥ 22) has all of it. */
export interface SocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: string | ArrayBufferLike | Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

/** A refused upgrade: the HTTP status and the server's error body. */
export interface UpgradeRefusal {
  status: number;
  body: string;
}

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** Largest message accepted from the server (terminal output comes in small frames). */
const MAX_MESSAGE = 16 * 1024 * 1024;

type Socket = import("node:net").Socket;

export class NodeWebSocket implements SocketLike {
  binaryType = "arraybuffer";
  readyState = 0;
  onopen: SocketLike["onopen"] = null;
  onmessage: SocketLike["onmessage"] = null;
  onclose: SocketLike["onclose"] = null;
  onerror: SocketLike["onerror"] = null;
  /** Set when the server answered the upgrade with an HTTP error. */
  refusal: UpgradeRefusal | undefined;
  #socket: Socket | undefined;
  #buf: Buffer = Buffer.alloc(0);
  #parts: Buffer[] = [];
  #partOpcode = 0;
  #closeSent = false;
  #closed = false;

  constructor(url: string, protocols: string[], headers: Record<string, string>) {
    void this.#open(url, protocols, headers).catch((e: unknown) => this.#fail(e));
  }

  async #open(url: string, protocols: string[], headers: Record<string, string>): Promise<void> {
    const u = new URL(url);
    const secure = u.protocol === "wss:" || u.protocol === "https:";
    const http = secure ? await import("node:https") : await import("node:http");
    const { createHash, randomBytes } = await import("node:crypto");
    const key = randomBytes(16).toString("base64");
    const req = http.request({
      method: "GET",
      protocol: secure ? "https:" : "http:",
      hostname: u.hostname.replace(/^\[|\]$/g, ""),
      port: u.port || (secure ? 443 : 80),
      path: `${u.pathname}${u.search}`,
      headers: {
        ...headers,
        Connection: "Upgrade",
        Upgrade: "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": key,
        ...(protocols.length > 0 ? { "Sec-WebSocket-Protocol": protocols.join(", ") } : {}),
      },
    });
    req.on("error", (e) => this.#fail(e));
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        if (body.length < 65536) body += c;
      });
      res.on("end", () => {
        this.refusal = { status: res.statusCode ?? 0, body };
        this.#fail(new ProtocolError(`WebSocket upgrade refused: HTTP ${res.statusCode}`));
      });
    });
    req.on("upgrade", (res, socket: Socket, head: Buffer) => {
      const expected = createHash("sha1")
        .update(key + GUID)
        .digest("base64");
      if (res.headers["sec-websocket-accept"] !== expected) {
        socket.destroy();
        this.#fail(new ProtocolError("WebSocket upgrade: wrong Sec-WebSocket-Accept"));
        return;
      }
      this.#socket = socket;
      socket.setNoDelay(true);
      socket.on("data", (d: Buffer) => this.#receive(d));
      socket.on("error", (e) => this.#fail(e));
      socket.on("close", () => this.#finish(1006, "connection lost"));
      this.readyState = 1;
      this.onopen?.({});
      if (head.length > 0) this.#receive(head);
    });
    req.end();
  }

  send(data: string | ArrayBufferLike | Uint8Array): void {
    if (this.readyState !== 1) return;
    if (typeof data === "string") this.#frame(1, Buffer.from(data, "utf8"));
    else this.#frame(2, Buffer.from(data instanceof Uint8Array ? data : new Uint8Array(data)));
  }

  close(code = 1000, reason = ""): void {
    if (this.#closed) return;
    if (this.readyState === 1 && !this.#closeSent) {
      const r = Buffer.from(reason.slice(0, 100), "utf8");
      const payload = Buffer.alloc(2 + r.length);
      payload.writeUInt16BE(code, 0);
      r.copy(payload, 2);
      this.#frame(8, payload);
      this.#closeSent = true;
      this.readyState = 2;
      // The server answers with its own close and ends the connection; do not wait forever.
      setTimeout(() => this.#socket?.destroy(), 5000).unref?.();
    } else {
      this.#socket?.destroy();
    }
  }

  #frame(opcode: number, payload: Buffer): void {
    const socket = this.#socket;
    if (!socket) return;
    const len = payload.length;
    const head = Buffer.alloc(len < 126 ? 6 : len < 65536 ? 8 : 14);
    head[0] = 0x80 | opcode;
    let at = 2;
    if (len < 126) head[1] = 0x80 | len;
    else if (len < 65536) {
      head[1] = 0x80 | 126;
      head.writeUInt16BE(len, 2);
      at = 4;
    } else {
      head[1] = 0x80 | 127;
      head.writeBigUInt64BE(BigInt(len), 2);
      at = 10;
    }
    const mask = Buffer.from([0, 0, 0, 0].map(() => Math.floor(Math.random() * 256)));
    mask.copy(head, at);
    const body = Buffer.allocUnsafe(len);
    for (let i = 0; i < len; i++) body[i] = (payload[i] as number) ^ (mask[i & 3] as number);
    socket.write(Buffer.concat([head, body]));
  }

  #receive(data: Buffer): void {
    this.#buf = this.#buf.length === 0 ? data : Buffer.concat([this.#buf, data]);
    for (;;) {
      const b = this.#buf;
      if (b.length < 2) return;
      const fin = ((b[0] as number) & 0x80) !== 0;
      const opcode = (b[0] as number) & 0x0f;
      const masked = ((b[1] as number) & 0x80) !== 0;
      let len = (b[1] as number) & 0x7f;
      let at = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        const big = b.readBigUInt64BE(2);
        if (big > BigInt(MAX_MESSAGE)) {
          this.#fail(new ProtocolError("WebSocket frame too large"));
          return;
        }
        len = Number(big);
        at = 10;
      }
      if (masked) {
        this.#fail(new ProtocolError("WebSocket: masked frame from the server"));
        return;
      }
      if (len > MAX_MESSAGE) {
        this.#fail(new ProtocolError("WebSocket frame too large"));
        return;
      }
      if (b.length < at + len) return;
      const payload = b.subarray(at, at + len);
      this.#buf = b.subarray(at + len);
      this.#handle(fin, opcode, Buffer.from(payload));
      if (this.#closed) return;
    }
  }

  #handle(fin: boolean, opcode: number, payload: Buffer): void {
    if (opcode === 9) {
      this.#frame(10, payload);
      return;
    }
    if (opcode === 10) return;
    if (opcode === 8) {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      const reason = payload.subarray(2).toString("utf8");
      if (!this.#closeSent) {
        this.#frame(8, payload.subarray(0, 2));
        this.#closeSent = true;
      }
      this.#socket?.end();
      this.#finish(code, reason);
      return;
    }
    if (opcode === 1 || opcode === 2) {
      this.#partOpcode = opcode;
      this.#parts = [];
    } else if (opcode !== 0) {
      this.#fail(new ProtocolError(`WebSocket: unknown opcode ${opcode}`));
      return;
    }
    this.#parts.push(payload);
    if (this.#parts.reduce((n, p) => n + p.length, 0) > MAX_MESSAGE) {
      this.#fail(new ProtocolError("WebSocket message too large"));
      return;
    }
    if (!fin) return;
    const whole = Buffer.concat(this.#parts);
    this.#parts = [];
    const data =
      this.#partOpcode === 1
        ? whole.toString("utf8")
        : whole.buffer.slice(whole.byteOffset, whole.byteOffset + whole.length);
    this.onmessage?.({ data });
  }

  #fail(e: unknown): void {
    if (this.#closed) return;
    this.onerror?.(e instanceof Error ? e : new NetworkError("WebSocket failed", { cause: e }));
    this.#socket?.destroy();
    this.#finish(1006, e instanceof Error ? e.message : "failed");
  }

  #finish(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}
