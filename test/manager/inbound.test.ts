import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  AbortedError,
  SessionManager,
  ValidationError,
  defineAdapter,
  isInboundMessage,
  isMessageFrom,
  messageEnvelopeSchema,
  type AdapterContext,
  type InboundMessage,
} from 'multisession';
import { connectForTest, createManualClock } from 'multisession/testing';
import { deferred, settle } from '../helpers/scripted-adapter.js';

/**
 * Inbound messages: `ctx.emitMessage` resolves once the app's listeners have handled the message
 * (so an adapter commits its cursor after), refuses a connection that is shut down, checks the
 * adapter's `message` schema, and `session.message` names the platform so `isMessageFrom` types it.
 */

const envelope = (n: number, extra: Partial<InboundMessage> = {}): InboundMessage => ({
  id: String(n),
  chatId: 'chat-1',
  from: { id: 'u1', name: 'Ann', username: 'ann', bot: false },
  text: `hello ${n}`,
  at: 1_700_000_000_000 + n,
  raw: { n },
  ...extra,
});

/** An adapter declaring the common envelope; `emitDuringStart` emits one message before start() resolves. */
function inboxAdapter(options: { emitDuringStart?: boolean } = {}) {
  const contexts = new Map<string, AdapterContext<any, any, InboundMessage>>();
  const during: Promise<void>[] = [];
  const adapter = defineAdapter({
    name: 'inbox',
    credentials: z.undefined(),
    config: z.object({}),
    message: messageEnvelopeSchema.extend({ kind: z.enum(['message', 'edit']).optional() }),
    connect(ctx) {
      contexts.set(ctx.id, ctx as AdapterContext<any, any, InboundMessage>);
      return {
        async start() {
          if (options.emitDuringStart) during.push(ctx.emitMessage(envelope(0)));
        },
        async stop() {},
        async health() {
          return { status: 'healthy' as const };
        },
        async send() {},
      };
    },
  });
  return { adapter, ctx: (id: string) => contexts.get(id)!, during };
}

let managers: SessionManager[] = [];
afterEach(async () => {
  await Promise.all(managers.map((m) => m.close()));
  managers = [];
});

async function setup(options: { emitDuringStart?: boolean } = {}) {
  const inbox = inboxAdapter(options);
  const m = new SessionManager({ adapters: [inbox.adapter], clock: createManualClock() });
  managers.push(m);
  await m.open();
  await m.create({ id: 'a', platform: 'inbox' });
  expect((await m.start('a')).state).toBe('ready');
  return { m, inbox, ctx: () => inbox.ctx('a') };
}

describe('ctx.emitMessage', () => {
  it('resolves only once every async listener has handled the message', async () => {
    const { m, ctx } = await setup();
    const slow = deferred();
    const order: string[] = [];
    m.on('session.message', async () => {
      await slow.promise;
      order.push('slow listener done');
    });
    m.on('session.message', () => void order.push('plain listener'));
    const delivered = ctx()
      .emitMessage(envelope(1))
      .then(() => order.push('emitMessage resolved'));
    await settle();
    expect(order).toEqual(['plain listener']);
    slow.resolve();
    await delivered;
    expect(order).toEqual(['plain listener', 'slow listener done', 'emitMessage resolved']);
    expect((await m.stats('a')).messagesIn).toBe(1);
  });

  it('a listener that fails is reported as manager.error, and the message still counts as handled', async () => {
    const { m, ctx } = await setup();
    const errors: string[] = [];
    m.on('manager.error', (e) => errors.push(e.error.message));
    m.on('session.message', async () => {
      throw new Error('the inbox database is down');
    });
    await expect(ctx().emitMessage(envelope(2))).resolves.toBeUndefined();
    expect(errors).toEqual(['the inbox database is down']);
  });

  it('rejects with AbortedError once the connection is shut down (nothing delivered: do not commit), unhandled-safe when ignored', async () => {
    const { m, ctx } = await setup();
    const seen: unknown[] = [];
    m.on('session.message', (e) => void seen.push(e));
    const old = ctx();
    await m.stop('a');
    await expect(old.emitMessage(envelope(3))).rejects.toBeInstanceOf(AbortedError);
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      void old.emitMessage(envelope(4)); // an adapter that does not await it
      await settle();
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    expect(unhandled).toEqual([]);
    expect(seen).toEqual([]);
    expect((await m.stats('a')).messagesIn).toBe(0);
  });

  it("refuses a message that does not fit the adapter's message schema, naming the field", async () => {
    const { m, ctx } = await setup();
    const seen: unknown[] = [];
    m.on('session.message', (e) => void seen.push(e));
    const error = await ctx()
      .emitMessage({ ...envelope(5), at: 'yesterday' } as unknown as InboundMessage)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).issues[0]!.path).toEqual(['message', 'at']);
    expect(seen).toEqual([]);
  });

  it('delivers messages emitted before start() resolved', async () => {
    const inbox = inboxAdapter({ emitDuringStart: true });
    const m = new SessionManager({ adapters: [inbox.adapter], clock: createManualClock() });
    managers.push(m);
    await m.open();
    const seen: unknown[] = [];
    m.on('session.message', (e) => void seen.push(e.message));
    await m.create({ id: 'a', platform: 'inbox' });
    await m.start('a');
    await Promise.all(inbox.during);
    expect(seen).toEqual([envelope(0)]);
  });
});

describe('session.message', () => {
  it('names the platform; isMessageFrom narrows inbound messages to the adapter’s message type', async () => {
    const { m, inbox, ctx } = await setup();
    const texts: (string | null)[] = [];
    const events: unknown[] = [];
    m.on('session.message', (e) => {
      events.push(e);
      if (isMessageFrom(inbox.adapter, e)) {
        const kind: 'message' | 'edit' | undefined = e.message.kind; // typed by the adapter's schema
        texts.push(kind ? `${kind}: ${e.message.text}` : e.message.text);
      }
    });
    await ctx().emitMessage(envelope(6, { kind: 'edit' } as Partial<InboundMessage>));
    await m.send('a', { anything: 1 });
    expect(texts).toEqual(['edit: hello 6']);
    expect(events).toEqual([
      expect.objectContaining({ id: 'a', platform: 'inbox', direction: 'in' }),
      expect.objectContaining({ id: 'a', platform: 'inbox', direction: 'out', message: { anything: 1 } }),
    ]);
    expect(isInboundMessage(envelope(7))).toBe(true);
    expect(isInboundMessage({ id: '7', text: 'no envelope' })).toBe(false);
  });
});

describe('connectForTest keeps the same rules', () => {
  it('emitMessage waits for onMessage, checks the schema, and is refused after stop', async () => {
    const held = deferred();
    let handled = false;
    const t = connectForTest(inboxAdapter().adapter, {
      onMessage: async () => {
        await held.promise;
        handled = true;
      },
    });
    await t.connection.start();
    const ctx = t.ctx as unknown as AdapterContext<unknown, unknown, InboundMessage>;
    const delivered = ctx.emitMessage(envelope(8));
    await settle();
    expect(handled).toBe(false);
    held.resolve();
    await delivered;
    expect(handled).toBe(true);
    expect(t.messages).toEqual([envelope(8)]);
    await expect(ctx.emitMessage({ ...envelope(9), id: '' })).rejects.toMatchObject({ code: 'VALIDATION' });
    await t.stop();
    await expect(ctx.emitMessage(envelope(10))).rejects.toMatchObject({ code: 'ABORTED' });
    expect(t.messages).toHaveLength(1);
  });
});
