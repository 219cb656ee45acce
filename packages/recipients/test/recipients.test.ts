import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createRedis } from '@mailgate/runtime';
import {
  isolatedRedisPrefix,
  ldapSource,
  makeTempDir,
  startRedis,
  startSlapd,
  startSmtpSink,
  type RedisHandle,
  type Sink,
  type SlapdHandle,
} from '@mailgate/testkit';
import type { Redis } from 'ioredis';
import {
  HarvestGuard,
  RecipientChecker,
  escapeFilterValue,
  recipientsSchema,
  renderFilter,
  type RecipientsConfig,
} from '../src/index.js';

let slapd: SlapdHandle;
let sink: Sink;
let redisSrv: RedisHandle;
const clients: Redis[] = [];

function redis(): Redis {
  const r = createRedis({ url: redisSrv.url, keyPrefix: isolatedRedisPrefix('rcpt') }, { name: 'rcpt-test' });
  clients.push(r);
  return r;
}

before(async () => {
  [slapd, sink, redisSrv] = await Promise.all([
    startSlapd({
      ldaps: true,
      users: [
        { uid: 'alice', mail: 'alice@example.test' },
        { uid: 'bob', mail: 'bob@example.test', proxyAddresses: ['SMTP:bob@example.test', 'smtp:robert@example.test'] },
      ],
    }),
    startSmtpSink(),
    startRedis(),
  ]);
  sink.setReply({ stage: 'rcpt', code: 550, message: '5.1.1 no such user', rcpt: 'ghost@internal.test' });
  sink.setReply({ stage: 'rcpt', code: 450, message: '4.2.1 mailbox busy', rcpt: 'busy@internal.test' });
});

after(async () => {
  await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
  await Promise.all([slapd?.stop(), sink?.close(), redisSrv?.stop()]);
});

function config(extra: Partial<Record<string, unknown>> = {}): RecipientsConfig {
  return recipientsSchema.parse({
    sources: {
      ad: ldapSource(slapd),
      internal: { type: 'callout', host: sink.host, port: sink.port, timeoutMs: 2000 },
      extra: { type: 'static', addresses: ['postmaster', 'noreply-*'] },
    },
    domains: [
      { domain: 'example.test', sources: ['extra', 'ad'] },
      { domain: 'internal.test', sources: ['internal'] },
    ],
    ...extra,
  });
}

describe('filter rendering', () => {
  test('escapes RFC 4515 specials so an address cannot change the filter', () => {
    assert.equal(escapeFilterValue('a*)(uid=*'), 'a\\2a\\29\\28uid=\\2a');
    assert.equal(
      renderFilter('(mail={address})', { address: 'x)(mail=*@example.test', local: 'x', domain: 'example.test' }),
      '(mail=x\\29\\28mail=\\2a@example.test)',
    );
  });
});

describe('RecipientChecker against slapd, an SMTP sink and Redis', () => {
  test('LDAP: mail and proxyAddresses found, unknown → 550 5.1.1, sub-addressing, static wildcard, cache', async (t) => {
    const c = new RecipientChecker(config(), { redis: redis(), hostname: 'gw.test' });
    t.after(() => c.close());
    assert.deepEqual(await c.check('alice@example.test'), { action: 'accept', source: 'ad', cached: false });
    assert.equal((await c.check('Robert@Example.test')).action, 'accept'); // proxyAddresses smtp:, case-insensitive
    assert.equal((await c.check('alice+news@example.test')).action, 'accept');
    assert.equal((await c.check('noreply-billing@example.test')).action, 'accept');
    assert.equal((await c.check('postmaster@example.test')).action, 'accept');
    const miss = await c.check('nobody@example.test');
    assert.deepEqual(miss, {
      action: 'unknown',
      code: 550,
      status: '5.1.1',
      message: '<nobody@example.test>: recipient unknown',
      cached: false,
    });
    // a domain without rules: anything goes (the relay policy decides)
    assert.equal((await c.check('whoever@other.test')).action, 'accept');
    const lookups = c.stats.lookups['ad'];
    assert.equal((await c.check('alice@example.test')).cached, true);
    assert.equal((await c.check('nobody@example.test')).cached, true);
    assert.equal(c.stats.lookups['ad'], lookups, 'answered from the Redis cache');
    assert.ok(c.stats.cacheHits >= 2);
  });

  test('an injection attempt in the local part does not match everyone', async (t) => {
    const c = new RecipientChecker(config(), { redis: null, hostname: 'gw.test' });
    t.after(() => c.close());
    assert.equal((await c.check('*@example.test')).action, 'unknown');
    assert.equal((await c.check('a)(mail=*@example.test')).action, 'unknown');
  });

  test('LDAPS with the CA, and a wrong CA fails closed', async (t) => {
    const dir = makeTempDir('ldaps-ca');
    writeFileSync(join(dir, 'ca.pem'), slapd.caPem!);
    const base = { type: 'ldap', bindDn: slapd.bindDn, bindPassword: slapd.bindPassword, baseDn: slapd.suffix };
    const good = new RecipientChecker(
      recipientsSchema.parse({
        sources: { ad: { ...base, url: slapd.ldapsUrl, caFile: join(dir, 'ca.pem') } },
        domains: [{ domain: 'example.test', sources: ['ad'] }],
      }),
      { redis: null, hostname: 'gw.test' },
    );
    t.after(() => good.close());
    assert.equal((await good.check('bob@example.test')).action, 'accept');
    const bad = new RecipientChecker(
      recipientsSchema.parse({
        sources: { ad: { ...base, url: slapd.ldapsUrl, timeoutMs: 1000 } }, // system CA store: not ours
        domains: [{ domain: 'example.test', sources: ['ad'] }],
      }),
      { redis: null, hostname: 'gw.test' },
    );
    t.after(() => bad.close());
    const d = await bad.check('bob@example.test');
    assert.equal(d.action, 'unavailable');
    assert.equal(d.action === 'unavailable' && d.code, 451);
  });

  test('wrong bind password → 451 4.4.3; failOpen accepts instead', async (t) => {
    const cfg = config();
    const src = cfg.sources['ad']!;
    assert.equal(src.type, 'ldap');
    const broken = { ...cfg, sources: { ...cfg.sources, ad: { ...src, bindPassword: 'wrong' } } } as RecipientsConfig;
    const c = new RecipientChecker(broken, { redis: null, hostname: 'gw.test' });
    t.after(() => c.close());
    const d = await c.check('alice@example.test');
    assert.equal(d.action, 'unavailable');
    assert.equal(d.action === 'unavailable' && `${d.code} ${d.status}`, '451 4.4.3');
    const open = new RecipientChecker({ ...broken, failOpen: true }, { redis: null, hostname: 'gw.test' });
    t.after(() => open.close());
    assert.deepEqual(await open.check('alice@example.test'), { action: 'accept', source: 'fail-open', cached: false });
  });

  test('LDAP stopped mid-run → 451 (cached recipients still accepted), restart → recovery', async (t) => {
    const c = new RecipientChecker(config(), { redis: redis(), hostname: 'gw.test' });
    t.after(() => c.close());
    assert.equal((await c.check('alice@example.test')).action, 'accept'); // now cached
    await slapd.kill();
    try {
      assert.equal((await c.check('alice@example.test')).action, 'accept', 'cached positive answer bridges the outage');
      const d = await c.check('bob@example.test');
      assert.equal(d.action, 'unavailable');
    } finally {
      await slapd.restart();
    }
    assert.equal((await c.check('bob@example.test')).action, 'accept');
  });

  test('SMTP callout: 250 found, 550 unknown, 450 unavailable (not cached); null sender, no DATA', async (t) => {
    const c = new RecipientChecker(config(), { redis: redis(), hostname: 'gw.test' });
    t.after(() => c.close());
    const before = sink.rejections.length;
    assert.equal((await c.check('carol@internal.test')).action, 'accept');
    const ghost = await c.check('ghost@internal.test');
    assert.equal(ghost.action, 'unknown');
    const busy = await c.check('busy@internal.test');
    assert.equal(busy.action, 'unavailable');
    assert.ok(
      sink.rejections.slice(before).every((r) => r.mailFrom === ''),
      'probes use the null sender',
    );
    assert.equal(sink.messages.length, 0, 'a probe never sends DATA');
    const probes = c.stats.lookups['internal'];
    await c.check('carol@internal.test');
    await c.check('ghost@internal.test');
    assert.equal(c.stats.lookups['internal'], probes, 'cached');
    await c.check('busy@internal.test');
    assert.equal(c.stats.lookups['internal'], probes! + 1, 'a 4xx is not cached');
  });

  test('callout rate limit: probes to one destination are spaced, excess fails within the timeout', async (t) => {
    const cfg = config();
    const internal = cfg.sources['internal']!;
    const slow = {
      ...cfg,
      sources: { ...cfg.sources, internal: { ...internal, maxPerSecond: 5, timeoutMs: 500 } },
    } as RecipientsConfig;
    const c = new RecipientChecker(slow, { redis: null, hostname: 'gw.test' });
    t.after(() => c.close());
    const t0 = Date.now();
    const results = await Promise.all(Array.from({ length: 5 }, (_, i) => c.check(`user${i}@internal.test`)));
    // 5/s with a 500 ms deadline: slots at 0, 200, 400 ms fit; 600 and 800 ms do not
    assert.deepEqual(
      results.map((r) => r.action),
      ['accept', 'accept', 'accept', 'unavailable', 'unavailable'],
    );
    assert.ok(Date.now() - t0 >= 390, 'the third probe waited for its slot');
  });

  test('callout rate limit is shared by replicas through Redis', async (t) => {
    const cfg = config();
    const internal = cfg.sources['internal']!;
    const slow = {
      ...cfg,
      cache: { positiveTtlSeconds: 0, negativeTtlSeconds: 0 },
      sources: { ...cfg.sources, internal: { ...internal, maxPerSecond: 5, timeoutMs: 500 } },
    } as RecipientsConfig;
    // Two replicas: their own Redis connections, one key space.
    const prefix = isolatedRedisPrefix('rcpt');
    const conn = () => {
      const r = createRedis({ url: redisSrv.url, keyPrefix: prefix }, { name: 'rcpt-test' });
      clients.push(r);
      return r;
    };
    const a = new RecipientChecker(slow, { redis: conn(), hostname: 'gw-a.test' });
    const b = new RecipientChecker(slow, { redis: conn(), hostname: 'gw-b.test' });
    t.after(() => Promise.all([a.close(), b.close()]));
    const t0 = Date.now();
    // Alone, each replica would fit 3 probes in 500 ms at 5/s; together they share those 3 slots.
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).check(`user${i}@internal.test`)),
    );
    const actions = results.map((r) => r.action);
    assert.equal(actions.filter((x) => x === 'accept').length, 3, actions.join());
    assert.equal(actions.filter((x) => x === 'unavailable').length, 3, actions.join());
    assert.ok(Date.now() - t0 >= 390, 'the third probe waited for its slot');
  });

  test('callout target down → unavailable', async (t) => {
    const cfg = config();
    const c = new RecipientChecker(
      { ...cfg, sources: { ...cfg.sources, internal: { ...cfg.sources['internal']!, port: 1 } } } as RecipientsConfig,
      { redis: null, hostname: 'gw.test' },
    );
    t.after(() => c.close());
    assert.equal((await c.check('x@internal.test')).action, 'unavailable');
  });
});

describe('HarvestGuard', () => {
  test('growing tarpit, capped; budget per IP in Redis shared by guards (replicas)', async () => {
    const cfg = recipientsSchema.parse({
      harvest: { tarpitBaseMs: 100, tarpitFactor: 2, tarpitMaxMs: 500, budget: 3, windowSeconds: 60 },
    }).harvest;
    const r = redis();
    const a = new HarvestGuard(cfg, r);
    const b = new HarvestGuard(cfg, r);
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((n) => a.delayFor(n)),
      [100, 200, 400, 500, 500],
    );
    assert.equal((await a.unknownRecipient('192.0.2.9', 1)).drop, false);
    assert.equal((await b.unknownRecipient('192.0.2.9', 1)).drop, false);
    assert.equal((await a.unknownRecipient('192.0.2.9', 2)).drop, false);
    const v = await b.unknownRecipient('192.0.2.9', 2);
    assert.deepEqual(v, { delayMs: 200, count: 4, drop: true });
    assert.equal((await a.unknownRecipient('192.0.2.10', 1)).drop, false, 'another IP has its own budget');
  });
});
