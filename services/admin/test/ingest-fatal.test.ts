import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startBroker } from '@mailgate/kafka-lite';
import { startService } from '@mailgate/runtime';
import { isolatedRedisPrefix, logProbe } from '@mailgate/testkit';
import { Redis } from 'ioredis';
import { createAdminService } from '../src/index.js';
import { ADMIN_TOKEN, REDIS_URL } from './helpers.js';

async function readyStatus(port: number): Promise<number> {
  return (await fetch(`http://127.0.0.1:${port}/readyz`)).status;
}

test(
  'an ingest consumer that crashes for good takes the admin down through the lifecycle (no zombie)',
  { timeout: 60_000 },
  async () => {
    let b = await startBroker({ port: 0, logLevel: 'error' } as Parameters<typeof startBroker>[0]);
    const port = b.port;
    const keyPrefix = isolatedRedisPrefix('mgadmin');
    const { log, seen: fatal } = logProbe('admin', 'fatal: shutting down');
    const s = await startService(createAdminService({ sessionTimeoutMs: 6000, deferred: null }), {
      configDocument: {
        kafka: { brokers: [b.brokers], topics: { partitions: 1 } },
        redis: { url: REDIS_URL, keyPrefix },
        admin: { http: { host: '127.0.0.1' }, tokens: [{ name: 'alice', token: ADMIN_TOKEN, role: 'admin' }] },
      },
      httpPort: 0,
      log,
    });
    try {
      // Both ingest consumers joined: the admin is ready.
      for (let i = 0; (await readyStatus(s.http.port)) !== 200; i++) {
        assert.ok(i < 300, 'admin never became ready');
        await new Promise((r) => setTimeout(r, 100));
      }
      // The broker comes back refusing the consumers' session timeout (6 s): the rejoin fails with
      // INVALID_SESSION_TIMEOUT, which kafkajs does not retry — the consumer crashes with restart=false.
      await b.close();
      b = await startBroker({ port, logLevel: 'error', maxSessionTimeoutMs: 5000 } as Parameters<
        typeof startBroker
      >[0]);
      const { reason } = await fatal;
      assert.match(String(reason), /ingest .* consumer crashed/);
      assert.equal(s.ctx.lifecycle.shuttingDown, true);
    } finally {
      await s.stop();
      await b.close();
      const r = new Redis(REDIS_URL);
      const keys = await r.keys(`${keyPrefix}*`);
      if (keys.length) await r.unlink(...keys);
      r.disconnect();
    }
  },
);
