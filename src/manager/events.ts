import type { SessionMessageEvent } from '../adapters/message.js';
import type { AuthKind, HealthStatus, SessionState } from '../lifecycle.js';
import type { SessionSnapshot } from './snapshot.js';
import type { JsonValue } from '../types.js';
import type { UnitsMovedEvent } from '../units/types.js';

/** The manager's typed events. Payloads never carry credentials. */
export interface SessionManagerEvents {
  'session.created': (event: { id: string; session: SessionSnapshot; at: number }) => void;
  'session.updated': (event: { id: string; session: SessionSnapshot; changed: string[]; at: number }) => void;
  'session.deleted': (event: { id: string; at: number }) => void;
  'session.state': (event: { id: string; from: SessionState; to: SessionState; reason: string; at: number }) => void;
  'session.auth': (event: { id: string; kind: AuthKind; data: JsonValue; expiresAt: number | null; at: number }) => void;
  'session.ready': (event: { id: string; at: number }) => void;
  'session.health': (event: { id: string; health: HealthStatus; previous: HealthStatus; detail?: string; failures: number; at: number }) => void;
  /**
   * A message in or out. A listener may be async: an adapter's `ctx.emitMessage` resolves only
   * once the promises its listeners returned have settled (at-least-once delivery: the adapter
   * commits its cursor after). Narrow inbound messages by platform with `isMessageFrom`.
   */
  'session.message': (event: SessionMessageEvent) => void;
  'session.error': (event: { id: string; error: Error; code: string; at: number }) => void;
  /** The node that runs the session changed (`null`: none runs it). */
  'session.owner': (event: { id: string; from: string | null; to: string | null; reason: string; at: number }) => void;
  /** Units changed session: a reassignment, an assignment, failover (reason `health`), a forced delete. Emitted by the node that moved them. */
  'units.moved': (event: UnitsMovedEvent) => void;
  'manager.error': (event: { error: Error; at: number }) => void;
}

export type SessionManagerEventName = keyof SessionManagerEvents;
export type SessionManagerEventPayload<E extends SessionManagerEventName> = Parameters<SessionManagerEvents[E]>[0];

/** Every event name, for code that subscribes to all of them (an SSE stream, an audit tap). */
export const SESSION_MANAGER_EVENTS = [
  'session.created',
  'session.updated',
  'session.deleted',
  'session.state',
  'session.auth',
  'session.ready',
  'session.health',
  'session.message',
  'session.error',
  'session.owner',
  'units.moved',
  'manager.error',
] as const satisfies readonly SessionManagerEventName[];

// Compile-time check: the list names every event of SessionManagerEvents.
type MissingEvent = Exclude<SessionManagerEventName, (typeof SESSION_MANAGER_EVENTS)[number]>;
const _allEventsListed: [MissingEvent] extends [never] ? true : MissingEvent = true;
void _allEventsListed;

type AnyListener = (payload: never) => unknown;
const RESOLVED: Promise<void> = Promise.resolve();
const noop = (): void => undefined;

interface ListenerRecord {
  readonly fn: AnyListener;
  readonly context: unknown;
  readonly once: boolean;
}

/**
 * The listeners of a set of typed events, and the one way to call them. The manager keeps its
 * hub private and exposes only subscription (`on`, `once`, `off` …), so no code outside the
 * manager can emit: a forged `session.state` cannot make `waitFor` resolve.
 *
 * Delivery follows eventemitter3: listeners run in the order they were added, with `this` set to
 * the context given; a listener added during an emit is not called by it, one removed during it
 * still is. Unlike a plain emitter, a listener that throws does not stop the others: the error
 * goes to `onListenerError`.
 */
export class EventHub<Events extends { [E in keyof Events]: (payload: never) => void }> {
  /** Arrays are replaced, never changed in place, so an emit can walk the one it started with. */
  #listeners = new Map<keyof Events, readonly ListenerRecord[]>();
  /** Where an error thrown by a listener goes (set by the owner; by default it is dropped). */
  onListenerError: (error: unknown, event: keyof Events) => void = () => {};

  add<E extends keyof Events>(event: E, fn: Events[E], context: unknown, once: boolean): void {
    if (typeof fn !== 'function') throw new TypeError(`The listener of "${String(event)}" must be a function.`);
    const list = this.#listeners.get(event) ?? [];
    this.#listeners.set(event, [...list, { fn: fn as AnyListener, context, once }]);
  }

  /** Removes matching listeners (all of the event's when `fn` is omitted). */
  remove<E extends keyof Events>(event: E, fn?: Events[E], context?: unknown, once?: boolean): void {
    const list = this.#listeners.get(event);
    if (!list) return;
    const kept = fn === undefined ? [] : list.filter((l) => l.fn !== fn || (once && !l.once) || (context !== undefined && l.context !== context));
    if (kept.length) this.#listeners.set(event, kept);
    else this.#listeners.delete(event);
  }

  removeAll(event?: keyof Events): void {
    if (event === undefined) this.#listeners.clear();
    else this.#listeners.delete(event);
  }

  count(event: keyof Events): number {
    return this.#listeners.get(event)?.length ?? 0;
  }

  listeners<E extends keyof Events>(event: E): Events[E][] {
    return (this.#listeners.get(event) ?? []).map((l) => l.fn as unknown as Events[E]);
  }

  names(): (keyof Events)[] {
    return [...this.#listeners.keys()];
  }

  /** Calls every listener of `event`; returns whether there was any. */
  emit<E extends keyof Events>(event: E, payload: Parameters<Events[E]>[0]): boolean {
    const list = this.#listeners.get(event);
    if (!list) return false;
    this.#call(event, list, payload);
    return true;
  }

  /**
   * Calls every listener of `event` like {@link emit}, and resolves once the promises they
   * returned have settled (a rejection goes to `onListenerError`, like a throw). Never rejects.
   */
  emitAndWait<E extends keyof Events>(event: E, payload: Parameters<Events[E]>[0]): Promise<void> {
    const list = this.#listeners.get(event);
    if (!list) return RESOLVED;
    const pending = this.#call(event, list, payload);
    if (!pending) return RESOLVED;
    const onError = (error: unknown): void => this.onListenerError(error, event);
    return Promise.all(pending.map((p) => Promise.resolve(p).then(noop, onError))).then(noop);
  }

  /** Calls the listeners; returns the thenables they returned, if any. */
  #call(event: keyof Events, list: readonly ListenerRecord[], payload: unknown): PromiseLike<unknown>[] | null {
    let pending: PromiseLike<unknown>[] | null = null;
    for (const l of list) {
      if (l.once) this.#removeOne(event, l);
      try {
        const result = (l.fn as (this: unknown, p: unknown) => unknown).call(l.context, payload);
        if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
          (pending ??= []).push(result as PromiseLike<unknown>);
        }
      } catch (error) {
        this.onListenerError(error, event);
      }
    }
    return pending;
  }

  #removeOne(event: keyof Events, listener: ListenerRecord): void {
    const list = this.#listeners.get(event);
    if (!list) return;
    const kept = list.filter((l) => l !== listener);
    if (kept.length) this.#listeners.set(event, kept);
    else this.#listeners.delete(event);
  }
}

type Listener<Events, E extends keyof Events> = (event: Payload<Events, E>) => void;
type Payload<Events, E extends keyof Events> = Events[E] extends (payload: infer P) => void ? P : never;

/**
 * The subscription half of a typed emitter, for a public class whose events only it may emit:
 * the class hands its private {@link EventHub} to this base and keeps `emit` to itself.
 */
export class EventSubscriptions<Events extends { [E in keyof Events]: (payload: never) => void }> {
  readonly #hub: EventHub<Events>;

  constructor(hub: EventHub<Events>) {
    this.#hub = hub;
  }

  /** Subscribes to a typed event (`this` is `context` inside the listener). */
  on<E extends keyof Events>(event: E, listener: Listener<Events, E>, context?: unknown): this {
    this.#hub.add(event, listener as unknown as Events[E], context, false);
    return this;
  }

  /** Like `on`, for the next event only. */
  once<E extends keyof Events>(event: E, listener: Listener<Events, E>, context?: unknown): this {
    this.#hub.add(event, listener as unknown as Events[E], context, true);
    return this;
  }

  /** Removes a listener (every listener of the event when none is given). */
  off<E extends keyof Events>(event: E, listener?: Listener<Events, E>, context?: unknown, once?: boolean): this {
    this.#hub.remove(event, listener as unknown as Events[E] | undefined, context, once);
    return this;
  }

  addListener<E extends keyof Events>(event: E, listener: Listener<Events, E>, context?: unknown): this {
    return this.on(event, listener, context);
  }

  removeListener<E extends keyof Events>(event: E, listener?: Listener<Events, E>, context?: unknown, once?: boolean): this {
    return this.off(event, listener, context, once);
  }

  removeAllListeners(event?: keyof Events): this {
    this.#hub.removeAll(event);
    return this;
  }

  listenerCount(event: keyof Events): number {
    return this.#hub.count(event);
  }

  listeners<E extends keyof Events>(event: E): Listener<Events, E>[] {
    return this.#hub.listeners(event) as unknown as Listener<Events, E>[];
  }

  eventNames(): (keyof Events)[] {
    return this.#hub.names();
  }
}
