import { describe, expect, it } from "vitest";
import { AnsiParser, paletteColour } from "../../src/components/ops-ansi.js";
import { SseParser } from "../../src/components/ops-sse.js";

describe("ANSI output parser (web console)", () => {
  it("turns SGR codes into styles and keeps the text", () => {
    const p = new AnsiParser();
    expect(p.push("\x1b[31mred\x1b[0m plain \x1b[1;4mbu\x1b[22mu\x1b[24m")).toEqual([
      { text: "red", style: { fg: 1 } },
      { text: " plain ", style: {} },
      { text: "bu", style: { bold: true, underline: true } },
      { text: "u", style: { underline: true } },
    ]);
  });

  it("reads bright, 256-colour and 24-bit colours, foreground and background", () => {
    const p = new AnsiParser();
    expect(p.push("\x1b[92;104ma\x1b[38;5;208;48;2;1;2;255mb\x1b[39;49mc")).toEqual([
      { text: "a", style: { fg: 10, bg: 12 } },
      { text: "b", style: { fg: 208, bg: "#0102ff" } },
      { text: "c", style: {} },
    ]);
    expect(paletteColour(208)).toBe("#ff8700");
    expect(paletteColour(232)).toBe("#080808");
    expect(paletteColour(16)).toBe("#000000");
  });

  it("drops every other escape: cursor moves, erases, OSC titles and hyperlinks, control bytes", () => {
    const p = new AnsiParser();
    const text = (s: string) =>
      p
        .push(s)
        .map((x) => x.text)
        .join("");
    expect(text("a\x1b[2K\x1b[1;1Hb\x1b]0;title\x07c\x1b]8;;http://x\x1b\\d\x1bce\r\x00\x07f\tg\n")).toBe(
      "abcdef\tg\n",
    );
  });

  it("keeps a sequence split across chunks until it is complete", () => {
    const p = new AnsiParser();
    expect(p.push("x\x1b[3")).toEqual([{ text: "x", style: {} }]);
    expect(p.push("2my")).toEqual([{ text: "y", style: { fg: 2 } }]);
    expect(p.push("\x1b")).toEqual([]);
    expect(p.push("[0mz")).toEqual([{ text: "z", style: {} }]);
    expect(p.push("\x1b]0;ti")).toEqual([]);
    expect(p.push("tle\x07w")).toEqual([{ text: "w", style: {} }]);
  });

  it("gives up on an escape that never ends instead of holding the output back", () => {
    const p = new AnsiParser();
    expect(p.push(`\x1b[${"1;".repeat(100)}`)).toEqual([]); // unterminated: held …
    expect(p.push(";".repeat(100))).toEqual([]); // … until it passes the bound and is dropped
    expect(p.push("after")).toEqual([{ text: "after", style: {} }]);
  });

  it("ignores malformed SGR parameters without losing text", () => {
    const p = new AnsiParser();
    expect(p.push("\x1b[38;9mq\x1b[?25hr")).toEqual([
      { text: "q", style: {} },
      { text: "r", style: {} },
    ]);
  });
});

describe("SSE framing (web console)", () => {
  it("parses frames split anywhere, skips comments and keeps the rest for the next chunk", () => {
    const p = new SseParser();
    const all = 'id: 1\nevent: spawn\ndata: {"id":1}\n\n: keepalive\n\nid: 2\r\ndata: a\r\ndata: b\r\n\r\n';
    const frames = [];
    for (const ch of all) frames.push(...p.push(ch));
    expect(frames).toEqual([
      { id: "1", event: "spawn", data: '{"id":1}' },
      { id: "2", data: "a\nb" },
    ]);
    expect(p.push("id: 3\ndata: x")).toEqual([]);
    expect(p.push("\n\n")).toEqual([{ id: "3", data: "x" }]);
  });
});
