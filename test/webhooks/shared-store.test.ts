import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { StorageDriver } from 'multisession';
import { postgresStorage } from 'multisession/postgres';
import { sqliteStorage } from 'multisession/sqlite';
import { createWebhooks } from 'multisession/webhooks';
import { PG_URL, postgresForTests } from '../helpers/postgres.js';
import { SECRET_KEY, startReceiver } from './helpers.js';

/**
 * Two senders on one store (two driver handles, as two nodes would have): both enqueue the same
 * events and both deliver at once, and each event arrives once. Secrets and bodies are sealed at
 * rest: neither is in the SQLite files nor in the PostgreSQL rows.
 */
const dir = mkdtempSync(join(tmpdir(), 'ms-webhooks-shared-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const { reachable, admin, freshSchema } = await postgresForTests('ms_wh_shared');

interface Target {
  kind: string;
  open(): { a: StorageDriver; b: StorageDriver; stored(): Promise<string> };
}
const targets: Target[] = [
  {
    kind: 'sqlite',
    open() {
      const folder = mkdtempSync(join(dir, 'db-'));
      const filename = join(folder, 'hooks.db');
      return {
        a: sqliteStorage({ filename }),
        b: sqliteStorage({ filename }),
        stored: async () => readdirSync(folder).map((f) => readFileSync(join(folder, f)).toString('latin1')).join('\n'),
      };
    },
  },
  ...(reachable
    ? [
        {
          kind: 'postgres',
          open() {
            const schema = freshSchema();
            return {
              a: postgresStorage({ connectionString: PG_URL }, { schema, poolSize: 2 }),
              b: postgresStorage({ connectionString: PG_URL }, { schema, poolSize: 2 }),
              stored: async () => {
                const e = await admin.query(`select * from "${schema}".webhook_endpoints`);
                const d = await admin.query(`select * from "${schema}".webhook_deliveries`);
                const c = await admin.query(`select * from "${schema}".checkpoint_items`);
                return JSON.stringify([e.rows, d.rows, c.rows]);
              },
            };
          },
        },
      ]
    : []),
];

describe.each(targets)('webhooks on one $kind store shared by two senders', ({ open }) => {
  it('delivers each event once although both enqueue and deliver it, and keeps secrets and bodies sealed at rest', async () => {
    const { a, b, stored } = open();
    const receiver = await startReceiver();
    const options = { secretKey: SECRET_KEY, allowPrivateTargets: true, jitter: 0 };
    const one = createWebhooks({ storage: a, ...options, owner: 'node-a' });
    const two = createWebhooks({ storage: b, ...options, owner: 'node-b' });
    try {
      const { secret } = await one.createEndpoint({ url: receiver.url });
      const events = Array.from({ length: 30 }, (_, i) => ({ type: 'chat.message', data: { text: `private words ${i}` }, eventId: `evt-${i}`, at: 1_767_225_600_000 + i }));
      const [idsA, idsB] = await Promise.all([Promise.all(events.map((e) => one.send(e))), Promise.all(events.map((e) => two.send(e)))]);
      expect(idsA).toEqual(idsB); // the same delivery ids on both nodes
      await Promise.all([one.deliverDue(), two.deliverDue(), one.deliverDue(), two.deliverDue()]);
      const got = receiver.received.map((r) => String(r.headers['webhook-id']));
      expect(got.sort()).toEqual(idsA.flat().sort());
      const text = await stored();
      expect(text).toContain(idsA[0]![0]!); // the rows are there (the check reads the right place)
      expect(text).not.toContain(secret.slice(6));
      expect(text).not.toContain('private words');
    } finally {
      await one.close();
      await two.close();
      await a.close();
      await b.close();
      await receiver.close();
    }
  });
});
