// A live sandbox: one long-lived instance whose processes share memory, /tmp and running daemons,
// the shape E2B and Daytona users know. Built on a run whose main process is `cat` reading a stdin
// that stays open: every `exec` is a subprocess of that run (POST /v1/operations/{id}/subprocesses),
// `commit()` closes that stdin, so `cat` exits 0 and the run snapshots the filesystem as its result
// image, and `kill()` cancels the run (no image). Its lifetime is the run's `timeoutSec`.

import { Deadline } from "./deadline.js";
import { DEFAULTS, MAX_TRUNCATE_OUTPUT_AT, runSeconds, waitLimitMs } from "./defaults.js";
import {
  CommandFailedError,
  ContreeError,
  isConflict,
  NotFoundError,
  OperationFailedError,
  ProtocolError,
} from "./errors.js";
import type { RequestOptions } from "./http.js";
import type { EgressRules, ImageHandle, RunFile } from "./image-handle.js";
import type { WaitOptions } from "./operation-handle.js";
import { printAs } from "./printable.js";
import {
  type ExecOptions,
  failureOf,
  type RunOperation,
  type SubprocessHandle,
  type SubprocessResult,
} from "./run-operation.js";

export interface SandboxOptions extends RequestOptions {
  /** How long the sandbox may live, in whole seconds (then it is killed). Default 300. */
  timeoutSec?: number;
  /** How long `client.sandbox()` waits for it to start, in ms. Default: no limit. */
  waitTimeoutMs?: number;
  /** Environment of every process (an exec's own `env` adds to it). */
  env?: Record<string, string>;
  /** Working directory of every process (an exec's own `cwd` wins). Default `/root`. */
  cwd?: string;
  uid?: number;
  gid?: number;
  hostname?: string;
  /**
   * Outbound networking: `true`, or an egress policy `{ allow?, deny? }` (networking on, only
   * what it allows: domains, `*.suffix` domains, IPv4 CIDRs; deny beats allow).
   */
  networking?: boolean | EgressRules;
  /** Files placed before it starts, as for `run()`. */
  files?: Record<string, RunFile>;
  maxLayerBytes?: number;
}

/** Options of `exec`: the process (`env`, `cwd`, `stdin`, …) and the wait (`onStdout`, `check`, …). */
export interface SandboxExecOptions extends Omit<ExecOptions, "keepStdinOpen">, WaitOptions {}

export type SandboxState = "running" | "committed" | "killed";

/** Exit codes of the read helper, chosen to be unlike anything `cat` returns. */
const MISSING = 44;
const DIRECTORY = 45;
const READ_SCRIPT = `if [ ! -e "$1" ]; then exit ${MISSING}; fi; if [ -d "$1" ]; then exit ${DIRECTORY}; fi; exec cat "$1"`;
const WRITE_SCRIPT = `case "$1" in */*) mkdir -p "\${1%/*}" || exit 1;; esac; cat > "$1" || exit 1; if [ -n "$2" ]; then chmod "$2" "$1"; fi`;
/** Bytes per stdin write: a JSON body of at most 16 MiB holds 12 MiB of base64. */
const WRITE_CHUNK = 4 * 1024 * 1024;

export class Sandbox {
  readonly #op: RunOperation;
  readonly #timeoutSec: number;
  #state: SandboxState = "running";

  private constructor(
    op: RunOperation,
    /** The image it started from. */
    readonly image: ImageHandle,
    timeoutSec: number,
  ) {
    this.#op = op;
    this.#timeoutSec = timeoutSec;
  }

  /** @internal Use `client.sandbox(image)`. Starts the instance and resolves once its main process runs. */
  static async start(image: ImageHandle, opts: SandboxOptions = {}): Promise<Sandbox> {
    const timeoutSec = runSeconds(opts, DEFAULTS.sandboxTimeoutSec);
    const deadline = new Deadline(opts.signal, waitLimitMs(opts), "starting a sandbox");
    let op: RunOperation | undefined;
    try {
      const { waitTimeoutMs: _w, ...rest } = opts;
      op = await image.run(["cat"], { ...rest, timeoutSec, keepStdinOpen: true, signal: deadline.signal });
      for await (const e of op.events({ signal: deadline.signal })) {
        if (e.type === "spawn" && e.spid === 1) return new Sandbox(op, image, timeoutSec);
        if (e.type === "completion") break;
      }
      // It ended before its main process ran: say why.
      const doc = await op.waitTerminal({ signal: deadline.signal });
      if (doc.status !== "SUCCESS") throw new OperationFailedError(doc);
      throw new CommandFailedError(
        `sandbox ${op.id}: its main process (cat) could not run`,
        await op.wait({ signal: deadline.signal }),
      );
    } catch (e) {
      const reason = deadline.reason;
      if (reason && op) await op.cancel().catch(() => undefined);
      throw reason ?? e;
    } finally {
      deadline.dispose();
    }
  }

  /** The instance's operation id. */
  get id(): string {
    return this.#op.id;
  }

  /** The run behind the sandbox (events, status). */
  get operation(): RunOperation {
    return this.#op;
  }

  /** `RunOperation.portUrl`: `port` inside the sandbox through the server's proxy, with the API token. */
  portUrl(port: number, path = "/"): Promise<string> {
    return this.#op.portUrl(port, path);
  }

  /** `RunOperation.signedPortUrl`: a signed URL of `port` that needs no token, until it expires. */
  signedPortUrl(
    port: number,
    opts: { expiresInSec?: number } & RequestOptions = {},
  ): Promise<{ url: string; expiresAt: Date }> {
    return this.#op.signedPortUrl(port, opts);
  }

  /** `running` until `commit()` or `kill()`. */
  get state(): SandboxState {
    return this.#state;
  }

  /**
   * Runs a process inside the sandbox and waits for it. State persists between execs: files, and
   * processes left running (`spawn`, or `cmd &`). A string command runs through `/bin/sh -c`.
   * `onStdout`/`onStderr` get the output live; `check` throws CommandFailedError on a non-zero exit.
   */
  async exec(command: string | readonly string[], opts: SandboxExecOptions = {}): Promise<SubprocessResult> {
    const deadline = new Deadline(opts.signal, waitLimitMs(opts), "exec in the sandbox");
    try {
      const { waitTimeoutMs: _w, timeoutMs: _t, ...rest } = opts;
      const proc = await this.spawn(command, { ...rest, signal: deadline.signal });
      return await proc.result({ ...rest, signal: deadline.signal });
    } catch (e) {
      throw deadline.reason ?? e;
    } finally {
      deadline.dispose();
    }
  }

  /**
   * Starts a process inside the sandbox and returns at once: stream its `stdout()`, `write()` to
   * its stdin (with `keepStdinOpen`), `signal()` it, await `result()`. It runs until it exits or
   * the sandbox ends.
   */
  spawn(command: string | readonly string[], opts: ExecOptions = {}): Promise<SubprocessHandle> {
    return this.#op.exec(command, opts);
  }

  /** Writes a file inside the sandbox (parent directories are created). Needs `/bin/sh` and `cat`. */
  async write(
    path: string,
    content: string | Uint8Array,
    opts: RequestOptions & { mode?: string | number } = {},
  ): Promise<void> {
    const bytes = typeof content === "string" ? new TextEncoder().encode(content) : content;
    const mode =
      opts.mode === undefined ? "" : typeof opts.mode === "number" ? opts.mode.toString(8) : opts.mode;
    const first = bytes.subarray(0, WRITE_CHUNK);
    const more = bytes.byteLength > WRITE_CHUNK;
    const proc = await this.spawn(WRITE_SCRIPT, {
      ...opts,
      args: ["sh", path, mode],
      stdin: first,
      keepStdinOpen: more,
    });
    if (more) {
      for (let at = WRITE_CHUNK; at < bytes.byteLength; at += WRITE_CHUNK) {
        await proc.write(bytes.subarray(at, at + WRITE_CHUNK), opts);
      }
      await proc.close(opts);
    }
    const r = await proc.result(opts.signal ? { signal: opts.signal } : {});
    if (failureOf(r)) throw new CommandFailedError(`writing ${path} in sandbox ${this.id}`, r);
  }

  /**
   * Reads a file inside the sandbox (up to 16 MiB; commit and use `image.stream()` for more).
   * A missing path throws NotFoundError. Needs `/bin/sh` and `cat`.
   */
  read(path: string, opts: RequestOptions & { as: "text" }): Promise<string>;
  read(path: string, opts?: RequestOptions & { as?: "bytes" }): Promise<Uint8Array>;
  async read(
    path: string,
    opts: RequestOptions & { as?: "bytes" | "text" } = {},
  ): Promise<Uint8Array | string> {
    const proc = await this.spawn(READ_SCRIPT, {
      ...opts,
      args: ["sh", path],
      truncateOutputAt: MAX_TRUNCATE_OUTPUT_AT,
    });
    const r = await proc.result(opts.signal ? { signal: opts.signal } : {});
    if (r.exitCode === MISSING) throw new NotFoundError(`${path}: no such file in sandbox ${this.id}`);
    if (r.exitCode === DIRECTORY) {
      throw new ContreeError("unprocessable", `${path} is a directory in sandbox ${this.id}`);
    }
    if (failureOf(r)) throw new CommandFailedError(`reading ${path} in sandbox ${this.id}`, r);
    if (r.stdoutTruncated) {
      throw new ContreeError(
        "payload_too_large",
        `${path} is larger than ${MAX_TRUNCATE_OUTPUT_AT} bytes; commit() and read it from the image`,
      );
    }
    return opts.as === "text" ? r.stdout : r.stdoutBytes;
  }

  /**
   * Ends the sandbox and returns its filesystem as a new image (processes still running are killed
   * first). Throws CommandFailedError if the sandbox ran out of its `timeoutSec` before, and
   * OperationFailedError if it was killed.
   */
  async commit(opts: Pick<WaitOptions, "signal" | "waitTimeoutMs"> = {}): Promise<ImageHandle> {
    try {
      await this.#op.main.close(opts.signal ? { signal: opts.signal } : {});
    } catch (e) {
      if (!isConflict(e)) throw e; // it has ended already: the result says how
    }
    const r = await this.#op.wait(opts);
    this.#state = "committed";
    if (r.timedOut) {
      throw new CommandFailedError(
        `sandbox ${this.id} reached its timeoutSec (${this.#timeoutSec} s) before commit()`,
        r,
      );
    }
    if (failureOf(r)) throw new CommandFailedError(`sandbox ${this.id}'s main process`, r);
    if (!r.image) throw new ProtocolError(`sandbox ${this.id} committed without a result image`);
    return r.image;
  }

  /** Ends the sandbox without an image (cancels its run). Does nothing if it has ended already. */
  async kill(opts: RequestOptions = {}): Promise<void> {
    try {
      await this.#op.cancel(opts);
    } catch (e) {
      if (!isConflict(e)) throw e;
    }
    await this.#op.waitTerminal(opts.signal ? { signal: opts.signal } : {});
    if (this.#state === "running") this.#state = "killed";
  }

  /** What printing shows: ids and state. */
  toJSON(): { id: string; image: string; state: SandboxState } {
    return { id: this.id, image: this.image.uuid, state: this.#state };
  }
}

printAs(Sandbox, "Sandbox");
