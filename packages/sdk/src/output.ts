// `onStdout` / `onStderr`: the callback form of a process's live output, fed from the event stream a
// waiting call reads anyway. The log replays from its start, so a callback sees the whole output even
// when the wait begins after the process has printed.

import { StreamReprTextDecoder } from "./stream-repr.js";
import type { OperationEvent } from "./types.js";

export interface OutputCallbacks {
  /** Each decoded chunk of stdout as it arrives. Awaited: a slow callback slows the stream, nothing is dropped. */
  onStdout?: (chunk: string) => void | Promise<void>;
  /** Each decoded chunk of stderr as it arrives. */
  onStderr?: (chunk: string) => void | Promise<void>;
}

/** Decodes one process's output events and hands the text to the callbacks. */
export class OutputDispatcher {
  private readonly stdout = new StreamReprTextDecoder();
  private readonly stderr = new StreamReprTextDecoder();
  /** Whether any output event of the process was seen (else the final result is replayed). */
  private seen = false;

  constructor(
    private readonly callbacks: OutputCallbacks,
    private readonly spid: number,
  ) {}

  get active(): boolean {
    return this.callbacks.onStdout !== undefined || this.callbacks.onStderr !== undefined;
  }

  async push(event: OperationEvent): Promise<void> {
    if (!this.active || (event.type !== "stdout" && event.type !== "stderr")) return;
    if ((event.spid ?? 1) !== this.spid) return;
    this.seen = true;
    const text = (event.type === "stdout" ? this.stdout : this.stderr).push(event.data);
    if (text) await this.emit(event.type, text);
  }

  /**
   * The end of the process: flushes a trailing partial character, or, when the event stream carried
   * no output (a server without events), hands over the captured output once.
   */
  async finish(final?: { stdout: string; stderr: string }): Promise<void> {
    if (!this.active) return;
    if (!this.seen && final) {
      if (final.stdout) await this.emit("stdout", final.stdout);
      if (final.stderr) await this.emit("stderr", final.stderr);
      return;
    }
    const out = this.stdout.flush();
    if (out) await this.emit("stdout", out);
    const err = this.stderr.flush();
    if (err) await this.emit("stderr", err);
  }

  private async emit(stream: "stdout" | "stderr", text: string): Promise<void> {
    await (stream === "stdout" ? this.callbacks.onStdout : this.callbacks.onStderr)?.(text);
  }
}
