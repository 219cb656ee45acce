import type { DurableProducer } from '@mailgate/bus';
import { closeRedis, createRedis, type GatewayConfig, type RedisConfig } from '@mailgate/runtime';
import { z } from 'zod';
import { bullPrefix, RETRY_QUEUE } from './names.js';
import { DeliveryQueueOps } from './queue-ops.js';
import { RetryScheduler } from './retry-queue.js';
import { RetryStore } from './retry-store.js';

/**
 * The part of the `delivery:` section the deferred queue's tools read (the section itself belongs to the delivery
 * service, which validates all of it): the bullmq queue name. Other keys are let through untouched.
 */
export const deliveryQueueSchema = z
  .object({
    retry: z
      .object({
        /** bullmq queue name (keys: <redis.keyPrefix><queue>:…). */
        queue: z.string().default(RETRY_QUEUE),
      })
      .passthrough()
      .default({}),
  })
  .passthrough()
  .default({});

export interface DeliveryQueueConfig {
  readonly retry: { readonly queue: string };
}

/**
 * Queue operations for tools (CLI, admin API) from the config sections: opens its own Redis connections;
 * pass a producer to allow delete-with-DSN and `deleted` events. Call close() when done.
 */
export function openDeliveryQueue(o: {
  delivery: DeliveryQueueConfig;
  redis: RedisConfig;
  gateway: Pick<GatewayConfig, 'name' | 'hostname' | 'instance' | 'postmaster'>;
  producer?: Pick<DurableProducer, 'send'>;
}): DeliveryQueueOps & { close(): Promise<void> } {
  const redis = createRedis(o.redis, { name: 'delivery-admin' });
  const bullConnection = createRedis(o.redis, { name: 'delivery-admin-queue', forBullmq: true });
  const store = new RetryStore(redis);
  const scheduler = new RetryScheduler(bullConnection, o.delivery.retry.queue, bullPrefix(o.redis.keyPrefix));
  const ops = new DeliveryQueueOps({
    store,
    scheduler,
    producer: o.producer,
    reportingMta: o.gateway.hostname,
    postmaster: o.gateway.postmaster,
    instance: o.gateway.instance,
  });
  return Object.assign(ops, {
    async close() {
      // A short-lived caller (the CLI) may close right after opening: let the connections finish starting first.
      await Promise.race([scheduler.ready(), new Promise((r) => setTimeout(r, 2000).unref())]).catch(() => undefined);
      await scheduler.close().catch(() => undefined);
      await Promise.all([closeRedis(redis), closeRedis(bullConnection)]);
    },
  });
}
