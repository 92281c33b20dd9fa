import { z } from 'zod';
import { defineAdapter } from 'multisession';

/** An adapter named `idle` whose connections come up at once, stay healthy and answer every send with null. */
export const idleAdapter = defineAdapter({
  name: 'idle',
  credentials: z.object({}).optional(),
  config: z.object({}).default({}),
  connect: () => ({
    async start() {},
    async stop() {},
    async health() {
      return { status: 'healthy' as const };
    },
    async send() {
      return null;
    },
  }),
});
