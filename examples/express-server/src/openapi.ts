import { z } from 'zod';
import { authInputSchema, sessionInputSchema, sessionPatchSchema } from 'multisession';
import * as s from './http-schemas.js';
import { endpointInputSchema, endpointPatchSchema } from 'multisession/webhooks';

/**
 * The OpenAPI 3.1 document, generated from the zod schemas at start-up (nothing written by hand
 * but the list of routes). Request bodies come from the library's own input schemas; query
 * parameters and responses from `http-schemas.ts`.
 */

type JsonObject = Record<string, unknown>;

const COMPONENTS: Record<string, z.ZodType> = {
  SessionInput: sessionInputSchema,
  SessionPatch: sessionPatchSchema,
  AuthInput: authInputSchema,
  ControlBody: s.controlBodySchema,
  CreateKey: s.createKeySchema,
  Message: s.messageBodySchema,
  Session: s.snapshotSchema,
  SessionPage: s.sessionPageSchema,
  SessionStatus: s.statusSchema,
  SessionStatistics: s.statisticsSchema,
  SessionTraffic: s.trafficSchema,
  LogEntry: s.logEntrySchema,
  AuditEntry: s.auditEntrySchema,
  Qr: s.qrSchema,
  KeyInfo: s.keyInfoSchema,
  CreatedKey: s.createdKeySchema,
  AdapterInfo: s.adapterInfoSchema,
  Health: s.healthSchema,
  SendResult: s.sendResultSchema,
  Problem: s.problemSchema,
  CheckpointStats: s.checkpointStatsSchema,
  Node: s.nodeSchema,
  NodeList: s.nodeListSchema,
  DrainResult: s.drainResultSchema,
  WebhookEndpointInput: endpointInputSchema,
  WebhookEndpointPatch: endpointPatchSchema,
};

const PREFIX = '#/components/schemas/';

/** Rewrites zod's `__shared#/$defs/x` references to top-level components and drops `$id`/`$schema`. */
function componentsFromZod(): Record<string, JsonObject> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(COMPONENTS)) registry.add(schema, { id });
  const out = z.toJSONSchema(registry, {
    io: 'input',
    unrepresentable: 'any',
    uri: (id) => `${PREFIX}${id}`,
  }) as { schemas: Record<string, JsonObject> };
  const schemas: Record<string, JsonObject> = {};
  const shared = (out.schemas.__shared?.$defs ?? {}) as Record<string, JsonObject>;
  // zod emits one definition per recursive schema instance; identical ones (e.g. several
  // `z.json()`) become one component, named JsonValue when it is the JSON value type.
  const names = new Map<string, string>();
  const byShape = new Map<string, string>();
  for (const [def, schema] of Object.entries(shared)) {
    const shape = JSON.stringify(schema).split(`"#/components/schemas/__shared#/$defs/${def}"`).join('"SELF"');
    let name = byShape.get(shape);
    if (!name) {
      const isJson = shape.includes('"type":"null"') && shape.includes('"type":"array"') && shape.includes('"additionalProperties":{"$ref":"SELF"}');
      name = isJson && ![...byShape.values()].includes('JsonValue') ? 'JsonValue' : `Shared${byShape.size + 1}`;
      byShape.set(shape, name);
    }
    names.set(def, name);
  }
  const rename = (def: string) => names.get(def) ?? `Shared_${def}`;
  const fix = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(fix);
    if (!node || typeof node !== 'object') return node;
    const res: JsonObject = {};
    for (const [k, v] of Object.entries(node as JsonObject)) {
      if (k === '$id' || k === '$schema') continue;
      if (k === '$ref' && typeof v === 'string') {
        const m = /^#\/components\/schemas\/__shared#\/\$defs\/(.+)$/.exec(v) ?? /^#\/\$defs\/(.+)$/.exec(v);
        res[k] = m ? `${PREFIX}${rename(m[1]!)}` : v;
        continue;
      }
      res[k] = fix(v);
    }
    return res;
  };
  for (const [id, schema] of Object.entries(out.schemas)) {
    if (id !== '__shared') schemas[id] = fix(schema) as JsonObject;
  }
  for (const [def, schema] of Object.entries(shared)) schemas[rename(def)] ??= fix(schema) as JsonObject;
  return schemas;
}

/** Query parameters from a zod object schema. */
function queryParams(schema: z.ZodObject): JsonObject[] {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as {
    properties?: Record<string, JsonObject>;
    required?: string[];
  };
  return Object.entries(json.properties ?? {}).map(([name, prop]) => {
    const { description, ...rest } = prop;
    return {
      name,
      in: 'query',
      required: json.required?.includes(name) ?? false,
      ...(description ? { description } : {}),
      schema: Object.keys(rest).length ? rest : { type: 'string' },
    };
  });
}

const ref = (name: string) => ({ $ref: `${PREFIX}${name}` });
const jsonBody = (name: string, required = true) => ({ required, content: { 'application/json': { schema: ref(name) } } });
const ok = (name: string | null, description = 'OK', array = false) =>
  name === null
    ? { description }
    : { description, content: { 'application/json': { schema: array ? { type: 'array', items: ref(name) } : ref(name) } } };
const problem = (description: string) => ({ description, content: { 'application/problem+json': { schema: ref('Problem') } } });

const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } };

const webhookId = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
const json = (description: string): JsonObject => ({ description, content: { 'application/json': { schema: { type: 'object' } } } });

const common = {
  '400': problem('Invalid input: `errors` lists each field path'),
  '401': problem('No API key, or an unknown one'),
  '403': problem('The key may not act on this session or endpoint'),
  '415': problem('The body is not UTF-8 JSON (`UNSUPPORTED_MEDIA_TYPE`)'),
  '429': problem('Rate limit: retry after the `Retry-After` header'),
};
const withId = { ...common, '404': problem('No such session'), '409': problem('The session is in a state that does not allow this') };

interface Op {
  summary: string;
  tags: string[];
  parameters?: JsonObject[];
  requestBody?: JsonObject;
  responses: JsonObject;
  security?: JsonObject[];
}

function control(action: string, summary: string): Op {
  return {
    summary,
    tags: ['Lifecycle'],
    parameters: [idParam],
    requestBody: jsonBody('ControlBody', false),
    responses: { '200': ok('Session', `The session after ${action}`), ...withId },
  };
}

export function buildOpenApiDocument(options: { version: string; serverUrl?: string }): JsonObject {
  const paths: Record<string, Record<string, Op>> = {
    '/api/v1/adapters': {
      get: { summary: 'Registered adapters with the JSON Schemas of their credentials and config', tags: ['Sessions'], responses: { '200': ok('AdapterInfo', 'Adapters', true), ...common } },
    },
    '/api/v1/sessions': {
      post: { summary: 'Create a session', tags: ['Sessions'], requestBody: jsonBody('SessionInput'), responses: { '201': ok('Session', 'Created'), ...common, '409': problem('The id is taken, the credentials are in use, or the session limit is reached') } },
      get: {
        summary: 'List sessions a page at a time, in id order (a session-scoped key: only its own)',
        tags: ['Sessions'],
        parameters: queryParams(s.listQuerySchema),
        responses: { '200': ok('SessionPage', 'A page of sessions; follow nextCursor for the next'), ...common, '400': problem('A bad filter, limit or cursor: `errors` names the field (`query.limit`, `query.cursor`, …)') },
      },
    },
    '/api/v1/sessions/status': {
      get: { summary: 'Live status of every session', tags: ['Status'], responses: { '200': ok('SessionStatus', 'Statuses', true), ...common } },
    },
    '/api/v1/sessions/{id}': {
      get: { summary: 'One session', tags: ['Sessions'], parameters: [idParam], responses: { '200': ok('Session'), ...withId } },
      patch: { summary: 'Change a session (a config or credential change restarts a running session)', tags: ['Sessions'], parameters: [idParam], requestBody: jsonBody('SessionPatch'), responses: { '200': ok('Session'), ...withId } },
      delete: { summary: 'Delete a session', tags: ['Sessions'], parameters: [idParam, ...queryParams(s.deleteQuerySchema)], responses: { '204': { description: 'Deleted' }, ...withId } },
    },
    '/api/v1/sessions/{id}/start': { post: control('start', 'Start; answers when the first attempt settles (ready, authenticating, backoff, failed or expired)') },
    '/api/v1/sessions/{id}/stop': { post: control('stop', 'Stop; answers when stopped') },
    '/api/v1/sessions/{id}/restart': { post: control('restart', 'Restart') },
    '/api/v1/sessions/{id}/logout': { post: control('logout', 'Log out: drop the stored auth state') },
    '/api/v1/sessions/{id}/clear': { post: control('clear', 'Clear the session\'s context data') },
    '/api/v1/sessions/{id}/auth': {
      post: { summary: 'Submit a code, password or pairing code', tags: ['Lifecycle'], parameters: [idParam], requestBody: jsonBody('AuthInput'), responses: { '200': ok('Session'), ...withId } },
    },
    '/api/v1/sessions/{id}/status': { get: { summary: 'Live status', tags: ['Status'], parameters: [idParam], responses: { '200': ok('SessionStatus'), ...withId } } },
    '/api/v1/sessions/{id}/statistics': { get: { summary: 'Counters', tags: ['Status'], parameters: [idParam], responses: { '200': ok('SessionStatistics'), ...withId } } },
    '/api/v1/sessions/{id}/traffic': { get: { summary: 'Messages in and out per minute, the last hour (what the web page charts)', tags: ['Status'], parameters: [idParam], responses: { '200': ok('SessionTraffic'), ...withId } } },
    '/api/v1/sessions/{id}/logs': { get: { summary: 'Recent log lines', tags: ['Status'], parameters: [idParam, ...queryParams(s.logsQuerySchema)], responses: { '200': ok('LogEntry', 'Log lines', true), ...withId } } },
    '/api/v1/sessions/{id}/qr': { get: { summary: 'The pending QR code as JSON with a PNG data URL', tags: ['Auth'], parameters: [idParam], responses: { '200': ok('Qr'), ...withId } } },
    '/api/v1/sessions/{id}/qr.png': {
      get: { summary: 'The pending QR code as a PNG image', tags: ['Auth'], parameters: [idParam], responses: { '200': { description: 'PNG', content: { 'image/png': { schema: { type: 'string', contentMediaType: 'image/png' } } } }, ...withId } },
    },
    '/api/v1/sessions/{id}/messages': {
      post: { summary: 'Send a platform action through the session', tags: ['Messaging'], parameters: [idParam], requestBody: jsonBody('Message'), responses: { '200': ok('SendResult'), ...withId } },
    },
    '/api/v1/events': {
      get: {
        summary: 'Server-Sent Events of the manager (session.state, session.auth, session.ready, session.health, session.created, session.updated, session.deleted, session.message, session.error, session.owner)',
        tags: ['Events'],
        parameters: queryParams(s.eventsQuerySchema),
        responses: { '200': { description: 'An event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } }, ...common },
      },
    },
    '/api/v1/checkpoints/{stream}/stats': {
      get: { summary: 'Item counts of a checkpoint stream (admin)', tags: ['Checkpoints'], parameters: [{ name: 'stream', in: 'path', required: true, schema: { type: 'string' } }], responses: { '200': ok('CheckpointStats'), ...common } },
    },
    '/api/v1/audit': { get: { summary: 'Audit log, newest first', tags: ['Admin'], parameters: queryParams(s.auditQuerySchema), responses: { '200': ok('AuditEntry', 'Entries', true), ...common } } },
    '/api/v1/nodes': {
      get: { summary: 'The cluster nodes sharing the store, and which one answered (admin)', tags: ['Cluster'], responses: { '200': ok('NodeList'), ...common } },
    },
    '/api/v1/nodes/{nodeId}/drain': {
      post: {
        summary: 'Drain a node (admin): it hands its sessions to the other nodes at once and takes no new ones until it restarts; any node forwards the call',
        tags: ['Cluster'],
        parameters: [{ name: 'nodeId', in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' } }],
        responses: { '200': ok('DrainResult', 'Drained: its sessions were stopped and their leases released'), ...common, '404': problem('No live node has this id (`NODE_NOT_FOUND`)'), '503': problem('The node did not answer in time (`OWNER_UNAVAILABLE`)') },
      },
    },
    '/api/v1/webhooks': {
      get: { summary: 'Webhook endpoints (admin; never their secrets)', tags: ['Webhooks'], responses: { '200': json('Endpoints'), ...common } },
      post: { summary: 'Add a webhook endpoint (admin); its secret is in this answer only', tags: ['Webhooks'], requestBody: jsonBody('WebhookEndpointInput'), responses: { '201': json('Created, with `secret`'), ...common } },
    },
    '/api/v1/webhooks/{id}': {
      get: { summary: 'One webhook endpoint (admin)', tags: ['Webhooks'], parameters: [webhookId], responses: { '200': json('The endpoint'), ...common, '404': problem('No such endpoint (`WEBHOOK_NOT_FOUND`)') } },
      patch: { summary: 'Change a webhook endpoint (admin); enabling it clears why it was disabled', tags: ['Webhooks'], parameters: [webhookId], requestBody: jsonBody('WebhookEndpointPatch'), responses: { '200': json('The endpoint'), ...common, '404': problem('No such endpoint (`WEBHOOK_NOT_FOUND`)') } },
      delete: { summary: 'Delete a webhook endpoint with its delivery log (admin)', tags: ['Webhooks'], parameters: [webhookId], responses: { '204': { description: 'Deleted' }, ...common, '404': problem('No such endpoint (`WEBHOOK_NOT_FOUND`)') } },
    },
    '/api/v1/webhooks/{id}/rotate-secret': {
      post: { summary: 'A new signing secret (in this answer only); the previous one signs beside it for `keepPreviousForMs` (default 24 h)', tags: ['Webhooks'], parameters: [webhookId], responses: { '200': json('The endpoint, with `secret`'), ...common } },
    },
    '/api/v1/webhooks/{id}/deliveries': {
      get: { summary: 'The delivery log, newest first (`status`, `since`, `until`, `limit`)', tags: ['Webhooks'], parameters: [webhookId], responses: { '200': json('Deliveries'), ...common } },
    },
    '/api/v1/webhooks/{id}/deliveries/{deliveryId}/replay': {
      post: { summary: 'Send one delivery again, same webhook-id', tags: ['Webhooks'], parameters: [webhookId, { name: 'deliveryId', in: 'path', required: true, schema: { type: 'string' } }], responses: { '202': json('The delivery, pending'), ...common } },
    },
    '/api/v1/webhooks/{id}/replay': {
      post: { summary: 'Replay the finished deliveries created in [since, until) (`{ since, until?, status? }`)', tags: ['Webhooks'], parameters: [webhookId], responses: { '202': json('`{ replayed }`'), ...common } },
    },
    '/api/v1/webhooks/{id}/test': {
      post: { summary: 'Send a `webhook.test` event to the endpoint now; answers the delivery after the attempt', tags: ['Webhooks'], parameters: [webhookId], responses: { '200': json('The delivery'), ...common } },
    },
    '/api/v1/keys': {
      get: { summary: 'API keys (admin; never the keys themselves)', tags: ['Admin'], responses: { '200': ok('KeyInfo', 'Keys', true), ...common } },
      post: { summary: 'Create an API key (admin); the key is in the answer once', tags: ['Admin'], requestBody: jsonBody('CreateKey'), responses: { '201': ok('CreatedKey', 'Created'), ...common } },
    },
    '/api/v1/keys/{keyId}': {
      delete: { summary: 'Revoke an API key (admin)', tags: ['Admin'], parameters: [{ name: 'keyId', in: 'path', required: true, schema: { type: 'string' } }], responses: { '204': { description: 'Revoked' }, ...common, '404': problem('No such key') } },
    },
    '/api/v1/health': { get: { summary: 'Liveness and a storage ping (no key needed)', tags: ['Operations'], security: [], responses: { '200': ok('Health'), '503': ok('Health', 'Storage unreachable') } } },
    '/metrics': { get: { summary: 'Prometheus metrics (admin)', tags: ['Operations'], responses: { '200': { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } }, ...common } } },
    '/api-docs': { get: { summary: 'This document', tags: ['Operations'], security: [], responses: { '200': { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object' } } } } } } },
  };

  return {
    openapi: '3.1.0',
    info: {
      title: 'multisession example server',
      version: options.version,
      description:
        'REST API over a multisession SessionManager. Send the API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`. Errors are RFC 9457 problem documents (`application/problem+json`).',
    },
    ...(options.serverUrl ? { servers: [{ url: options.serverUrl }] } : {}),
    security: [{ bearer: [] }, { apiKey: [] }],
    paths,
    components: {
      schemas: componentsFromZod(),
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer' },
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
      },
    },
  };
}
