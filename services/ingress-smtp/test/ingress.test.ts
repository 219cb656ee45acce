import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MAIL_HEADERS } from '@mailgate/contracts';
import { hashPassword } from '../src/index.js';
import { sendMail, startKafka, startRedis, waitFor, type KafkaHandle, type RedisHandle } from '@mailgate/testkit';
import { SmtpClient, TopicReader, queuedId, sendOn } from './helpers.js';
import { ACCEPTED, startIngress, tlsFiles, type StartedIngress } from './setup.js';

/**
 * One real ingress (runtime service: config, DurableProducer into kafka-lite, Redis limits, health) exercised
 * over TCP with nodemailer and a raw line client. Source addresses on the loopback /8 play different clients:
 *   127.0.0.1 untrusted internet client   127.0.0.2 trusted network   127.0.0.3 trusted PROXY load balancer
 *   127.0.0.4 XCLIENT-trusted test tool
 */

let kafka: KafkaHandle;
let redis: RedisHandle;
let reader: TopicReader;
let gw: StartedIngress;
let tls: ReturnType<typeof tlsFiles>;
const MAX_BYTES = 64 * 1024;

before(async () => {
  [kafka, redis] = await Promise.all([startKafka({ port: 0 }), startRedis()]);
  tls = tlsFiles();
  gw = await startIngress({
    brokers: kafka.brokers,
    redisUrl: redis.url,
    ingress: {
      listeners: { submission: { enabled: true, host: '127.0.0.1', port: 0 } },
      tls: { certFile: tls.certFile, keyFile: tls.keyFile },
      acceptedDomains: ACCEPTED,
      trustedNetworks: ['127.0.0.2/32'],
      proxy: { trusted: ['127.0.0.3/32'] },
      xclient: { trusted: ['127.0.0.4/32'] },
      auth: { users: { 'alice@ours.test': await hashPassword('correct horse', { logN: 10 }) }, failures: { max: 3 } },
      limits: {
        maxMessageBytes: MAX_BYTES,
        maxRecipients: 3,
        maxConnectionsPerIp: 250,
        pregreetDelayMs: 0,
        maxUnknownCommands: 3,
        messageRate: { max: 10_000 },
      },
    },
  });
  reader = await TopicReader.start(kafka.brokers);
});

after(async () => {
  await gw?.running.stop();
  await reader?.stop();
  await Promise.all([kafka?.close(), redis?.stop()]);
  tls?.cleanup();
});

const record = (id: string) => waitFor(() => reader.messages.get(id), { timeoutMs: 10_000, message: `record ${id}` });

describe('durable accept', () => {
  it('inbound mail reaches the first topic byte-identical, with envelope, headers, trace and event', async () => {
    const raw =
      'From: Bob <bob@remote.test>\r\nTo: alice@ours.test\r\nSubject: hello\r\n\r\nline one\r\n.leading dot\r\n\r\nbye\r\n';
    const reply = await sendMail({
      host: '127.0.0.1',
      port: gw.mx,
      from: 'bob@remote.test',
      to: ['alice@ours.test', 'carol@ours.test'],
      raw,
      tls: false,
    });
    const m = /^250 2\.0\.0 Ok: queued as ([0-9A-Z]{26})$/.exec(reply);
    assert.ok(m, reply);
    const id = m[1]!;
    const { msg, headers } = await record(id);
    const env = msg.envelope;
    // The original bytes follow our prepended headers exactly.
    assert.ok(msg.raw.subarray(msg.raw.length - raw.length).equals(Buffer.from(raw)), 'byte-identical body');
    const added = msg.raw.subarray(0, msg.raw.length - raw.length).toString();
    assert.match(
      added,
      /^Received: from client\.test \(\[127\.0\.0\.1\]\)\r\n\tby gw\.test \(mailgate\) with ESMTP id /,
    );
    assert.ok(added.includes(`${MAIL_HEADERS.messageId}: ${id}\r\n`));
    assert.ok(added.includes(`${MAIL_HEADERS.traceId}: ${env.trace.traceId}\r\n`));
    assert.equal(env.id, id);
    assert.equal(env.mailFrom, 'bob@remote.test');
    assert.deepEqual(env.rcptTo, ['alice@ours.test', 'carol@ours.test']);
    assert.equal(env.direction, 'inbound');
    assert.equal(env.size, msg.raw.length);
    assert.equal(env.session.clientIp, '127.0.0.1');
    assert.equal(env.session.helo, 'client.test');
    assert.equal(env.session.listener, 'mx');
    assert.equal(env.session.trustedNetwork, false);
    assert.deepEqual(env.session.tls, { enabled: false });
    assert.match(env.trace.traceparent, new RegExp(`^00-${env.trace.traceId}-[0-9a-f]{16}-0[01]$`));
    assert.equal(headers['traceparent'], env.trace.traceparent);
    assert.equal(headers['mailgate-id'], id);
    const ev = await waitFor(() => reader.events.find((e) => e.messageId === id && e.type === 'received'));
    assert.equal(ev.clientIp, '127.0.0.1');
    assert.equal(ev.traceId, env.trace.traceId);
    assert.equal((ev.details as { size: number }).size, msg.raw.length);
    assert.equal(ev.details?.['subject'], 'hello', 'Subject for tracking search');
  });

  it('STARTTLS on the MX listener: TLS facts in envelope and Received', async () => {
    const reply = await sendMail({
      host: '127.0.0.1',
      port: gw.mx,
      from: '',
      to: 'alice@ours.test',
      text: 'tls\n',
      requireTLS: true,
    });
    const id = /queued as (\S+)/.exec(reply)![1]!;
    const { msg } = await record(id);
    assert.equal(msg.envelope.session.tls.enabled, true);
    assert.match(msg.envelope.session.tls.protocol ?? '', /^TLSv1\.[23]$/);
    assert.equal(msg.envelope.mailFrom, '');
    assert.match(msg.raw.toString('latin1', 0, 300), /with ESMTPS id .*\r\n\t\(using TLSv1\.[23] with cipher /);
  });

  it('forged X-Mailgate-* headers are removed', async () => {
    const raw = 'From: a@remote.test\r\nX-Mailgate-Virus-Scanned: clean\r\nSubject: x\r\n\r\nbody\r\n';
    const reply = await sendMail({
      host: '127.0.0.1',
      port: gw.mx,
      from: 'a@remote.test',
      to: 'alice@ours.test',
      raw,
      tls: false,
    });
    const { msg } = await record(/queued as (\S+)/.exec(reply)![1]!);
    assert.ok(!msg.raw.toString().includes('Virus-Scanned'));
    assert.ok(msg.raw.toString().endsWith('From: a@remote.test\r\nSubject: x\r\n\r\nbody\r\n'));
  });

  it('200 concurrent sessions are all queued with distinct ids', async () => {
    const replies = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        sendMail({
          host: '127.0.0.1',
          port: gw.mx,
          from: `s${i}@remote.test`,
          to: 'alice@ours.test',
          text: `n${i}\n`,
          tls: false,
          // 200 sessions at once on a loaded 2-core machine: the client's idle deadline is not what is tested here.
          timeoutMs: 60_000,
        }),
      ),
    );
    const ids = replies.map((r) => /queued as (\S+)/.exec(r)?.[1]);
    assert.equal(new Set(ids).size, 200);
    await waitFor(() => ids.every((id) => reader.messages.has(id!)), { timeoutMs: 60_000 });
  });
});

describe('relay control over SMTP', () => {
  it('an untrusted client cannot relay with any trick', async () => {
    const c = await SmtpClient.connect(gw.mx);
    await c.expect(220);
    await c.cmd('EHLO attacker.test');
    assert.equal((await c.cmd('MAIL FROM:<a@attacker.test>')).code, 250);
    const tricks = [
      '<victim@foreign.test>',
      '<victim%foreign.test@ours.test>',
      '<foreign.test!victim@ours.test>',
      '<@ours.test:victim@foreign.test>',
      '<victim@foreign.test@ours.test>',
      '<"victim@foreign.test"@ours.test>',
      '<victim@[192.0.2.1]>',
      '<victim@[127.0.0.1]>',
      '<victim@ours.test.>',
      '<victim@OURS.TEST.FOREIGN.TEST>',
      '<victim@ours.tеst>',
      '<foreign.test!victim>',
      'victim@foreign.test',
    ];
    for (const t of tricks) {
      const r = await c.cmd(`RCPT TO:${t}`);
      assert.ok(r.code >= 500 && r.code < 600, `${t} → ${r.text}`);
    }
    assert.match(
      (await c.cmd('RCPT TO:<victim@foreign.test>')).text,
      /^550 5\.7\.1 <victim@foreign\.test>: relaying denied$/,
    );
    // the session is still usable for real local mail, and case does not matter
    assert.equal((await c.cmd('RCPT TO:<Alice@OURS.TEST>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<bob@listed.test>')).code, 550);
    await c.close();
  });

  it('refusals during the session are tracked as `refused` events: one entry per transaction, with the replies', async () => {
    const c = await SmtpClient.connect(gw.mx);
    await c.expect(220);
    await c.cmd('EHLO relay-probe.test');
    assert.equal((await c.cmd('MAIL FROM:<spammer@probe.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<victim1@foreign.test>')).code, 550);
    assert.equal((await c.cmd('RCPT TO:<victim2@foreign.test>')).code, 550);
    assert.equal((await c.cmd('RCPT TO:<nobody@listed.test>')).code, 550);
    await c.close();
    const evs = await waitFor(
      () => {
        const r = reader.events.filter((e) => e.type === 'refused' && e.mailFrom === 'spammer@probe.test');
        return r.length === 3 ? r : null;
      },
      { timeoutMs: 10_000, message: 'three refused events' },
    );
    assert.equal(new Set(evs.map((e) => e.messageId)).size, 1, 'one tracking id per SMTP transaction');
    assert.deepEqual(
      evs.map((e) => [e.rcptTo, e.details?.['reason'], e.details?.['phase']]),
      [
        [['victim1@foreign.test'], 'relay-denied', 'rcpt'],
        [['victim2@foreign.test'], 'relay-denied', 'rcpt'],
        [['nobody@listed.test'], 'recipient-unknown', 'rcpt'],
      ],
    );
    assert.equal(evs[0]!.details?.['reply'], '550 5.7.1 <victim1@foreign.test>: relaying denied');
    assert.equal(evs[0]!.details?.['helo'], 'relay-probe.test');
    assert.equal(evs[0]!.clientIp, '127.0.0.1');
    assert.equal(evs[0]!.service, 'ingress-smtp');
    assert.match(evs[0]!.traceId ?? '', /^[0-9a-f]{32}$/);
  });

  it('a trusted network relays to foreign domains (outbound)', async () => {
    const c = await SmtpClient.connect(gw.mx, '127.0.0.2');
    await c.expect(220);
    const r = await sendOn(c, {
      from: 'app@ours.test',
      to: ['someone@foreign.test'],
      body: 'Subject: out\r\n\r\nx\r\n',
    });
    const { msg } = await record(queuedId(r));
    assert.equal(msg.envelope.direction, 'outbound');
    assert.equal(msg.envelope.session.trustedNetwork, true);
    assert.equal(msg.envelope.session.clientIp, '127.0.0.2');
    await c.close();
  });

  it('submission: AUTH only after STARTTLS, then relaying is allowed', async () => {
    const c = await SmtpClient.connect(gw.submission!);
    await c.expect(220);
    const ehlo = await c.cmd('EHLO laptop.test');
    assert.ok(!ehlo.lines.some((l) => l.startsWith('AUTH')), 'AUTH not offered before STARTTLS');
    assert.ok(ehlo.lines.includes('STARTTLS'));
    assert.match(
      (await c.cmd('AUTH PLAIN ' + Buffer.from('\0alice@ours.test\0correct horse').toString('base64'))).text,
      /^538 5\.7\.11/,
    );
    assert.match((await c.cmd('MAIL FROM:<alice@ours.test>')).text, /^530 /);
    assert.equal((await c.cmd('STARTTLS')).code, 220);
    await c.startTls();
    const ehlo2 = await c.cmd('EHLO laptop.test');
    assert.ok(
      ehlo2.lines.some((l) => /^AUTH PLAIN LOGIN/.test(l)),
      ehlo2.text,
    );
    assert.match((await c.cmd('MAIL FROM:<alice@ours.test>')).text, /^530 /);
    assert.match(
      (await c.cmd('AUTH PLAIN ' + Buffer.from('\0alice@ours.test\0wrong').toString('base64'))).text,
      /^535 5\.7\.8/,
    );
    assert.equal(
      (await c.cmd('AUTH PLAIN ' + Buffer.from('\0alice@ours.test\0correct horse').toString('base64'))).code,
      235,
    );
    const r = await sendOn(
      c,
      { from: 'alice@ours.test', to: ['friend@foreign.test'], body: 'Subject: hi\r\n\r\nx\r\n' },
      false,
    );
    const { msg } = await record(queuedId(r));
    assert.equal(msg.envelope.session.authUser, 'alice@ours.test');
    assert.equal(msg.envelope.session.listener, 'submission');
    assert.equal(msg.envelope.direction, 'outbound');
    await c.close();
  });

  it('nodemailer submission with AUTH works end to end; failed AUTH is rate limited per IP', async () => {
    const ok = await sendMail({
      host: '127.0.0.1',
      port: gw.submission!,
      from: 'alice@ours.test',
      to: 'x@foreign.test',
      text: 'hi\n',
      auth: { user: 'alice@ours.test', pass: 'correct horse' },
      requireTLS: true,
    });
    assert.match(ok, /^250 2\.0\.0 Ok: queued as /);
    const c = await SmtpClient.connect(gw.submission!, '127.0.0.9');
    await c.expect(220);
    await c.cmd('EHLO x.test');
    await c.cmd('STARTTLS');
    await c.startTls();
    await c.cmd('EHLO x.test');
    const bad = 'AUTH PLAIN ' + Buffer.from('\0alice@ours.test\0nope').toString('base64');
    for (let i = 0; i < 3; i++) assert.equal((await c.cmd(bad)).code, 535);
    const good = 'AUTH PLAIN ' + Buffer.from('\0alice@ours.test\0correct horse').toString('base64');
    assert.match((await c.cmd(good)).text, /^454 4\.7\.0 Too many failed/);
    await c.close();
  });
});

describe('limits', () => {
  it('SIZE is advertised and enforced (MAIL FROM SIZE= and actual DATA)', async () => {
    const c = await SmtpClient.connect(gw.mx);
    await c.expect(220);
    const ehlo = await c.cmd('EHLO c.test');
    assert.ok(ehlo.lines.includes(`SIZE ${MAX_BYTES}`), ehlo.text);
    assert.equal((await c.cmd(`MAIL FROM:<a@remote.test> SIZE=${MAX_BYTES + 1}`)).code, 552);
    const r = await sendOn(
      c,
      {
        from: 'a@remote.test',
        to: ['alice@ours.test'],
        body: 'x'.repeat(70) + '\r\n' + ('y'.repeat(998) + '\r\n').repeat(70),
      },
      false,
    );
    assert.match(r.text, /^552 5\.3\.4/);
    const tooBig = await waitFor(
      () => reader.events.find((e) => e.type === 'refused' && e.details?.['reason'] === 'size'),
      { timeoutMs: 10_000, message: 'refused event for the oversized message' },
    );
    assert.deepEqual(tooBig.rcptTo, ['alice@ours.test']);
    assert.equal(tooBig.details?.['phase'], 'data');
    // the session goes on
    const ok = await sendOn(c, { from: 'a@remote.test', to: ['alice@ours.test'], body: 'small\r\n' }, false);
    assert.equal(ok.code, 250);
    await c.close();
  });

  it('recipients beyond maxRecipients get 452', async () => {
    const c = await SmtpClient.connect(gw.mx);
    await c.expect(220);
    await c.cmd('EHLO c.test');
    await c.cmd('MAIL FROM:<a@remote.test>');
    for (const u of ['u1', 'u2', 'u3']) assert.equal((await c.cmd(`RCPT TO:<${u}@ours.test>`)).code, 250);
    assert.match((await c.cmd('RCPT TO:<u4@ours.test>')).text, /^452 /);
    await c.close();
  });

  it('an unknown-command flood is disconnected', async () => {
    const c = await SmtpClient.connect(gw.mx);
    await c.expect(220);
    assert.equal((await c.cmd('FOO')).code, 500);
    assert.equal((await c.cmd('BAR')).code, 500);
    assert.match((await c.cmd('BAZ')).text, /^421 4\.7\.0/);
    await c.closedPromise;
  });
});

describe('smuggling and line endings', () => {
  it('bare LF inside DATA is refused (the smuggled second message never exists)', async () => {
    const c = await SmtpClient.connect(gw.mx);
    await c.expect(220);
    await c.cmd('EHLO c.test');
    await c.cmd('MAIL FROM:<a@remote.test>');
    await c.cmd('RCPT TO:<alice@ours.test>');
    c.send('DATA');
    await c.expect(354);
    c.write(
      'Subject: one\r\n\r\nfirst\n.\nMAIL FROM:<x@remote.test>\nRCPT TO:<victim@foreign.test>\nDATA\nSubject: smuggled\n\nhi\r\n.\r\n',
    );
    assert.match((await c.reply()).text, /^554 5\.6\.0/);
    // bare CR too
    await c.cmd('MAIL FROM:<a@remote.test>');
    await c.cmd('RCPT TO:<alice@ours.test>');
    await c.cmd('DATA');
    c.write('Subject: cr\r\n\r\nfirst\r.\rsecond\r\n.\r\n');
    assert.match((await c.reply()).text, /^554 5\.6\.0/);
    await c.close();
  });

  it('a bare LF command line is refused with 521 and the connection closed', async () => {
    const c = await SmtpClient.connect(gw.mx);
    await c.expect(220);
    c.write('EHLO c.test\n');
    assert.match((await c.reply()).text, /^521 5\.5\.2/);
    await c.closedPromise;
  });

  it('commands pipelined after STARTTLS are discarded before the handshake', async () => {
    const c = await SmtpClient.connect(gw.mx);
    await c.expect(220);
    await c.cmd('EHLO c.test');
    c.write('STARTTLS\r\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<alice@ours.test>\r\n');
    assert.equal((await c.reply()).code, 220);
    await c.startTls();
    await c.cmd('EHLO c.test');
    // had the injected MAIL survived, this would be "503 nested MAIL" / RCPT would be accepted
    assert.match((await c.cmd('RCPT TO:<alice@ours.test>')).text, /^503 /);
    assert.equal((await c.cmd('MAIL FROM:<a@remote.test>')).code, 250);
    await c.close();
  });
});

describe('client identity', () => {
  it('PROXY v1 from a trusted proxy sets the client IP', async () => {
    const c = await SmtpClient.connect(gw.mx, '127.0.0.3');
    c.write('PROXY TCP4 198.51.100.7 127.0.0.1 40000 25\r\n');
    await c.expect(220);
    const r = await sendOn(c, { from: 'a@remote.test', to: ['alice@ours.test'], body: 'Subject: p\r\n\r\nx\r\n' });
    const { msg } = await record(queuedId(r));
    assert.equal(msg.envelope.session.clientIp, '198.51.100.7');
    assert.match(msg.raw.toString('latin1', 0, 200), /\[198\.51\.100\.7\]/);
    await c.close();
  });

  it('a trusted proxy that does not send the header is dropped', async () => {
    const c = await SmtpClient.connect(gw.mx, '127.0.0.3');
    c.write('EHLO x.test\r\n');
    const r = await c.reply(3000).catch(() => null);
    assert.ok(!r || r.text.startsWith('* BAD'), r?.text);
    await c.closedPromise;
  });

  it('PROXY from an untrusted address is refused and changes nothing', async () => {
    const c = await SmtpClient.connect(gw.mx);
    await c.expect(220);
    assert.match((await c.cmd('PROXY TCP4 10.9.9.9 127.0.0.1 1 25')).text, /^554 5\.7\.1/);
    await c.closedPromise;
  });

  it('XCLIENT from a trusted tool sets the client IP; from others it is refused', async () => {
    const t = await SmtpClient.connect(gw.mx, '127.0.0.4');
    await t.expect(220);
    const e = await t.cmd('EHLO tool.test');
    assert.ok(e.lines.some((l) => l.startsWith('XCLIENT')));
    assert.equal((await t.cmd('XCLIENT ADDR=203.0.113.9 NAME=mx.sender.test')).code, 220);
    const r = await sendOn(t, { from: 'a@sender.test', to: ['alice@ours.test'], body: 'Subject: xc\r\n\r\nx\r\n' });
    const { msg } = await record(queuedId(r));
    assert.equal(msg.envelope.session.clientIp, '203.0.113.9');
    await t.close();

    const u = await SmtpClient.connect(gw.mx);
    await u.expect(220);
    const e2 = await u.cmd('EHLO x.test');
    assert.ok(!e2.lines.some((l) => l.startsWith('XCLIENT')));
    assert.equal((await u.cmd('XCLIENT ADDR=127.0.0.2')).code, 550);
    // and it did not become trusted
    await u.cmd('MAIL FROM:<a@x.test>');
    assert.equal((await u.cmd('RCPT TO:<v@foreign.test>')).code, 550);
    await u.close();
  });
});

describe('health', () => {
  it('readiness is up with the producer connected', async () => {
    const res = await fetch(`http://127.0.0.1:${gw.http}/readyz`);
    const body = (await res.json()) as { checks: Record<string, boolean> };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.checks['kafka'], true);
    assert.equal(body.checks['redis'], true);
  });
});
