import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  startKafka,
  startKafkaProcess,
  startRbldnsd,
  startRedis,
  waitFor,
  type KafkaHandle,
  type KafkaProcessHandle,
  type RbldnsdHandle,
  type RedisHandle,
} from '@mailgate/testkit';
import type { ConnectFilter } from '../src/index.js';
import { SmtpClient, TopicReader, queuedId, sendOn } from './helpers.js';
import { ACCEPTED, startIngress, type StartedIngress } from './setup.js';

describe('broker down, recovery and drain', () => {
  let kafka: KafkaProcessHandle;
  let dataDir: string;
  let gw: StartedIngress;
  let reader: TopicReader | undefined;
  let stopped = false;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'ingress-kafka-'));
    kafka = await startKafkaProcess({ dataDir });
    gw = await startIngress({
      brokers: kafka.brokers,
      redisUrl: 'redis://127.0.0.1:1',
      // kafkajs keeps a request to the killed broker pending until its request timeout: keep that short here.
      kafka: { requestTimeoutMs: 3000 },
      ingress: {
        acceptedDomains: ACCEPTED,
        acceptTimeoutMs: 1500,
        limits: { pregreetDelayMs: 0, messageRate: { max: 0 } },
        auth: { failures: { max: 0 } },
      },
    });
  });

  after(async () => {
    if (!stopped) await gw?.running.stop();
    await reader?.stop();
    await kafka?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const mail = async (subject: string) => {
    const c = await SmtpClient.connect(gw.mx);
    await c.expect(220);
    const r = await sendOn(c, {
      from: 'a@remote.test',
      to: ['alice@ours.test'],
      body: `Subject: ${subject}\r\n\r\n${subject}\r\n`,
    });
    await c.close();
    return r;
  };

  it('answers 451 4.3.0 while the broker is down, readiness goes off, and recovers without half-written records', async () => {
    const first = queuedId(await mail('first'));
    await kafka.kill();
    const down = await mail('during-outage');
    assert.match(down.text, /^451 4\.3\.0 /);
    const ready = await fetch(`http://127.0.0.1:${gw.http}/readyz`);
    assert.equal(ready.status, 503);
    await kafka.restart();
    // kafkajs reconnects on its own; the sender's retry then succeeds
    const third = await waitFor(
      async () => {
        const r = await mail('after-restart');
        return r.code === 250 ? queuedId(r) : null;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    reader = await TopicReader.start(kafka.brokers);
    await waitFor(() => reader!.messages.has(first) && reader!.messages.has(third), { timeoutMs: 15_000 });
    assert.deepEqual(reader.undecodable, []);
    for (const { msg } of reader.messages.values()) {
      const subject = /Subject: (\S+)/.exec(msg.raw.toString())![1]!;
      assert.ok(msg.raw.toString().endsWith(`\r\n\r\n${subject}\r\n`), 'every record is a complete message');
    }
    await waitFor(async () => (await fetch(`http://127.0.0.1:${gw.http}/readyz`)).status === 200, {
      timeoutMs: 10_000,
    });
  });

  it('drain: a session in DATA finishes with 250, idle sessions get 421, new connections are refused', async () => {
    const busy = await SmtpClient.connect(gw.mx);
    await busy.expect(220);
    await busy.cmd('EHLO busy.test');
    await busy.cmd('MAIL FROM:<a@remote.test>');
    await busy.cmd('RCPT TO:<alice@ours.test>');
    assert.equal((await busy.cmd('DATA')).code, 354);
    busy.write('Subject: drain\r\n\r\nhalf');
    const idle = await SmtpClient.connect(gw.mx);
    await idle.expect(220);
    await idle.cmd('EHLO idle.test');

    const stopping = gw.running.stop();
    stopped = true;
    assert.match((await idle.reply()).text, /^421 /);
    await idle.closedPromise;
    await assert.rejects(SmtpClient.connect(gw.mx));
    busy.write(' and the rest\r\n.\r\n');
    const r = await busy.reply(10_000);
    const id = queuedId(r);
    await stopping;
    await waitFor(() => reader!.messages.get(id), { timeoutMs: 10_000 });
    await busy.close();
  });
});

describe('two instances sharing Redis; normalize mode; connection hygiene; DNSBL seam', () => {
  let kafka: KafkaHandle;
  let redis: RedisHandle;
  let reader: TopicReader;
  let b: StartedIngress;
  let c: StartedIngress;
  const filter: ConnectFilter = {
    // A trivial in-process filter: the seam, not a mock of DNS (packages/dnsbl provides the real one).
    check: async (ip) =>
      ip === '127.0.0.6'
        ? { action: 'reject', zone: 'bl.test', text: 'listed for testing', score: 1 }
        : { action: 'pass', score: 0 },
    close: async () => undefined,
  };

  before(async () => {
    [kafka, redis] = await Promise.all([startKafka({ port: 0 }), startRedis()]);
    const common = {
      acceptedDomains: ACCEPTED,
      lineEndings: 'normalize',
      limits: { messageRate: { max: 3, windowSeconds: 600 }, pregreetDelayMs: 300, maxConnectionsPerIp: 2 },
    };
    const keyPrefix = `ingress-rate-${process.pid}:`;
    [b, c] = await Promise.all([
      startIngress({ brokers: kafka.brokers, redisUrl: redis.url, keyPrefix, connectFilter: filter, ingress: common }),
      startIngress({
        brokers: kafka.brokers,
        redisUrl: redis.url,
        keyPrefix,
        connectFilter: {
          ...filter,
          exceptions: ['postmaster@'],
          isException: (r) => r.toLowerCase().startsWith('postmaster@'),
        },
        ingress: common,
      }),
    ]);
    reader = await TopicReader.start(kafka.brokers);
  });

  after(async () => {
    await Promise.all([b?.running.stop(), c?.running.stop()]);
    await reader?.stop();
    await Promise.all([kafka?.close(), redis?.stop()]);
  });

  const mail = async (port: number, localAddress: string, body = 'Subject: r\r\n\r\nx\r\n') => {
    const s = await SmtpClient.connect(port, localAddress);
    await s.expect(220);
    const r = await sendOn(s, { from: 'a@remote.test', to: ['alice@ours.test'], body });
    await s.close();
    return r;
  };

  it('the per-IP message rate holds across two instances', async () => {
    const codes = [];
    for (const port of [b.mx, c.mx, b.mx, c.mx, b.mx]) codes.push((await mail(port, '127.0.0.5')).text.slice(0, 9));
    assert.deepEqual(codes, ['250 2.0.0', '250 2.0.0', '250 2.0.0', '450 4.7.1', '450 4.7.1']);
    // another client is not affected
    assert.equal((await mail(c.mx, '127.0.0.7')).code, 250);
  });

  it('normalize mode turns bare LF / CR into CRLF instead of refusing', async () => {
    const r = await mail(b.mx, '127.0.0.10', 'Subject: n\r\n\r\nline1\nline2\rline3\r\n');
    const { msg } = await waitFor(() => reader.messages.get(queuedId(r)));
    assert.ok(msg.raw.toString().endsWith('Subject: n\r\n\r\nline1\r\nline2\r\nline3\r\n'));
    assert.equal(/[^\r]\n|\r[^\n]/.test(msg.raw.toString()), false);
  });

  it('an early talker (before the greeting) is refused', async () => {
    const s = await SmtpClient.connect(b.mx, '127.0.0.11');
    s.write('EHLO eager.test\r\n');
    assert.match((await s.reply()).text, /^421 /);
    await s.closedPromise;
  });

  it('a DNSBL-listed client is refused at connect with 554 naming the list', async () => {
    const s = await SmtpClient.connect(b.mx, '127.0.0.6');
    const r = await s.reply();
    assert.equal(r.text, '554 5.7.1 Service unavailable; client [127.0.0.6] blocked using bl.test: listed for testing');
    await s.closedPromise;
  });

  it('with exceptions configured, a listed client may only reach the exception recipients', async () => {
    const s = await SmtpClient.connect(c.mx, '127.0.0.6');
    await s.expect(220);
    await s.cmd('EHLO listed.test');
    await s.cmd('MAIL FROM:<a@listed.test>');
    assert.match((await s.cmd('RCPT TO:<alice@ours.test>')).text, /^554 5\.7\.1 .*bl\.test/);
    assert.equal((await s.cmd('RCPT TO:<Postmaster@ours.test>')).code, 250);
    await s.close();
  });

  it('connections per client IP are limited', async () => {
    const one = await SmtpClient.connect(c.mx, '127.0.0.8');
    const two = await SmtpClient.connect(c.mx, '127.0.0.8');
    await Promise.all([one.expect(220), two.expect(220)]);
    const three = await SmtpClient.connect(c.mx, '127.0.0.8');
    assert.match((await three.reply()).text, /^421 4\.7\.0 Too many connections/);
    await Promise.all([one.close(), two.close(), three.close()]);
  });
});

describe('connect-time DNSBL through packages/dnsbl and a real rbldnsd', () => {
  let kafka: KafkaHandle;
  let rbl: RbldnsdHandle;
  let gw: StartedIngress;

  before(async () => {
    [kafka, rbl] = await Promise.all([
      startKafka({ port: 0 }),
      // 127.0.0.2 is the RFC 5782 test point (the zone's health check needs it listed); 127.0.0.12 is "a spammer".
      startRbldnsd([
        { name: 'bl.test', type: 'ip4set', lines: [':127.0.0.2:listed at bl.test', '127.0.0.2', '127.0.0.12'] },
      ]),
    ]);
    gw = await startIngress({
      brokers: kafka.brokers,
      redisUrl: 'redis://127.0.0.1:1',
      connectFilter: 'dnsbl',
      dnsbl: {
        resolvers: [rbl.server],
        zones: [{ name: 'bl.test' }],
        skipNetworks: [],
        atConnect: { exceptions: [] },
        cache: { enabled: false },
      },
      ingress: {
        acceptedDomains: ACCEPTED,
        limits: { pregreetDelayMs: 0, messageRate: { max: 0 } },
        auth: { failures: { max: 0 } },
      },
    });
  });

  after(async () => {
    await gw?.running.stop();
    await Promise.all([kafka?.close(), rbl?.stop()]);
  });

  it('a listed client gets 554 5.7.1 naming the list at connect; others are served', async () => {
    const bad = await SmtpClient.connect(gw.mx, '127.0.0.12');
    assert.match((await bad.reply()).text, /^554 5\.7\.1 .*\[127\.0\.0\.12\].*bl\.test/);
    await bad.closedPromise;
    const good = await SmtpClient.connect(gw.mx, '127.0.0.13');
    await good.expect(220);
    await good.close();
  });
});
