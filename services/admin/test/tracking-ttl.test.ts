// Every key the tracking store writes keeps an expiry, also when a key vanishes behind the writer's back between two
// of its batches less than a minute apart (the window in which it does not re-set an expiry it set itself): Redis
// deletes an index key that a trim or another replica's sweep empties, a key can expire or be lost by a Redis
// restart the connection did not notice. The next ZADD creates the key again, and without the fix it lived for ever.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { newMessageId, type TrackingEvent } from '@mailgate/contracts';
import { isolatedRedisPrefix, startRedis, waitFor } from '@mailgate/testkit';
import { Redis } from 'ioredis';
import { TrackingStore, type TrackingWriteError } from '../src/tracking-store.js';
import { ingestEvents, isolatedRedisClients, REDIS_URL, startAdminEnv } from './helpers.js';

/** A message's `received` event: its indexes are the time, sender, recipient, domains, IP, auth class. */
function received(rcpt: string, t: number, opts: { refused?: boolean } = {}): TrackingEvent {
  const base = {
    messageId: newMessageId(),
    traceId: 'ef'.repeat(16),
    mailFrom: 'sender@partner.test',
    rcptTo: [rcpt],
    clientIp: '198.51.100.9',
    host: 'x-0',
    at: new Date(t).toISOString(),
  };
  return opts.refused
    ? { ...base, type: 'refused', service: 'ingress-smtp', details: { reason: 'dnsbl', reply: '554 5.7.1 listed' } }
    : { ...base, type: 'received', service: 'ingress-smtp', details: { size: 10, subject: 'Lunch' } };
}

describe('tracking store: no key without an expiry when one vanishes between batches', () => {
  const { client } = isolatedRedisClients();

  test('an index key deleted a moment after the writer set its expiry gets one again with its next ZADD', async () => {
    const redis = client('mgttl1');
    const store = new TrackingStore(redis, 1);
    const key = 'trk:idx:rcpt:carol@example.test';
    const t0 = Date.now() - 10_000;
    await store.addBatch([received('carol@example.test', t0)]);
    assert.ok((await redis.ttl(key)) > 0, 'the first batch set the expiry');
    // Gone behind the writer's back (it expired, a failover lost it, another replica's trim emptied it).
    assert.equal(await redis.del(key), 1);
    await store.addBatch([received('carol@example.test', t0 + 1000)]);
    assert.equal(await redis.zcard(key), 1, 'the second batch created the key again');
    const ttl = await redis.ttl(key);
    assert.ok(ttl > 0, `${key} has an expiry (TTL ${ttl})`);
  });

  test("another replica's sweep empties an index key; this writer's next message to it gets an expiry", async () => {
    const redis = client('mgttl2');
    // Two admin replicas on one Redis; refusals are kept one day, everything else two.
    const a = new TrackingStore(redis, 2, 1);
    const b = new TrackingStore(redis, 2, 1);
    const key = 'trk:idx:rcpt:dave@example.test';
    const t0 = Date.now() - 10_000;
    // A's refusal is dave's only entry...
    await a.addBatch([received('dave@example.test', t0, { refused: true })]);
    assert.deepEqual(await redis.zcard(key), 1);
    // ...which B's sweep, run as if a day and a half later, removes from every index it is in: Redis deletes the key.
    assert.equal(await b.sweep(t0 + 36 * 3600_000), 1);
    assert.equal(await redis.exists(key), 0, "the sweep emptied dave's index");
    // A, within a minute of having set the key's expiry, writes dave's next message.
    await a.addBatch([received('dave@example.test', t0 + 1000)]);
    assert.equal(await redis.zcard(key), 1);
    const ttl = await redis.ttl(key);
    assert.ok(ttl > 0, `${key} has an expiry (TTL ${ttl})`);
  });

  test('after SCRIPT FLUSH (the script cache lost, the connection kept) a key that vanished still gets its expiry', async () => {
    // Its own redis-server: SCRIPT FLUSH on the shared one would reach every other test's scripts.
    const server = await startRedis();
    const redis = new Redis(server.url);
    try {
      const store = new TrackingStore(redis, 1);
      const t0 = Date.now() - 10_000;
      const keys = ['trk:idx:rcpt:erin@example.test', 'trk:idx:rcptdom:example.test', 'trk:idx:word:lunch'];
      for (let i = 0; i < 3; i++) {
        await store.addBatch([received('erin@example.test', t0 + i * 1000)]);
        for (const k of keys) assert.ok((await redis.ttl(k)) > 0, `${k} has an expiry after batch ${i}`);
        assert.equal(await redis.del(...keys), keys.length);
        await redis.script('FLUSH');
      }
      await store.addBatch([received('erin@example.test', t0 + 5000)]);
      for (const k of keys) assert.ok((await redis.ttl(k)) > 0, `${k} has an expiry`);
      // The script ran by its body after each NOSCRIPT: never loaded (batch 1), then after each of two flushes.
      const stats = await redis.info('commandstats');
      assert.equal(Number(/cmdstat_eval:calls=(\d+)/.exec(stats)?.[1]), 3, stats);
    } finally {
      redis.disconnect();
      await server.stop();
    }
  });
});

describe('tracking store: a write Redis refuses inside a batch', () => {
  test("is reported with its command and key; the batch's other writes stand", async () => {
    const redis = new Redis(REDIS_URL, { keyPrefix: isolatedRedisPrefix('mgttl4') });
    const errors: TrackingWriteError[] = [];
    const store = new TrackingStore(redis, 1, 1, { onWriteError: (e) => errors.push(e) });
    try {
      // A key of another type where an index must be: its ZADD fails with WRONGTYPE when the transaction runs.
      await redis.set('trk:idx:rcpt:mallory@example.test', 'not an index');
      const [bad, good] = [received('mallory@example.test', Date.now()), received('trent@example.test', Date.now())];
      await store.addBatch([bad, good]);
      assert.deepEqual(
        errors.map((e) => [e.command, e.key, /WRONGTYPE/.test(e.error.message)]),
        [
          ['zadd', 'trk:idx:rcpt:mallory@example.test', true],
          ['zremrangebyscore', 'trk:idx:rcpt:mallory@example.test', true],
        ],
      );
      for (const e of [bad, good]) assert.equal((await store.get(e.messageId))?.events.length, 1, 'stored');
      assert.deepEqual(
        (await store.search({ rcpt: 'trent@example.test' }, 10)).map((m) => m.id),
        [good.messageId],
      );
    } finally {
      const raw = new Redis(REDIS_URL);
      const keys = await raw.keys(`${redis.options.keyPrefix}*`);
      if (keys.length) await raw.unlink(...keys);
      raw.disconnect();
      redis.disconnect();
    }
  });

  test('the admin service counts it in mailgate_tracking_write_errors_total', async (t) => {
    const env = await startAdminEnv(t);
    const raw = new Redis(REDIS_URL, { keyPrefix: env.keyPrefix });
    t.after(() => raw.disconnect());
    await raw.set('trk:idx:rcpt:mallory@example.test', 'not an index');
    const errors = async () => {
      const text = await (await env.api('/metrics', { token: null })).text();
      return Number(/^mailgate_tracking_write_errors_total\{[^}]*command="zadd"[^}]*\} (\d+)/m.exec(text)?.[1] ?? 0);
    };
    assert.equal(await errors(), 0);
    const [bad, good] = [received('mallory@example.test', Date.now()), received('trent@example.test', Date.now())];
    await ingestEvents(env, [bad, good]);
    // At least once: a group rebalance before the commit would hand the same batch over again.
    await waitFor(async () => (await errors()) >= 1, { timeoutMs: 20_000, message: 'the refused ZADD counted' });
    assert.equal((await env.api(`/api/v1/messages/${bad.messageId}`)).status, 200, 'the message itself is stored');
  });
});
