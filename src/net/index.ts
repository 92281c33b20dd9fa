export { networkConfigSchema, proxySettingSchema, rateLimitSchema, DEFAULT_SEND_MAX_WAIT_MS, type NetworkConfig, type RateLimitConfig } from './config.js';
export { parseProxy, describeProxy, PROXY_PROTOCOLS, type ProxyConfig, type ProxyProtocol, type ResolvedProxy } from './proxy.js';
export { TokenBucket, type RateLimitSettings } from './token-bucket.js';
export { SessionRateLimiter } from './session-limiter.js';
export { createSessionFetch, type SessionFetch, type SessionRequestInit, type SessionFetchHandle, type SessionFetchOptions } from './session-fetch.js';
