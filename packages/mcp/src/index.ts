export type { McpCliConfig } from "./config.js";
export { loadCliConfig, parseIni } from "./config.js";
export type { HttpRequest, HttpResponse, HttpSend } from "./http.js";
export { fetchSend, queryString } from "./http.js";
export type { McpCaller, McpHttpEndpoint } from "./http-endpoint.js";
export { createMcpHttpEndpoint } from "./http-endpoint.js";
export type { ContreeMcpOptions } from "./server.js";
export { createContreeMcpServer } from "./server.js";
