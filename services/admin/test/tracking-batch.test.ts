// TrackingStore.addBatch (what the ingest hands over per fetched batch) leaves Redis exactly as one add() per event
// would: same summaries, recipients' statuses, events and index entries, with the events of one message in a batch
// seeing each other's state (received → stages → a split delivery outcome → a retry, all in one batch). A writer
// skips re-setting an expiry it set a moment ago: every key it writes still has one, also when a status index
// emptied by a ZREM comes back, and when the batch that set them failed.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeEvent, encodeEvent, newMessageId, type TrackingEvent } from '@mailgate/contracts';
import { isolatedRedisPrefix, startRedis } from '@mailgate/testkit';
import { Redis } from 'ioredis';
import { TrackingStore } from '../src/tracking-store.js';
import { isolatedRedisClients, REDIS_URL } from './helpers.js';

/** Every key under the prefix with its full content (hash fields, zset members with scores), TTLs left out. */
async function dump(redis: Redis, prefix: string): Promise<Record<string, unknown>> {
  const keys = (await redis.keys(`${prefix}*`)).sort();
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const type = await redis.type(k);
    const name = k.slice(prefix.length);
    if (type === 'hash') out[name] = await redis.hgetall(k);
    else if (type === 'zset') out[name] = await redis.zrange(k, 0, -1, 'WITHSCORES');
    else out[name] = type;
  }
  return out;
}

function story(ids: string[], t0: number): TrackingEvent[] {
  const at = (ms: number) => new Date(t0 + ms).toISOString();
  return ids.flatMap((id, n) => {
    const base = {
      messageId: id,
      traceId: 'cd'.repeat(16),
      mailFrom: `s${n}@partner.test`,
      rcptTo: ['a@example.test', 'b@example.test'],
      clientIp: '198.51.100.7',
      host: 'x-0',
    };
    return [
      {
        ...base,
        type: 'received',
        at: at(0),
        service: 'ingress-smtp',
        details: { size: 10, subject: `Invoice ${n} due`, messageIdHeader: `<${n}@partner.test>` },
      },
      { ...base, type: 'stage', at: at(5), service: 'dnsbl-check', details: { verdict: { kind: 'pass' } } },
      { ...base, type: 'stage', at: at(9), service: 'virus-scan', details: { verdict: { kind: 'tempfail' } } },
      { ...base, type: 'stage', at: at(20), service: 'virus-scan', details: { verdict: { kind: 'pass' } } },
      {
        ...base,
        type: 'delivered',
        at: at(30),
        service: 'delivery',
        rcptTo: ['b@example.test'],
        details: { remoteHost: 'mx.example.test', reply: '250 ok' },
      },
      {
        ...base,
        type: 'deferred',
        at: at(30),
        service: 'delivery',
        rcptTo: ['a@example.test'],
        details: { reason: '451 busy', attempt: 1 },
      },
      {
        ...base,
        type: 'delivered',
        at: at(90),
        service: 'delivery',
        rcptTo: ['a@example.test'],
        details: { remoteHost: 'mx.example.test', reply: '250 ok 2', attempt: 2 },
      },
    ] satisfies TrackingEvent[];
  });
}

/**
 * Varied journeys (seeded, so a failure repeats): refusals, tempfails, quarantine and release, per-recipient
 * outcomes with retries, bounces with their DSN note, deletes from the delivery queue, replays, out-of-order events.
 */
function journeys(count: number, t0: number): TrackingEvent[] {
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const all = Array.from({ length: count }, (_, i): TrackingEvent[] => {
    const rcpts = rnd() < 0.5 ? ['a@ex.test'] : ['a@ex.test', 'B@other.test'];
    const base = {
      messageId: newMessageId(),
      traceId: 'ab'.repeat(16),
      mailFrom: rnd() < 0.1 ? '' : `s${i % 5}@p.test`,
      rcptTo: rcpts,
      clientIp: `10.0.0.${i % 3}`,
      host: 'h',
    };
    const at = (ms: number) => new Date(t0 + i * 3 + ms).toISOString();
    if (rnd() < 0.1) {
      const details = { reason: pick(['sender-auth', 'rbl']), reply: pick(['550 no', '451 later']) };
      return [{ ...base, type: 'refused', at: at(0), service: 'ingress-smtp', details }];
    }
    const received = { size: 10, subject: `Hello ${i % 4} world`, messageIdHeader: `<${i}@p>` };
    const evs: TrackingEvent[] = [
      {
        ...base,
        type: 'received',
        at: at(0),
        service: 'ingress-smtp',
        details: { ...received, auth: { spf: 'pass' } },
      },
    ];
    for (const [k, stage] of (['dnsbl-check', 'virus-scan', 'attachment-policy', 'spam-check'] as const).entries()) {
      const verdict = { kind: rnd() < 0.1 ? 'tempfail' : 'pass' };
      evs.push({ ...base, type: 'stage', at: at(5 + k), service: stage, details: { stage, verdict } });
    }
    if (rnd() < 0.15) {
      evs.push({ ...base, type: 'quarantined', at: at(10), service: 'spam-check', details: {} });
      if (rnd() < 0.5) evs.push({ ...base, type: 'released', at: at(50), service: 'admin', details: {} });
    }
    evs.push({ ...base, type: 'stage', at: at(12), service: 'delivery', details: { verdict: { kind: 'pass' } } });
    for (const rcpt of rcpts) {
      const type = pick(['delivered', 'deferred', 'bounced'] as const);
      const one = { ...base, rcptTo: [rcpt], service: 'delivery' as const };
      evs.push({ ...one, type, at: at(20), details: { reply: '250', attempt: 1 } });
      if (type === 'bounced') {
        evs.push({ ...base, rcptTo: [base.mailFrom], type: 'dsn-generated', at: at(20), service: 'delivery' });
      }
      if (type === 'deferred' && rnd() < 0.5) {
        evs.push({ ...one, type: 'delivered', at: at(90), details: { reply: '250 2', attempt: 2 } });
      }
    }
    if (rnd() < 0.05) {
      evs.push({ ...base, type: 'deleted', at: at(95), service: 'admin', details: { from: 'delivery-queue' } });
    }
    if (rnd() < 0.2) evs.splice(2, 0, evs[1]!); // a replayed event
    if (rnd() < 0.1) [evs[2], evs[3]] = [evs[3]!, evs[2]!]; // two events out of order
    return evs;
  });
  // Messages overlap as on a partition: each one's events in its order, others' in between.
  return all
    .flatMap((evs, i) => evs.map((e, k) => ({ e, order: i + k * 2 })))
    .sort((a, b) => a.order - b.order)
    .map((x) => x.e);
}

describe('tracking store: addBatch', () => {
  const { track } = isolatedRedisClients();

  test('one batch of several messages stores what one add() per event stores', async () => {
    const t0 = Date.now() - 60_000;
    const ids = [newMessageId(), newMessageId(), newMessageId()];
    const events = story(ids, t0);
    // Interleave the messages as partitions do (each message's own events stay in order).
    const interleaved = [...events].sort((a, b) => a.at.localeCompare(b.at));
    const p1 = isolatedRedisPrefix('mgtb1');
    const p2 = isolatedRedisPrefix('mgtb2');
    const one = new Redis(REDIS_URL, { keyPrefix: p1 });
    const batched = new Redis(REDIS_URL, { keyPrefix: p2 });
    track(one, batched);
    const sequential = new TrackingStore(one, 1);
    for (const e of interleaved) await sequential.add(e);
    await new TrackingStore(batched, 1).addBatch(interleaved.slice(0, 5));
    await new TrackingStore(batched, 1).addBatch(interleaved.slice(5));
    const raw = new Redis(REDIS_URL);
    try {
      const a = await dump(raw, p1);
      const b = await dump(raw, p2);
      assert.ok(Object.keys(a).length > 10, 'the sequential store wrote its keys');
      assert.deepEqual(b, a);
      const got = (await new TrackingStore(batched, 1).get(ids[0]!))!;
      assert.equal(got.summary.status, 'delivered');
      assert.equal(got.events.length, 7);
      const [delivered] = await new TrackingStore(batched, 1).search({ status: 'delivered' }, 10);
      assert.ok(delivered, 'the status index followed the batch');
    } finally {
      raw.disconnect();
    }
  });

  test('varied journeys: the batch size changes nothing in what is stored', async () => {
    const events = journeys(40, Date.now() - 60_000);
    const dumps: Record<string, unknown>[] = [];
    const raw = new Redis(REDIS_URL);
    try {
      for (const size of [1, 3, 17, events.length]) {
        const prefix = isolatedRedisPrefix(`mgtb5-${size}`);
        const redis = new Redis(REDIS_URL, { keyPrefix: prefix });
        track(redis);
        const store = new TrackingStore(redis, 1);
        for (let i = 0; i < events.length; i += size) await store.addBatch(events.slice(i, i + size));
        dumps.push(await dump(raw, prefix));
        assert.deepEqual(await keysWithoutTtl(redis, prefix), [], `batches of ${size}`);
      }
    } finally {
      raw.disconnect();
    }
    assert.ok(Object.keys(dumps[0]!).length > 100, 'the journeys wrote their keys');
    for (const d of dumps.slice(1)) assert.deepEqual(d, dumps[0]);
  });

  test('records as read from the events topic store what their events store; a replay adds no second line', async () => {
    const events = journeys(30, Date.now() - 60_000);
    const raw = new Redis(REDIS_URL);
    try {
      const [p1, p2] = [isolatedRedisPrefix('mgtb6a'), isolatedRedisPrefix('mgtb6b')];
      const [a, b] = [new Redis(REDIS_URL, { keyPrefix: p1 }), new Redis(REDIS_URL, { keyPrefix: p2 })];
      track(a, b);
      await new TrackingStore(a, 1).addBatch(events);
      // What the ingest hands over: each record's text and the event decoded from it.
      const records = events.map((e) => encodeEvent(e).toString('utf8'));
      const store = new TrackingStore(b, 1);
      await store.addRecords(records.map((json) => ({ event: decodeEvent(Buffer.from(json)), json })));
      const stored = await dump(raw, p2);
      assert.ok(Object.keys(stored).length > 50, 'the journeys wrote their keys');
      assert.deepEqual(stored, await dump(raw, p1));
      // A replay of the same events, once through each path: every line lands on the field it has.
      await store.addBatch(events);
      await store.addRecords(records.map((json) => ({ event: decodeEvent(Buffer.from(json)), json })));
      assert.deepEqual(await dump(raw, p2), stored);
    } finally {
      raw.disconnect();
    }
  });

  /** Keys under the prefix without an expiry (TTL -1), but the time index (which the sweep trims). */
  async function keysWithoutTtl(redis: Redis, prefix: string): Promise<string[]> {
    const raw = new Redis(REDIS_URL);
    try {
      const keys = await raw.keys(`${prefix}*`);
      const ttls = await Promise.all(keys.map((k) => raw.ttl(k)));
      return keys.filter((k, i) => ttls[i] === -1 && !k.endsWith('trk:idx:time')).map((k) => k.slice(prefix.length));
    } finally {
      raw.disconnect();
    }
  }

  test('every key keeps an expiry across batches: later keys, a status index emptied and created again', async () => {
    const prefix = isolatedRedisPrefix('mgtb3');
    const redis = new Redis(REDIS_URL, { keyPrefix: prefix });
    track(redis);
    const store = new TrackingStore(redis, 1);
    const t0 = Date.now() - 60_000;
    const [x, y] = [newMessageId(), newMessageId()];
    const [ex, ey] = [story([x], t0), story([y], t0 + 1000)];
    // x: received, a pass, then held (the only held message: trk:idx:status:held is created)...
    await store.addBatch(ex.slice(0, 3));
    assert.deepEqual(await redis.zrange('trk:idx:status:held', 0, -1), [x]);
    // ...passes (the ZREM empties trk:idx:status:held: Redis deletes the key), and y is held: the key is back.
    await store.addBatch([ex[3]!, ...ey.slice(0, 3)]);
    assert.deepEqual(await redis.zrange('trk:idx:status:held', 0, -1), [y]);
    // x's recipients' hash is first written now, batches after its other keys; y stays held.
    await store.addBatch(ex.slice(4));
    assert.deepEqual(await redis.zrange('trk:idx:status:held', 0, -1), [y]);
    assert.deepEqual(await keysWithoutTtl(redis, prefix), []);
    assert.equal((await store.get(x))!.summary.status, 'delivered');
  });

  test("a message's keys that went (swept, lost by Redis) get their expiry again when a write recreates them", async () => {
    const prefix = isolatedRedisPrefix('mgtb4');
    const redis = new Redis(REDIS_URL, { keyPrefix: prefix });
    track(redis);
    const store = new TrackingStore(redis, 1);
    const id = newMessageId();
    const events = story([id], Date.now() - 60_000);
    await store.addBatch(events.slice(0, 1));
    // Gone behind the writer's back, a moment after it set their expiry.
    await redis.del(`trk:msg:${id}`, `trk:ev:${id}`);
    await store.addBatch(events.slice(1, 2));
    assert.equal((await store.get(id))!.events.length, 1);
    assert.deepEqual(await keysWithoutTtl(redis, prefix), []);
  });

  test('a batch whose MULTI failed sets every expiry when it is retried', async () => {
    // Its own redis-server: the test makes it refuse writes (maxmemory), which the shared one must never do.
    const server = await startRedis();
    const redis = new Redis(server.url);
    try {
      const store = new TrackingStore(redis, 1);
      const t0 = Date.now() - 60_000;
      const events = story([newMessageId(), newMessageId()], t0);
      await redis.config('SET', 'maxmemory', '1');
      await assert.rejects(store.addBatch(events), /OOM|EXECABORT/);
      await redis.config('SET', 'maxmemory', '0');
      await store.addBatch(events);
      const keys = await redis.keys('*');
      assert.ok(keys.length > 10, 'the retry wrote its keys');
      const ttls = await Promise.all(keys.map((k) => redis.ttl(k)));
      assert.deepEqual(
        keys.filter((k, i) => ttls[i] === -1 && k !== 'trk:idx:time'),
        [],
      );
    } finally {
      redis.disconnect();
      await server.stop();
    }
  });
});
