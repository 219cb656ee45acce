// The tracking store against the real Redis: per-recipient status for multi-recipient mail, with the events as
// the services emit them (one delivery attempt's events share a timestamp).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { newMessageId, type TrackingEvent } from '@mailgate/contracts';
import { isolatedRedisPrefix } from '@mailgate/testkit';
import { Redis } from 'ioredis';
import { TrackingStore } from '../src/tracking-store.js';
import { REDIS_URL } from './helpers.js';

describe('tracking store (Redis)', () => {
  const prefix = isolatedRedisPrefix('mgtrk');
  const redis = new Redis(REDIS_URL, { keyPrefix: prefix });
  const store = new TrackingStore(redis, 1);
  before(async () => {
    await redis.ping();
  });
  after(async () => {
    const raw = new Redis(REDIS_URL);
    const keys = await raw.keys(`${prefix}*`);
    if (keys.length) await raw.unlink(...keys);
    raw.disconnect();
    redis.disconnect();
  });

  /** received → stage → the delivery stage's outcome, as runner.route() emits it: one `at` for all of them. */
  function twoRecipientEvents(id: string, t0: number): TrackingEvent[] {
    const base = {
      messageId: id,
      traceId: 'ab'.repeat(16),
      mailFrom: 'sender@partner.test',
      rcptTo: ['a@example.test', 'b@example.test'],
      clientIp: '198.51.100.20',
      host: 'x-0',
    };
    const at = (ms: number) => new Date(t0 + ms).toISOString();
    const delivery = at(50);
    return [
      { ...base, type: 'received', at: at(0), service: 'ingress-smtp', details: { size: 100 } },
      {
        ...base,
        type: 'stage',
        at: delivery,
        service: 'delivery',
        details: { stage: 'delivery', verdict: { kind: 'pass' }, delivered: 1, deferred: 1 },
      },
      {
        ...base,
        type: 'delivered',
        at: delivery,
        service: 'delivery',
        rcptTo: ['b@example.test'],
        details: { remoteHost: 'mx.example.test', reply: '250 2.0.0 Ok: queued as B1', destination: 'example.test' },
      },
      {
        ...base,
        type: 'deferred',
        at: delivery,
        service: 'delivery',
        rcptTo: ['a@example.test'],
        details: {
          destination: 'example.test',
          reason: '451 4.2.0 mailbox busy',
          remoteHost: 'mx.example.test',
          attempt: 1,
          nextAttemptAt: at(60_000),
        },
      },
    ];
  }

  test('a@ deferred and b@ delivered in one attempt: each recipient keeps its own status', async () => {
    const id = newMessageId();
    const t0 = Date.now() - 10_000;
    // Any arrival order gives the same answer (delivered sorts before deferred here on purpose).
    for (const e of twoRecipientEvents(id, t0)) await store.add(e);
    const m = (await store.get(id))!;
    assert.deepEqual(m.summary.rcptTo, ['a@example.test', 'b@example.test'], 'a subset event never shrinks the list');
    assert.equal(m.summary.status, 'partially-delivered');
    const by = Object.fromEntries(m.summary.recipients.map((r) => [r.rcpt, r]));
    assert.equal(by['a@example.test']!.status, 'deferred');
    assert.equal(by['a@example.test']!.reply, '451 4.2.0 mailbox busy');
    assert.equal(by['a@example.test']!.attempt, 1);
    assert.ok(by['a@example.test']!.nextAttemptAt);
    assert.equal(by['b@example.test']!.status, 'delivered');
    assert.equal(by['b@example.test']!.reply, '250 2.0.0 Ok: queued as B1');
    assert.equal(by['b@example.test']!.remoteHost, 'mx.example.test');

    const [forA] = await store.search({ rcpt: 'A@example.test' }, 100);
    assert.equal(forA!.id, id);
    assert.equal(forA!.status, 'deferred', 'search by a@ answers with a@’s status');
    const [forB] = await store.search({ rcpt: 'b@example.test' }, 100);
    assert.equal(forB!.status, 'delivered', 'search by b@ answers with b@’s status');
    const [byDomain] = await store.search({ rcpt: '@example.test' }, 100);
    assert.equal(byDomain!.status, 'partially-delivered', 'a domain search shows the message status');

    // The retry delivers a@ later; then a redelivered copy of the first attempt's events changes nothing.
    await store.add({
      ...twoRecipientEvents(id, t0)[2]!,
      at: new Date(t0 + 70_000).toISOString(),
      rcptTo: ['a@example.test'],
      details: { remoteHost: 'mx2.example.test', reply: '250 2.0.0 Ok: queued as A2', attempt: 2 },
    });
    for (const e of twoRecipientEvents(id, t0)) await store.add(e);
    const m2 = (await store.get(id))!;
    assert.equal(m2.summary.status, 'delivered');
    assert.deepEqual(
      m2.summary.recipients.map((r) => [r.rcpt, r.status, r.reply]),
      [
        ['a@example.test', 'delivered', '250 2.0.0 Ok: queued as A2'],
        ['b@example.test', 'delivered', '250 2.0.0 Ok: queued as B1'],
      ],
    );
    assert.equal(m2.events.length, 5);
  });

  test('bounced for one, delivered for the other; the DSN note is neither a recipient nor a status', async () => {
    const id = newMessageId();
    const t0 = Date.now() - 5_000;
    const [received, stage, delivered] = twoRecipientEvents(id, t0);
    const at = stage!.at;
    await store.add(received!);
    await store.add(delivered!);
    await store.add({
      ...stage!,
      type: 'bounced',
      rcptTo: ['a@example.test'],
      details: { replies: { 'a@example.test': '550 5.1.1 no such user' }, destination: 'example.test', dsn: 'D1' },
    });
    await store.add({
      ...stage!,
      type: 'dsn-generated',
      rcptTo: ['sender@partner.test'],
      details: { dsnId: 'D1', kind: 'failed', recipients: ['a@example.test'] },
    });
    await store.add(stage!);
    const s = (await store.get(id))!.summary;
    assert.deepEqual(s.rcptTo, ['a@example.test', 'b@example.test']);
    assert.equal(s.status, 'partially-delivered');
    assert.deepEqual(
      s.recipients.map((r) => [r.rcpt, r.status, r.reply, r.at]),
      [
        ['a@example.test', 'bounced', '550 5.1.1 no such user', at],
        ['b@example.test', 'delivered', '250 2.0.0 Ok: queued as B1', at],
      ],
    );
    assert.equal((await store.search({ rcpt: 'sender@partner.test' }, 10)).length, 0, 'the DSN recipient is not ours');
  });

  test('before any delivery attempt every recipient shows the message status', async () => {
    const id = newMessageId();
    const [received] = twoRecipientEvents(id, Date.now());
    await store.add(received!);
    const s = (await store.get(id))!.summary;
    assert.equal(s.status, 'in-pipeline');
    assert.deepEqual(
      s.recipients.map((r) => r.status),
      ['in-pipeline', 'in-pipeline'],
    );
  });

  test('SMTP-time refusals: stored, found by sender, recipient and status=refused, swept after their own retention', async () => {
    const short = new TrackingStore(redis, 30, 1);
    const id = newMessageId();
    const old = Date.now() - 2 * 86400_000; // older than the refusal retention, younger than the main one
    const refusal = (rcpt: string, reason: string, at: number): TrackingEvent => ({
      type: 'refused',
      messageId: id,
      at: new Date(at).toISOString(),
      service: 'ingress-smtp',
      host: 'ingress-0',
      mailFrom: 'spammer@probe.test',
      rcptTo: [rcpt],
      clientIp: '203.0.113.66',
      details: { reason, reply: `550 5.7.1 <${rcpt}>: relaying denied`, phase: 'rcpt' },
    });
    await short.add(refusal('v1@foreign.test', 'relay-denied', old));
    await short.add(refusal('v2@foreign.test', 'relay-denied', old + 5));
    const fresh = newMessageId();
    await short.add({ ...refusal('v3@foreign.test', 'relay-denied', Date.now()), messageId: fresh });

    const [hit] = await short.search(
      { from: 'spammer@probe.test', status: 'refused', since: old - 1, until: old + 1 },
      10,
    );
    assert.equal(hit!.id, id);
    assert.equal(hit!.status, 'refused');
    assert.deepEqual(hit!.rcptTo, ['v1@foreign.test', 'v2@foreign.test']);
    assert.equal((await short.search({ rcpt: 'v2@foreign.test' }, 10))[0]!.status, 'refused');
    assert.equal((await short.search({ ip: '203.0.113.66', status: 'refused' }, 10)).length, 2);

    assert.equal(await short.sweep(), 1, 'the old refusal entry goes, the fresh one stays');
    assert.equal(await short.get(id), null);
    assert.deepEqual(
      (await short.search({ from: '@probe.test' }, 10)).map((m) => m.id),
      [fresh],
    );
    for (const k of ['trk:idx:rcpt:v1@foreign.test', 'trk:idx:ip:203.0.113.66', 'trk:idx:time', 'trk:idx:refused'])
      assert.equal(await redis.zscore(k, id), null, `${id} unindexed from ${k}`);
  });

  test('Subject and Message-ID: stored from the received event and searchable; cursor pages neither repeat nor skip', async () => {
    const s2 = new TrackingStore(redis, 30);
    const t0 = Date.now() - 60_000;
    const ids: string[] = [];
    // Seven messages, three of them in the same millisecond (ties across a page boundary).
    for (const [i, dt] of [0, 10, 10, 10, 20, 30, 40].entries()) {
      const id = newMessageId();
      ids.push(id);
      await s2.add({
        type: 'received',
        messageId: id,
        at: new Date(t0 + dt).toISOString(),
        service: 'ingress-smtp',
        host: 'ingress-0',
        mailFrom: 'pager@paging.test',
        rcptTo: ['desk@paging.test'],
        clientIp: '192.0.2.80',
        details: {
          size: 1234,
          subject: i === 3 ? 'Rechnung März 2026 — Überfällig' : `weekly report ${i}`,
          messageIdHeader: `<msg-${i}.${id}@Paging.test>`,
        },
      });
    }
    const all = (await s2.search({ from: 'pager@paging.test', limit: 100 }, 100)).map((m) => m.id);
    assert.equal(all.length, 7);
    const paged: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const p = await s2.page({ from: 'pager@paging.test', limit: 2, cursor }, 100);
      paged.push(...p.results.map((m) => m.id));
      cursor = p.nextCursor;
      pages++;
    } while (cursor);
    assert.deepEqual(paged, all, 'pages of 2 give the same list as one page of 100');
    assert.equal(pages, 4);
    assert.equal(
      (await s2.page({ from: 'pager@paging.test', limit: 7 }, 100)).nextCursor,
      undefined,
      'no empty last page',
    );
    await assert.rejects(s2.page({ cursor: 'garbage' }, 10), /malformed cursor/);

    const [byMid] = await s2.search({ messageId: `msg-3.${ids[3]}@paging.test` }, 10);
    assert.equal(byMid!.id, ids[3], 'Message-ID without <> and in another case');
    assert.equal(byMid!.subject, 'Rechnung März 2026 — Überfällig');
    assert.equal(byMid!.messageIdHeader, `<msg-3.${ids[3]}@Paging.test>`);
    assert.equal(byMid!.size, 1234);
    assert.deepEqual(
      (await s2.search({ subject: 'überfällig rechnung' }, 10)).map((m) => m.id),
      [ids[3]],
      'every word, any order, any case',
    );
    assert.equal((await s2.search({ subject: 'weekly', from: '@paging.test' }, 10)).length, 6);
    assert.equal((await s2.search({ subject: 'weekly invoice' }, 10)).length, 0);
    assert.equal((await s2.search({ subject: '—' }, 10)).length, 0, 'no words: nothing, not everything');
  });
});
