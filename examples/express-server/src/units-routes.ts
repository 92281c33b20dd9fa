import type { Request, Router } from 'express';
import { parseUnitSelector, type SessionManager, type UnitSelector } from 'multisession';
import { canAccess, type Principal } from './api-keys.js';
import { HttpProblem } from './problem.js';

/**
 * The work-unit endpoints (seed 003's pairs): admin keys only, except that a session-scoped key
 * may read the units of the sessions it lists. The library checks every input (a bad one is a
 * 400 with the field path, a unit past a capacity a 409 `CAPACITY`).
 */
export function unitRoutes(api: Router, manager: SessionManager, auth: { principalOf(req: Request): Principal; requireAdmin(req: Request): void; actorOf(req: Request): string }): void {
  const { principalOf, requireAdmin, actorOf } = auth;
  const query = (req: Request) => req.query as Record<string, string | undefined>;

  api.get('/units', async (req, res) => {
    const q = query(req);
    const principal = principalOf(req);
    if (principal.role !== 'admin' && (!q.sessionId || !canAccess(principal, q.sessionId))) {
      throw new HttpProblem(403, 'FORBIDDEN', 'A session-scoped key may list units only with ?sessionId= of a session it lists.');
    }
    const limit = q.limit === undefined ? undefined : Number(q.limit);
    res.json(
      await manager.units.list({
        ...(q.sessionId ? { sessionId: q.sessionId } : {}),
        ...(q.unassigned === 'true' ? { unassigned: true } : {}),
        ...(q.kind ? { kind: q.kind } : {}),
        ...(limit === undefined ? {} : { limit }),
        ...(q.cursor ? { cursor: q.cursor } : {}),
      }),
    );
  });

  api.post('/units', async (req, res) => {
    requireAdmin(req);
    const body = req.body as { units?: unknown } | undefined;
    res.status(201).json(await manager.units.add((body?.units ?? body) as never, { actor: actorOf(req) }));
  });

  api.post('/units/assign', async (req, res) => {
    requireAdmin(req);
    const { ids, to, reason } = (req.body ?? {}) as { ids?: string[]; to?: string | null; reason?: string };
    res.json(await manager.units.assign(ids as string[], { ...(to === undefined ? {} : { to }), ...(reason ? { reason } : {}), actor: actorOf(req) }));
  });

  api.post('/units/reassign', async (req, res) => {
    requireAdmin(req);
    const { selector, to, dryRun, reason } = (req.body ?? {}) as { selector?: unknown; to?: string; dryRun?: boolean; reason?: string };
    // The selector as an object, or as seed 003's text (`1,2,3`, `1-10`, `all_from:name`).
    const sel = typeof selector === 'string' ? parseUnitSelector(selector) : (selector as UnitSelector);
    res.json(await manager.units.reassign(sel, to as string, { ...(dryRun === undefined ? {} : { dryRun }), ...(reason ? { reason } : {}), actor: actorOf(req) }));
  });

  api.get('/units/:unitId', async (req, res) => {
    const unit = await manager.units.get(String(req.params.unitId));
    const principal = principalOf(req);
    // A unit outside a scoped key's sessions is as missing as an unknown one.
    if (!unit || (principal.role !== 'admin' && (unit.sessionId === null || !canAccess(principal, unit.sessionId)))) {
      throw new HttpProblem(404, 'UNIT_NOT_FOUND', `No unit "${String(req.params.unitId)}"; GET /api/v1/units lists them.`);
    }
    res.json(unit);
  });

  api.delete('/units/:unitId', async (req, res) => {
    requireAdmin(req);
    const id = String(req.params.unitId);
    if (!(await manager.units.get(id))) throw new HttpProblem(404, 'UNIT_NOT_FOUND', `No unit "${id}"; GET /api/v1/units lists them.`);
    await manager.units.remove([id], { actor: actorOf(req) });
    res.status(204).end();
  });

  api.get('/sessions/optimal', async (req, res) => {
    requireAdmin(req);
    const q = query(req);
    const best = await manager.units.pickSession(q.platform ? { platform: q.platform } : {});
    if (!best) throw new HttpProblem(404, 'NO_SESSION_FITS', 'No session can take a unit now: none is ready (or degraded) with spare capacity.');
    res.json(best);
  });

  api.get('/workers', async (req, res) => {
    requireAdmin(req);
    res.json(await manager.workerStatus());
  });
}
