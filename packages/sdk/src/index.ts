// Public surface of @contree/sdk.

export type { EventStreamRequest } from "./api.js";
export { ContreeApi, isUuid, uuidFromLocation } from "./api.js";
export type { ContreeClientOptions, ImportOptions } from "./client.js";
export { ContreeClient, createClient, Images, normalizeRegistryRef, Operations } from "./client.js";
export type { AuthType, ConfigOptions, Profile, ResolvedConfig } from "./config.js";
export {
  apiUrlFromBase,
  loadProfile,
  NEBIUS_DEFAULT_URL,
  parseIni,
  resolveConfig,
  selectProfile,
} from "./config.js";
export { DEFAULTS } from "./defaults.js";
export * from "./errors.js";
export type { EventStreamOptions } from "./events.js";
export { isTerminal, outputText, streamEvents } from "./events.js";
export type { FileInput, FileSource, LocalPath } from "./files.js";
export { Files, fileSource, sha256Hex } from "./files.js";
export type { RequestOptions, TransportOptions } from "./http.js";
export { SDK_VERSION, Transport } from "./http.js";
export type { ReadOptions, RunFile, RunFileSpec, RunOptions } from "./image-handle.js";
export { ImageHandle } from "./image-handle.js";
export type { WaitOptions } from "./operation-handle.js";
export { ImportOperation, OperationHandle } from "./operation-handle.js";
export type { OutputCallbacks } from "./output.js";
export type { PageOptions } from "./paginator.js";
export { Paginator } from "./paginator.js";
export type { RetryPolicy } from "./retry.js";
export { backoffDelay, DEFAULT_RETRY_POLICY, isRetryable, parseRetryAfter } from "./retry.js";
export type { ExecOptions, ProcessOutput, RunResult, SubprocessResult } from "./run-operation.js";
export { RunOperation, SubprocessHandle } from "./run-operation.js";
export type { SandboxExecOptions, SandboxOptions, SandboxState } from "./sandbox.js";
export { Sandbox } from "./sandbox.js";
export type { SessionOptions, SessionRunOptions, SessionStep, SessionStepResult } from "./session.js";
export { Session } from "./session.js";
export type { SseFrame, SseParserOptions, SseStreamOptions } from "./sse.js";
export { parseSseStream, SseParser } from "./sse.js";
export {
  decodeStreamRepr,
  encodeStreamRepr,
  StreamReprTextDecoder,
  streamReprToText,
} from "./stream-repr.js";
export type * from "./types.js";
export { TERMINAL_STATUSES } from "./types.js";
