import type { FastifyInstance } from 'fastify';
import type { AuditLog } from './audit.js';
import type { QuarantineStore } from './quarantine-store.js';
import { deleteFromQuarantine, NotFoundError, releaseFromQuarantine } from './release.js';
import type { PipelineStats } from './stats.js';
import {
  AUTH_CLASSES,
  SEARCH_STATUSES,
  type AuthClass,
  type SearchStatus,
  type TrackingStore,
} from './tracking-store.js';
import type { DurableProducer } from '@mailgate/bus';
import type { Tracer } from '@opentelemetry/api';
import type { Logger } from '@mailgate/runtime';
import { OPENAPI } from './openapi.js';
import { spamSummary } from './spam-panel.js';

/** A deferred message as the delivery service's queue operations describe it (the fields the console shows). */
export interface DeferredItem {
  readonly id: string;
  readonly mailFrom: string;
  readonly recipients: readonly { readonly rcpt: string; readonly lastReply: string }[];
  readonly attempts: number;
  readonly nextAttemptAt: string | null;
  readonly lastError: string;
  readonly held: boolean;
  readonly traceId?: string;
}

/**
 * The deferred delivery queue: structurally the delivery service's `DeliveryQueueOps`, so the CLI passes that
 * object as is. Its errors carry an HTTP status (404 not queued, 409 busy).
 */
export interface DeferredQueue {
  list(opts: { offset?: number; limit?: number }): Promise<{ total: number; items: readonly DeferredItem[] }>;
  retryNow(id: string): Promise<unknown>;
  hold(id: string): Promise<unknown>;
  release(id: string): Promise<unknown>;
  delete(id: string, opts: { dsn: boolean; by?: string }): Promise<unknown>;
}

export interface ApiDeps {
  readonly tracking: TrackingStore;
  readonly quarantine: QuarantineStore;
  readonly producer: DurableProducer;
  readonly audit: AuditLog;
  readonly stats: PipelineStats;
  readonly deferred?: DeferredQueue | undefined;
  readonly host: string;
  readonly maxResults: number;
  readonly traceUiUrl?: string | undefined;
  /** Spam learning is configured (admin.rspamd): the console offers "not spam" / "mark as spam". */
  readonly spamLearning?: boolean;
  readonly tracer?: Tracer;
  readonly log?: Logger;
}

export const ID_RE = /^[0-9A-Za-z._-]{1,64}$/;

const ERROR_NAMES: Record<number, string> = {
  400: 'bad-request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not-found',
  409: 'conflict',
  422: 'unprocessable',
  502: 'bad-gateway',
  503: 'unavailable',
};

/** The `:id` route parameter, checked (ids end up in Redis keys and log lines). */
function idOf(req: { params: unknown }): string {
  const { id } = req.params as { id: string };
  if (!ID_RE.test(id)) throw Object.assign(new Error(`malformed id '${id.slice(0, 80)}'`), { http: 400 });
  return id;
}

function num(v: unknown): number | undefined {
  if (typeof v !== 'string' || v === '') return undefined;
  const n = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  return Number.isFinite(n) ? n : undefined;
}

function statusParam(v: string | undefined): SearchStatus | undefined {
  if (!v) return undefined;
  if (!SEARCH_STATUSES.includes(v as SearchStatus))
    throw Object.assign(new Error(`status=${v.slice(0, 40)}: one of ${SEARCH_STATUSES.join(', ')}`), { http: 400 });
  return v as SearchStatus;
}

function authParam(v: string | undefined): AuthClass | undefined {
  if (!v) return undefined;
  if (!AUTH_CLASSES.includes(v as AuthClass))
    throw Object.assign(new Error(`auth=${v.slice(0, 40)}: one of ${AUTH_CLASSES.join(', ')}`), { http: 400 });
  return v as AuthClass;
}

/**
 * The admin HTTP API (JSON, under /api/v1). Errors are JSON `{ error, message }` with a 4xx/5xx status; every
 * state-changing call is written to the audit log with the token's name.
 */
export function registerApi(app: FastifyInstance, d: ApiDeps): void {
  app.setErrorHandler((err: Error & { statusCode?: number; http?: number }, req, reply) => {
    const status = err instanceof NotFoundError ? 404 : (err.http ?? err.statusCode ?? 500);
    if (status === 500) d.log?.error({ err, method: req.method, url: req.url }, 'admin request failed');
    void reply.code(status).send({
      error: ERROR_NAMES[status] ?? (status < 500 ? 'bad-request' : 'internal'),
      message: status === 500 ? 'internal error' : err.message,
    });
  });

  app.get('/openapi.json', async () => OPENAPI);

  app.get('/api/v1/messages', async (req) => {
    const q = req.query as Record<string, string | undefined>;
    return d.tracking.page(
      {
        rcpt: q['rcpt'] || undefined,
        from: q['from'] || undefined,
        ip: q['ip'] || undefined,
        messageId: q['messageId'] || undefined,
        subject: q['subject'] || undefined,
        status: statusParam(q['status']),
        auth: authParam(q['auth']),
        since: num(q['since']),
        until: num(q['until']),
        limit: num(q['limit']),
        cursor: q['cursor'] || undefined,
      },
      d.maxResults,
    );
  });

  app.get('/api/v1/messages/:id', async (req, reply) => {
    const id = idOf(req);
    const m = await d.tracking.get(id);
    if (!m) return reply.code(404).send({ error: 'not-found', message: `no message ${id}` });
    const traceUrl =
      d.traceUiUrl && m.summary.traceId ? `${d.traceUiUrl.replace(/\/$/, '')}/trace/${m.summary.traceId}` : undefined;
    // The spam-check decision (score, SCL, top symbols) lifted out of the timeline.
    const spam = spamSummary(m.events);
    return { ...m, traceUrl, ...(spam ? { spam } : {}) };
  });

  app.get('/api/v1/quarantine', async (req) => {
    const limit = num((req.query as Record<string, string>)['limit']) ?? 100;
    return { results: await d.quarantine.list(Math.min(limit, d.maxResults)) };
  });

  app.get('/api/v1/quarantine/:id', async (req, reply) => {
    const id = idOf(req);
    const e = await d.quarantine.get(id);
    if (!e) return reply.code(404).send({ error: 'not-found', message: `no quarantined message ${id}` });
    return e;
  });

  // GET /api/v1/quarantine/:id/raw and /preview (admin role, audited): quarantine-view.ts.

  app.post('/api/v1/quarantine/:id/release', async (req) => {
    const id = idOf(req);
    const body = (req.body ?? {}) as { recheck?: unknown };
    const recheck = body.recheck === true || body.recheck === 'true';
    const r = await releaseFromQuarantine(d.quarantine, d.producer, id, {
      recheck,
      by: req.principal!.name,
      host: d.host,
      ...(d.tracer ? { tracer: d.tracer } : {}),
    });
    await d.audit.record({
      who: req.principal!.name,
      action: recheck ? 'quarantine.release-recheck' : 'quarantine.release',
      target: id,
      details: { topic: r.topic },
    });
    return { released: r };
  });

  app.delete('/api/v1/quarantine/:id', async (req) => {
    const id = idOf(req);
    await deleteFromQuarantine(d.quarantine, d.producer, id, {
      by: req.principal!.name,
      host: d.host,
      ...(d.tracer ? { tracer: d.tracer } : {}),
    });
    await d.audit.record({ who: req.principal!.name, action: 'quarantine.delete', target: id });
    return { deleted: id };
  });

  const needDeferred = () => {
    if (!d.deferred)
      throw Object.assign(new Error('the deferred queue is not available (delivery not installed)'), { http: 503 });
    return d.deferred;
  };
  app.get('/api/v1/deferred', async (req) => {
    const q = req.query as Record<string, string>;
    const r = await needDeferred().list({
      offset: num(q['offset']) ?? 0,
      limit: Math.min(num(q['limit']) ?? 100, d.maxResults),
    });
    return { total: r.total, results: r.items };
  });
  for (const action of ['retry', 'hold', 'release'] as const) {
    app.post(`/api/v1/deferred/:id/${action}`, async (req) => {
      const id = idOf(req);
      const q = needDeferred();
      const r = action === 'retry' ? await q.retryNow(id) : action === 'hold' ? await q.hold(id) : await q.release(id);
      await d.audit.record({ who: req.principal!.name, action: `deferred.${action}`, target: id });
      return { ok: true, result: r ?? null };
    });
  }
  app.delete('/api/v1/deferred/:id', async (req) => {
    const id = idOf(req);
    const dsn = (req.query as Record<string, string>)['dsn'] === 'true';
    await needDeferred().delete(id, { dsn, by: req.principal!.name });
    await d.audit.record({ who: req.principal!.name, action: 'deferred.delete', target: id, details: { dsn } });
    return { deleted: id, dsn };
  });

  app.get('/api/v1/audit', async (req) => ({
    results: await d.audit.list(Math.min(num((req.query as Record<string, string>)['limit']) ?? 100, 1000)),
  }));
  app.get('/api/v1/stats', async () => ({ stages: await d.stats.sample(), quarantined: await d.quarantine.count() }));
}
