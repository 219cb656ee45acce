import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startKafka, startRedis, waitFor, type KafkaHandle, type RedisHandle } from '@mailgate/testkit';
import { hashPassword } from '../src/index.js';
import { NulGuard } from '../src/nul-bytes.js';
import { REPLIES } from '../src/replies.js';
import { SmtpClient, TopicReader, queuedId, sendOn } from './helpers.js';
import { ACCEPTED, startIngress, tlsFiles, type StartedIngress } from './setup.js';

/**
 * Protocol edges a hostile client probes, over a raw socket: over-long command lines (RFC 5321 §4.5.3.1.4,
 * RFC 4954 §4 for AUTH) and NUL octets in DATA. `gw` runs the defaults; `strip` runs `nulBytes: strip`.
 */

let kafka: KafkaHandle;
let redis: RedisHandle;
let reader: TopicReader;
let gw: StartedIngress;
let strip: StartedIngress;
let tls: ReturnType<typeof tlsFiles>;

before(async () => {
  [kafka, redis] = await Promise.all([startKafka({ port: 0 }), startRedis()]);
  tls = tlsFiles();
  const base = {
    acceptedDomains: ACCEPTED,
    limits: { pregreetDelayMs: 0, messageRate: { max: 0 } },
  };
  gw = await startIngress({
    brokers: kafka.brokers,
    redisUrl: redis.url,
    ingress: {
      ...base,
      listeners: { submission: { enabled: true, host: '127.0.0.1', port: 0 } },
      tls: { certFile: tls.certFile, keyFile: tls.keyFile },
      auth: { users: { 'alice@ours.test': await hashPassword('correct horse', { logN: 10 }) }, failures: { max: 0 } },
    },
  });
  strip = await startIngress({
    brokers: kafka.brokers,
    redisUrl: redis.url,
    ingress: { ...base, nulBytes: 'strip', auth: { failures: { max: 0 } } },
  });
  reader = await TopicReader.start(kafka.brokers);
});

after(async () => {
  await Promise.all([gw?.running.stop(), strip?.running.stop()]);
  await reader?.stop();
  await Promise.all([kafka?.close(), redis?.stop()]);
  tls?.cleanup();
});

const record = (id: string) => waitFor(() => reader.messages.get(id), { timeoutMs: 10_000, message: `record ${id}` });

/** A command line of exactly `octets` octets including its CRLF. */
const lineOf = (verb: string, octets: number): string => verb + ' ' + 'x'.repeat(octets - verb.length - 3);

describe('command line length', () => {
  it('a 1,100-octet NOOP is answered 500 5.5.2 Line too long and the session stays usable', async () => {
    const c = await SmtpClient.connect(gw.mx);
    await c.expect(220);
    assert.equal((await c.cmd('EHLO c.test')).code, 250);
    const r = await c.cmd(lineOf('NOOP', 1100));
    assert.equal(r.text, `${REPLIES.lineTooLong.code} ${REPLIES.lineTooLong.enhanced} ${REPLIES.lineTooLong.text}`);
    assert.equal(r.text, '500 5.5.2 Line too long');
    // Still usable: a whole transaction goes through on the same connection.
    assert.equal((await c.cmd('NOOP')).code, 250);
    const ok = await sendOn(
      c,
      { from: 'a@remote.test', to: ['alice@ours.test'], body: 'Subject: after\r\n\r\nx\r\n' },
      false,
    );
    await record(queuedId(ok));
    await c.close();
  });

  it('512 octets (CRLF included) is accepted, 513 is not; the limit holds across TCP segments', async () => {
    const c = await SmtpClient.connect(gw.mx);
    await c.expect(220);
    assert.equal((await c.cmd(lineOf('NOOP', 512))).code, 250);
    assert.match((await c.cmd(lineOf('NOOP', 513))).text, /^500 5\.5\.2 /);
    // The same over-long line dribbled in small writes.
    const long = Buffer.from(lineOf('NOOP', 900) + '\r\n');
    for (let i = 0; i < long.length; i += 100) c.write(long.subarray(i, i + 100));
    assert.match((await c.reply()).text, /^500 5\.5\.2 /);
    assert.equal((await c.cmd('NOOP')).code, 250);
    await c.close();
  });

  it('an over-long MAIL FROM is refused without starting a transaction', async () => {
    const c = await SmtpClient.connect(gw.mx);
    await c.expect(220);
    await c.cmd('EHLO c.test');
    const addr = 'a'.repeat(600) + '@remote.test';
    assert.match((await c.cmd(`MAIL FROM:<${addr}>`)).text, /^500 5\.5\.2 /);
    assert.match((await c.cmd('RCPT TO:<alice@ours.test>')).text, /^503 /);
    const ok = await sendOn(
      c,
      { from: 'a@remote.test', to: ['alice@ours.test'], body: 'Subject: y\r\n\r\ny\r\n' },
      false,
    );
    assert.equal(ok.code, 250);
    await c.close();
  });

  it('AUTH lines may be up to 12288 octets; a longer SASL response is 500 5.5.6 and cancels the exchange', async () => {
    const c = await SmtpClient.connect(gw.submission!);
    await c.expect(220);
    await c.cmd('EHLO laptop.test');
    assert.equal((await c.cmd('STARTTLS')).code, 220);
    await c.startTls();
    await c.cmd('EHLO laptop.test');
    // A 4 KiB initial response is a credential check (wrong password), not a line-length refusal.
    const big = Buffer.from('\0alice@ours.test\0' + 'p'.repeat(3000)).toString('base64');
    assert.ok(big.length > 512);
    assert.match((await c.cmd(`AUTH PLAIN ${big}`)).text, /^535 5\.7\.8/);
    // A continuation response over the AUTH limit.
    assert.equal((await c.cmd('AUTH PLAIN')).code, 334);
    assert.equal((await c.cmd('A'.repeat(13_000))).text, '500 5.5.6 Authentication Exchange line is too long');
    // The exchange is over: the next line is a command again, and a proper AUTH works.
    assert.equal((await c.cmd('NOOP')).code, 250);
    assert.equal(
      (await c.cmd('AUTH PLAIN ' + Buffer.from('\0alice@ours.test\0correct horse').toString('base64'))).code,
      235,
    );
    // After AUTH, ordinary commands have the ordinary limit again.
    assert.match((await c.cmd(lineOf('NOOP', 1100))).text, /^500 5\.5\.2 /);
    await c.close();
  });
});

describe('NUL in DATA', () => {
  const withNul = (subject: string) => Buffer.from(`Subject: ${subject}\r\n\r\nbefore\0after\r\n`, 'latin1');

  it('a message with a NUL octet is refused 554 5.6.0 and never reaches the topic', async () => {
    const c = await SmtpClient.connect(gw.mx);
    await c.expect(220);
    await c.cmd('EHLO c.test');
    const subject = `nul-${Date.now()}`;
    const r = await sendOn(c, { from: 'a@remote.test', to: ['alice@ours.test'], body: withNul(subject) }, false);
    assert.equal(r.text, '554 5.6.0 Message contains NUL characters; refused');
    // Same session, next message: clean, queued. The topic has one partition and ingress produces in order, so
    // once this later record is read, the refused one would have been read too if it had been produced.
    const ok = await sendOn(
      c,
      { from: 'a@remote.test', to: ['alice@ours.test'], body: `Subject: ${subject}-ok\r\n\r\nok\r\n` },
      false,
    );
    await record(queuedId(ok));
    const subjects = [...reader.messages.values()].map((m) => m.msg.raw.toString('latin1'));
    assert.equal(subjects.filter((s) => s.includes(`Subject: ${subject}\r\n`)).length, 0);
    assert.ok(subjects.every((s) => !s.includes('\0')));
    await c.close();
  });

  it('nulBytes: strip removes the NULs and queues the message', async () => {
    const c = await SmtpClient.connect(strip.mx);
    await c.expect(220);
    await c.cmd('EHLO c.test');
    const r = await sendOn(c, { from: 'a@remote.test', to: ['alice@ours.test'], body: withNul('stripped') }, false);
    const { msg } = await record(queuedId(r));
    const raw = msg.raw.toString('latin1');
    assert.ok(!raw.includes('\0'));
    assert.ok(raw.endsWith('Subject: stripped\r\n\r\nbeforeafter\r\n'), raw);
    await c.close();
  });
});

describe('NulGuard', () => {
  it('strip removes every NUL across chunks; reject only counts', () => {
    const chunks = [Buffer.from('\0a\0\0b'), Buffer.from('c\0'), Buffer.from('d')];
    const strip = new NulGuard('strip');
    assert.equal(Buffer.concat(chunks.map((c) => strip.feed(c))).toString(), 'abcd');
    assert.equal(strip.count, 4);
    assert.equal(strip.refuse, false);
    const reject = new NulGuard('reject');
    const kept = Buffer.concat(chunks.map((c) => reject.feed(c)));
    assert.equal(kept.length, 8);
    assert.equal(reject.count, 4);
    assert.equal(reject.refuse, true);
    const clean = new NulGuard('reject');
    const buf = Buffer.from('no nul here');
    assert.equal(clean.feed(buf), buf, 'a clean chunk is passed through without a copy');
    assert.equal(clean.refuse, false);
  });
});
