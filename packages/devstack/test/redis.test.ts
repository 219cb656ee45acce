import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { isolatedRedisPrefix, startRedis } from '../src/index.js';

test('startRedis: SET/GET, AOF survives restart() and kill()', async (t) => {
  const r = await startRedis({ appendonly: true });
  t.after(() => r.stop());
  assert.match(r.url, /^redis:\/\/127\.0\.0\.1:\d+$/);

  const client = new Redis(r.url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 50 });
  t.after(() => client.disconnect());
  await client.connect();
  await client.set('k', 'v1');
  assert.equal(await client.get('k'), 'v1');
  assert.equal(await client.config('GET', 'maxmemory-policy').then((x) => (x as string[])[1]), 'noeviction');

  await r.restart();
  const c2 = new Redis(r.url, { maxRetriesPerRequest: 1 });
  t.after(() => c2.disconnect());
  assert.equal(await c2.get('k'), 'v1');

  await c2.set('k2', 'after-restart');
  await r.kill(); // SIGKILL: appendfsync always means the write is on disk
  await r.restart();
  const c3 = new Redis(r.url, { maxRetriesPerRequest: 1 });
  t.after(() => c3.disconnect());
  assert.equal(await c3.get('k2'), 'after-restart');

  const dir = r.dir;
  await r.stop();
  await r.stop(); // idempotent
  assert.equal(existsSync(dir), false, 'temp dir removed');
});

test('startRedis without appendonly starts empty after restart', async (t) => {
  const r = await startRedis();
  t.after(() => r.stop());
  const c = new Redis(r.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
  t.after(() => c.disconnect());
  await c.set('x', '1');
  await r.restart();
  assert.equal(await c.get('x'), null);
});

test('isolatedRedisPrefix is unique', () => {
  const a = isolatedRedisPrefix();
  const b = isolatedRedisPrefix();
  assert.notEqual(a, b);
  assert.match(a, /^mgtest:\d+:[0-9a-f]{8}:$/);
});
