import { describe, expect, it } from "vitest";
import { parseSseStream, type SseFrame, SseParser } from "./sse.js";

function parseAll(chunks: string[], onComment?: (t: string) => void): SseFrame[] {
  const p = new SseParser(onComment ? { onComment } : {});
  const out: SseFrame[] = [];
  for (const c of chunks) out.push(...p.push(c));
  out.push(...p.end());
  return out;
}

const STREAM =
  ": keepalive\n\n" +
  'id: 1\nevent: spawn\ndata: {"id":1,"type":"spawn"}\n\n' +
  "id: 2\r\nevent: stdout\r\ndata: line one\r\ndata: line two\r\n\r\n" +
  "id: 3\revent: exit\rdata:no-space\r\r" +
  "data\n\n" +
  "event: sse_error\ndata: boom\n\n";

const EXPECTED: SseFrame[] = [
  { id: "1", event: "spawn", data: '{"id":1,"type":"spawn"}' },
  { id: "2", event: "stdout", data: "line one\nline two" },
  { id: "3", event: "exit", data: "no-space" },
  { event: "message", data: "" },
  { event: "sse_error", data: "boom" },
];

describe("SseParser", () => {
  it("parses LF, CRLF and CR line ends, comments, multi-line data and bare fields", () => {
    const comments: string[] = [];
    expect(parseAll([STREAM], (c) => comments.push(c))).toEqual(EXPECTED);
    expect(comments).toEqual(["keepalive"]);
  });

  it("gives the same frames whatever the chunk boundaries (every split point, including inside CRLF)", () => {
    for (let i = 0; i <= STREAM.length; i++) {
      for (const j of [i, Math.min(STREAM.length, i + 1), Math.min(STREAM.length, i + 7)]) {
        const frames = parseAll([STREAM.slice(0, i), STREAM.slice(i, j), STREAM.slice(j)]);
        expect(frames, `split at ${i}/${j}`).toEqual(EXPECTED);
      }
    }
  });

  it("feeds one character at a time", () => {
    expect(parseAll([...STREAM])).toEqual(EXPECTED);
  });

  it("a CR at the end of a chunk followed by LF is one line end, not an empty line", () => {
    const frames = parseAll(["data: a\r", "\ndata: b\r", "\n\r", "\n"]);
    expect(frames).toEqual([{ event: "message", data: "a\nb" }]);
  });

  it("drops an unterminated frame at end of stream and strips a leading BOM", () => {
    expect(parseAll(["\uFEFFdata: x\n\ndata: partial"])).toEqual([{ event: "message", data: "x" }]);
  });

  it("keeps only one leading space of a value, and colons inside values", () => {
    expect(parseAll(["data:  two spaces: yes\n\n"])).toEqual([
      { event: "message", data: " two spaces: yes" },
    ]);
  });

  it("reads retry and ignores unknown fields and ids containing NUL", () => {
    expect(parseAll(["retry: 1500\nfoo: bar\nid: a\0b\ndata: d\n\n"])).toEqual([
      { event: "message", data: "d", retry: 1500 },
    ]);
  });

  it("rejects a frame beyond the size cap", () => {
    const p = new SseParser({ maxFrameBytes: 64 });
    expect(() => p.push(`data: ${"x".repeat(100)}\n`)).toThrow(/larger than 64/);
  });
});

describe("parseSseStream", () => {
  it("decodes UTF-8 split across byte chunks", async () => {
    const bytes = new TextEncoder().encode("data: héllo ✓\n\n");
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (const b of bytes) c.enqueue(new Uint8Array([b]));
        c.close();
      },
    });
    const frames: SseFrame[] = [];
    for await (const f of parseSseStream(stream)) frames.push(f);
    expect(frames).toEqual([{ event: "message", data: "héllo ✓" }]);
  });

  it("cancels the source when the consumer stops early", async () => {
    let cancelled = false;
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode("data: 1\n\ndata: 2\n\n"));
      },
      cancel() {
        cancelled = true;
      },
    });
    for await (const f of parseSseStream(stream)) {
      expect(f.data).toBe("1");
      break;
    }
    expect(cancelled).toBe(true);
  });
});
