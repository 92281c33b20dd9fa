/** The counters the runtime keeps for every session (`manager.stats`); the adapter's own go under a prefix. */
export const BUILTIN_COUNTERS = ['starts', 'restarts', 'failures', 'messagesIn', 'messagesOut', 'errors'] as const;
export type BuiltinCounter = (typeof BUILTIN_COUNTERS)[number];
export const CUSTOM_COUNTER_PREFIX = 'custom:';
