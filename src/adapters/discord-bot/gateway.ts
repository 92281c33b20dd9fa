import type { Dispatcher } from 'undici';
import type { Clock } from '../../types.js';
import type { SessionLog } from '../contract.js';

/** Gateway opcodes (Discord's documented numbers). */
export const Op = { Dispatch: 0, Heartbeat: 1, Identify: 2, Resume: 6, Reconnect: 7, InvalidSession: 9, Hello: 10, HeartbeatAck: 11 } as const;

/** The gateway version every socket asks for. */
export const GATEWAY_VERSION = 10;
/** The close code this side uses to leave a session resumable (anything but 1000 and 1001 does). */
export const RESUMABLE_CLOSE = 4900;
/** Longest wait for HELLO after the socket opened; past it the socket counts as dead. */
const HELLO_TIMEOUT_MS = 30_000;

/** How one socket ended. */
export type GatewayOutcome =
  /** Discord closed it (or the connection dropped: 1006), with its close code. */
  | { kind: 'closed'; code: number; reason: string }
  /** No HEARTBEAT_ACK came before the next beat (or no HELLO): closed by this side, resumable. */
  | { kind: 'zombie' }
  /** op 7 RECONNECT: Discord asked to reconnect and resume. */
  | { kind: 'reconnect' }
  /** op 9 INVALID_SESSION; `resumable` is its `d`. */
  | { kind: 'invalid'; resumable: boolean }
  /** The connection stopped. */
  | { kind: 'stopped' };

/** What a socket logs in with: IDENTIFY, or RESUME of a known session. */
export interface GatewayLogin {
  token: string;
  intents: number;
  resume: { sessionId: string; seq: number | null } | null;
}

/** The undici WebSocket class (loaded with undici on first use). */
type WebSocketClass = typeof import('undici').WebSocket;

interface Payload {
  op: number;
  d?: unknown;
  s?: number | null;
  t?: string | null;
}

/**
 * One gateway WebSocket, from HELLO to its end: heartbeats every `heartbeat_interval` (the first
 * after a random part of it, as Discord asks), each checked for its ACK before the next one goes;
 * IDENTIFY or RESUME after HELLO; dispatches handed on in order. `done` resolves with how it
 * ended; a socket never reconnects by itself.
 */
export class GatewaySocket {
  readonly done: Promise<GatewayOutcome>;
  /** Resolves once the WebSocket is fully closed. */
  readonly closed: Promise<void>;
  /** The last sequence number received (sent with each heartbeat). */
  lastSeq: number | null;
  readonly #ws: InstanceType<WebSocketClass>;
  readonly #clock: Clock;
  readonly #login: GatewayLogin;
  readonly #log: SessionLog;
  readonly #onDispatch: (seq: number | null, type: string, data: unknown) => void;
  #finish!: (outcome: GatewayOutcome) => void;
  #ended = false;
  #timer: unknown = null;
  #interval = 0;
  #awaitingAck = false;

  constructor(
    WebSocket: WebSocketClass,
    url: string,
    options: { clock: Clock; login: GatewayLogin; log: SessionLog; dispatcher: Dispatcher | null; onDispatch: (seq: number | null, type: string, data: unknown) => void },
  ) {
    this.#clock = options.clock;
    this.#login = options.login;
    this.#log = options.log;
    this.#onDispatch = options.onDispatch;
    this.lastSeq = options.login.resume?.seq ?? null;
    this.done = new Promise<GatewayOutcome>((resolve) => (this.#finish = resolve));
    const target = new URL(url);
    target.searchParams.set('v', String(GATEWAY_VERSION));
    target.searchParams.set('encoding', 'json');
    this.#ws = new WebSocket(target.href, options.dispatcher ? { dispatcher: options.dispatcher } : undefined);
    this.closed = new Promise<void>((resolve) => {
      this.#ws.addEventListener('close', (event) => {
        resolve();
        this.#end({ kind: 'closed', code: event.code, reason: event.reason });
      });
    });
    this.#ws.addEventListener('open', () => this.#schedule(HELLO_TIMEOUT_MS));
    this.#ws.addEventListener('message', (event) => this.#onMessage(event.data));
    this.#ws.addEventListener('error', () => undefined); // a close event follows
  }

  /** Ends the socket from this side (resumable unless `code` is 1000). Idempotent. */
  close(outcome: GatewayOutcome, code = RESUMABLE_CLOSE): void {
    if (this.#ended) return;
    this.#end(outcome);
    try {
      this.#ws.close(code);
    } catch {
      // already closing
    }
  }

  #end(outcome: GatewayOutcome): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#finish(outcome);
  }

  #send(payload: Payload): void {
    if (this.#ended || this.#ws.readyState !== 1) return;
    this.#ws.send(JSON.stringify(payload));
  }

  #schedule(ms: number): void {
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = null;
      this.#beat();
    }, ms);
  }

  /** A heartbeat, unless the last one was never acknowledged: then the connection is a zombie. */
  #beat(): void {
    if (this.#ended) return;
    if (this.#interval === 0 || this.#awaitingAck) {
      this.#log.warn(this.#interval === 0 ? 'the gateway sent no HELLO; reconnecting' : 'no heartbeat ACK since the last beat: zombie connection, reconnecting');
      this.close({ kind: 'zombie' });
      return;
    }
    this.#awaitingAck = true;
    this.#send({ op: Op.Heartbeat, d: this.lastSeq });
    this.#schedule(this.#interval);
  }

  #onMessage(data: unknown): void {
    if (this.#ended) return;
    let payload: Payload;
    try {
      const text = typeof data === 'string' ? data : new TextDecoder().decode(data as ArrayBuffer);
      payload = JSON.parse(text) as Payload;
    } catch {
      this.#log.warn('the gateway sent a frame that is not JSON; ignored');
      return;
    }
    if (payload === null || typeof payload !== 'object' || typeof payload.op !== 'number') return;
    if (typeof payload.s === 'number') this.lastSeq = payload.s;
    switch (payload.op) {
      case Op.Hello: {
        const interval = (payload.d as { heartbeat_interval?: unknown } | null)?.heartbeat_interval;
        this.#interval = typeof interval === 'number' && interval > 0 ? interval : 41_250;
        this.#schedule(Math.floor(this.#interval * Math.random()));
        const { token, intents, resume } = this.#login;
        if (resume) this.#send({ op: Op.Resume, d: { token, session_id: resume.sessionId, seq: resume.seq } });
        else this.#send({ op: Op.Identify, d: { token, intents, properties: { os: process.platform, browser: 'multisession', device: 'multisession' } } });
        return;
      }
      case Op.HeartbeatAck:
        this.#awaitingAck = false;
        return;
      case Op.Heartbeat:
        this.#send({ op: Op.Heartbeat, d: this.lastSeq });
        return;
      case Op.Reconnect:
        this.close({ kind: 'reconnect' });
        return;
      case Op.InvalidSession:
        this.close({ kind: 'invalid', resumable: payload.d === true });
        return;
      case Op.Dispatch:
        if (typeof payload.t === 'string') this.#onDispatch(typeof payload.s === 'number' ? payload.s : null, payload.t, payload.d ?? null);
        return;
      default:
    }
  }
}
