// Public surface of @contree/sdk.

export { ContreeClient, createClient, Images, Operations, normalizeRegistryRef } from "./client.js";
export type { ContreeClientOptions, ImportOptions } from "./client.js";
export { ContreeApi, isUuid, uuidFromLocation } from "./api.js";
export type { EventStreamRequest } from "./api.js";
export { Files, fileSource, sha256Hex } from "./files.js";
export type { FileInput, FileSource } from "./files.js";
export { ImageHandle } from "./image-handle.js";
export type { ReadOptions, RunFile, RunOptions } from "./image-handle.js";
export { OperationHandle, ImportOperation } from "./operation-handle.js";
export type { WaitOptions } from "./operation-handle.js";
export { RunOperation, SubprocessHandle } from "./run-operation.js";
export type { ExecOptions, ProcessOutput, RunResult, SubprocessResult } from "./run-operation.js";
export { Paginator } from "./paginator.js";
export type { PageOptions } from "./paginator.js";
export { streamEvents, outputText, isTerminal } from "./events.js";
export type { EventStreamOptions } from "./events.js";
export { SseParser, parseSseStream } from "./sse.js";
export type { SseFrame, SseParserOptions } from "./sse.js";
export {
  decodeStreamRepr,
  encodeStreamRepr,
  streamReprToText,
  StreamReprTextDecoder,
} from "./stream-repr.js";
export { DEFAULT_RETRY_POLICY, backoffDelay, isRetryable, parseRetryAfter } from "./retry.js";
export type { RetryPolicy } from "./retry.js";
export { apiUrlFromBase, loadProfile, parseIni, resolveConfig, selectProfile, NEBIUS_DEFAULT_URL } from "./config.js";
export type { AuthType, ConfigOptions, Profile, ResolvedConfig } from "./config.js";
export { SDK_VERSION, Transport } from "./http.js";
export type { RequestOptions, TransportOptions } from "./http.js";
export * from "./errors.js";
export type * from "./types.js";
export { TERMINAL_STATUSES } from "./types.js";
