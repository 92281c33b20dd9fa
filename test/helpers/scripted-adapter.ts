import { z } from 'zod';
import { defineAdapter, type AdapterContext, type HealthReport } from 'multisession';

export interface Deferred<T = void> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((r, j) => ((resolve = r), (reject = j)));
  return { promise, resolve, reject };
}

type Ctx = AdapterContext<{ mode: 'auto' | 'gate' | 'code' | 'qr' | 'password' }, { token: string } | undefined>;

/** What a test can do to one live connection. */
export interface ConnectionHandle {
  ctx: Ctx;
  /** Resolves start() in 'gate' mode. */
  gate: Deferred;
  stopped: boolean;
  sent: unknown[];
}

/**
 * An adapter the test drives by hand: per-session behaviour is set with `behave(id, …)` before
 * the session starts; each connection's ctx is reachable through `last(id)`.
 */
export function scriptedAdapter(name = 'scripted') {
  const connections = new Map<string, ConnectionHandle[]>();
  const behaviour = new Map<string, { failStarts?: number; health?: HealthReport | 'hang' | 'throw' | 'throwSync' | 'invalid'; startThrowsSync?: boolean; sendThrows?: boolean }>();
  const startCount = new Map<string, number>();
  const adapter = defineAdapter({
    name,
    credentials: z.object({ token: z.string().min(1) }).optional(),
    config: z.object({ mode: z.enum(['auto', 'gate', 'code', 'qr', 'password']).default('auto') }),
    action: z.object({ text: z.string() }),
    connect(ctx) {
      const b = behaviour.get(ctx.id) ?? {};
      if (b.startThrowsSync) throw new Error('connect exploded');
      const handle: ConnectionHandle = { ctx: ctx as Ctx, gate: deferred(), stopped: false, sent: [] };
      connections.set(ctx.id, [...(connections.get(ctx.id) ?? []), handle]);
      return {
        async start() {
          const n = (startCount.get(ctx.id) ?? 0) + 1;
          startCount.set(ctx.id, n);
          if (b.failStarts !== undefined && n <= b.failStarts) throw new Error(`start ${n} failed`);
          const mode = ctx.config.mode;
          if (mode === 'gate') await handle.gate.promise;
          if (mode === 'code') {
            const code = await ctx.auth.request('code', { data: { phone: '+1 *** 89' } });
            if (code !== '12345') throw new Error('wrong code');
          }
          if (mode === 'password') {
            const pw = await ctx.auth.request('password');
            if (pw !== 'secret') throw new Error('wrong password');
          }
          if (mode === 'qr') {
            ctx.auth.qr(`qr:${ctx.id}`, { expiresAt: 123 });
            await handle.gate.promise;
          }
        },
        async stop() {
          handle.stopped = true;
        },
        health() {
          const h = behaviour.get(ctx.id)?.health ?? { status: 'healthy' };
          if (h === 'hang') return new Promise<HealthReport>(() => {});
          if (h === 'throw') return Promise.reject(new Error('probe exploded'));
          if (h === 'throwSync') throw new Error('probe exploded synchronously');
          if (h === 'invalid') return Promise.resolve({ status: 'fine-ish', extra: 1 } as unknown as HealthReport);
          return Promise.resolve(h);
        },
        async send(action) {
          if (behaviour.get(ctx.id)?.sendThrows) throw new Error(`send failed for token ${ctx.credentials?.token}`);
          handle.sent.push(action);
          return { delivered: action.text };
        },
      };
    },
  });
  return {
    adapter,
    behave(id: string, b: { failStarts?: number; health?: HealthReport | 'hang' | 'throw' | 'throwSync' | 'invalid'; startThrowsSync?: boolean; sendThrows?: boolean }) {
      behaviour.set(id, { ...behaviour.get(id), ...b });
    },
    last(id: string): ConnectionHandle {
      const list = connections.get(id);
      if (!list?.length) throw new Error(`no connection for ${id}`);
      return list[list.length - 1]!;
    },
    connections(id: string): ConnectionHandle[] {
      return connections.get(id) ?? [];
    },
  };
}

/** Lets pending promise chains settle. */
export async function settle(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}
