/**
 * The load of `npm run bench:server`, in a child process (so the server's process spends its CPU
 * on the server alone, and that CPU can be counted): `concurrency` loops of GET requests over an
 * undici Pool of as many keep-alive connections, for a warm-up and then the measured duration.
 * Takes the job as its one IPC message; answers requests per second, p50 / p99 latency (ms),
 * bytes per response, non-200 answers and every request sent (warm-up included).
 */
import { Pool } from 'undici';

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

async function load(job) {
  const pool = new Pool(job.origin, { connections: job.concurrency, pipelining: 1 });
  const measureFrom = performance.now() + job.warmUpMs;
  const end = measureFrom + job.durationMs;
  const latencies = [];
  let bytes = 0;
  let failures = 0;
  let next = 0;
  let sent = 0;
  let lastDone = measureFrom;
  await Promise.all(
    Array.from({ length: job.concurrency }, async () => {
      for (;;) {
        const t0 = performance.now();
        if (t0 >= end) return;
        const path = job.paths[next++ % job.paths.length];
        const res = await pool.request({ method: 'GET', path, headers: job.headers });
        const body = await res.body.arrayBuffer();
        const t1 = performance.now();
        sent += 1;
        if (res.statusCode !== 200) failures += 1;
        if (t0 >= measureFrom) {
          latencies.push(t1 - t0);
          bytes += body.byteLength;
          lastDone = Math.max(lastDone, t1);
        }
      }
    }),
  );
  await pool.close();
  latencies.sort((a, b) => a - b);
  return {
    perSec: latencies.length / ((lastDone - measureFrom) / 1000),
    p50: pct(latencies, 50),
    p99: pct(latencies, 99),
    bytesPerResponse: latencies.length ? bytes / latencies.length : 0,
    failures,
    sent,
  };
}

process.once('message', async (job) => {
  process.send(await load(job), () => process.disconnect());
});
