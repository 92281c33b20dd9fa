import { ACTIVE_STATES } from '../../lifecycle.js';
import { redactNetworkSecrets } from '../../net/config.js';
import { cloneJson } from '../../types.js';
import type { SessionSnapshot, SessionStatistics, SessionStatus } from '../snapshot.js';
import { BUILTIN_COUNTERS, CUSTOM_COUNTER_PREFIX, type BuiltinCounter } from './counters.js';
import type { SessionRuntime } from './session-runtime.js';

/** What callers see of a runtime: copies, never the runtime's own objects, never credentials. */

export function snapshotOf(rt: SessionRuntime): SessionSnapshot {
  const r = rt.record;
  const auth = rt.auth;
  const lastError = rt.lastError;
  const owner = rt.owner;
  return {
    id: r.id,
    platform: r.platform,
    config: redactNetworkSecrets(cloneJson(r.config)),
    hasCredentials: r.credentials !== null,
    state: rt.shownState,
    desiredState: r.desiredState,
    auth: auth ? cloneJson(auth) : null,
    health: rt.shownHealth,
    labels: { ...r.labels },
    metadata: cloneJson(r.metadata),
    priority: r.priority,
    capacity: r.capacity,
    autoStart: r.autoStart,
    idleTimeoutMs: r.idleTimeoutMs,
    allowSharedCredentials: r.allowSharedCredentials,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    lastActivityAt: rt.lastActivityAt,
    lastError: lastError ? { ...lastError } : null,
    transitions: rt.transitions.map((t) => ({ ...t })),
    version: r.version,
    owner: owner ? { nodeId: owner.nodeId, since: owner.since } : null,
  };
}

export function statusOf(rt: SessionRuntime): SessionStatus {
  const auth = rt.auth;
  const lastError = rt.lastError;
  const readyAt = rt.readyAt;
  return {
    id: rt.id,
    platform: rt.record.platform,
    state: rt.shownState,
    desiredState: rt.record.desiredState,
    health: rt.shownHealth,
    auth: auth ? cloneJson(auth) : null,
    lastError: lastError ? { ...lastError } : null,
    lastActivityAt: rt.lastActivityAt,
    uptimeMs: readyAt !== null && ACTIVE_STATES.has(rt.state) ? rt.core.clock.now() - readyAt : null,
    restarts: rt.restarts,
  };
}

/** The stored counters of a session as its statistics: built-in ones and the adapter's own. */
export function statisticsOf(id: string, raw: Record<string, number>): SessionStatistics {
  const stats: SessionStatistics = { id, starts: 0, restarts: 0, failures: 0, messagesIn: 0, messagesOut: 0, errors: 0, custom: {} };
  for (const [name, value] of Object.entries(raw)) {
    if (name.startsWith(CUSTOM_COUNTER_PREFIX)) stats.custom[name.slice(CUSTOM_COUNTER_PREFIX.length)] = value;
    else if ((BUILTIN_COUNTERS as readonly string[]).includes(name)) stats[name as BuiltinCounter] = value;
  }
  return stats;
}
