// A sandbox run (`POST /v1/instances`) and the extra processes started inside it.

import type { ContreeApi } from "./api.js";
import { abortErrorFrom, Deadline } from "./deadline.js";
import { isConflict } from "./errors.js";
import type { EventStreamOptions } from "./events.js";
import { isTerminal, outputText } from "./events.js";
import type { RequestOptions } from "./http.js";
import type { ImageHandle } from "./image-handle.js";
import { OperationHandle, resultImageUuid, type WaitOptions } from "./operation-handle.js";
import { sleep } from "./retry.js";
import { closableStreamRepr, decodeStreamRepr } from "./stream-repr.js";
import type {
  ExecSpec,
  InstanceResult,
  OperationInstanceMetadata,
  OperationResponse,
  OperationStatus,
  StreamRepr,
} from "./types.js";

export interface ProcessOutput {
  exitCode: number;
  /** -1 when the process was not killed by a signal. */
  signal: number;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  stdoutBytes: Uint8Array;
  stderrBytes: Uint8Array;
  /** The capture hit `truncate_output_at`. */
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
}

export interface RunResult extends ProcessOutput {
  operationId: string;
  status: OperationStatus;
  /** The image the run started from (null if unknown to the handle). */
  parent: ImageHandle | null;
  /** The snapshot after the run; null for disposable runs. Run from it to continue, or branch. */
  image: ImageHandle | null;
  /** Seconds. */
  duration: number;
  operation: OperationResponse;
}

export interface SubprocessResult extends ProcessOutput {
  spid: number;
  raw: InstanceResult;
}

function output(result: InstanceResult | null | undefined): ProcessOutput {
  const text = (r: StreamRepr | undefined) => new TextDecoder().decode(decodeStreamRepr(r));
  return {
    exitCode: result?.state.exit_code ?? -1,
    signal: result?.state.signal ?? -1,
    timedOut: result?.state.timed_out ?? false,
    stdout: text(result?.stdout),
    stderr: text(result?.stderr),
    stdoutBytes: decodeStreamRepr(result?.stdout),
    stderrBytes: decodeStreamRepr(result?.stderr),
    stdoutTruncated: result?.stdout?.truncated ?? false,
    stderrTruncated: result?.stderr?.truncated ?? false,
  };
}

export interface ExecOptions extends RequestOptions {
  args?: string[];
  /** Default: true when `command` is a string, false for an argv array. */
  shell?: boolean;
  env?: Record<string, string>;
  cwd?: string;
  uid?: number;
  gid?: number;
  /** Initial stdin. */
  stdin?: string | Uint8Array;
  /** Keep stdin open for `write()`; close it with `close()`. Default false. */
  keepStdinOpen?: boolean;
  truncateOutputAt?: number;
}

export class RunOperation extends OperationHandle<RunResult> {
  constructor(
    api: ContreeApi,
    id: string,
    /** The image this run started from (null when the handle was made from a bare id). */
    readonly image: ImageHandle | null,
    private readonly makeImage: (uuid: string) => ImageHandle,
  ) {
    super(api, id, "instance");
  }

  protected toResult(doc: OperationResponse): RunResult {
    const meta = doc.metadata as OperationInstanceMetadata | null | undefined;
    const imageUuid = resultImageUuid(doc);
    return {
      ...output(meta?.result),
      operationId: doc.uuid,
      status: doc.status,
      parent: this.image,
      image: imageUuid ? this.makeImage(imageUuid) : null,
      duration: doc.duration ?? 0,
      operation: doc,
    };
  }

  /** Decoded stdout chunks of the main process, live. */
  stdout(opts: EventStreamOptions = {}): AsyncGenerator<string, void, undefined> {
    return outputText(this.events({ ...opts, spid: 1 }), "stdout", 1);
  }

  stderr(opts: EventStreamOptions = {}): AsyncGenerator<string, void, undefined> {
    return outputText(this.events({ ...opts, spid: 1 }), "stderr", 1);
  }

  /** The main process (spid 1): `write()`/`close()` its stdin (needs `keepStdinOpen` at run), signal it. */
  get main(): SubprocessHandle {
    return new SubprocessHandle(this.api, this, 1);
  }

  /**
   * Starts another process in the running sandbox. Right after the start the server may not take
   * processes yet: a 425 is retried by the transport, and a 409 is retried while the run is still active.
   */
  async exec(command: string | readonly string[], opts: ExecOptions = {}): Promise<SubprocessHandle> {
    const spec: ExecSpec = commandSpec(command, opts.args, opts.shell);
    if (opts.env) spec.env = opts.env;
    if (opts.cwd !== undefined) spec.cwd = opts.cwd;
    if (opts.uid !== undefined) spec.uid = opts.uid;
    if (opts.gid !== undefined) spec.gid = opts.gid;
    if (opts.truncateOutputAt !== undefined) spec.truncate_output_at = opts.truncateOutputAt;
    if (opts.stdin !== undefined || opts.keepStdinOpen) {
      spec.stdin = closableStreamRepr(opts.stdin ?? "", !opts.keepStdinOpen);
    }
    for (let attempt = 0; ; attempt++) {
      try {
        const { spid } = await this.api.startSubprocess(this.id, spec, opts);
        return new SubprocessHandle(this.api, this, spid);
      } catch (e) {
        if (!isConflict(e) || attempt >= 30) throw e;
        if (isTerminal((await this.status(opts)).status)) throw e;
        try {
          await sleep(Math.min(1000, 25 * 2 ** attempt), opts.signal);
        } catch (reason) {
          throw abortErrorFrom(reason);
        }
      }
    }
  }
}

/** Exec form for an argv array, shell form for a string unless `shell` says otherwise. */
export function commandSpec(
  command: string | readonly string[],
  args: string[] | undefined,
  shell: boolean | undefined,
): { command: string; args?: string[]; shell: boolean } {
  if (typeof command === "string") {
    const spec: { command: string; args?: string[]; shell: boolean } = { command, shell: shell ?? true };
    if (args) spec.args = args;
    return spec;
  }
  const [head, ...rest] = command;
  if (head === undefined) throw new TypeError("command must not be empty");
  return { command: head, args: [...rest, ...(args ?? [])], shell: shell ?? false };
}

export class SubprocessHandle {
  constructor(
    private readonly api: ContreeApi,
    readonly operation: RunOperation,
    /** Process id within the operation (≥ 2). */
    readonly spid: number,
  ) {}

  /** Writes to stdin (requires `keepStdinOpen` at exec). */
  async write(data: string | Uint8Array, opts?: RequestOptions): Promise<void> {
    await this.api.writeSubprocessStdin(this.operation.id, this.spid, closableStreamRepr(data, false), opts);
  }

  /** Closes stdin. */
  async close(opts?: RequestOptions): Promise<void> {
    await this.api.writeSubprocessStdin(this.operation.id, this.spid, closableStreamRepr("", true), opts);
  }

  /** Sends a signal by name (TERM, KILL, INT, HUP, …). */
  signal(name = "TERM", opts?: RequestOptions): Promise<void> {
    return this.api.signalSubprocess(this.operation.id, this.spid, name, opts);
  }

  kill(opts?: RequestOptions): Promise<void> {
    return this.signal("KILL", opts);
  }

  events(opts: EventStreamOptions = {}) {
    return this.operation.events({ ...opts, spid: this.spid });
  }

  stdout(opts: EventStreamOptions = {}): AsyncGenerator<string, void, undefined> {
    return outputText(this.events(opts), "stdout", this.spid);
  }

  stderr(opts: EventStreamOptions = {}): AsyncGenerator<string, void, undefined> {
    return outputText(this.events(opts), "stderr", this.spid);
  }

  /** Folded state so far; exit code and signal are -1 while it runs. */
  state(opts?: RequestOptions): Promise<InstanceResult> {
    return this.api.getSubprocess(this.operation.id, this.spid, opts);
  }

  /** Waits for the process's `exit` event, then returns its folded result. */
  async result(opts: WaitOptions = {}): Promise<SubprocessResult> {
    const deadline = new Deadline(opts.signal, opts.timeoutMs, `waiting for subprocess ${this.spid}`);
    try {
      for await (const event of this.events({ signal: deadline.signal })) {
        if ((event.type === "exit" && event.spid === this.spid) || event.type === "completion") break;
      }
      // The folded record may trail the exit event briefly.
      for (let attempt = 0; ; attempt++) {
        const raw = await this.state({ signal: deadline.signal });
        if (raw.state.exit_code !== -1 || raw.state.signal !== -1 || attempt >= 20) {
          return { ...output(raw), spid: this.spid, raw };
        }
        await sleep(Math.min(1000, 50 * 2 ** attempt), deadline.signal);
      }
    } catch (e) {
      throw deadline.reason ?? e;
    } finally {
      deadline.dispose();
    }
  }
}
