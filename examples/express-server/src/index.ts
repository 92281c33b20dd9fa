/**
 * The example server as a library: `createServer(options)` starts everything (storage, manager,
 * HTTP) on a port; `createApp(manager, options)` is only the Express app over a manager you own.
 */
export { createServer, createStorage, type RunningServer, type ServerOptions } from './server.js';
export { createApp, type AppHandle, type AppOptions } from './app.js';
export { ApiKeyStore, canAccess, type KeyInfo, type KeyRole, type Principal } from './api-keys.js';
export { buildOpenApiDocument } from './openapi.js';
export { STATUS_BY_CODE, toProblem, type Problem } from './problem.js';
