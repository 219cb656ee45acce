import { AUX_GROUPS, RECORD_HEADERS, TOPICS, type TrackingEvent } from '@mailgate/contracts';
import { connectBus } from '@mailgate/bus';
import { createRedis, redisReachable, type ServiceDefinition } from '@mailgate/runtime';
import { deliveryQueueSchema, openDeliveryQueue } from '@mailgate/delivery-queue';
import { ListStore } from '@mailgate/lists';
import { registerApi, type DeferredQueue } from './api.js';
import { registerListsApi } from './lists-api.js';
import { registerListsConsole } from './lists-console.js';
import { registerSpamLearnApi } from './spam-learn-api.js';
import { registerSpamConsole } from './spam-console.js';
import { AuditLog } from './audit.js';
import { authHook } from './auth.js';
import { adminSchema, resolveTokens } from './config.js';
import { registerConsole } from './console.js';
import { registerQuarantineView } from './quarantine-view.js';
import { registerDevMailbox } from './dev-mailbox.js';
import { LagHistory, registerDashboard, startLagSampler } from './dashboard.js';
import { TopicIngest } from './ingest.js';
import { QuarantineStore } from './quarantine-store.js';
import { PipelineStats } from './stats.js';
import { TrackingStore, type EventRecord } from './tracking-store.js';
import { registerGauges, trackingWriteErrors } from './metrics.js';
import { securityHeadersHook } from './security.js';
import { AuthThrottle } from './throttle.js';

export interface AdminServiceOptions {
  /** The deferred delivery queue (default: opened from the `delivery:` section; null: none). */
  readonly deferred?: DeferredQueue | null;
  /** Tests: faster group membership. */
  readonly sessionTimeoutMs?: number;
}

/**
 * The admin service: tracking store (events topic → Redis), quarantine store (quarantine + dead-letter topics →
 * Redis), the API and the console — on the same HTTP port as its health endpoints, behind API tokens.
 */
/** A tracking event from its record; a record that is JSON but not an event is unreadable too (skipped, logged). */
function readEvent(value: Buffer | null): TrackingEvent {
  return readEventRecord(value).event;
}

/** readEvent(), with the record's JSON text (stored as the event's timeline line: TrackingStore.addRecords). */
function readEventRecord(value: Buffer | null): EventRecord {
  // An empty record (a tombstone, a producer bug) is unreadable like any other, not an error to retry for ever.
  if (!value?.length) throw new SyntaxError('empty event record');
  const json = value.toString('utf8');
  const e = JSON.parse(json) as TrackingEvent;
  if (typeof e?.messageId !== 'string' || !e.messageId || typeof e.type !== 'string' || typeof e.at !== 'string')
    throw new SyntaxError('not a tracking event (messageId, type and at are required)');
  return { event: e, json };
}

export function createAdminService(
  opts: AdminServiceOptions = {},
): ServiceDefinition<{ admin: typeof adminSchema; delivery: typeof deliveryQueueSchema }> {
  return {
    name: 'admin',
    sections: { admin: adminSchema, delivery: deliveryQueueSchema },
    http: (config) => config.admin.http,
    async start(ctx) {
      const { config, log, lifecycle, health } = ctx;
      const cfg = config.admin;
      const tokens = resolveTokens(cfg);
      if (tokens.length === 0) log.warn('no admin tokens configured: the API and console refuse every request');
      const redis = createRedis(config.redis, { name: 'admin' });
      const bus = await connectBus(config.kafka, ctx, { clientId: 'admin' });
      const { kafka, producer } = bus;
      const kadmin = kafka.admin();
      await kadmin.connect();

      const tracking = new TrackingStore(redis, cfg.tracking.retentionDays, cfg.tracking.refusedRetentionDays, {
        onWriteError: trackingWriteErrors(ctx.telemetry.meter('mailgate.admin'), log),
      });
      const quarantine = new QuarantineStore(redis, cfg.quarantine.retentionDays);
      const audit = new AuditLog(redis, log);
      const events = new TopicIngest(bus, {
        groupId: AUX_GROUPS.adminEvents,
        topics: [TOPICS.events],
        log,
        ...(opts.sessionTimeoutMs ? { sessionTimeoutMs: opts.sessionTimeoutMs } : {}),
        handle: async (_topic, m) => tracking.add(readEvent(m.value)),
        // The events of one fetch go to Redis in one read round trip and one MULTI (TrackingStore.addBatch), and a
        // fetch waits up to tracking.ingestBatchMs for them: a few large batches per second instead of one small
        // fetch, transaction and commit per handful of events (docs/benchmarks.md, issue 22).
        batch: { decode: (m) => readEventRecord(m.value), handle: (recs) => tracking.addRecords(recs) },
        fetch: { minBytes: 1024 * 1024, maxWaitMs: cfg.tracking.ingestBatchMs },
      });
      const held = new TopicIngest(bus, {
        groupId: AUX_GROUPS.adminQuarantine,
        topics: [TOPICS.quarantine, TOPICS.deadLetter],
        log,
        ...(opts.sessionTimeoutMs ? { sessionTimeoutMs: opts.sessionTimeoutMs } : {}),
        handle: async (topic, m) => {
          if (!m.value) return;
          const source = m.headers?.[RECORD_HEADERS.sourceTopic]?.toString() ?? '';
          const error =
            topic === TOPICS.deadLetter
              ? (m.headers?.[RECORD_HEADERS.error]?.toString() ?? 'dead-lettered')
              : undefined;
          await quarantine.add(m.value, source, error, m.key?.toString());
        },
      });

      // The deferred queue lives in delivery's Redis store; the admin opens it with the delivery-queue package's
      // operations (the queue name from the same `delivery:` section), unless a test hands one in.
      let deferred = opts.deferred;
      if (!deferred && opts.deferred !== null) {
        const queue = openDeliveryQueue({
          delivery: config.delivery,
          redis: config.redis,
          gateway: config.gateway,
          producer,
        });
        deferred = queue;
        lifecycle.on('close', 'deferred-queue', () => queue.close());
      }

      const stats = new PipelineStats(kadmin);
      const deps = {
        tracking,
        quarantine,
        producer,
        audit,
        stats,
        tracer: ctx.telemetry.tracer('admin'),
        log,
        deferred: deferred ?? undefined,
        host: config.gateway.instance,
        maxResults: cfg.tracking.maxResults,
        traceUiUrl: cfg.traceUiUrl,
        spamLearning: Boolean(cfg.rspamd),
      };
      const throttle = new AuthThrottle(redis, cfg, log);
      // Headers first: they must be on the 400/401/429 answers of the auth hook as well.
      health.app.addHook('onRequest', securityHeadersHook());
      health.app.addHook('onRequest', authHook(tokens, throttle));
      registerApi(health.app, deps);
      registerQuarantineView(health.app, deps);
      registerDevMailbox(health.app, { dir: cfg.devMailboxDir });
      const dashboard = {
        tracking,
        stats,
        lagHistory: new LagHistory(redis, config.gateway.instance),
        config: cfg.dashboard,
        log,
      };
      registerDashboard(health.app, dashboard);
      const stopLagSampler = startLagSampler(dashboard);
      registerListsApi(health.app, { store: new ListStore(redis), audit });
      const closeSpamLearn = registerSpamLearnApi(health.app, { ...deps, config: cfg.rspamd });
      if (closeSpamLearn) lifecycle.on('close', 'rspamd', closeSpamLearn);
      registerConsole(health.app, deps, tokens, throttle);
      registerListsConsole(health.app);
      registerSpamConsole(health.app, { learning: Boolean(cfg.rspamd) });

      health.addCheck('redis', () => redisReachable(redis));
      health.addCheck('ingest', () => events.isReady && held.isReady);
      const removeGauges = registerGauges(ctx.telemetry.meter('mailgate.admin'), stats, quarantine, log);
      const sweep = setInterval(() => void tracking.sweep().catch(() => undefined), 10 * 60_000);
      sweep.unref();

      lifecycle.on('stop-intake', 'ingest', async () => {
        clearInterval(sweep);
        stopLagSampler();
        removeGauges();
      });
      lifecycle.on('close', 'clients', async () => {
        await kadmin.disconnect().catch(() => undefined);
        redis.disconnect();
      });
      await Promise.all([events.start(), held.start()]);
    },
  };
}

export const service = createAdminService();
