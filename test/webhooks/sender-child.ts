/**
 * A webhook sender in a real child process, for the crash test.
 *
 * argv: <sqlite|postgres> <filename|schema> <receiver url> <setup|resume> <events>
 * setup:  makes an endpoint, enqueues <events> events, prints `SETUP <json>` and delivers until killed.
 * resume: opens the same store, delivers until every delivery succeeded, prints `DONE <json>`.
 */
import { postgresStorage } from 'multisession/postgres';
import { sqliteStorage } from 'multisession/sqlite';
import { createWebhooks } from 'multisession/webhooks';

const [kind, where, url, mode, count] = process.argv.slice(2) as ['sqlite' | 'postgres', string, string, 'setup' | 'resume', string];
const pgUrl = process.env.MULTISESSION_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const storage = kind === 'sqlite' ? sqliteStorage({ filename: where }) : postgresStorage({ connectionString: pgUrl }, { schema: where, poolSize: 2 });
const webhooks = createWebhooks({
  storage,
  allowPrivateTargets: true,
  totalTimeoutMs: 1500,
  leaseMs: 2000,
  concurrency: 1,
  pollMs: 50,
  retryScheduleMs: [100, 100, 100],
  jitter: 0,
});

if (mode === 'setup') {
  const { endpoint, secret } = await webhooks.createEndpoint({ url });
  const ids: string[] = [];
  for (let i = 1; i <= Number(count); i++) ids.push(...(await webhooks.send({ type: 'order.paid', data: { n: i }, eventId: `evt_${i}` })));
  process.stdout.write(`SETUP ${JSON.stringify({ endpointId: endpoint.id, secret, ids })}\n`);
  webhooks.start();
  await new Promise(() => undefined); // delivers until killed
} else {
  webhooks.start();
  const [endpoint] = await webhooks.listEndpoints();
  for (;;) {
    const log = await webhooks.deliveries(endpoint!.id, { limit: 1000 });
    if (log.length === Number(count) && log.every((d) => d.status === 'succeeded')) {
      process.stdout.write(`DONE ${JSON.stringify(log.map((d) => ({ id: d.id, attempts: d.attempts })))}\n`);
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await webhooks.close();
  await storage.close();
}
