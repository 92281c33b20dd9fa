import { describe, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import {
  SessionManager,
  defineAdapter,
  type AdapterContext,
  type AuthKind,
  type HealthReport,
  type HealthStatus,
  type JsonValue,
  type LogEntry,
  type SessionManagerEventName,
  type SessionManagerEventPayload,
  type SessionSnapshot,
  type SessionPage,
  type SessionState,
  type SessionStatistics,
  type SessionStatus,
  type AdapterMessage,
  type InboundMessage,
  type RateLimitError,
  isMessageFrom,
  messageEnvelopeSchema,
} from 'multisession';

declare const manager: SessionManager;

describe('typed events', () => {
  it('session.state carries from/to states, a reason and a time', () => {
    manager.on('session.state', (e) => {
      expectTypeOf(e.id).toEqualTypeOf<string>();
      expectTypeOf(e.from).toEqualTypeOf<SessionState>();
      expectTypeOf(e.to).toEqualTypeOf<SessionState>();
      expectTypeOf(e.reason).toEqualTypeOf<string>();
      expectTypeOf(e.at).toEqualTypeOf<number>();
    });
  });

  it('session.created / updated / deleted', () => {
    manager.on('session.created', (e) => {
      expectTypeOf(e.session).toEqualTypeOf<SessionSnapshot>();
      expectTypeOf(e.id).toEqualTypeOf<string>();
    });
    manager.on('session.updated', (e) => {
      expectTypeOf(e.session).toEqualTypeOf<SessionSnapshot>();
      expectTypeOf(e.changed).toEqualTypeOf<string[]>();
    });
    manager.on('session.deleted', (e) => {
      expectTypeOf(e).toEqualTypeOf<{ id: string; at: number }>();
    });
  });

  it('session.auth carries the kind, the data and the expiry', () => {
    manager.on('session.auth', (e) => {
      expectTypeOf(e.kind).toEqualTypeOf<AuthKind>();
      expectTypeOf(e.data).toEqualTypeOf<JsonValue>();
      expectTypeOf(e.expiresAt).toEqualTypeOf<number | null>();
    });
  });

  it('session.ready, session.health, session.message, session.error, manager.error', () => {
    manager.on('session.ready', (e) => expectTypeOf(e).toEqualTypeOf<{ id: string; at: number }>());
    manager.on('session.health', (e) => {
      expectTypeOf(e.health).toEqualTypeOf<HealthStatus>();
      expectTypeOf(e.previous).toEqualTypeOf<HealthStatus>();
      expectTypeOf(e.detail).toEqualTypeOf<string | undefined>();
      expectTypeOf(e.failures).toEqualTypeOf<number>();
    });
    manager.on('session.message', (e) => {
      expectTypeOf(e.direction).toEqualTypeOf<'in' | 'out'>();
      expectTypeOf(e.message).toEqualTypeOf<JsonValue>();
      expectTypeOf(e.platform).toEqualTypeOf<string>();
    });
    // Listeners may be async (ctx.emitMessage waits for them).
    manager.on('session.message', async (e) => {
      await Promise.resolve(e.id);
    });
    manager.on('session.error', (e) => {
      expectTypeOf(e.error).toEqualTypeOf<Error>();
      expectTypeOf(e.code).toEqualTypeOf<string>();
    });
    manager.on('manager.error', (e) => {
      expectTypeOf(e.error).toEqualTypeOf<Error>();
      expectTypeOf(e).not.toHaveProperty('id');
    });
  });

  it('the event name union and the payload helper', () => {
    expectTypeOf<SessionManagerEventName>().toEqualTypeOf<
      | 'session.created'
      | 'session.updated'
      | 'session.deleted'
      | 'session.state'
      | 'session.auth'
      | 'session.ready'
      | 'session.health'
      | 'session.message'
      | 'session.error'
      | 'session.owner'
      | 'units.moved'
      | 'manager.error'
    >();
    expectTypeOf<SessionManagerEventPayload<'session.state'>['to']>().toEqualTypeOf<SessionState>();
    expectTypeOf<SessionManagerEventPayload<'session.message'>['direction']>().toEqualTypeOf<'in' | 'out'>();
  });

  it('refuses unknown events and wrong listener types', () => {
    // @ts-expect-error: no such event
    manager.on('session.exploded', () => {});
    // @ts-expect-error: `to` is a SessionState, not a number
    manager.on('session.state', (e: { to: number }) => void e);
    // @ts-expect-error: the health payload has no `to`
    manager.on('session.health', (e) => e.to);
    manager.on('session.state', (e) => {
      // @ts-expect-error: 'running' is a desired state, not an actual one
      e.to = 'running';
    });
  });
});

describe('public method types', () => {
  it('return snapshots, statuses, stats and logs', () => {
    expectTypeOf(manager.get).returns.toEqualTypeOf<Promise<SessionSnapshot>>();
    expectTypeOf(manager.list).returns.toEqualTypeOf<Promise<SessionPage>>();
    expectTypeOf(manager.status).returns.toEqualTypeOf<Promise<SessionStatus>>();
    expectTypeOf(manager.statuses).returns.toEqualTypeOf<Promise<SessionStatus[]>>();
    expectTypeOf(manager.stats).returns.toEqualTypeOf<Promise<SessionStatistics>>();
    expectTypeOf(manager.logs).returns.toEqualTypeOf<Promise<LogEntry[]>>();
    expectTypeOf(manager.send).returns.toEqualTypeOf<Promise<JsonValue | undefined>>();
    expectTypeOf(manager.waitFor).returns.toEqualTypeOf<Promise<SessionSnapshot>>();
    expectTypeOf(manager[Symbol.asyncDispose]).returns.toEqualTypeOf<Promise<void>>();
  });

  it('refuses obviously wrong arguments', () => {
    // @ts-expect-error: 'qr' cannot be submitted
    void manager.submitAuth('a', { kind: 'qr', value: 'x' });
    // @ts-expect-error: unknown state
    void manager.waitFor('a', 'done');
    // @ts-expect-error: priority is a number
    void manager.create({ id: 'a', platform: 'p', priority: 'high' });
    // @ts-expect-error: a filter's state must be a SessionState
    void manager.list({ state: 'sleeping' });
  });
});

describe('defineAdapter generics', () => {
  it('types ctx.config and ctx.credentials from the zod schemas (config defaults applied)', () => {
    const adapter = defineAdapter({
      name: 'freelancer',
      credentials: z.object({ oauthToken: z.string().min(1) }),
      config: z.object({ bidLimit: z.number().int().positive().default(10), region: z.enum(['eu', 'us']).optional() }),
      connect(ctx) {
        expectTypeOf(ctx.credentials).toEqualTypeOf<{ oauthToken: string }>();
        expectTypeOf(ctx.config.bidLimit).toEqualTypeOf<number>();
        expectTypeOf(ctx.config.region).toEqualTypeOf<'eu' | 'us' | undefined>();
        expectTypeOf(ctx.id).toEqualTypeOf<string>();
        expectTypeOf(ctx.signal).toEqualTypeOf<AbortSignal>();
        expectTypeOf(ctx.auth.request).returns.toEqualTypeOf<Promise<string>>();
        expectTypeOf(ctx.kv.get<{ n: number }>).returns.toEqualTypeOf<Promise<{ n: number } | undefined>>();
        // @ts-expect-error: not in the credentials schema
        void ctx.credentials.password;
        // @ts-expect-error: bidLimit is a number
        const s: string = ctx.config.bidLimit;
        void s;
        // @ts-expect-error: 'qr' is shown with ctx.auth.qr, not requested
        void ctx.auth.request('qr');
        return {
          async start() {},
          async stop() {},
          async health(): Promise<HealthReport> {
            return { status: 'healthy' };
          },
          async send(action) {
            expectTypeOf(action).toEqualTypeOf<JsonValue>();
            return { ok: true };
          },
        };
      },
    });
    expectTypeOf(adapter.name).toEqualTypeOf<string>();
    expectTypeOf(adapter.connect).parameter(0).toEqualTypeOf<AdapterContext<{ bidLimit: number; region?: 'eu' | 'us' | undefined }, { oauthToken: string }>>();
  });

  it('types send() actions from the action schema', () => {
    defineAdapter({
      name: 'chat',
      credentials: z.object({ apiKey: z.string() }),
      config: z.object({}),
      action: z.object({ text: z.string(), to: z.number() }),
      connect() {
        return {
          async start() {},
          async stop() {},
          async health() {
            return { status: 'healthy' as const };
          },
          async send(action) {
            expectTypeOf(action).toEqualTypeOf<{ text: string; to: number }>();
            // @ts-expect-error: not in the action schema
            void action.subject;
          },
        };
      },
    });
  });

  it('refuses a connection missing a method or a health report with a bad status', () => {
    defineAdapter({
      name: 'broken',
      credentials: z.object({}),
      config: z.object({}),
      // @ts-expect-error: health() is missing
      connect() {
        return { async start() {}, async stop() {}, async send() {} };
      },
    });
    defineAdapter({
      name: 'broken2',
      credentials: z.object({}),
      config: z.object({}),
      // @ts-expect-error: health() reports 'fine', which is not a HealthStatus
      connect() {
        return {
          async start() {},
          async stop() {},
          async health() {
            return { status: 'fine' as const };
          },
          async send() {},
        };
      },
    });
  });
});

describe('typed inbound messages', () => {
  it("types ctx.emitMessage by the adapter's message schema, and isMessageFrom narrows session.message to it", () => {
    const inbox = defineAdapter({
      name: 'inbox',
      credentials: z.undefined(),
      config: z.object({}),
      message: messageEnvelopeSchema.extend({ kind: z.literal('edit') }),
      connect(ctx) {
        expectTypeOf(ctx.emitMessage).parameter(0).toExtend<InboundMessage>();
        expectTypeOf(ctx.emitMessage).parameter(0).toHaveProperty('kind').toEqualTypeOf<'edit'>();
        expectTypeOf(ctx.emitMessage).returns.toEqualTypeOf<Promise<void>>();
        expectTypeOf(ctx.rateLimit.pause).returns.toEqualTypeOf<RateLimitError>();
        // @ts-expect-error: not an envelope
        void ctx.emitMessage({ text: 'hi' });
        return { async start() {}, async stop() {}, async health() { return { status: 'healthy' as const }; }, async send() {} };
      },
    });
    expectTypeOf<AdapterMessage<typeof inbox>>().toExtend<InboundMessage>();
    expectTypeOf<AdapterMessage<typeof inbox>>().toHaveProperty('kind').toEqualTypeOf<'edit'>();
    manager.on('session.message', (e) => {
      if (isMessageFrom(inbox, e)) {
        expectTypeOf(e.message.kind).toEqualTypeOf<'edit'>();
        expectTypeOf(e.message.chatId).toEqualTypeOf<string | null>();
        expectTypeOf(e.direction).toEqualTypeOf<'in'>();
      }
    });
  });
});

describe('only the manager emits', () => {
  it('has no emit() and no public store', () => {
    expectTypeOf(manager).not.toHaveProperty('emit');
    expectTypeOf(manager).not.toHaveProperty('storage');
    expectTypeOf(manager.on).returns.toEqualTypeOf<SessionManager>();
  });
});
