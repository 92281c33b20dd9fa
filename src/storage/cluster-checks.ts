import { z } from 'zod';
import { parseWith } from '../validation.js';
import type { AcquireRequest, LeaseRef, NodeHeartbeat, NodeRegistration } from './cluster-contract.js';

/** Input checks of the `cluster` capability, shared by the SQL drivers (a bad input writes nothing). */

/** A node id: letters, digits, `_`, `.`, `-`; 1–64 characters. */
export const NODE_ID = /^[A-Za-z0-9_.-]{1,64}$/;

const nodeId = z.string().regex(NODE_ID, 'must be 1-64 characters of A-Z, a-z, 0-9, _, . or -');
const incarnation = z.string().min(1).max(128);
const ttlMs = z.number().int().min(1);
const sessionId = z.string().min(1);
const token = z.number().int().positive();

const registration = z.object({
  nodeId,
  incarnation,
  host: z.string().max(255),
  pid: z.number().int().nonnegative(),
  maxRunning: z.number().int().min(1).nullable(),
  ttlMs,
});
const heartbeat = z.object({ nodeId, incarnation, running: z.number().int().nonnegative(), draining: z.boolean(), ttlMs });
const acquire = z.object({ nodeId, incarnation, limit: z.number().int().nonnegative(), ttlMs, ids: z.array(sessionId).optional() });
const leases = z.array(z.object({ sessionId, token }));
const ids = z.array(sessionId).optional();
const changes = z.object({ since: z.number().int().nonnegative(), limit: z.number().int().min(1) });

const relayed = z.array(z.object({ sessionId, event: z.record(z.string(), z.json()) }));
export function checkPublish(node: string, v: readonly unknown[]): void {
  parseWith(nodeId, node, 'node id');
  parseWith(relayed, v, 'relayed events');
}

export const checkRegistration = (v: NodeRegistration): NodeRegistration => parseWith(registration, v, 'node registration');
export const checkHeartbeat = (v: NodeHeartbeat): NodeHeartbeat => parseWith(heartbeat, v, 'node heartbeat');
export const checkAcquire = (v: AcquireRequest): AcquireRequest => parseWith(acquire, v, 'acquire request');
export function checkRelease(node: string, v: readonly LeaseRef[]): LeaseRef[] {
  parseWith(nodeId, node, 'node id');
  return parseWith(leases, v, 'leases');
}
export function checkNodeRef(node: string, inc: string): void {
  parseWith(nodeId, node, 'node id');
  parseWith(incarnation, inc, 'node incarnation');
}
export const checkOwnerIds = (v: readonly string[] | undefined): string[] | undefined => parseWith(ids, v, 'session ids');
export const checkChanges = (since: number, limit: number): void => void parseWith(changes, { since, limit }, 'change query');
