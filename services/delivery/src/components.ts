import { bullPrefix, RetryScheduler, RetryStore } from '@mailgate/delivery-queue';
import { closeRedis, createRedis, type GatewayConfig, type Logger, type RedisConfig } from '@mailgate/runtime';

/** What delivery needs to know about the gateway: its names (EHLO, DSN Reporting-MTA, From). */
export type GatewayIdentity = Pick<GatewayConfig, 'name' | 'hostname' | 'instance' | 'postmaster'>;
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { trace, type Meter, type Tracer } from '@opentelemetry/api';
import type { Redis } from 'ioredis';
import type { DeliveryConfig } from './config.js';
import { MessageClaims } from './claim.js';
import { DeliveryEngine, type RecipientResult } from './deliver.js';
import { DestinationLimits } from './limits.js';
import { DeliveredMarkers } from './markers.js';
import { createDeliveryMetrics, countingMetrics, type DeliveryMetrics } from './metrics.js';
import { OutcomeJournal } from './outcome-journal.js';
import { DestinationResolver } from './mx.js';
import { ConnectionPool } from './pool.js';
import { Router } from './routing.js';
import { createDeliveryStage } from './stage.js';
import { createOutboundSigner, type OutboundSigner } from './signing.js';
import { assertNodemailerInternals } from './smtp.js';
import type { SenderAuthConfig } from '@mailgate/sender-auth';
import type { StageFn } from '@mailgate/bus';

export interface DeliveryComponents {
  readonly redis: Redis;
  readonly router: Router;
  readonly resolver: DestinationResolver;
  readonly limits: DestinationLimits;
  readonly markers: DeliveredMarkers;
  readonly journal: OutcomeJournal;
  readonly metrics: DeliveryMetrics;
  readonly pool: ConnectionPool;
  readonly engine: DeliveryEngine;
  readonly store: RetryStore;
  readonly scheduler: RetryScheduler;
  readonly stage: StageFn;
  readonly reportingMta: string;
  readonly signer: OutboundSigner | null;
  close(): Promise<void>;
}

/** Everything the delivery stage and its retry worker share, built from the config sections. */
export function createDeliveryComponents(o: {
  delivery: DeliveryConfig;
  redis: RedisConfig;
  gateway: GatewayIdentity;
  log: Logger;
  tracer?: Tracer;
  /** The `senderAuth:` section: delivery uses its `signing` part (outbound DKIM). */
  senderAuth?: SenderAuthConfig;
  onResults?: (results: readonly RecipientResult[]) => void;
  meter?: Meter;
  /** Use these metrics instead of a meter's (tests). */
  metrics?: DeliveryMetrics;
}): DeliveryComponents {
  // Before anything connects: the nodemailer hook that tells a drop before DATA from one after it must exist.
  assertNodemailerInternals();
  const cfg = o.delivery;
  const redis = createRedis(o.redis, { name: 'delivery' });
  const bullConnection = createRedis(o.redis, { name: 'delivery-queue', forBullmq: true });
  // Outages are handled where commands fail (journal, tempfail); the client's reconnect errors are just noise.
  const quiet = (err: Error) => o.log.debug({ err: err.message }, 'delivery redis connection error');
  redis.on('error', quiet);
  bullConnection.on('error', quiet);
  const router = new Router(cfg);
  const resolver = new DestinationResolver({
    servers: cfg.dns.resolvers,
    timeoutMs: cfg.dns.timeoutMs,
    tries: cfg.dns.tries,
    ipv6: cfg.dns.ipv6,
    mxPort: cfg.mxPort,
  });
  const slotTtlMs = cfg.timeouts.connectMs + cfg.timeouts.greetingMs + cfg.timeouts.dataMs;
  const limits = new DestinationLimits(redis, { ...cfg.limits, slotTtlMs });
  const markers = new DeliveredMarkers(redis, cfg.markerTtlMs, cfg.pendingTtlMs);
  const metrics = o.metrics ?? (o.meter ? createDeliveryMetrics(o.meter) : countingMetrics());
  const journal = new OutcomeJournal(markers, {
    file:
      cfg.outcomeJournalFile ??
      path.join(
        tmpdir(),
        // One file per instance and Redis keyspace: records replayed into the Redis they belong to.
        `mailgate-delivery-${o.gateway.instance.replace(/[^\w.-]/g, '_')}-${createHash('sha1')
          .update(`${o.redis.url}|${o.redis.keyPrefix}`)
          .digest('hex')
          .slice(0, 10)}.outcomes.jsonl`,
      ),
    log: o.log,
    metrics,
  });
  // Redis is back: write what the journal holds now rather than at the next backoff tick.
  redis.on('ready', () => journal.kick());
  const reportingMta = o.gateway.hostname;
  const pool = new ConnectionPool({
    limits,
    ehloName: cfg.ehloName ?? reportingMta,
    timeouts: cfg.timeouts,
    maxMessagesPerConnection: cfg.limits.maxMessagesPerConnection,
    idleMs: cfg.limits.connectionIdleMs,
    slotWaitMs: cfg.limits.slotWaitMs,
    slotTtlMs,
  });
  const tracer = o.tracer ?? trace.getTracer('delivery');
  const signer = o.senderAuth
    ? createOutboundSigner(o.senderAuth, { log: o.log, tracer, authservId: o.gateway.hostname })
    : null;
  const claims = new MessageClaims(redis, cfg.claim, o.log);
  const engine = new DeliveryEngine({
    router,
    resolver,
    pool,
    limits,
    markers,
    journal,
    metrics,
    claims,
    tracer,
    log: o.log,
    onResults: o.onResults,
  });
  const store = new RetryStore(redis);
  const scheduler = new RetryScheduler(bullConnection, cfg.retry.queue, bullPrefix(o.redis.keyPrefix));
  const stage = createDeliveryStage({
    engine,
    store,
    scheduler,
    schedule: cfg.retry.schedule,
    reportingMta,
    postmaster: o.gateway.postmaster,
    signer,
  });
  return {
    redis,
    router,
    resolver,
    limits,
    markers,
    journal,
    metrics,
    pool,
    engine,
    store,
    scheduler,
    stage,
    reportingMta,
    signer,
    async close() {
      await pool.close();
      await journal.close();
      await scheduler.close().catch(() => undefined);
      await Promise.all([closeRedis(redis), closeRedis(bullConnection)]);
    },
  };
}
