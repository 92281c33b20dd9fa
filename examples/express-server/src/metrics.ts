import { CHECKPOINT_STATUSES, HEALTH_STATUSES, SESSION_STATES, DESIRED_STATES, type CheckpointStats, type SessionManager, type SessionStatus } from 'multisession';

type NodeInfo = Awaited<ReturnType<SessionManager['nodes']>>[number];

/**
 * Prometheus text exposition (version 0.0.4), written by hand: a few gauges and counters need
 * no client library.
 */
export class HttpCounters {
  readonly requests = new Map<string, number>();
  rateLimited = 0;
  sseClients = 0;
  /** Event streams dropped because their client stopped reading. */
  sseDropped = 0;
  /** Credential conflicts answered, and requests refused by the per-key conflict limit. */
  credentialConflicts = 0;

  count(method: string, status: number): void {
    const k = `${method}|${status}`;
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
  }
}

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

class Writer {
  readonly lines: string[] = [];
  family(name: string, type: 'gauge' | 'counter', help: string): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  }
  sample(name: string, labels: Record<string, string>, value: number): void {
    const l = Object.entries(labels).map(([k, v]) => `${k}="${esc(v)}"`).join(',');
    this.lines.push(`${name}${l ? `{${l}}` : ''} ${Number.isFinite(value) ? value : 0}`);
  }
}

export interface MetricsInput {
  statuses: SessionStatus[];
  /** The cluster nodes sharing the store (`manager.nodes()`). */
  nodes: NodeInfo[];
  /** Checkpoint stream → counts by item status. */
  checkpoints: Map<string, CheckpointStats>;
  http: HttpCounters;
  uptimeSeconds: number;
  storageUp: boolean;
}

export function renderMetrics(input: MetricsInput): string {
  const w = new Writer();
  const byState = new Map<string, number>(SESSION_STATES.map((s) => [s, 0]));
  const byHealth = new Map<string, number>(HEALTH_STATUSES.map((s) => [s, 0]));
  const byDesired = new Map<string, number>(DESIRED_STATES.map((s) => [s, 0]));
  for (const s of input.statuses) {
    byState.set(s.state, (byState.get(s.state) ?? 0) + 1);
    byHealth.set(s.health, (byHealth.get(s.health) ?? 0) + 1);
    byDesired.set(s.desiredState, (byDesired.get(s.desiredState) ?? 0) + 1);
  }

  w.family('multisession_sessions', 'gauge', 'Sessions by actual state.');
  for (const [state, n] of byState) w.sample('multisession_sessions', { state }, n);
  w.family('multisession_sessions_by_health', 'gauge', 'Sessions by health.');
  for (const [health, n] of byHealth) w.sample('multisession_sessions_by_health', { health }, n);
  w.family('multisession_sessions_by_desired_state', 'gauge', 'Sessions by desired state.');
  for (const [desired, n] of byDesired) w.sample('multisession_sessions_by_desired_state', { desired }, n);

  w.family('multisession_session_restarts_total', 'counter', 'Automatic restarts per session.');
  for (const s of input.statuses) w.sample('multisession_session_restarts_total', { session: s.id, platform: s.platform }, s.restarts);
  w.family('multisession_restarts_total', 'counter', 'Automatic restarts of all sessions.');
  w.sample('multisession_restarts_total', {}, input.statuses.reduce((a, s) => a + s.restarts, 0));

  w.family('multisession_node_info', 'gauge', 'One per cluster node sharing the store (1), with its host and pid.');
  for (const n of input.nodes) w.sample('multisession_node_info', { node_id: n.nodeId, host: n.host, pid: String(n.pid) }, 1);
  w.family('multisession_node_live', 'gauge', '1 when the node\'s heartbeat is younger than the lease TTL.');
  for (const n of input.nodes) w.sample('multisession_node_live', { node_id: n.nodeId }, n.live ? 1 : 0);
  w.family('multisession_node_running', 'gauge', 'Sessions the node holds leases for.');
  for (const n of input.nodes) w.sample('multisession_node_running', { node_id: n.nodeId }, n.running);
  w.family('multisession_node_draining', 'gauge', '1 when the node takes no new sessions (drained or closing).');
  for (const n of input.nodes) w.sample('multisession_node_draining', { node_id: n.nodeId }, n.draining ? 1 : 0);

  w.family('multisession_checkpoint_items', 'gauge', 'Checkpoint items by stream and status.');
  for (const [stream, stats] of input.checkpoints) {
    for (const status of CHECKPOINT_STATUSES) w.sample('multisession_checkpoint_items', { stream, status }, stats[status]);
  }
  w.family('multisession_checkpoint_oldest_pending_age_seconds', 'gauge', 'Age of the oldest pending item per stream.');
  for (const [stream, stats] of input.checkpoints) {
    w.sample('multisession_checkpoint_oldest_pending_age_seconds', { stream }, (stats.oldestPendingAgeMs ?? 0) / 1000);
  }

  w.family('multisession_http_requests_total', 'counter', 'HTTP requests by method and status.');
  for (const [k, n] of input.http.requests) {
    const [method, status] = k.split('|') as [string, string];
    w.sample('multisession_http_requests_total', { method, status }, n);
  }
  w.family('multisession_http_rate_limited_total', 'counter', 'Requests refused by the rate limit.');
  w.sample('multisession_http_rate_limited_total', {}, input.http.rateLimited);
  w.family('multisession_sse_clients', 'gauge', 'Open event streams.');
  w.sample('multisession_sse_clients', {}, input.http.sseClients);
  w.family('multisession_sse_dropped_total', 'counter', 'Event streams dropped because their client stopped reading (buffer limit).');
  w.sample('multisession_sse_dropped_total', {}, input.http.sseDropped);
  w.family('multisession_credential_conflicts_total', 'counter', 'Creates and updates refused because another session holds the same credentials.');
  w.sample('multisession_credential_conflicts_total', {}, input.http.credentialConflicts);
  w.family('multisession_storage_up', 'gauge', '1 when the storage answered its ping.');
  w.sample('multisession_storage_up', {}, input.storageUp ? 1 : 0);
  w.family('process_uptime_seconds', 'gauge', 'Seconds since the server started.');
  w.sample('process_uptime_seconds', {}, Math.round(input.uptimeSeconds));
  return `${w.lines.join('\n')}\n`;
}
