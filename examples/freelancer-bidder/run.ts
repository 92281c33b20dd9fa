/**
 * `npm run example:freelancer`: the seed-000 bidder, end to end, against local fakes of the
 * Freelancer REST API and of an OpenAI-compatible back-end (see src/demo.ts). Prints what each
 * account does, then its statistics; exits 1 when an account did not reach its bid limit, bid
 * twice on a project, or the revoked account did not end `expired`.
 */
import { runDemo } from './src/demo.js';

const started = Date.now();
const result = await runDemo({ log: (line) => console.log(line) });

console.log('\nPer session (manager.stats(id) and the bids Freelancer holds):');
const head = ['session', 'state', 'projects seen', 'bids placed', 'refused', 'bid limit', '429s waited'];
console.log(head.map((h, i) => (i === 0 ? h.padEnd(12) : h.padStart(14))).join(''));
let ok = true;
for (const a of result.accounts) {
  const c = a.stats.custom;
  const row = [a.id, a.state, c.projectsSeen ?? 0, c.bids ?? 0, c.bidsRefused ?? 0, a.bidLimit, a.rateLimited];
  console.log(row.map((v, i) => (i === 0 ? String(v).padEnd(12) : String(v).padStart(14))).join(''));
  const projects = new Set(a.bids.map((b) => b.project_id));
  if (a.bids.length !== a.bidLimit || (c.bids ?? 0) !== a.bidLimit || projects.size !== a.bids.length) ok = false;
}
console.log(`${result.revoked.id.padEnd(12)}${result.revoked.state.padStart(14)}   (Freelancer refused its token)`);
if (result.revoked.state !== 'expired') ok = false;
console.log(`\nBids written by the shared writer session: ${result.completions}; 429s from Freelancer's per-token limit (4 a second), waited out: ${result.rateLimited}.`);
console.log(`${ok ? 'Done' : 'FAILED'} in ${((Date.now() - started) / 1_000).toFixed(1)} s.`);
process.exit(ok ? 0 : 1);
