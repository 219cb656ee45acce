import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import { createLogger, createRedis } from '@mailgate/runtime';
import { startRbldnsd, startRedis, waitFor, type RbldnsdHandle, type RedisHandle } from '@mailgate/testkit';
import {
  createConnectFilter,
  DnsblChecker,
  dnsblConfig,
  dnsblSchema,
  reverseIp,
  type CheckTarget,
} from '../src/index.js';
import { MemoryAnswerCache, TieredAnswerCache } from '../src/cache.js';
import { startRelay, type DnsRelay } from './relay.js';

const log = createLogger('dnsbl-test', 'silent');
let dns: RbldnsdHandle;
let relay: DnsRelay;
let redisSrv: RedisHandle;

const BL = [
  '$TTL 300',
  '$SOA 300 bl.test hostmaster.bl.test 1 600 300 86400 120',
  ':127.0.0.2:Listed in bl.test, see https://bl.test/$',
  '127.0.0.2',
  '198.51.100.7',
  '198.51.100.8',
  '198.51.100.9',
];

before(async () => {
  dns = await startRbldnsd([
    { name: 'bl.test', type: 'ip4set', lines: BL },
    { name: 'bl.test', type: 'ip6trie', lines: [':127.0.0.2:IPv6 listed in bl.test', '2001:db8:bad::/48'] },
    { name: 'heavy.test', type: 'ip4set', lines: [':127.0.0.2:heavy', '127.0.0.2', '198.51.100.8', '198.51.100.9'] },
    { name: 'wl.test', type: 'ip4set', lines: [':127.0.10.2:allow', '127.0.0.2', '198.51.100.9'] },
    {
      name: 'multi.test',
      type: 'ip4set',
      lines: [
        ':127.0.0.2:multi',
        '127.0.0.2',
        '198.51.100.20 :127.0.0.4:bit four',
        '198.51.100.21 :127.0.0.10:pbl-like',
      ],
    },
    // A list that rate-limits us: every answer is an error code.
    { name: 'limited.test', type: 'ip4set', lines: [':127.255.255.254:rate limited', '127.0.0.2', '198.51.100.7'] },
    { name: 'flaky.test', type: 'ip4set', lines: [':127.0.0.2:flaky', '127.0.0.2', '198.51.100.7'] },
    { name: 'slow.test', type: 'ip4set', lines: [':127.0.0.2:slow', '127.0.0.2', '198.51.100.7'] },
    { name: 'dbl.test', type: 'dnset', lines: [':127.0.1.2:domain listed', 'test', 'spammer.test'] },
  ]);
  relay = await startRelay(dns.port);
  redisSrv = await startRedis();
});
after(async () => {
  await relay?.close();
  await dns?.stop();
  await redisSrv?.stop();
});

const base = (extra: Record<string, unknown> = {}) => ({ resolvers: [relay.server], timeoutMs: 1000, ...extra });
const ip = (value: string): CheckTarget => ({ kind: 'ip', value, source: 'client' });

async function withChecker<T>(cfgIn: Record<string, unknown>, fn: (c: DnsblChecker) => Promise<T>): Promise<T> {
  const c = new DnsblChecker(dnsblConfig(base(cfgIn)), { log });
  await c.start();
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

describe('connect filter', () => {
  test('listed IPv4 and IPv6 clients are rejected with the configured text naming the list', async (t) => {
    const f = createConnectFilter(
      dnsblConfig(
        base({
          zones: [{ name: 'bl.test', label: 'BL-Test' }],
          atConnect: { message: 'Blocked: [{ip}] is listed by {zone}; {txt}' },
        }),
      ),
      { log },
    );
    t.after(() => f.close());
    const v4 = await f.check('198.51.100.7');
    assert.equal(v4.action, 'reject');
    assert.equal(v4.zone, 'BL-Test');
    assert.equal(
      v4.text,
      'Blocked: [198.51.100.7] is listed by BL-Test; Listed in bl.test, see https://bl.test/198.51.100.7',
    );
    const v6 = await f.check('2001:db8:bad::25');
    assert.equal(v6.action, 'reject');
    assert.match(v6.text!, /\[2001:db8:bad::25\] is listed by BL-Test; IPv6 listed/);
    const mapped = await f.check('::ffff:198.51.100.7');
    assert.equal(mapped.action, 'reject', 'IPv4-mapped IPv6 socket addresses are checked as IPv4');
    assert.deepEqual(await f.check('198.51.100.99'), { action: 'pass', score: 0 });
    assert.deepEqual(await f.check('2001:db8:900d::1'), { action: 'pass', score: 0 });
    assert.deepEqual(await f.check('10.1.2.3'), { action: 'pass', score: 0 }, 'private networks are never looked up');
    assert.equal(f.ready(), true);
    assert.equal(f.isException('<Postmaster@Example.org>'), true);
    assert.equal(f.isException('abuse@example.org'), true);
    assert.equal(f.isException('bob@example.org'), false);
  });

  test('atConnect.enabled=false passes everything; domain zones are not asked at connect', async (t) => {
    const f = createConnectFilter(dnsblConfig(base({ zones: [{ name: 'bl.test' }], atConnect: { enabled: false } })), {
      log,
    });
    t.after(() => f.close());
    assert.equal((await f.check('198.51.100.7')).action, 'pass');
  });
});

describe('scoring', () => {
  const zones = [
    { name: 'bl.test', weight: 1 },
    { name: 'heavy.test', weight: 2 },
    { name: 'wl.test', weight: -5, label: 'allow-list' },
  ];
  const thresholds = { reject: 3, quarantine: 1 };

  test('weights add up across zones and the thresholds decide', async () => {
    await withChecker({ zones, thresholds }, async (c) => {
      const one = await c.check([ip('198.51.100.7')]);
      assert.equal(one.score, 1);
      assert.equal(one.decision, 'quarantine');
      const two = await c.check([ip('198.51.100.8')]);
      assert.equal(two.score, 3);
      assert.equal(two.decision, 'reject');
      assert.deepEqual(
        two.zones.map((z) => [z.zone, z.status]),
        [
          ['bl.test', 'listed'],
          ['heavy.test', 'listed'],
          ['allow-list', 'not-listed'],
        ],
      );
      const none = await c.check([ip('198.51.100.99')]);
      assert.equal(none.decision, 'pass');
      assert.equal(none.score, 0);
    });
  });

  test('a DNSWL entry (negative weight) overrides the block lists', async () => {
    await withChecker({ zones, thresholds }, async (c) => {
      const r = await c.check([ip('198.51.100.9')]);
      assert.equal(r.score, -2);
      assert.equal(r.decision, 'pass');
      assert.equal(r.zones.find((z) => z.zone === 'allow-list')!.status, 'listed');
    });
  });

  test('informational zones are reported but never counted', async () => {
    await withChecker({ zones: [{ name: 'bl.test', informational: true }] }, async (c) => {
      const r = await c.check([ip('198.51.100.7')]);
      assert.equal(r.zones[0]!.status, 'listed');
      assert.equal(r.score, 0);
      assert.equal(r.decision, 'pass');
    });
  });

  test('error return codes (127.255.255.0/24) are never "listed" and are reported', async () => {
    await withChecker({ zones: [{ name: 'limited.test' }], health: { enabled: false } }, async (c) => {
      const r = await c.check([ip('198.51.100.7')]);
      assert.equal(r.decision, 'pass');
      assert.equal(r.score, 0);
      assert.equal(r.zones[0]!.status, 'error');
      assert.deepEqual(r.zones[0]!.errors, [{ target: '198.51.100.7', codes: ['127.255.255.254'] }]);
    });
  });

  test('bitmask and code-range matching', async () => {
    const zonesM = [
      { name: 'multi.test', label: 'mask4', match: { bitmask: 4 } },
      { name: 'multi.test', label: 'mask8', match: { bitmask: 8 }, weight: 10 },
      { name: 'multi.test', label: 'pbl', match: { codes: ['127.0.0.10-127.0.0.11'] }, weight: 0.5 },
    ];
    await withChecker({ zones: zonesM }, async (c) => {
      const r = await c.check([ip('198.51.100.20')]); // answers 127.0.0.4
      assert.deepEqual(
        r.zones.map((z) => [z.zone, z.status]),
        [
          ['mask4', 'listed'],
          ['mask8', 'not-listed'],
          ['pbl', 'not-listed'],
        ],
      );
      assert.equal(r.score, 1);
      assert.equal(r.stats.questions, 1, 'three entries of one zone share one DNS question');
      const p = await c.check([ip('198.51.100.21')]); // answers 127.0.0.10 = 0b1010
      assert.deepEqual(
        p.zones.map((z) => z.status),
        ['not-listed', 'listed', 'listed'],
      );
      assert.equal(p.score, 10.5);
    });
  });
});

describe('cache', () => {
  /** Two checkers (two replicas) of bl.test sharing one Redis under `keyPrefix`; closed after the test. */
  function twoCheckersOnRedis(t: TestContext, keyPrefix: string) {
    const redis = createRedis({ url: redisSrv.url, keyPrefix }, { name: 'dnsbl-test' });
    t.after(() => redis.quit());
    const cfg = dnsblConfig(base({ zones: [{ name: 'bl.test' }], health: { enabled: false } }));
    const a = new DnsblChecker(cfg, { log, redis });
    const b = new DnsblChecker(cfg, { log, redis });
    t.after(async () => {
      await a.close();
      await b.close();
    });
    return { redis, a, b };
  }

  test('a cached answer needs no DNS query, shared across checkers through Redis, TTL from DNS', async (t) => {
    const { redis, a, b } = twoCheckersOnRedis(t, 'cachetest:');
    // Negative TTL comes from the zone's SOA (minimum 120), learned in a health round.
    await a.health.checkNow();

    const q0 = relay.count('bl.test');
    const first = await a.check([ip('198.51.100.7'), ip('198.51.100.55')]);
    assert.equal(first.decision, 'reject');
    assert.equal(first.stats.cacheHits, 0);
    const q1 = relay.count('bl.test');
    assert.equal(q1 - q0, 3, 'A for both + TXT for the listed one');

    const second = await b.check([ip('198.51.100.7'), ip('198.51.100.55')]);
    assert.equal(second.decision, 'reject');
    assert.equal(second.stats.cacheHits, 2);
    assert.equal(second.zones[0]!.hits![0]!.txt, 'Listed in bl.test, see https://bl.test/198.51.100.7');
    assert.equal(relay.count('bl.test'), q1, 'no DNS query on a cache hit');

    const listedTtl = await redis.ttl(`dnsbl:${reverseIp('198.51.100.7')}.bl.test`);
    assert.ok(listedTtl > 250 && listedTtl <= 300, `listed TTL from the A record (300): ${listedTtl}`);
    const negTtl = await redis.ttl(`dnsbl:${reverseIp('198.51.100.55')}.bl.test`);
    assert.ok(negTtl > 60 && negTtl <= 120, `negative TTL from the SOA minimum (120): ${negTtl}`);
  });

  test('with Redis, a repeat within seconds is answered in process (no Redis read); another process reads Redis', async (t) => {
    const { redis, a, b } = twoCheckersOnRedis(t, 'fronttest:');
    const key = `dnsbl:${reverseIp('198.51.100.7')}.bl.test`;
    const first = await a.check([ip('198.51.100.7')]);
    assert.equal(first.decision, 'reject');
    assert.ok((await redis.exists(key)) === 1, 'stored in Redis for the other replicas');
    // Gone from Redis: this process still answers from its front, without DNS.
    await redis.del(key);
    const q = relay.count('bl.test');
    const again = await a.check([ip('198.51.100.7')]);
    assert.equal(again.decision, 'reject');
    assert.equal(again.stats.cacheHits, 1);
    assert.equal(relay.count('bl.test'), q, 'no DNS query');
    // Another process has no front entry: Redis (now empty), then DNS.
    const other = await b.check([ip('198.51.100.7')]);
    assert.equal(other.decision, 'reject');
    assert.equal(other.stats.cacheHits, 0);
    assert.ok(relay.count('bl.test') > q);
  });

  test('the in-process front keeps an answer at most its own TTL, then reads the shared cache again', async () => {
    const shared = new MemoryAnswerCache(100);
    const tiered = new TieredAnswerCache(shared, 100, 0.2);
    await shared.setMany([{ name: 'q.bl.test', value: { a: ['127.0.0.2'] }, ttlSec: 3600 }]);
    assert.deepEqual(await tiered.getMany(['q.bl.test', 'other.bl.test']), [{ a: ['127.0.0.2'] }, undefined]);
    // The shared answer changes (another replica stored a newer one): the front answers until its TTL ends.
    await shared.setMany([{ name: 'q.bl.test', value: {}, ttlSec: 3600 }]);
    assert.deepEqual(await tiered.getMany(['q.bl.test']), [{ a: ['127.0.0.2'] }]);
    await waitFor(async () => (await tiered.getMany(['q.bl.test']))[0]?.a === undefined, { timeoutMs: 5000 });
    // Writes go to both; the front never keeps an entry longer than the shared cache would.
    await tiered.setMany([{ name: 'w.bl.test', value: {}, ttlSec: 60 }]);
    assert.deepEqual(await shared.getMany(['w.bl.test']), [{}]);
  });

  test('without Redis an in-process cache serves repeats; concurrent checks share one question', async () => {
    await withChecker({ zones: [{ name: 'bl.test' }], health: { enabled: false } }, async (c) => {
      const q0 = relay.count('bl.test');
      const rs = await Promise.all(Array.from({ length: 5 }, () => c.check([ip('198.51.100.60')])));
      assert.ok(rs.every((r) => r.decision === 'pass'));
      assert.equal(relay.count('bl.test') - q0, 1);
      await c.check([ip('198.51.100.60')]);
      assert.equal(relay.count('bl.test') - q0, 1);
    });
  });
});

describe('zone health', () => {
  test('a broken zone is disabled (not queried) and re-enabled when healthy', async () => {
    await withChecker({ zones: [{ name: 'flaky.test' }] }, async (c) => {
      assert.equal(c.health.get('flaky.test')!.up, true);
      assert.equal((await c.check([ip('198.51.100.7')])).decision, 'reject');

      // The list stops answering its test point: disabled.
      await dns.update('flaky.test', [':127.0.0.2:flaky', '198.51.100.7']);
      await c.health.checkNow();
      assert.equal(c.health.get('flaky.test')!.up, false);
      assert.match(c.health.get('flaky.test')!.reason!, /127\.0\.0\.2 is not listed/);
      const q0 = relay.count('flaky.test');
      const r = await c.check([ip('198.51.100.8')]);
      assert.equal(r.zones[0]!.status, 'disabled');
      assert.equal(r.decision, 'pass');
      assert.equal(relay.count('flaky.test'), q0, 'a disabled zone is not queried');
      assert.equal(c.ready(), false, 'no healthy zone left: not ready');

      // It answers everything "listed" (a dead list): still disabled.
      await dns.update('flaky.test', [':127.0.0.2:flaky', '127.0.0.0/8']);
      await c.health.checkNow();
      assert.match(c.health.get('flaky.test')!.reason!, /127\.0\.0\.1 is listed/);

      await dns.update('flaky.test', [':127.0.0.2:flaky', '127.0.0.2', '198.51.100.7']);
      await c.health.checkNow();
      assert.equal(c.health.get('flaky.test')!.up, true);
      assert.equal(c.ready(), true);
    });
  });

  test('periodic rounds disable and re-enable a zone by themselves', async () => {
    await withChecker({ zones: [{ name: 'flaky.test' }], health: { intervalSec: 1 } }, async (c) => {
      assert.equal(c.health.get('flaky.test')!.up, true);
      await dns.update('flaky.test', [':127.0.0.2:flaky', '198.51.100.7']);
      await waitFor(() => c.health.get('flaky.test')!.up === false, { timeoutMs: 10_000 });
      await dns.update('flaky.test', [':127.0.0.2:flaky', '127.0.0.2', '198.51.100.7']);
      await waitFor(() => c.health.get('flaky.test')!.up === true, { timeoutMs: 10_000 });
    });
  });

  test('a zone answering error codes for its test point is disabled with the reason', async () => {
    await withChecker({ zones: [{ name: 'limited.test' }, { name: 'bl.test' }] }, async (c) => {
      assert.equal(c.health.get('limited.test')!.up, false);
      assert.match(c.health.get('limited.test')!.reason!, /error code/);
      assert.equal(c.health.get('bl.test')!.up, true);
      assert.equal(c.ready(), true);
    });
  });
});

describe('timeouts', () => {
  test('per policy: not-listed by default, tempfail when chosen and it could change the decision', async (t) => {
    relay.drop.add('slow.test');
    t.after(() => relay.drop.delete('slow.test'));
    const common = { timeoutMs: 300, health: { enabled: false } };
    await withChecker({ ...common, zones: [{ name: 'slow.test' }] }, async (c) => {
      const r = await c.check([ip('198.51.100.7')]);
      assert.equal(r.zones[0]!.status, 'timeout');
      assert.equal(r.decision, 'pass');
    });
    await withChecker({ ...common, zones: [{ name: 'slow.test', onTimeout: 'tempfail' }] }, async (c) => {
      const r = await c.check([ip('198.51.100.7')]);
      assert.equal(r.decision, 'tempfail');
      assert.equal(r.zones[0]!.undecided, true);
    });
    // Already rejected by another list: the silent one cannot change that.
    await withChecker(
      {
        ...common,
        zones: [
          { name: 'bl.test', weight: 5 },
          { name: 'slow.test', onTimeout: 'tempfail' },
        ],
        thresholds: { reject: 1 },
      },
      async (c) => {
        assert.equal((await c.check([ip('198.51.100.7')])).decision, 'reject');
      },
    );
    // Health: a zone that never answers is disabled.
    await withChecker({ timeoutMs: 300, zones: [{ name: 'slow.test' }] }, async (c) => {
      assert.equal(c.health.get('slow.test')!.up, false);
      assert.match(c.health.get('slow.test')!.reason!, /timeout/);
    });
  });

  test('domain zones: HELO/sender domains', async () => {
    await withChecker({ zones: [{ name: 'dbl.test', type: 'domain' }] }, async (c) => {
      const r = await c.check([
        { kind: 'domain', value: 'Spammer.Test.', source: 'helo' },
        { kind: 'domain', value: 'fine.example', source: 'mail-from' },
        { kind: 'ip', value: '198.51.100.7', source: 'client' },
      ]);
      assert.equal(r.decision, 'reject');
      assert.deepEqual(r.zones[0]!.hits, [
        { target: 'Spammer.Test.', source: 'helo', codes: ['127.0.1.2'], txt: 'domain listed' },
      ]);
      assert.equal(r.stats.questions, 2);
    });
  });
});

describe('config', () => {
  test('defaults and errors naming the key', () => {
    const d = dnsblConfig();
    assert.equal(d.http.port, 9102);
    assert.equal(d.resolvers, 'system');
    assert.deepEqual(d.errorCodes, ['127.0.0.1', '127.255.255.0/24']);
    assert.equal(d.zones.length, 0);
    const bad = dnsblSchema.safeParse({
      zones: [{ name: 'x.test', match: { codes: ['127.0.0.300'] } }],
      thresholds: { reject: 1, quarantine: 2 },
    });
    assert.equal(bad.success, false);
    const paths = bad.error!.issues.map((i) => i.path.join('.'));
    assert.ok(paths.includes('zones.0.match.codes.0'), paths.join());
    const unknown = dnsblSchema.safeParse({ zones: [{ name: 'x.test', wieght: 2 }] });
    assert.equal(unknown.success, false);
  });
});
