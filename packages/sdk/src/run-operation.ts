// A sandbox run (`POST /v1/instances`) and the extra processes started inside it.

import type { ContreeApi } from "./api.js";
import { abortErrorFrom, Deadline } from "./deadline.js";
import { checkBytes, DEFAULTS, waitLimitMs } from "./defaults.js";
import { CommandFailedError, InvalidArgumentError, isConflict } from "./errors.js";
import type { EventStreamOptions } from "./events.js";
import { isTerminal, outputText } from "./events.js";
import type { RequestOptions } from "./http.js";
import type { ImageHandle } from "./image-handle.js";
import { OperationHandle, resultImageUuid, type WaitOptions } from "./operation-handle.js";
import { OutputDispatcher } from "./output.js";
import { printAs } from "./printable.js";
import { sleep } from "./retry.js";
import { closableStreamRepr, decodeStreamRepr } from "./stream-repr.js";
import { Terminal, type TerminalOptions } from "./terminal.js";
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
  /** Bytes of stdout and of stderr kept. Default 65 536 (64 KiB, as the official CLI). */
  truncateOutputAt?: number;
  /**
   * A pseudo-terminal for the process (server extension): one output stream (stdout), stdin open
   * for typing. Attach with `terminal()`.
   */
  tty?: boolean;
  /** Terminal rows at start (default 24). */
  rows?: number;
  /** Terminal columns at start (default 80). */
  cols?: number;
}

/** Whether `check` fails this outcome: a non-zero exit, a signal, or the timeout. */
export function failureOf(r: ProcessOutput): boolean {
  return r.timedOut || r.exitCode !== 0 || r.signal > 0;
}

export class RunOperation extends OperationHandle<RunResult> {
  constructor(
    api: ContreeApi,
    id: string,
    /** The image this run started from (null when the handle was made from a bare id). */
    readonly image: ImageHandle | null,
    private readonly makeImage: (uuid: string) => ImageHandle,
    /** `check` and output callbacks given to `run()`: the defaults of `wait()` and `result()`. */
    private readonly defaults: WaitOptions = {},
    /** How errors name the command. */
    private readonly label = "run",
  ) {
    super(api, id, "instance");
  }

  protected override waitDefaults(): WaitOptions {
    return this.defaults;
  }

  protected override checkResult(r: RunResult): void {
    if (failureOf(r)) throw new CommandFailedError(`${this.label} (operation ${this.id})`, r);
  }

  protected override finalOutput(doc: OperationResponse): { stdout: string; stderr: string } {
    const meta = doc.metadata as OperationInstanceMetadata | null | undefined;
    const o = output(meta?.result);
    return { stdout: o.stdout, stderr: o.stderr };
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

  /** What printing shows: the operation's id and the image it started from. */
  override toJSON(): { id: string; kind: "instance"; image: string | null } {
    return { id: this.id, kind: "instance", image: this.image?.uuid ?? null };
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

  /** Attaches to the main process's terminal (the run must have `tty: true`). */
  terminal(opts?: TerminalOptions): Promise<Terminal> {
    return this.main.terminal(opts);
  }

  /**
   * The URL of `port` inside this running instance through the server's proxy (HTTP and
   * WebSocket; `path` and its query are passed on as they are). It takes the API token like any
   * call (`Authorization: Bearer …`), which the sandbox never sees. Nothing is sent.
   */
  async portUrl(port: number, path = "/"): Promise<string> {
    const p = checkPort(port);
    if (!path.startsWith("/")) throw new InvalidArgumentError("path must start with /");
    return this.api.transport.url(`/operations/${encodeURIComponent(this.id)}/ports/${p}${path}`);
  }

  /**
   * A signed URL of `port` that needs no token, for a browser or a webhook, valid for
   * `expiresInSec` (default 3600, at most 7 days). Append the app's path to `url`.
   */
  async signedPortUrl(
    port: number,
    opts: { expiresInSec?: number } & RequestOptions = {},
  ): Promise<{ url: string; expiresAt: Date }> {
    const { expiresInSec, ...request } = opts;
    const body = expiresInSec === undefined ? {} : { expires_in_seconds: expiresInSec };
    const r = await this.api.createPortUrl(this.id, checkPort(port), body, request);
    return { url: r.url, expiresAt: new Date(r.expires_at) };
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
    spec.truncate_output_at =
      checkBytes("truncateOutputAt", opts.truncateOutputAt) ?? DEFAULTS.truncateOutputAt;
    if (opts.stdin !== undefined || opts.keepStdinOpen) {
      spec.stdin = closableStreamRepr(opts.stdin ?? "", !opts.keepStdinOpen);
    }
    Object.assign(spec, ttySpec(opts));
    for (let attempt = 0; ; attempt++) {
      try {
        const { spid } = await this.api.startSubprocess(this.id, spec, opts);
        return new SubprocessHandle(this.api, this, spid, commandLabel(command));
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

/** The request's terminal fields: only with `tty: true`. */
export function ttySpec(o: { tty?: boolean; rows?: number; cols?: number }): {
  tty?: boolean;
  rows?: number;
  cols?: number;
} {
  if (!o.tty) return {};
  return {
    tty: true,
    ...(o.rows === undefined ? {} : { rows: o.rows }),
    ...(o.cols === undefined ? {} : { cols: o.cols }),
  };
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new InvalidArgumentError("port must be an integer from 1 to 65535");
  return port;
}

/** Exec form for an argv array, shell form for a string unless `shell` says otherwise. */
export function commandSpec(
  command: string | readonly string[],
  args: string[] | undefined,
  shell: boolean | undefined,
): { command: string; args?: string[]; shell: boolean } {
  if (typeof command === "string") {
    if (command === "") throw new InvalidArgumentError("command must not be empty");
    const spec: { command: string; args?: string[]; shell: boolean } = { command, shell: shell ?? true };
    if (args) spec.args = args;
    return spec;
  }
  const [head, ...rest] = command;
  if (head === undefined || head === "") throw new InvalidArgumentError("command must not be empty");
  return { command: head, args: [...rest, ...(args ?? [])], shell: shell ?? false };
}

/** A command as error messages name it: `exec "ls -l"`, shortened. */
export function commandLabel(command: string | readonly string[]): string {
  const text = typeof command === "string" ? command : command.join(" ");
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 77)}...` : text);
}

export class SubprocessHandle {
  readonly #api: ContreeApi;

  constructor(
    api: ContreeApi,
    readonly operation: RunOperation,
    /** Process id within the operation (1 = the main process, ≥ 2 = started by `exec`). */
    readonly spid: number,
    private readonly label = `process ${spid}`,
  ) {
    this.#api = api;
  }

  private get api(): ContreeApi {
    return this.#api;
  }

  toJSON(): { operationId: string; spid: number } {
    return { operationId: this.operation.id, spid: this.spid };
  }

  /** Writes to stdin (requires `keepStdinOpen` at exec). */
  async write(data: string | Uint8Array, opts?: RequestOptions): Promise<void> {
    await this.api.writeSubprocessStdin(this.operation.id, this.spid, closableStreamRepr(data, false), opts);
  }

  /** Closes stdin. */
  async close(opts?: RequestOptions): Promise<void> {
    await this.api.writeSubprocessStdin(this.operation.id, this.spid, closableStreamRepr("", true), opts);
  }

  /** Attaches to the process's terminal (it must have been started with `tty: true`). */
  terminal(opts?: TerminalOptions): Promise<Terminal> {
    return Terminal.open(this.api.transport, this.operation.id, this.spid, opts);
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

  /**
   * Waits for the process's `exit` event, then returns its folded result. `onStdout`/`onStderr` get
   * its output meanwhile (from its start: the log replays); `check` throws CommandFailedError on a
   * non-zero exit or a signal; `waitTimeoutMs` bounds the wait, and with `cancelOnAbort` the process
   * is killed when it expires.
   */
  async result(opts: WaitOptions = {}): Promise<SubprocessResult> {
    const deadline = new Deadline(opts.signal, waitLimitMs(opts), `waiting for ${this.label}`);
    const out = new OutputDispatcher(opts, this.spid);
    try {
      for await (const event of this.events({ signal: deadline.signal })) {
        await out.push(event);
        if ((event.type === "exit" && event.spid === this.spid) || event.type === "completion") break;
      }
      await out.finish();
      // The folded record may trail the exit event briefly.
      for (let attempt = 0; ; attempt++) {
        const raw = await this.state({ signal: deadline.signal });
        if (raw.state.exit_code !== -1 || raw.state.signal !== -1 || attempt >= 20) {
          const result: SubprocessResult = { ...output(raw), spid: this.spid, raw };
          if (opts.check && failureOf(result)) {
            throw new CommandFailedError(`${this.label} (operation ${this.operation.id})`, result);
          }
          return result;
        }
        await sleep(Math.min(1000, 50 * 2 ** attempt), deadline.signal);
      }
    } catch (e) {
      const reason = deadline.reason;
      if (reason && opts.cancelOnAbort) await this.kill().catch(() => undefined);
      throw reason ?? e;
    } finally {
      deadline.dispose();
    }
  }
}

printAs(RunOperation, "RunOperation");
printAs(SubprocessHandle, "SubprocessHandle");
