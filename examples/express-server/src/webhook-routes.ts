import type { Request, Router } from 'express';
import { z } from 'zod';
import type { Webhooks } from 'multisession/webhooks';
import { HttpProblem } from './problem.js';

/**
 * `/api/v1/webhooks`: the endpoints of `multisession/webhooks`, their delivery logs, replay and
 * test-send. Admin keys only (an endpoint hears about every session it matches). A secret is in
 * the answer of the create and rotate calls only.
 */

const idSchema = z.string().min(1).max(200).regex(/^[A-Za-z0-9_-]+$/, 'must be an endpoint or delivery id');
const time = z.coerce.number().int().min(0);
const deliveriesQuerySchema = z.strictObject({
  status: z.enum(['pending', 'succeeded', 'failed']).optional(),
  since: time.optional(),
  until: time.optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
});
const replayBodySchema = z.strictObject({
  since: z.number().int().min(0),
  until: z.number().int().min(0).optional(),
  status: z.enum(['succeeded', 'failed']).optional(),
});
const rotateBodySchema = z.strictObject({ keepPreviousForMs: z.number().int().min(0).optional() });

type Parse = <T>(schema: z.ZodType<T>, input: unknown, where: 'query' | 'body' | 'path.id') => T;

export function webhookRoutes(api: Router, webhooks: Webhooks, helpers: { parse: Parse; requireAdmin(req: Request): void }): void {
  const { parse, requireAdmin } = helpers;
  const endpointId = (req: Request): string => {
    requireAdmin(req);
    return parse(idSchema, String(req.params.id ?? ''), 'path.id');
  };

  api.get('/webhooks', async (req, res) => {
    requireAdmin(req);
    res.json(await webhooks.listEndpoints());
  });

  api.post('/webhooks', async (req, res) => {
    requireAdmin(req);
    const { endpoint, secret } = await webhooks.createEndpoint(req.body ?? {});
    res.status(201).location(`/api/v1/webhooks/${endpoint.id}`).json({ ...endpoint, secret });
  });

  api.get('/webhooks/:id', async (req, res) => {
    res.json(await webhooks.getEndpoint(endpointId(req)));
  });

  api.patch('/webhooks/:id', async (req, res) => {
    const id = endpointId(req);
    res.json(await webhooks.updateEndpoint(id, req.body ?? {}));
  });

  api.delete('/webhooks/:id', async (req, res) => {
    await webhooks.deleteEndpoint(endpointId(req));
    res.status(204).end();
  });

  api.post('/webhooks/:id/rotate-secret', async (req, res) => {
    const id = endpointId(req);
    const body = parse(rotateBodySchema, req.body ?? {}, 'body');
    const { endpoint, secret } = await webhooks.rotateSecret(id, body);
    res.json({ ...endpoint, secret });
  });

  api.get('/webhooks/:id/deliveries', async (req, res) => {
    const id = endpointId(req);
    const q = parse(deliveriesQuerySchema, req.query, 'query');
    res.json(await webhooks.deliveries(id, q));
  });

  api.post('/webhooks/:id/deliveries/:deliveryId/replay', async (req, res) => {
    const id = endpointId(req);
    const deliveryId = parse(idSchema, String(req.params.deliveryId ?? ''), 'path.id');
    const delivery = await webhooks.delivery(deliveryId);
    if (delivery.endpointId !== id) throw new HttpProblem(404, 'WEBHOOK_NOT_FOUND', `Endpoint "${id}" has no delivery "${deliveryId}".`);
    res.status(202).json(await webhooks.replay(deliveryId));
  });

  api.post('/webhooks/:id/replay', async (req, res) => {
    const id = endpointId(req);
    const body = parse(replayBodySchema, req.body ?? {}, 'body');
    res.status(202).json({ replayed: await webhooks.replayRange(id, body) });
  });

  api.post('/webhooks/:id/test', async (req, res) => {
    res.json(await webhooks.testSend(endpointId(req)));
  });
}
