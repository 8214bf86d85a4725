// Public surface of @contree/sdk: exactly what API.md documents. The modules' own helpers (the
// transport, SSE and INI parsing, retry arithmetic, byte codecs) stay internal, so they can change
// without breaking anyone; scripts/gen-api-reference.mjs fails if a public signature names one.

export type { CreateTokenOptions } from "./admin.js";
export { Admin } from "./admin.js";
export type { EventStreamRequest } from "./api.js";
export { ContreeApi } from "./api.js";
export type { ContreeClientOptions, ImportOptions } from "./client.js";
export { ContreeClient, createClient, Images, Operations } from "./client.js";
export type { ConfigOptions } from "./config.js";
export { DEFAULTS } from "./defaults.js";
export type { ContreeErrorInit, ContreeErrorKind } from "./errors.js";
export {
  AbortError,
  BadRequestError,
  CommandFailedError,
  ConfigurationError,
  ConflictError,
  ContreeError,
  ForbiddenError,
  GoneError,
  InvalidArgumentError,
  isAbort,
  isBadRequest,
  isCommandFailed,
  isConfigurationError,
  isConflict,
  isContreeError,
  isForbidden,
  isGone,
  isInvalidArgument,
  isLocalFileError,
  isNetworkError,
  isNotFound,
  isOperationFailed,
  isPayloadTooLarge,
  isProtocolError,
  isRateLimited,
  isServerError,
  isTimeout,
  isTooEarly,
  isUnauthorized,
  isUnprocessable,
  LocalFileError,
  NetworkError,
  NotFoundError,
  OperationFailedError,
  PayloadTooLargeError,
  ProtocolError,
  RateLimitedError,
  ServerError,
  TimeoutError,
  TooEarlyError,
  UnauthorizedError,
  UnprocessableError,
} from "./errors.js";
export type { EventStreamOptions } from "./events.js";
export { isTerminal } from "./events.js";
export type { FileInput, FileSource, LocalPath } from "./files.js";
export { Files } from "./files.js";
export type { RequestBody, RequestOptions } from "./http.js";
export { SDK_VERSION } from "./http.js";
export type { EgressRules, ReadOptions, RunFile, RunFileSpec, RunOptions } from "./image-handle.js";
export { ImageHandle } from "./image-handle.js";
export type { WaitOptions } from "./operation-handle.js";
export { ImportOperation, OperationHandle } from "./operation-handle.js";
export type { OutputCallbacks } from "./output.js";
export type { PageOptions } from "./paginator.js";
export { Paginator } from "./paginator.js";
export type { RetryPolicy } from "./retry.js";
export type { ExecOptions, ProcessOutput, RunResult, SubprocessResult } from "./run-operation.js";
export { RunOperation, SubprocessHandle } from "./run-operation.js";
export type { SandboxExecOptions, SandboxOptions, SandboxState } from "./sandbox.js";
export { Sandbox } from "./sandbox.js";
export type { SessionOptions, SessionRunOptions, SessionStep, SessionStepResult } from "./session.js";
export { Session } from "./session.js";
export { decodeStreamRepr, streamReprToText } from "./stream-repr.js";
export type { TerminalExit, TerminalOptions, WebSocketConstructor } from "./terminal.js";
export { Terminal, terminalPath } from "./terminal.js";
export type * from "./types.js";
export { TERMINAL_STATUSES } from "./types.js";
export type { SocketLike } from "./ws-client.js";
