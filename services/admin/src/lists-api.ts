import type { FastifyInstance } from 'fastify';
import { isListKind, LIST_KINDS, ListStore, type ListKind } from '@mailgate/lists';
import type { AuditLog } from './audit.js';

/**
 * /api/v1/lists — the live sender/IP allow and block lists (packages/lists) that every ingress replica follows
 * within seconds. Changes are audited like quarantine releases. Entries seeded in the config file
 * (ingress.lists.seed) are not stored in Redis and are not listed here.
 */
export function registerListsApi(app: FastifyInstance, d: { store: ListStore; audit: AuditLog }): void {
  const kindOf = (v: unknown): ListKind | undefined => {
    if (v === undefined || v === '') return undefined;
    if (!isListKind(v)) throw Object.assign(new Error(`kind must be one of ${LIST_KINDS.join(', ')}`), { http: 400 });
    return v;
  };

  app.get('/api/v1/lists', async (req) => {
    const q = req.query as Record<string, string | undefined>;
    const kind = kindOf(q['kind']);
    const int = (name: string, dflt: number, min: number, max: number): number => {
      const v = q[name];
      if (v === undefined || v === '') return dflt;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max)
        throw Object.assign(new Error(`${name} must be an integer from ${min} to ${max}`), { http: 400 });
      return n;
    };
    // Offset paging: the lists are small (an operator's entries, kept sorted) and read whole from one hash.
    const limit = int('limit', 1000, 1, 1000);
    const offset = int('offset', 0, 0, Number.MAX_SAFE_INTEGER);
    const all = await d.store.list({ ...(kind ? { kind } : {}), ...(q['search'] ? { search: q['search'] } : {}) });
    const results = all.slice(offset, offset + limit);
    const next = offset + results.length;
    return { results, total: all.length, ...(next < all.length ? { nextOffset: next } : {}) };
  });

  app.post('/api/v1/lists', async (req, reply) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    const kind = kindOf(b['kind']);
    if (!kind) throw Object.assign(new Error('kind is required'), { http: 400 });
    if (typeof b['value'] !== 'string') throw Object.assign(new Error('value is required'), { http: 400 });
    const ttl = b['ttlSeconds'] === undefined ? undefined : Number(b['ttlSeconds']);
    const entry = await d.store.add({
      kind,
      value: b['value'],
      reason: typeof b['reason'] === 'string' ? b['reason'] : '',
      createdBy: req.principal!.name,
      ...(typeof b['expiresAt'] === 'string' ? { expiresAt: b['expiresAt'] } : {}),
      ...(ttl !== undefined ? { ttlSeconds: ttl } : {}),
    });
    await d.audit.record({
      who: req.principal!.name,
      action: 'lists.add',
      target: `${entry.kind} ${entry.value}`,
      details: { reason: entry.reason, expiresAt: entry.expiresAt },
    });
    return reply.code(201).send({ entry });
  });

  // DELETE with query parameters: a CIDR value contains '/', which a path segment would have to escape.
  app.delete('/api/v1/lists', async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    const kind = kindOf(q['kind']);
    if (!kind || !q['value']) throw Object.assign(new Error('kind and value are required'), { http: 400 });
    const removed = await d.store.remove(kind, q['value']);
    if (!removed) return reply.code(404).send({ error: 'not-found', message: `no ${kind} entry ${q['value']}` });
    await d.audit.record({ who: req.principal!.name, action: 'lists.remove', target: `${kind} ${q['value']}` });
    return { removed: true };
  });
}

const ok = (description: string) => ({ description, content: { 'application/json': { schema: { type: 'object' } } } });
const kindParam = { name: 'kind', in: 'query', schema: { type: 'string', enum: [...LIST_KINDS] } };

/** OpenAPI paths of the lists API (merged into openapi.ts). */
export const LISTS_OPENAPI_PATHS = {
  '/api/v1/lists': {
    get: {
      summary: 'Live allow/block list entries (ip-allow, ip-block, sender-block); expired ones are not shown',
      parameters: [
        kindParam,
        { name: 'search', in: 'query', schema: { type: 'string' } },
        { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 1000 } },
        { name: 'offset', in: 'query', schema: { type: 'integer', minimum: 0, default: 0 } },
      ],
      responses: {
        '200': ok('{ results: [{ kind, value, reason, createdBy, createdAt, expiresAt }], total, nextOffset? }'),
        '400': ok('Invalid kind, limit or offset'),
      },
    },
    post: {
      summary: 'Add (or replace) an entry; every ingress replica applies it within 5 s',
      requestBody: {
        content: {
          'application/json': {
            schema: {
              type: 'object',
              required: ['kind', 'value'],
              properties: {
                kind: { type: 'string', enum: [...LIST_KINDS] },
                value: { type: 'string', description: 'IP/CIDR, or user@domain, *@domain, *@*.domain' },
                reason: { type: 'string' },
                expiresAt: { type: 'string', format: 'date-time' },
                ttlSeconds: { type: 'integer', minimum: 1 },
              },
            },
          },
        },
      },
      responses: { '201': ok('{ entry }'), '400': ok('Invalid kind/value/expiry'), '403': ok('Read-only token') },
    },
    delete: {
      summary: 'Remove an entry',
      parameters: [
        { ...kindParam, required: true },
        { name: 'value', in: 'query', required: true, schema: { type: 'string' } },
      ],
      responses: { '200': ok('{ removed: true }'), '404': ok('No such entry'), '403': ok('Read-only token') },
    },
  },
} as const;
