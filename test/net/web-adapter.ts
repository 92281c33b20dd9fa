import { z } from 'zod';
import { defineAdapter, networkConfigSchema, type AdapterContext, type JsonValue } from 'multisession';

/**
 * A small adapter whose config takes the network fragment. `send({ url })` fetches the URL with
 * `ctx.fetch` (header `x-session: <id>`) and returns the JSON answer; any other action is just
 * recorded. The contexts and actions it got are kept per session for the test to inspect.
 */
export function webAdapter() {
  const contexts = new Map<string, AdapterContext<any, any>>();
  const sent = new Map<string, JsonValue[]>();
  const adapter = defineAdapter({
    name: 'web',
    credentials: z.object({ token: z.string().min(1) }),
    config: z.object({ ...networkConfigSchema.shape, note: z.string().optional() }),
    connect(ctx) {
      contexts.set(ctx.id, ctx);
      return {
        async start() {},
        async stop() {},
        async health() {
          return { status: 'healthy' as const };
        },
        async send(action: JsonValue): Promise<JsonValue> {
          const list = sent.get(ctx.id) ?? [];
          list.push(action);
          sent.set(ctx.id, list);
          if (action && typeof action === 'object' && !Array.isArray(action) && typeof action.url === 'string') {
            const res = await ctx.fetch(action.url, { headers: { 'x-session': ctx.id } });
            return { status: res.status, body: res.status === 200 ? ((await res.json()) as JsonValue) : null };
          }
          return { ok: true };
        },
      };
    },
  });
  return {
    adapter,
    ctx(id: string): AdapterContext<any, any> {
      const c = contexts.get(id);
      if (!c) throw new Error(`no context for ${id}`);
      return c;
    },
    sent(id: string): JsonValue[] {
      return sent.get(id) ?? [];
    },
  };
}
