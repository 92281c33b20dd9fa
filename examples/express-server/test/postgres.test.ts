import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PG_URL, postgresForTests } from '../../../test/helpers/postgres.js';
import { codeFromQr, startTestServer, waitForState } from './helpers.js';

/**
 * The server on the real PostgreSQL server (`--db postgres://…`), in a fresh schema dropped
 * afterwards. Skipped only when no server is reachable outside CI; under CI it must run.
 */
const { reachable, freshSchema } = await postgresForTests('ms_server');
const schema = freshSchema();

(reachable ? describe : describe.skip)('server on PostgreSQL', () => {
  it('serves the API from PostgreSQL and restores a running session after a restart', async () => {
    const apiKey = `admin-${randomBytes(16).toString('hex')}`;
    const first = await startTestServer({ db: PG_URL, pgSchema: schema, apiKey });
    let secretKey: string;
    try {
      const health = await first.call('GET', '/api/v1/health', { key: null });
      expect(health.json.storage).toMatchObject({ kind: 'postgres', ok: true });
      expect((await first.call('POST', '/api/v1/sessions', { body: { id: 'pg-1', platform: 'demo', credentials: { token: 'pg-token' } } })).status).toBe(201);
      await first.call('POST', '/api/v1/sessions/pg-1/start');
      const st = await waitForState(first, 'pg-1', ['authenticating']);
      await first.call('POST', '/api/v1/sessions/pg-1/auth', { body: { kind: 'code', value: codeFromQr(st.auth.data) } });
      await waitForState(first, 'pg-1', ['ready']);
      const { readFileSync } = await import('node:fs');
      secretKey = readFileSync(`${first.dir}/secret.key`, 'utf8').trim();
    } finally {
      await first.close();
    }
    // Another server (another data folder, same database and secret key) picks the session up.
    const second = await startTestServer({ db: PG_URL, pgSchema: schema, apiKey, secretKey });
    try {
      await waitForState(second, 'pg-1', ['ready']);
      const sent = await second.call('POST', '/api/v1/sessions/pg-1/messages', { body: { text: 'from pg' } });
      expect(sent.status).toBe(200);
      const audit = await second.call('GET', '/api/v1/audit?sessionId=pg-1');
      expect(audit.json.map((e: any) => e.action)).toEqual(expect.arrayContaining(['create', 'start']));
    } finally {
      await second.close();
    }
  });
});
