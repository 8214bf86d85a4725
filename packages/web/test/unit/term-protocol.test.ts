import { describe, expect, it } from "vitest";
import {
  closeVerdict,
  exitText,
  parseExit,
  terminalProtocols,
  terminalUrl,
} from "../../src/terminal/term-protocol.js";

describe("terminal channel, as the web console speaks it", () => {
  it("builds the socket URL from the page's origin and API base, never with the token", () => {
    expect(terminalUrl("http://127.0.0.1:8080", "/v1", "ab-cd", 1)).toBe(
      "ws://127.0.0.1:8080/v1/operations/ab-cd/terminal",
    );
    expect(terminalUrl("https://h.example", "/pre/fix/v1", "x/y", 3)).toBe(
      "wss://h.example/pre/fix/v1/operations/x%2Fy/subprocesses/3/terminal",
    );
    expect(terminalProtocols("ctr_secret")).toEqual(["contree.v1", "contree.token.ctr_secret"]);
    expect(terminalProtocols("ctr_secret", "team-a")).toEqual([
      "contree.v1",
      "contree.token.ctr_secret",
      "contree.project.team-a",
    ]);
  });

  it("reads the server's exit message and words it", () => {
    const e = parseExit('{"type":"exit","exit_code":3,"signal":-1,"timed_out":false}');
    expect(e).toEqual({ exitCode: 3, signal: -1, timedOut: false });
    expect(exitText(e!)).toBe("The process exited with code 3.");
    expect(exitText({ exitCode: -1, signal: 9, timedOut: false })).toBe(
      "The process was ended by signal 9 (SIGKILL).",
    );
    expect(exitText({ exitCode: -1, signal: 9, timedOut: true })).toMatch(/ran out of time/);
    expect(parseExit('{"type":"resize","rows":1,"cols":1}')).toBeUndefined();
    expect(parseExit("not json")).toBeUndefined();
    expect(parseExit("null")).toBeUndefined();
  });

  it("tells each close apart: too slow reconnects at once, shutdown and loss back off", () => {
    expect(closeVerdict(4008, true)).toMatchObject({
      immediate: true,
      message: expect.stringMatching(/4 MiB/),
    });
    expect(closeVerdict(1001, true)).toMatchObject({
      immediate: false,
      message: expect.stringMatching(/shutting down/),
    });
    expect(closeVerdict(1006, false)).toMatchObject({
      immediate: false,
      message: expect.stringMatching(/Could not attach/),
    });
    expect(closeVerdict(1006, true)).toMatchObject({
      immediate: false,
      message: expect.stringMatching(/connection was lost \(close code 1006\)/),
    });
  });
});
