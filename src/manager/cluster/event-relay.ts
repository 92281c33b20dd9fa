import type { ClusterStore, RelayedEvent } from '../../storage/cluster-contract.js';
import type { KvValueCodec } from '../../security/kv-values.js';
import type { Clock, JsonObject, JsonValue } from '../../types.js';

/** Events of a node's sessions that the other nodes emit too, as they are (the rest travel as changes). */
const PLAIN = new Set(['session.health', 'session.ready', 'session.error']);
/**
 * Relayed sealed with the secret key, bound to the session and the event name: a QR payload or a
 * message's text never lies in the store's feed in plaintext. Without a key they stay on their node.
 */
const SEALED = new Set(['session.auth', 'session.message']);
/** Relayed events wait this long to be written together. */
const RELAY_MS = 20;

export interface EventRelayDeps {
  store: ClusterStore;
  nodeId: string;
  timers: Clock;
  /** Seals and opens `session.auth` and `session.message` (the manager's secret key). */
  values: KvValueCodec;
  /** Relay `session.message` too (`cluster.relayMessages`). */
  relayMessages: boolean;
  onError(error: unknown): void;
}

/**
 * Carries a node's session events to the other nodes through the store's change feed: written in
 * batches every {@link RELAY_MS}, read back by the others with the changes, and emitted there.
 */
export class EventRelay {
  readonly #d: EventRelayDeps;
  #outbox: RelayedEvent[] = [];
  #timer: unknown = null;

  constructor(deps: EventRelayDeps) {
    this.#d = deps;
  }

  /** Queues an event of a session this node runs, if it is one the other nodes emit. */
  push(event: string, id: string, payload: object): void {
    if (PLAIN.has(event)) this.#outbox.push({ sessionId: id, event: toJson(event, payload) });
    else if (SEALED.has(event) && this.#seals(event)) {
      const sealed = this.#d.values.seal(id, relayKey(event), toJson(event, payload));
      this.#outbox.push({ sessionId: id, event: { type: event, id, sealed } });
    } else return;
    this.#timer ??= this.#d.timers.setTimeout(() => void this.flush(), RELAY_MS);
  }

  #seals(event: string): boolean {
    return this.#d.values.keyId !== null && (event !== 'session.message' || this.#d.relayMessages);
  }

  /** Writes what is queued now. */
  async flush(): Promise<void> {
    if (this.#timer !== null) this.#d.timers.clearTimeout(this.#timer);
    this.#timer = null;
    const batch = this.#outbox;
    this.#outbox = [];
    if (batch.length) await this.#d.store.publish(this.#d.nodeId, batch).catch(this.#d.onError);
  }

  /** A relayed event as it was emitted on its node (a sealed one opened), or null when it cannot be opened here. */
  received(event: JsonObject): JsonObject | null {
    const { type, id, sealed } = event;
    if (sealed === undefined) return event;
    if (typeof type !== 'string' || typeof id !== 'string') return null;
    try {
      const opened: JsonValue = this.#d.values.open(id, relayKey(type), sealed, true);
      return opened !== null && typeof opened === 'object' && !Array.isArray(opened) ? opened : null;
    } catch (error) {
      this.#d.onError(error); // sealed by a node with a key this one does not have
      return null;
    }
  }
}

/** What a relayed sealed event is bound to besides its session (a sealed QR cannot pass for a message). */
const relayKey = (event: string) => `relay:${event}`;

/** An event as plain JSON for the feed: its name in `type`, an error as its name, code and message. */
function toJson(event: string, payload: object): JsonObject {
  const out: JsonObject = { type: event };
  for (const [k, v] of Object.entries(payload)) {
    if (v instanceof Error) out[k] = { name: v.name, code: (v as { code?: string }).code ?? 'ERROR', message: v.message };
    else if (v !== undefined) out[k] = v as JsonValue;
  }
  return out;
}
