import { Redis, type RedisOptions } from 'ioredis';
import type { RedisConfig } from './config.js';
import { withTimeout } from './timeout.js';

/**
 * An ioredis client from the `redis:` section. Keys get the configured prefix so several gateways (or test runs)
 * can share one Redis. `forBullmq` sets what BullMQ requires (maxRetriesPerRequest: null); BullMQ applies its own
 * prefix, so pass `config.redis.keyPrefix` as its `prefix` instead of using ioredis' keyPrefix.
 */
export function createRedis(cfg: RedisConfig, opts: { name: string; forBullmq?: boolean } & RedisOptions): Redis {
  const { name, forBullmq, ...rest } = opts;
  return new Redis(cfg.url, {
    connectionName: `mailgate-${name}`,
    lazyConnect: false,
    enableOfflineQueue: true,
    ...(forBullmq ? { maxRetriesPerRequest: null } : { keyPrefix: cfg.keyPrefix, maxRetriesPerRequest: 2 }),
    retryStrategy: (times) => Math.min(times * 200, 2000),
    ...rest,
  });
}

/** Readiness check for a Redis client. */
export async function redisReachable(client: Redis): Promise<boolean> {
  try {
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  }
}

/**
 * Closes a client without waiting on a Redis that is away: QUIT when connected (bounded by `timeoutMs`, then a plain
 * disconnect), else a plain disconnect. A shutdown (or a test's cleanup) must not wait for Redis to come back.
 */
export async function closeRedis(client: Redis, timeoutMs = 2000): Promise<void> {
  if (client.status === 'end') return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  const r = await withTimeout(client.quit(), timeoutMs, 'redis QUIT').catch(() => 'failed' as const);
  if (r !== 'OK') client.disconnect();
}
