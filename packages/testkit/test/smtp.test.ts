import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { rawSmtp, sendMail, startSmtpSink, testTlsCert } from '../src/index.js';

const RAW =
  'From: Alice <alice@sender.test>\r\nTo: bob@x.test\r\nSubject: byte for byte\r\nMessage-ID: <1@sender.test>\r\n' +
  'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n' +
  'Grüße\r\n.leading dot line\r\n..two dots\r\nlast line\r\n';

const errCode = async (p: Promise<unknown>): Promise<number | string> => {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return (err as { responseCode?: number; code?: string }).responseCode ?? (err as { code: string }).code;
  }
};

test('sink records a nodemailer message byte-for-byte', async (t) => {
  const sink = await startSmtpSink();
  t.after(() => sink.stop());
  const response = await sendMail({
    host: sink.host,
    port: sink.port,
    from: 'alice@sender.test',
    to: ['bob@x.test', 'carol@x.test'],
    raw: RAW,
  });
  assert.match(response, /^250 /);
  const [m] = await sink.waitFor(1);
  assert.ok(m);
  assert.equal(m.mailFrom, 'alice@sender.test');
  assert.deepEqual(m.rcptTo, ['bob@x.test', 'carol@x.test']);
  assert.equal(m.data.toString('utf8'), RAW);
  assert.deepEqual(m.data, Buffer.from(RAW, 'utf8'));
  assert.equal(m.secure, false);
  assert.equal(m.remoteAddress, '127.0.0.1');
  assert.equal(m.heloName, 'client.test');
  assert.ok(m.receivedAt instanceof Date);
  assert.equal(sink.connections, 1);

  // generated message (subject/text) + waitFor(predicate)
  await sendMail({
    host: sink.host,
    port: sink.port,
    from: 'a@s.test',
    to: 'dave@x.test',
    subject: 'hello',
    text: 'body',
  });
  const m2 = await sink.waitFor((x) => x.rcptTo.includes('dave@x.test'));
  assert.match(m2.data.toString(), /^Subject: hello\r$/m);
  sink.clear();
  assert.equal(sink.messages.length, 0);
  assert.equal(sink.connections, 0);
});

test('configured 4xx/5xx replies at connect, MAIL, RCPT and DATA', async (t) => {
  const sink = await startSmtpSink();
  t.after(() => sink.stop());
  const base = { host: sink.host, port: sink.port, from: 'a@s.test' };

  sink.setReply({ rcpt: 'bob@x.test', stage: 'rcpt', code: 450, message: 'try later' });
  // one good recipient: nodemailer delivers to it, reports bob as rejected
  const res = await sendMail({ ...base, to: ['bob@x.test', 'ok@x.test'] });
  assert.match(res, /^250 /);
  assert.deepEqual(sink.messages[0]?.rcptTo, ['ok@x.test']);
  assert.equal(await errCode(sendMail({ ...base, to: 'bob@x.test' })), 450);
  assert.deepEqual(
    sink.rejections.map((r) => [r.stage, r.code, r.message, r.rcpt]),
    [
      ['rcpt', 450, 'try later', 'bob@x.test'],
      ['rcpt', 450, 'try later', 'bob@x.test'],
    ],
  );
  sink.clearReplies();

  sink.setReply({ stage: 'data', code: 451 });
  assert.equal(await errCode(sendMail({ ...base, to: 'x@x.test' })), 451);
  sink.clearReplies();
  sink.setReply({ stage: 'data', code: 554, message: 'content rejected', rcpt: 'z@x.test', times: 1 });
  assert.equal(await errCode(sendMail({ ...base, to: ['y@x.test', 'z@x.test'] })), 554);
  assert.match(await sendMail({ ...base, to: 'z@x.test' }), /^250 /); // times: 1 used up
  sink.setReply({ stage: 'mail', code: 550, mailFrom: 'spam@s.test' });
  assert.equal(await errCode(sendMail({ ...base, from: 'spam@s.test', to: 'x@x.test' })), 550);
  sink.clearReplies();

  sink.setReply({ stage: 'connect', code: 421, message: 'too busy' });
  const c = await rawSmtp(sink.host, sink.port);
  const greet = await c.expect(421);
  assert.match(greet.raw, /too busy/);
  await c.closed;
});

test('STARTTLS with the generated certificate, AUTH required', async (t) => {
  const cert = testTlsCert();
  assert.match(cert.cert, /BEGIN CERTIFICATE/);
  assert.match(cert.key, /PRIVATE KEY/);
  const sink = await startSmtpSink({ tls: true, authRequired: true, users: { u1: 'p1' } });
  t.after(() => sink.stop());
  const base = { host: sink.host, port: sink.port, from: 'a@s.test', to: 'b@x.test' };
  assert.equal(await errCode(sendMail(base)), 530); // no AUTH
  assert.equal(await errCode(sendMail({ ...base, auth: { user: 'u1', pass: 'bad' } })), 535);
  await sendMail({
    ...base,
    auth: { user: 'u1', pass: 'p1' },
    requireTLS: true,
    tls: { ca: cert.cert, servername: 'localhost' },
  });
  const [m] = await sink.waitFor(1);
  assert.equal(m?.secure, true);
  assert.equal(m?.user, 'u1');
});

test('pause() refuses connections, resume() accepts again; other loopback address; banner', async (t) => {
  const sink = await startSmtpSink({ host: '127.0.0.12', banner: 'mx1 test sink' });
  t.after(() => sink.stop());
  const c = await rawSmtp(sink.host, sink.port);
  assert.match((await c.expect(220)).raw, /mx1 test sink/);
  await c.close();
  await sink.pause();
  await assert.rejects(
    sendMail({ host: sink.host, port: sink.port, from: 'a@s.test', to: 'b@x.test' }),
    /ECONNREFUSED/,
  );
  await assert.rejects(rawSmtp(sink.host, sink.port), /ECONNREFUSED/);
  await sink.resume();
  await sendMail({ host: sink.host, port: sink.port, from: 'a@s.test', to: 'b@x.test' });
  const [m] = await sink.waitFor(1);
  assert.equal(m?.localAddress, '127.0.0.12');
  assert.equal(sink.connections, 2);
});

test('rawSmtp: EHLO extensions, pipelining, SMTPUTF8, null sender, malformed input', async (t) => {
  const sink = await startSmtpSink();
  t.after(() => sink.stop());
  const c = await rawSmtp(sink.host, sink.port);
  t.after(() => c.close());
  await c.expect(220);
  c.send('EHLO raw.test');
  const ehlo = await c.expect(250);
  for (const ext of ['PIPELINING', '8BITMIME', 'SMTPUTF8'])
    assert.ok(ehlo.lines.includes(ext), `${ext} in ${ehlo.raw}`);
  assert.ok(!ehlo.lines.some((l) => l.startsWith('SIZE')), 'no SIZE');
  assert.ok(!ehlo.lines.includes('STARTTLS'));
  c.write('MAIL FROM:<> SMTPUTF8 BODY=8BITMIME\r\nRCPT TO:<üser@x.test>\r\nDATA\r\n');
  await c.expect(250);
  await c.expect(250);
  await c.expect(354);
  c.write('Subject: x\r\n\r\n..dot\r\n.\r\n');
  await c.expect(250);
  const [m] = await sink.waitFor(1);
  assert.equal(m?.mailFrom, '');
  assert.deepEqual(m?.rcptTo, ['üser@x.test']);
  assert.equal(m?.data.toString(), 'Subject: x\r\n\r\n.dot\r\n');
  c.send('BOGUS');
  await c.expect(5);
  c.send('QUIT');
  await c.expect(221);
  await c.closed;
});

test('sink.stop() drops open sessions and is idempotent', async () => {
  const sink = await startSmtpSink();
  const c = await rawSmtp(sink.host, sink.port);
  await c.expect(220);
  assert.equal(sink.activeConnections, 1);
  await sink.stop();
  await sink.stop();
  await c.closed;
  await assert.rejects(
    new Promise((resolve, reject) => net.connect(sink.port, sink.host).on('connect', resolve).on('error', reject)),
    /ECONNREFUSED/,
  );
});

test('two sinks share one port on different loopback addresses', async (t) => {
  const a = await startSmtpSink({ host: '127.0.0.12' });
  t.after(() => a.stop());
  const b = await startSmtpSink({ host: '127.0.0.13', port: a.port });
  t.after(() => b.stop());
  await sendMail({ host: '127.0.0.13', port: a.port, from: 'a@s.test', to: 'x@remote.test' });
  await b.waitFor(1);
  assert.equal(a.messages.length, 0);
});
