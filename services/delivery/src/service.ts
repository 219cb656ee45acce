import { defineStageService, type StageSetup, type StageSetupContext } from '@mailgate/bus';
import { createRedis, redisReachable, type LoadedConfig } from '@mailgate/runtime';
import { senderAuthSchema } from '@mailgate/sender-auth';
import { createDeliveryComponents } from './components.js';
import { deliverySchema } from './config.js';
import { deliveryMetrics } from './metrics.js';
import { bullPrefix } from '@mailgate/delivery-queue';
import { reconcile, RetryWorker, RetryWorkerWatchdog } from './worker.js';

/**
 * delivery as a service: the stage (consumes TOPICS.deliverable) plus, in the same process, the bullmq worker
 * that runs retries and a reconciler that re-creates missing retry jobs and replaces the worker if it stops taking
 * due ones.
 */
export async function setupDelivery(
  ctx: StageSetupContext<LoadedConfig<{ delivery: typeof deliverySchema }>>,
): Promise<StageSetup> {
  const { config, log, lifecycle, producer, telemetry } = ctx;
  const cfg = config.delivery;
  const tracer = telemetry.tracer('delivery');
  // `senderAuth:` belongs to packages/sender-auth (ingress validates all of it too); delivery reads `signing`.
  const sa = senderAuthSchema.safeParse((config as { senderAuth?: unknown }).senderAuth ?? {});
  if (!sa.success) {
    const i = sa.error.issues[0]!;
    throw new Error(`senderAuth.${i.path.join('.')}: ${i.message}`);
  }
  let metrics: ReturnType<typeof deliveryMetrics> | undefined;
  const c = createDeliveryComponents({
    delivery: cfg,
    redis: config.redis,
    gateway: config.gateway,
    log,
    tracer,
    senderAuth: sa.data,
    onResults: (r) => metrics?.count(r),
    meter: telemetry.meter('mailgate.delivery'),
  });
  const m = (metrics = deliveryMetrics(telemetry.meter('delivery'), c.store, log));
  lifecycle.on('stop-intake', 'delivery-metrics', () => m.stop());
  const worker = new RetryWorker(
    {
      engine: c.engine,
      store: c.store,
      scheduler: c.scheduler,
      producer,
      schedule: cfg.retry.schedule,
      delayDsnAfterMs: cfg.delayDsnAfterMs,
      reportingMta: c.reportingMta,
      postmaster: config.gateway.postmaster,
      instance: config.gateway.instance,
      tracer,
      log,
    },
    {
      connect: () => createRedis(config.redis, { name: 'delivery-worker', forBullmq: true }),
      queue: cfg.retry.queue,
      prefix: bullPrefix(config.redis.keyPrefix),
      concurrency: cfg.retry.concurrency,
      hungAttemptMs: cfg.retry.hungAttemptMs,
    },
  );
  const replacements = telemetry.meter('delivery').createCounter('mailgate_delivery_retry_worker_replacements', {
    description: 'Times the retry worker was found to have stopped taking due jobs and was replaced',
  });
  const watchdog = new RetryWorkerWatchdog();
  let reconciling = false;
  const reconciler = setInterval(() => {
    if (reconciling) return; // a slow pass (Redis down) is not stacked
    reconciling = true;
    reconcile(c.store, c.scheduler, cfg.retry.reconcileEveryMs)
      .then((r) => {
        if (r.recreated > 0) log.warn({ jobs: r.recreated }, 'reconciler re-created missing retry jobs');
        if (watchdog.check(r.dueOverdue, worker.started, worker.freeSlots())) {
          log.error(
            { due: r.dueOverdue.length, example: r.dueOverdue[0], freeSlots: worker.freeSlots() },
            'retry worker stopped taking due jobs: replacing it',
          );
          replacements.add(1);
          worker.replace();
        }
      })
      .catch((err: Error) => log.warn({ err: err.message }, 'reconciler failed'))
      .finally(() => (reconciling = false));
  }, cfg.retry.reconcileEveryMs);
  reconciler.unref();
  // Retries stop taking new jobs with the consumer; the attempt in progress finishes (worker.close waits).
  lifecycle.on('stop-intake', 'retry-worker', async () => {
    clearInterval(reconciler);
    await worker.close();
  });
  return {
    fn: c.stage,
    checks: { redis: () => redisReachable(c.redis) },
    async close() {
      await worker.close().catch(() => undefined);
      await c.close();
    },
  };
}

export const service = defineStageService({
  stage: 'delivery',
  section: 'delivery',
  schema: deliverySchema,
  // Each message waits on SMTP and Redis round trips, so a replica's per-message CPU depends on how many it works on
  // at once: a replica of four on 12 partitions (3 each) kept 24 in flight at bus.concurrency 8 against a single
  // replica's 96, and cost ~1.3–1.6× the CPU per message (docs/benchmarks.md, round 5). 96 = 8 × 12 keeps a single
  // replica as it was.
  inFlight: 96,
  setup: setupDelivery,
});
