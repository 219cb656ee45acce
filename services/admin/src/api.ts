import type { FastifyInstance } from 'fastify';
import type { AuditLog } from './audit.js';
import type { QuarantineStore } from './quarantine-store.js';
import { deleteFromQuarantine, NotFoundError, releaseFromQuarantine } from './release.js';
import type { PipelineStats } from './stats.js';
import type { TrackingStore } from './tracking-store.js';
import type { DurableProducer } from '@mailgate/bus';
import { OPENAPI } from './openapi.js';

/** The deferred delivery queue, as the delivery service's queue operations expose it. */
export interface DeferredQueue {
  list(limit: number): Promise<unknown[]>;
  retryNow(id: string): Promise<unknown>;
  hold(id: string): Promise<unknown>;
  release(id: string): Promise<unknown>;
  remove(id: string, opts: { dsn: boolean }): Promise<unknown>;
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
}

const ID_RE = /^[0-9A-Za-z._-]{1,64}$/;

function num(v: unknown): number | undefined {
  if (typeof v !== 'string' || v === '') return undefined;
  const n = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * The admin HTTP API (JSON, under /api/v1). Errors are JSON `{ error, message }` with a 4xx/5xx status; every
 * state-changing call is written to the audit log with the token's name.
 */
export function registerApi(app: FastifyInstance, d: ApiDeps): void {
  app.setErrorHandler((err: Error & { statusCode?: number; http?: number }, _req, reply) => {
    const status = err instanceof NotFoundError ? 404 : (err.http ?? err.statusCode ?? 500);
    void reply.code(status).send({ error: status < 500 ? 'bad-request' : 'internal', message: err.message });
  });

  app.get('/openapi.json', async () => OPENAPI);

  app.get('/api/v1/messages', async (req) => {
    const q = req.query as Record<string, string | undefined>;
    const results = await d.tracking.search(
      { rcpt: q['rcpt'], from: q['from'], ip: q['ip'], since: num(q['since']), until: num(q['until']), limit: num(q['limit']) },
      d.maxResults,
    );
    return { results };
  });

  app.get('/api/v1/messages/:id', async (req, reply) => {
    const { id } = req.params as { id: string };
    if (!ID_RE.test(id)) return reply.code(400).send({ error: 'bad-request', message: 'malformed message id' });
    const m = await d.tracking.get(id);
    if (!m) return reply.code(404).send({ error: 'not-found', message: `no message ${id}` });
    const traceUrl = d.traceUiUrl && m.summary.traceId ? `${d.traceUiUrl.replace(/\/$/, '')}/trace/${m.summary.traceId}` : undefined;
    return { ...m, traceUrl };
  });

  app.get('/api/v1/quarantine', async (req) => {
    const limit = num((req.query as Record<string, string>)['limit']) ?? 100;
    return { results: await d.quarantine.list(Math.min(limit, d.maxResults)) };
  });

  app.get('/api/v1/quarantine/:id', async (req, reply) => {
    const { id } = req.params as { id: string };
    const e = await d.quarantine.get(id);
    if (!e) return reply.code(404).send({ error: 'not-found', message: `no quarantined message ${id}` });
    return e;
  });

  app.get('/api/v1/quarantine/:id/raw', async (req, reply) => {
    const { id } = req.params as { id: string };
    const m = await d.quarantine.message(id);
    if (!m) return reply.code(404).send({ error: 'not-found', message: `no quarantined message ${id}` });
    await d.audit.record({ who: req.principal!.name, action: 'quarantine.download', target: id });
    return reply.header('content-type', 'message/rfc822').header('content-disposition', `attachment; filename="${id}.eml"`).send(m.raw);
  });

  app.post('/api/v1/quarantine/:id/release', async (req) => {
    const { id } = req.params as { id: string };
    const body = (req.body ?? {}) as { recheck?: unknown };
    const recheck = body.recheck === true || body.recheck === 'true';
    const r = await releaseFromQuarantine(d.quarantine, d.producer, id, { recheck, by: req.principal!.name, host: d.host });
    await d.audit.record({ who: req.principal!.name, action: recheck ? 'quarantine.release-recheck' : 'quarantine.release', target: id, details: { topic: r.topic } });
    return { released: r };
  });

  app.delete('/api/v1/quarantine/:id', async (req) => {
    const { id } = req.params as { id: string };
    await deleteFromQuarantine(d.quarantine, d.producer, id, { by: req.principal!.name, host: d.host });
    await d.audit.record({ who: req.principal!.name, action: 'quarantine.delete', target: id });
    return { deleted: id };
  });

  const needDeferred = () => {
    if (!d.deferred) throw Object.assign(new Error('the deferred queue is not available (delivery not installed)'), { http: 503 });
    return d.deferred;
  };
  app.get('/api/v1/deferred', async (req) => ({
    results: await needDeferred().list(num((req.query as Record<string, string>)['limit']) ?? 100),
  }));
  for (const action of ['retry', 'hold', 'release'] as const) {
    app.post(`/api/v1/deferred/:id/${action}`, async (req) => {
      const { id } = req.params as { id: string };
      const q = needDeferred();
      const r = action === 'retry' ? await q.retryNow(id) : action === 'hold' ? await q.hold(id) : await q.release(id);
      await d.audit.record({ who: req.principal!.name, action: `deferred.${action}`, target: id });
      return { ok: true, result: r ?? null };
    });
  }
  app.delete('/api/v1/deferred/:id', async (req) => {
    const { id } = req.params as { id: string };
    const dsn = (req.query as Record<string, string>)['dsn'] === 'true';
    await needDeferred().remove(id, { dsn });
    await d.audit.record({ who: req.principal!.name, action: 'deferred.delete', target: id, details: { dsn } });
    return { deleted: id, dsn };
  });

  app.get('/api/v1/audit', async (req) => ({ results: await d.audit.list(num((req.query as Record<string, string>)['limit']) ?? 100) }));
  app.get('/api/v1/stats', async () => ({ stages: await d.stats.sample(), quarantined: await d.quarantine.count() }));
}
