import type { JsonValue } from '../../types.js';
import { createAdapterTestStore } from '../adapter-context.js';
import { drain, missing, settle, waitUntil, type SuiteHarness } from './harness.js';

/**
 * The `delivery` group of the adapter conformance suite: inbound messages are delivered at least
 * once. The adapter commits its cursor only after `ctx.emitMessage` resolved (the app handled the
 * message), so a connection that goes down before that leaves the message to the next one.
 */
export function deliveryGroup(h: SuiteHarness): void {
  const { it, expect } = h.runner;
  const { options, waitMs, connect, started } = h;
  it('delivers at least once: a message not handled when the connection went down comes again; a handled one does not', async () => {
    const inbound = options.inbound;
    if (!inbound) throw missing('inbound', 'delivery', 'a function that makes the platform deliver one inbound message with a given text');
    const has = (text: string) => (m: JsonValue) => JSON.stringify(m).includes(text);
    const tag = `conformance-${Date.now().toString(36)}`;
    const [first, second, third] = [`${tag} first`, `${tag} second`, `${tag} third`];
    const store = createAdapterTestStore();
    const id = 'conformance-delivery';

    // The message waits on the platform before the session starts: delivering it during start() is fine.
    await inbound(first);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const one = connect({ id, store, onMessage: (m) => (has(first)(m) ? held : undefined) });
    await started(one);
    await waitUntil(() => one.messages.some(has(first)), waitMs, 'the inbound message');
    await settle(one.stop(), waitMs, 'stop() while a listener still handles a message'); // as if the process died here

    const two = connect({ id, store });
    await started(two);
    await waitUntil(() => two.messages.some(has(first)), waitMs, 'the unhandled message again, on the next connection');
    await inbound(second);
    await waitUntil(() => two.messages.some(has(second)), waitMs, 'a second message');
    await drain();
    await settle(two.stop(), waitMs, 'stop()');

    const three = connect({ id, store });
    await started(three);
    await inbound(third);
    await waitUntil(() => three.messages.some(has(third)), waitMs, 'a third message');
    expect(three.messages.some(has(first)) ? 'the handled message came again' : 'not replayed').toBe('not replayed');
    await settle(three.stop(), waitMs, 'stop()');

    // The first connection's listener finishes at last: its connection is shut down and commits nothing.
    release();
    await drain();
  });
}
