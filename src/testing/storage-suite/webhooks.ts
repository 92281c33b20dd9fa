import type { WebhookDeliveryRecord, WebhookEndpointRecord, WebhookStore } from '../../storage/webhook-contract.js';
import { rejectsWithCode } from '../runner.js';
import { T0, type SuiteContext } from './context.js';

/** A complete endpoint record for driver tests; `overrides` replace fields. */
function endpoint(id: string, overrides: Partial<WebhookEndpointRecord> = {}): WebhookEndpointRecord {
  return {
    id,
    url: `https://hooks.example.com/${id}`,
    description: 'Zoë ✓',
    events: ['session.state', 'session.message'],
    sessions: { ids: ['s1'], labels: { team: 'blue' } },
    secrets: `sealed:${id}`,
    enabled: true,
    disabledReason: null,
    failingSince: null,
    createdAt: T0,
    updatedAt: T0,
    version: 1,
    ...overrides,
  };
}

function delivery(id: string, endpointId: string, overrides: Partial<WebhookDeliveryRecord> = {}): WebhookDeliveryRecord {
  return {
    id,
    endpointId,
    eventId: `evt-${id}`,
    eventType: 'session.state',
    sessionId: 's1',
    body: `sealed-body:${id}`,
    status: 'pending',
    attempts: 0,
    nextAttemptAt: T0,
    responseStatus: null,
    lastError: null,
    latencyMs: null,
    createdAt: T0,
    updatedAt: T0,
    ...overrides,
  };
}

/** Webhook endpoints and the delivery log (`webhooks` capability). */
export function webhooksGroup(t: SuiteContext): void {
  const { it, expect } = t;
  const wh = (): WebhookStore => t.store.webhooks!;

  it('keeps endpoints as given, ordered by id, and refuses a taken id', async () => {
    await wh().createEndpoint(endpoint('b'));
    const a = await wh().createEndpoint(endpoint('a', { sessions: null, events: ['*'], enabled: false, disabledReason: 'manual', failingSince: T0 + 5 }));
    expect(a).toEqual(endpoint('a', { sessions: null, events: ['*'], enabled: false, disabledReason: 'manual', failingSince: T0 + 5 }));
    expect(await wh().getEndpoint('b')).toEqual(endpoint('b'));
    expect((await wh().listEndpoints()).map((e) => e.id)).toEqual(['a', 'b']);
    expect(await wh().getEndpoint('missing')).toBeNull();
    await rejectsWithCode(expect, wh().createEndpoint(endpoint('a')), 'VALIDATION');
    const copy = (await wh().getEndpoint('b'))!;
    copy.events.push('mutated');
    expect((await wh().getEndpoint('b'))!.events).toEqual(['session.state', 'session.message']);
  });

  it('updates an endpoint only at the expected version', async () => {
    await wh().createEndpoint(endpoint('a'));
    const updated = await wh().updateEndpoint('a', { enabled: false, disabledReason: 'gone', sessions: null, updatedAt: T0 + 10 }, 1);
    expect(updated).toMatchObject({ enabled: false, disabledReason: 'gone', sessions: null, updatedAt: T0 + 10, version: 2, url: endpoint('a').url });
    expect(await wh().updateEndpoint('a', { enabled: true, updatedAt: T0 + 11 }, 1)).toBeNull();
    expect(await wh().updateEndpoint('missing', { enabled: true, updatedAt: T0 + 11 }, 1)).toBeNull();
    expect(await wh().getEndpoint('a')).toMatchObject({ enabled: false, version: 2 });
  });

  it('enqueues a delivery id once, skips deliveries of a missing endpoint, and deletes them with their endpoint', async () => {
    await wh().createEndpoint(endpoint('a'));
    expect(await wh().enqueue([delivery('d1', 'a'), delivery('d1', 'a', { body: 'second' }), delivery('d2', 'a'), delivery('d3', 'missing')])).toBe(2);
    expect(await wh().enqueue([delivery('d1', 'a', { body: 'again' })])).toBe(0);
    expect(await wh().getDelivery('d1')).toEqual(delivery('d1', 'a'));
    expect(await wh().getDelivery('d3')).toBeNull();
    expect(await wh().deleteEndpoint('a')).toBe(true);
    expect(await wh().deleteEndpoint('a')).toBe(false);
    expect(await wh().getDelivery('d1')).toBeNull();
  });

  it('lists deliveries newest first by endpoint, status and time, and finds the due ones earliest first', async () => {
    await wh().createEndpoint(endpoint('a'));
    await wh().createEndpoint(endpoint('b'));
    await wh().enqueue([
      delivery('d1', 'a', { createdAt: T0 + 1, nextAttemptAt: T0 + 30 }),
      delivery('d2', 'a', { createdAt: T0 + 2, nextAttemptAt: T0 + 10 }),
      delivery('d3', 'b', { createdAt: T0 + 3, nextAttemptAt: T0 + 20 }),
      delivery('d4', 'a', { createdAt: T0 + 4, status: 'succeeded', nextAttemptAt: T0 }),
    ]);
    expect((await wh().listDeliveries({ endpointId: 'a' })).map((d) => d.id)).toEqual(['d4', 'd2', 'd1']);
    expect((await wh().listDeliveries({ status: 'pending', limit: 2 })).map((d) => d.id)).toEqual(['d3', 'd2']);
    expect((await wh().listDeliveries({ since: T0 + 2, until: T0 + 4 })).map((d) => d.id)).toEqual(['d3', 'd2']);
    expect((await wh().due(T0 + 20, 10)).map((d) => d.id)).toEqual(['d2', 'd3']);
    expect((await wh().due(T0 + 100, 1)).map((d) => d.id)).toEqual(['d2']);
  });

  it('records an attempt only when the attempts are still the expected ones', async () => {
    await wh().createEndpoint(endpoint('a'));
    await wh().enqueue([delivery('d1', 'a')]);
    const patch = { attempts: 1, status: 'failed' as const, responseStatus: 503, lastError: 'HTTP 503', latencyMs: 12, nextAttemptAt: T0 + 5000, updatedAt: T0 + 1 };
    expect(await wh().recordAttempt('d1', 0, patch)).toEqual({ ...delivery('d1', 'a'), ...patch });
    expect(await wh().recordAttempt('d1', 0, { attempts: 1, status: 'succeeded', updatedAt: T0 + 2 })).toBeNull();
    expect(await wh().recordAttempt('missing', 0, { attempts: 1, updatedAt: T0 + 2 })).toBeNull();
    expect(await wh().getDelivery('d1')).toMatchObject({ status: 'failed', attempts: 1 });
  });

  it('refuses malformed records with ValidationError before writing', async () => {
    await rejectsWithCode(expect, wh().createEndpoint({ ...endpoint('a'), events: [] }), 'VALIDATION');
    await wh().createEndpoint(endpoint('a'));
    await rejectsWithCode(expect, wh().enqueue([delivery('d1', 'a'), { ...delivery('d2', 'a'), status: 'sent' as never }]), 'VALIDATION');
    expect(await wh().getDelivery('d1')).toBeNull();
  });
}
