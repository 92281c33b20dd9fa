import type { ChangeBatch } from '../cluster-contract.js';
import type { JsonObject } from '../../types.js';

/** A row of `session_changes` as both SQL drivers read it. */
export interface ChangeRow {
  seq: number;
  session_id: string;
  node_id: string | null;
  event: string | null;
}

/** Changed session ids (each once) and relayed events (in order) of a page of change rows. */
export function splitChanges(rows: readonly ChangeRow[]): Pick<ChangeBatch, 'ids' | 'events'> {
  const ids = new Set<string>();
  const events: ChangeBatch['events'] = [];
  for (const r of rows) {
    if (r.event === null) ids.add(r.session_id);
    else events.push({ sessionId: r.session_id, nodeId: r.node_id ?? '', event: JSON.parse(r.event) as JsonObject });
  }
  return { ids: [...ids], events };
}
