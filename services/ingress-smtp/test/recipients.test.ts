import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ListStore } from '@mailgate/lists';
import { createRedis } from '@mailgate/runtime';
import {
  ldapSource,
  startKafka,
  startRedis,
  startSlapd,
  waitFor,
  type KafkaHandle,
  type RedisHandle,
  type SlapdHandle,
} from '@mailgate/testkit';
import type { Redis } from 'ioredis';
import { SmtpClient, TopicReader, deliver, queuedId } from './helpers.js';
import { startIngress, type StartedIngress } from './setup.js';

/**
 * Recipient validation and live lists through real SMTP sessions: two ingress replicas (same Redis key prefix, as
 * in a cluster) in front of kafka-lite, a real slapd with an AD-like directory. Source addresses:
 *   127.0.0.1 ordinary client   127.0.0.5 harvester   127.0.0.6 / 127.0.0.7 clients that get listed
 */

let kafka: KafkaHandle;
let redisSrv: RedisHandle;
let slapd: SlapdHandle;
let reader: TopicReader;
let a: StartedIngress;
let b: StartedIngress;
let admin: Redis;
const PREFIX = `rcpt-ingress:${process.pid}:`;

before(async () => {
  [kafka, redisSrv, slapd] = await Promise.all([
    startKafka({ port: 0 }),
    startRedis(),
    startSlapd({
      users: [
        { uid: 'alice', mail: 'alice@corp.test' },
        { uid: 'bob', proxyAddresses: ['SMTP:bob@corp.test'] },
      ],
    }),
  ]);
  const ingress = {
    acceptedDomains: ['corp.test', 'open.test'],
    limits: { pregreetDelayMs: 0, maxConnectionsPerIp: 500, messageRate: { max: 10_000 } },
    recipients: {
      sources: {
        ad: { ...ldapSource(slapd), timeoutMs: 1000, connectTimeoutMs: 1000 },
      },
      domains: [{ domain: 'corp.test', sources: ['ad'] }],
      harvest: { tarpitBaseMs: 50, tarpitFactor: 2, tarpitMaxMs: 400, budget: 6, windowSeconds: 600 },
    },
    lists: { refreshIntervalMs: 1000, seed: [{ kind: 'sender-block', value: '*@seeded-spam.test' }] },
  };
  [a, b] = await Promise.all([
    startIngress({ brokers: kafka.brokers, redisUrl: redisSrv.url, keyPrefix: PREFIX, ingress }),
    startIngress({ brokers: kafka.brokers, redisUrl: redisSrv.url, keyPrefix: PREFIX, ingress }),
  ]);
  reader = await TopicReader.start(kafka.brokers);
  admin = createRedis({ url: redisSrv.url, keyPrefix: PREFIX }, { name: 'lists-admin' });
});

after(async () => {
  await Promise.all([a?.running.stop(), b?.running.stop()]);
  await reader?.stop();
  await admin?.quit();
  await Promise.all([kafka?.close(), redisSrv?.stop(), slapd?.stop()]);
});

const BODY = 'Subject: hi\r\n\r\nhello\r\n';

describe('recipient validation at RCPT (LDAP)', () => {
  it('a known recipient is accepted, an unknown one gets 550 5.1.1 and never reaches the topic', async () => {
    const c = await SmtpClient.connect(a.mx);
    await c.expect(220);
    await c.cmd('EHLO client.test');
    assert.equal((await c.cmd('MAIL FROM:<x@sender.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<alice@corp.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<bob+lists@corp.test>')).code, 250, 'proxyAddresses + sub-address');
    const r = await c.cmd('RCPT TO:<mallory@corp.test>');
    assert.equal(r.text, '550 5.1.1 <mallory@corp.test>: recipient unknown');
    assert.equal((await c.cmd('RCPT TO:<anyone@open.test>')).code, 250, 'a domain without rules accepts anyone');
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write(`${BODY}.\r\n`);
    const id = queuedId(await c.reply(10_000));
    await c.close();
    const rec = await waitFor(() => reader.messages.get(id), { timeoutMs: 10_000 });
    assert.deepEqual(rec.msg.envelope.rcptTo, ['alice@corp.test', 'bob+lists@corp.test', 'anyone@open.test']);
  });

  it('LDAP down → 451 4.4.3 for uncached recipients, recovery after restart', async () => {
    await slapd.kill();
    try {
      const r = await deliver(a.mx, { from: 'x@sender.test', to: ['carol-uncached@corp.test'], body: BODY });
      assert.equal(r.code, 451);
      assert.match(r.text, /^451 4\.4\.3 /);
      // alice was cached by the previous test: the outage does not stop her mail
      const ok = await deliver(a.mx, { from: 'x@sender.test', to: ['alice@corp.test'], body: BODY });
      assert.equal(ok.code, 250, ok.text);
    } finally {
      await slapd.restart();
    }
    const r = await deliver(a.mx, { from: 'x@sender.test', to: ['bob@corp.test'], body: BODY });
    assert.equal(r.code, 250, r.text);
  });

  it('harvesting: the tarpit grows per unknown recipient, the IP budget drops the session on every replica', async () => {
    const c = await SmtpClient.connect(a.mx, '127.0.0.5');
    await c.expect(220);
    await c.cmd('EHLO harvester.test');
    assert.equal((await c.cmd('MAIL FROM:<h@harvester.test>')).code, 250);
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      const r = await c.cmd(`RCPT TO:<guess${i}@corp.test>`);
      times.push(Date.now() - t0);
      assert.equal(r.code, 550);
    }
    // at least 50, 100, 200, 400, 400 ms (the lookup adds to that; under load it can add a lot)
    [50, 100, 200, 400, 400].forEach((min, i) => assert.ok(times[i]! >= min - 10, `tarpit grows: ${times.join(',')}`));
    assert.equal((await c.cmd('RCPT TO:<guess5@corp.test>')).code, 550); // 6th: the budget is 6
    const drop = await c.cmd('RCPT TO:<guess6@corp.test>');
    assert.match(drop.text, /^421 4\.7\.0 Too many unknown recipients/);
    await c.closedPromise;
    // The budget is per IP across replicas: the next session, on the other replica, is dropped at its first miss.
    const d = await SmtpClient.connect(b.mx, '127.0.0.5');
    await d.expect(220);
    await d.cmd('EHLO harvester.test');
    await d.cmd('MAIL FROM:<h@harvester.test>');
    assert.equal((await d.cmd('RCPT TO:<alice@corp.test>')).code, 250, 'known recipients still work');
    assert.equal((await d.cmd('RCPT TO:<guess7@corp.test>')).code, 421);
    await d.closedPromise;
  });
});

describe('live lists', () => {
  const store = () => new ListStore(admin);

  it('an IP blocked on the shared store is refused at connect by the other replica within 5 s', async () => {
    const t0 = Date.now();
    await store().add({ kind: 'ip-block', value: '127.0.0.6', reason: 'attack ticket 42', createdBy: 'test' });
    // Positive signal: poll new connections on replica b until it answers 554.
    const text = await waitFor(
      async () => {
        const c = await SmtpClient.connect(b.mx, '127.0.0.6');
        const r = await c.reply();
        await c.close();
        return r.code === 554 ? r.text : undefined;
      },
      { timeoutMs: 5000, intervalMs: 50, message: 'block seen by replica b' },
    );
    assert.ok(Date.now() - t0 < 5000);
    assert.equal(text, '554 5.7.1 Client host [127.0.0.6] blocked by local policy: attack ticket 42');
    const other = await deliver(b.mx, { from: 'x@sender.test', to: ['alice@corp.test'], body: BODY });
    assert.equal(other.code, 250, 'other clients are not affected');
    assert.equal(await store().remove('ip-block', '127.0.0.6'), true);
    await waitFor(
      async () => {
        const c = await SmtpClient.connect(a.mx, '127.0.0.6');
        const r = await c.reply();
        await c.close();
        return r.code === 220;
      },
      { timeoutMs: 5000, intervalMs: 50, message: 'unblocked' },
    );
  });

  it('an entry with an expiry stops blocking when it expires', async () => {
    await store().add({ kind: 'ip-block', value: '127.0.0.7/32', reason: 'short', createdBy: 'test', ttlSeconds: 2 });
    await waitFor(
      async () => {
        const c = await SmtpClient.connect(a.mx, '127.0.0.7');
        const r = await c.reply();
        await c.close();
        return r.code === 554;
      },
      { timeoutMs: 5000, intervalMs: 50, message: 'blocked' },
    );
    const r = await waitFor(
      async () => {
        const c = await SmtpClient.connect(a.mx, '127.0.0.7');
        const g = await c.reply();
        await c.close();
        return g.code === 220 ? g : undefined;
      },
      { timeoutMs: 6000, intervalMs: 100, message: 'expired' },
    );
    assert.equal(r.code, 220);
  });

  it('an allow-listed IP is marked in the envelope (dnsbl-check skips it); others are not', async () => {
    await store().add({ kind: 'ip-allow', value: '127.0.0.8', reason: 'partner', createdBy: 'test' });
    const sent = async (ip: string) => {
      const r = await deliver(b.mx, { from: 'x@sender.test', to: ['alice@corp.test'], body: BODY, localAddress: ip });
      assert.equal(r.code, 250, r.text);
      return waitFor(() => reader.messages.get(queuedId(r)), { timeoutMs: 10_000 });
    };
    // Positive signal: send until replica b has seen the entry and marks the message.
    const rec = await waitFor(
      async () => ((await sent('127.0.0.8')).msg.envelope.session.ipAllowListed ? true : undefined),
      {
        timeoutMs: 5000,
        intervalMs: 100,
        message: 'allow entry seen by replica b',
      },
    );
    assert.equal(rec, true);
    assert.equal((await sent('127.0.0.1')).msg.envelope.session.ipAllowListed, undefined);
    assert.equal(await store().remove('ip-allow', '127.0.0.8'), true);
  });

  it('blocked senders (exact, *@domain, *@*.domain, seeded) get 550 5.7.1 at MAIL FROM; <> never', async () => {
    await store().add({ kind: 'sender-block', value: 'spammer@evil.test', createdBy: 'test' });
    await store().add({ kind: 'sender-block', value: '*@*.bulk.test', createdBy: 'test' });
    const mail = async (from: string) => {
      const c = await SmtpClient.connect(b.mx);
      await c.expect(220);
      await c.cmd('EHLO client.test');
      const r = await c.cmd(`MAIL FROM:<${from}>`);
      await c.close();
      return r.text;
    };
    await waitFor(async () => (await mail('spammer@evil.test')).startsWith('550'), {
      timeoutMs: 5000,
      intervalMs: 50,
    });
    assert.equal(await mail('Spammer@Evil.test'), '550 5.7.1 <Spammer@evil.test>: sender blocked by local policy');
    assert.match(await mail('other@evil.test'), /^250/);
    assert.match(await mail('news@mx.bulk.test'), /^550 5\.7\.1/);
    assert.match(await mail('news@bulk.test'), /^250/);
    assert.match(await mail('x@seeded-spam.test'), /^550 5\.7\.1/);
    assert.match(await mail(''), /^250/);
  });
});
