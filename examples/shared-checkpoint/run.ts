/**
 * Runs the shared-checkpoint scenario and prints what happened.
 *
 *   node --import tsx examples/shared-checkpoint/run.ts [--messages 2000] [--lease-ms 2000]
 *        [--send-delay-ms 2] [--no-stall] [--dir examples/shared-checkpoint/.data] [--json]
 *
 * Exits 0 when the target chat holds every source message exactly once, 1 on any violation.
 */
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runScenario, type ScenarioReport } from './src/scenario.js';

export { runScenario, verifyRun, type ScenarioOptions, type ScenarioReport } from './src/scenario.js';

const DEFAULT_DIR = fileURLToPath(new URL('./.data/', import.meta.url));

function print(r: ScenarioReport): void {
  const out = (s = '') => process.stdout.write(`${s}\n`);
  out();
  out(`${r.messages} messages copied by 2 sessions through ${r.dir}/shared/checkpoint.db in ${(r.elapsedMs / 1000).toFixed(1)} s (lease ${r.leaseMs} ms)`);
  if (r.kill) out(`  SIGKILL: ${r.kill.session} pid ${r.kill.pid} at ${r.kill.doneBefore} done, holding ${r.kill.heldKeys.join(', ') || 'nothing'}; restarted as pid ${r.kill.restartedPid}`);
  if (r.stall) out(`  SIGSTOP: ${r.stall.session} pid ${r.stall.pid} at ${r.stall.doneBefore} done for ${r.stall.stoppedMs} ms, holding ${r.stall.heldKeys.join(', ') || 'nothing'}`);
  out();
  const cols = ['session', 'processes', 'claimed', 'takeovers', 'skipped', 'posted', 'edited', 'refused', 'completed', 'leaseLost', 'errors', 'targetMessages'] as const;
  const rows = [cols.map(String), ...r.workers.map((w) => cols.map((c) => String(w[c])))];
  const width = cols.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const row of rows) out(`  ${row.map((cell, i) => (i === 0 ? cell.padEnd(width[i]!) : cell.padStart(width[i]!))).join('  ')}`);
  out();
  out(`  checkpoint: ${r.checkpoint.done} done, ${r.checkpoint.processing} processing, ${r.checkpoint.pending} pending, ${r.checkpoint.failed} failed, ${r.checkpoint.dead} dead`);
  out(`  target:     ${r.target.rows} messages for ${r.target.distinctMessages} source messages; ${r.target.duplicates} duplicates, ${r.target.missing} missing, ${r.target.edited} taken over by edit`);
  out();
  if (r.violations.length === 0) out('OK: the target holds every source message exactly once, each written by the lease that completed it.');
  else {
    out(`FAILED: ${r.violations.length} violation(s):`);
    for (const v of r.violations) out(`  - ${v}`);
  }
  out();
  out('Look inside (the seed\'s "Monitorar Checkpoint"):');
  out(`  sqlite3 ${r.dir}/shared/checkpoint.db "SELECT status, count(*) FROM checkpoint_items GROUP BY status"`);
  out(`  sqlite3 ${r.dir}/shared/chats.db "SELECT session_id, count(*) FROM target_messages GROUP BY session_id"`);
  out(`  tail ${r.dir}/session1/clone.log`);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      messages: { type: 'string' },
      'lease-ms': { type: 'string' },
      'send-delay-ms': { type: 'string' },
      'timeout-ms': { type: 'string' },
      'no-stall': { type: 'boolean' },
      dir: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${readmeUsage}\n`);
    return 0;
  }
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const dir = values.dir ?? DEFAULT_DIR;
  if (values.dir === undefined) rmSync(DEFAULT_DIR, { recursive: true, force: true }); // our own scratch folder
  // Ctrl-C: the scenario kills its workers (continuing a stopped one first) before we exit.
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort(new Error('interrupted')));
  process.once('SIGTERM', () => stop.abort(new Error('terminated')));
  const report = await runScenario({
    signal: stop.signal,
    dir,
    messages: num(values.messages),
    leaseMs: num(values['lease-ms']),
    sendDelayMs: num(values['send-delay-ms']),
    timeoutMs: num(values['timeout-ms']),
    stall: !values['no-stall'],
    log: values.json ? undefined : (line) => process.stdout.write(`${new Date().toISOString().slice(11, 23)} ${line}\n`),
  });
  if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else print(report);
  return report.violations.length === 0 ? 0 : 1;
}

const readmeUsage = `node --import tsx examples/shared-checkpoint/run.ts [options]
  --messages N        messages in the source chat (default 2000)
  --lease-ms MS       lease of each lock (default 2000)
  --send-delay-ms MS  simulated network time per forward (default 2)
  --no-stall          skip the SIGSTOP of the second worker
  --dir PATH          an empty folder for the run (default examples/shared-checkpoint/.data, wiped first)
  --timeout-ms MS     give up after this long (default 180000)
  --json              print the report as JSON`;

if (process.argv[1] && fileURLToPath(import.meta.url) === (await import('node:path')).resolve(process.argv[1])) {
  main().then(
    (code) => (process.exitCode = code),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
