// End-to-end scenarios through the whole gateway: ingress-smtp → dnsbl-check → virus-scan → attachment-policy →
// delivery, each its own process, with kafka-lite, Redis, clamd, rbldnsd and SMTP sinks on loopback (test/harness).
// Each scenario checks what reached a sink (bytes) and what the admin API's tracking timeline says.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { dkimpySign, dkimpyVerify, EICAR, GTUBE, type Sink } from '@mailgate/testkit';
import {
  bodyOf,
  bounceWithDsn,
  buildMessage,
  byId,
  deferThenDeliver,
  eventually,
  header,
  headers,
  mailgateId,
  quarantineList,
  rawSession,
  send,
  sendEicarUntilQuarantined,
  sendExpectingFailure,
  timeline,
  uniq,
  type MessageView,
} from '../harness/mail.js';
import {
  ACCEPTED_DOMAIN,
  AUTHSERV_ID,
  DKIM_KEYS,
  INTERNET_CLIENT,
  LISTED_CLIENT,
  MX1,
  REMOTE_DOMAIN,
  startStack,
  TRUSTED_CLIENT,
  type Stack,
} from '../harness/stack.js';

const STAGES = ['dnsbl-check', 'virus-scan', 'attachment-policy', 'spam-check'] as const;
/** A fake Windows executable: file-type detects `exe` from the MZ magic. */
const EXE = Buffer.concat([Buffer.from('MZ'), Buffer.alloc(510, 0x90)]);

let stack: Stack;

before(async () => {
  stack = await startStack({
    config: {
      // The internal mail server (TRUSTED_CLIENT) is also a relay in front of the gateway: mail it relays is
      // judged by the address it received it from (deep header inspection).
      dnsbl: { receivedHeaders: { enabled: true, trustedRelays: [`${TRUSTED_CLIENT}/32`] } },
      attachmentPolicy: {
        // The built-in policy plus one operator rule: executables are stripped (the message still goes through).
        rules: [
          { name: 'type-mismatch', match: { mismatch: true }, action: 'reject' },
          { name: 'double-extension', match: { doubleExtension: true }, action: 'reject' },
          { name: 'strip-executables', match: { trueType: ['exe'] }, action: 'strip' },
          { name: 'text', match: { trueType: ['text'], extension: ['txt', 'csv'] }, action: 'allow' },
          { name: 'documents', match: { trueType: ['pdf'] }, action: 'allow' },
        ],
      },
    },
  });
});

after(async () => {
  if (process.env['MAILGATE_E2E_LOGDIR']) console.log(`logs: ${await stack?.dumpLogs()}`);
  await stack?.stop();
});

const allSinks = (): Sink[] => [stack.internal, stack.mx1, stack.mx2];

function assertOneTrace(view: MessageView, traceId: string): void {
  assert.match(traceId, /^[0-9a-f]{32}$/);
  assert.equal(view.summary.traceId, traceId);
  for (const e of view.events) assert.equal(e.traceId, traceId, `event ${e.type}/${e.service} has another trace id`);
}

describe('end to end', { timeout: 280_000 }, () => {
  test('inbound clean mail reaches the internal server intact, with our headers and a full timeline', async () => {
    const from = `bob@${REMOTE_DOMAIN}`;
    const to = `alice@${ACCEPTED_DOMAIN}`;
    const body = `Quarterly numbers attached.\r\n.leading dot line\r\n${'x'.repeat(900)}\r\nünïcödé\r\n`;
    const raw = buildMessage({ from, to, subject: 'clean inbound', body, headers: ['X-Custom: kept'] });
    const r = await send(stack, { from, to, raw });
    assert.match(r.response, /^250 /);
    assert.ok(r.id, 'the 250 reply names the message id');

    const got = await byId(stack.internal, r.id);
    assert.equal(got.mailFrom, from);
    assert.deepEqual(got.rcptTo, [to]);
    // Body byte for byte, and every original header still there.
    assert.equal(bodyOf(got.data), bodyOf(Buffer.from(raw)));
    const sentHeaders = headers(raw);
    const gotHeaders = headers(got.data);
    for (const h of sentHeaders)
      assert.ok(
        gotHeaders.some((g) => g.name === h.name && g.value === h.value),
        `header ${h.name} kept`,
      );
    // Headers the gateway adds: trace, id, Received, and one per checking stage.
    const traceId = header(got.data, 'x-mailgate-trace-id') ?? '';
    assert.equal(header(got.data, 'x-mailgate-id'), r.id);
    assert.match(header(got.data, 'received') ?? '', /by gw\.example\.test/);
    assert.match(header(got.data, 'x-mailgate-virus-scanned') ?? '', /^clean/);
    assert.match(header(got.data, 'x-mailgate-dnsbl') ?? '', /score=0/);
    assert.match(header(got.data, 'x-spam-status') ?? '', /^No, score=/);

    const view = await timeline(stack, r.id, (v) => v.events.some((e) => e.type === 'delivered'));
    const seq = view.events.map((e) => (e.type === 'stage' ? e.service : e.type));
    assert.equal(seq[0], 'received');
    for (const s of STAGES) assert.ok(seq.includes(s), `timeline has ${s}: ${seq.join(' → ')}`);
    assert.ok(seq.indexOf('dnsbl-check') < seq.indexOf('virus-scan'));
    assert.ok(seq.indexOf('virus-scan') < seq.indexOf('attachment-policy'));
    assert.ok(seq.indexOf('attachment-policy') < seq.indexOf('spam-check'));
    assert.ok(seq.indexOf('spam-check') < seq.indexOf('delivered'));
    for (const e of view.events.filter((x) => x.type === 'stage')) {
      assert.equal((e.details?.['verdict'] as { kind: string }).kind, 'pass', `${e.service} passed it`);
    }
    assertOneTrace(view, traceId);
    assert.equal(view.summary.status, 'delivered');
  });

  test('outbound mail from the trusted network is delivered to the remote domain via its MX', async () => {
    const from = `alice@${ACCEPTED_DOMAIN}`;
    const to = `carol@${REMOTE_DOMAIN}`;
    const raw = buildMessage({ from, to, subject: 'outbound' });
    const r = await send(stack, { from, to, raw, localAddress: TRUSTED_CLIENT });
    assert.match(r.response, /^250 /);
    const got = await byId(stack.mx1, r.id);
    assert.equal(got.localAddress, MX1, 'delivered to the preferred MX (mx1, 127.0.0.12)');
    assert.deepEqual(got.rcptTo, [to]);
    assert.equal(bodyOf(got.data), bodyOf(Buffer.from(raw)));
    const view = await timeline(stack, r.id, (v) => v.events.some((e) => e.type === 'delivered'));
    assertOneTrace(view, header(got.data, 'x-mailgate-trace-id') ?? '');
    assert.equal(stack.internal.messages.filter((m) => mailgateId(m) === r.id).length, 0);
  });

  test('a client listed in the DNSBL is refused (554 5.7.1 naming the list)', async () => {
    const replies = await rawSession(stack, LISTED_CLIENT, [
      'EHLO listed.test',
      `MAIL FROM:<spammer@${REMOTE_DOMAIN}>`,
      `RCPT TO:<alice@${ACCEPTED_DOMAIN}>`,
      'QUIT',
    ]);
    // Refused at connect (554 greeting), or — with postmaster@/abuse@ exceptions, the default — at each other RCPT.
    const refusal = replies.find((r) => r.code === 554);
    assert.ok(refusal, `a 554 reply: ${JSON.stringify(replies)}`);
    assert.match(refusal.text, /5\.7\.1/);
    assert.match(refusal.text, /e2e-bl|bl\.test/);
    assert.ok(!replies.some((r) => r.code === 354), 'never got to DATA');
    // The same client may still reach postmaster@ (RFC 5782 practice: let a listed sender ask about the listing).
    const pm = await rawSession(stack, LISTED_CLIENT, [
      'EHLO listed.test',
      `MAIL FROM:<spammer@${REMOTE_DOMAIN}>`,
      `RCPT TO:<postmaster@${ACCEPTED_DOMAIN}>`,
      'QUIT',
    ]);
    assert.equal(pm[3]?.code, 250, `postmaster@ accepted: ${JSON.stringify(pm)}`);
  });

  test('a listed sender behind a trusted relay, using the relay address as HELO, is judged by its real IP', async () => {
    const from = `spammer@${REMOTE_DOMAIN}`;
    const to = `alice@${ACCEPTED_DOMAIN}`;
    const raw = buildMessage({
      from,
      to,
      subject: 'helo forgery',
      headers: [
        // What the trusted relay wrote: the listed client said "HELO [<relay address>]".
        `Received: from [${TRUSTED_CLIENT}] (unknown [${LISTED_CLIENT}])\r\n\tby relay.example.test (Postfix) with ESMTP id 4Xy1Zk0abc;\r\n\tMon, 1 Jan 2026 10:00:00 +0000`,
        // The sender's own forgery below it: a clean origin, believed if the HELO were taken as a trusted hop.
        `Received: from clean.example (clean.example [${INTERNET_CLIENT}])\r\n\tby mail.remote.test (Postfix) with ESMTP id 1A2B;\r\n\tMon, 1 Jan 2026 09:59:59 +0000`,
      ],
    });
    const r = await send(stack, { from, to, raw, localAddress: TRUSTED_CLIENT });
    assert.match(r.response, /^250 /);
    const q = await eventually('the forged-HELO message in quarantine', async () =>
      (await quarantineList(stack)).find((e) => e.id === r.id),
    );
    assert.equal(q.stage, 'dnsbl-check');
    const view = await timeline(stack, r.id, (v) => v.events.some((e) => e.type === 'quarantined'));
    const dnsbl = view.events.find((e) => e.service === 'dnsbl-check' && e.type === 'stage');
    assert.deepEqual(dnsbl?.details?.['origin'], { ip: LISTED_CLIENT, source: 'received', via: [TRUSTED_CLIENT] });
    for (const s of allSinks()) assert.ok(!s.messages.some((m) => mailgateId(m) === r.id));
  });

  test('EICAR is quarantined by virus-scan, visible in the admin quarantine, never delivered', async () => {
    const { entry: q, view } = await sendEicarUntilQuarantined(stack, 'eicar');
    assert.equal(q.stage, 'virus-scan');
    assert.match(q.reason, /Eicar/i);
    assert.equal(view.summary.status, 'quarantined');
    assertOneTrace(view, view.summary.traceId);
    assert.ok(!view.events.some((e) => e.service === 'attachment-policy'), 'nothing after virus-scan saw it');
    for (const s of allSinks()) assert.ok(!s.messages.some((m) => m.data.includes(EICAR)), 'no sink got EICAR');
  });

  test('GTUBE is held by spam-check as a reject (quarantined, no bounce), with score and SCL in tracking', async () => {
    const from = `spammer@${REMOTE_DOMAIN}`;
    const to = `alice@${ACCEPTED_DOMAIN}`;
    const raw = buildMessage({ from, to, subject: 'cheap offer', body: `Buy now!\r\n${GTUBE}\r\n` });
    const r = await send(stack, { from, to, raw });
    const q = await eventually('the GTUBE message in quarantine', async () =>
      (await quarantineList(stack)).find((e) => e.id === r.id),
    );
    assert.equal(q.stage, 'spam-check');
    assert.match(q.reason, /GTUBE/);
    const view = await timeline(stack, r.id, (v) => v.events.some((e) => e.type === 'quarantined'));
    const ev = view.events.find((e) => e.service === 'spam-check' && e.type === 'stage');
    assert.equal((ev?.details?.['verdict'] as { kind: string }).kind, 'reject');
    assert.equal(ev?.details?.['scl'], 9);
    assertOneTrace(view, view.summary.traceId);
    for (const s of allSinks()) assert.ok(!s.messages.some((m) => m.data.includes(GTUBE)), 'no sink got GTUBE');
  });

  test('a forbidden executable is stripped (operator rule) and the rest delivered', async () => {
    const from = `bob@${REMOTE_DOMAIN}`;
    const to = `alice@${ACCEPTED_DOMAIN}`;
    const raw = buildMessage({
      from,
      to,
      subject: 'setup',
      body: 'See the attached installer.\r\n',
      attachments: [
        { filename: 'setup.exe', contentType: 'application/octet-stream', content: EXE },
        { filename: 'notes.txt', contentType: 'text/plain', content: Buffer.from('plain notes\r\n') },
      ],
    });
    const r = await send(stack, { from, to, raw });
    const got = await byId(stack.internal, r.id);
    const text = got.data.toString('latin1');
    assert.ok(!text.includes(EXE.toString('base64').slice(0, 60)), 'the executable is gone');
    assert.ok(text.includes(Buffer.from('plain notes\r\n').toString('base64')), 'the allowed attachment stayed');
    assert.ok(text.includes('See the attached installer.'), 'the body stayed');
    assert.ok(header(got.data, 'x-mailgate-attachment-policy'), 'a header says parts were stripped');
    const view = await timeline(stack, r.id, (v) => v.events.some((e) => e.type === 'delivered'));
    const ap = view.events.find((e) => e.service === 'attachment-policy' && e.type === 'stage');
    assert.match(JSON.stringify(ap?.details ?? {}), /strip-executables/);
  });

  test('a decoy double extension (invoice.pdf.exe) is rejected into quarantine with the rule named', async () => {
    const from = `bob@${REMOTE_DOMAIN}`;
    const to = `alice@${ACCEPTED_DOMAIN}`;
    const raw = buildMessage({
      from,
      to,
      subject: 'invoice',
      attachments: [{ filename: 'invoice.pdf.exe', contentType: 'application/pdf', content: EXE }],
    });
    const r = await send(stack, { from, to, raw });
    const q = await eventually('the invoice in quarantine', async () =>
      (await quarantineList(stack)).find((e) => e.id === r.id),
    );
    assert.equal(q.stage, 'attachment-policy');
    assert.match(q.reason, /double-extension|type-mismatch|invoice\.pdf\.exe/);
    await timeline(stack, r.id, (v) => v.events.some((e) => e.type === 'quarantined'));
    for (const s of allSinks()) assert.ok(!s.messages.some((m) => mailgateId(m) === r.id));
  });

  test('a remote 4xx is retried, then delivered once the remote accepts', async () => {
    await deferThenDeliver(stack);
  });

  test('a remote 5xx bounces: a DSN goes back to the sender and is itself delivered', async () => {
    await bounceWithDsn(stack);
  });

  test('relaying for a foreign domain from an untrusted client is refused with 550 5.7.1', async () => {
    const replies = await rawSession(stack, INTERNET_CLIENT, [
      'EHLO outsider.test',
      `MAIL FROM:<someone@${REMOTE_DOMAIN}>`,
      'RCPT TO:<victim@elsewhere.test>',
      'QUIT',
    ]);
    assert.equal(replies[0]?.code, 220);
    assert.equal(replies[3]?.code, 550, JSON.stringify(replies));
    assert.match(replies[3]!.text, /5\.7\.1/);
    // The same untrusted client is still welcome for our own domain (it is not an open relay, nor a closed door).
    const ok = await rawSession(stack, INTERNET_CLIENT, [
      'EHLO outsider.test',
      `MAIL FROM:<someone@${REMOTE_DOMAIN}>`,
      `RCPT TO:<alice@${ACCEPTED_DOMAIN}>`,
      'QUIT',
    ]);
    assert.equal(ok[3]?.code, 250);
  });

  test('sender auth: a forgery from a p=reject domain is refused 550 5.7.1; a dkimpy-signed message arrives with spf/dkim/dmarc=pass', async () => {
    const forgedSubject = uniq('forged');
    const f = await sendExpectingFailure(stack, {
      from: 'ceo@forged.test',
      to: `alice@${ACCEPTED_DOMAIN}`,
      raw: buildMessage({ from: 'ceo@forged.test', to: `alice@${ACCEPTED_DOMAIN}`, subject: forgedSubject }),
      localAddress: INTERNET_CLIENT,
    });
    assert.equal(f.responseCode, 550, f.message);
    assert.match(f.response ?? '', /^550 5\.7\.1 /);

    // Signed by dkimpy as signed.test's own server would, with a forged A-R claiming our id on top.
    const from = `bob@${DKIM_KEYS.inbound.domain}`;
    const to = `alice@${ACCEPTED_DOMAIN}`;
    const signed = await dkimpySign(Buffer.from(buildMessage({ from, to, subject: 'signed inbound' })), {
      domain: DKIM_KEYS.inbound.domain,
      selector: DKIM_KEYS.inbound.selector,
      key: DKIM_KEYS.inbound.dkimpy,
      algorithm: 'ed25519-sha256',
    });
    const raw = Buffer.concat([
      Buffer.from(`Authentication-Results: ${AUTHSERV_ID}; dmarc=pass header.from=forged.test\r\n`),
      signed,
    ]);
    const r = await send(stack, { from, to, raw: raw.toString('latin1'), localAddress: INTERNET_CLIENT });
    const got = await byId(stack.internal, r.id);
    const text = got.data.toString('latin1');
    const ars = headers(got.data).filter((h) => h.name === 'authentication-results');
    assert.equal(ars.length, 1, `one Authentication-Results (ours): ${JSON.stringify(ars)}`);
    assert.match(
      ars[0]!.value,
      new RegExp(
        `^${AUTHSERV_ID.replace(/\./g, '\\.')}; spf=pass .*smtp\\.mailfrom=${from}; dkim=pass .*header\\.d=signed\\.test .*; dmarc=pass \\(p=REJECT\\) header\\.from=signed\\.test`,
      ),
    );
    assert.doesNotMatch(text, /header\.from=forged\.test/);
    // The signature still verifies after the whole pipeline (dkimpy, keys from rbldnsd).
    const v = await dkimpyVerify(got.data, { host: stack.dns.host, port: stack.dns.port });
    assert.deepEqual(
      v.map((x) => [x.ok, x.domain]),
      [[true, 'signed.test']],
    );
    const view = await timeline(stack, r.id, (x) => x.events.some((e) => e.type === 'delivered'));
    const received = view.events.find((e) => e.type === 'received');
    assert.equal((received?.details?.['auth'] as Record<string, unknown>)['dmarc'], 'pass');

    // The forgery was never delivered and never bounced (nothing in any sink names it or its sender).
    for (const s of allSinks()) {
      assert.equal(s.messages.filter((m) => m.data.includes(forgedSubject)).length, 0);
      assert.equal(s.messages.filter((m) => m.rcptTo.includes('ceo@forged.test')).length, 0);
    }
  });

  test('sender auth: outbound mail is DKIM-signed (ed25519 + rsa) and an independent verifier accepts it', async () => {
    const from = `alice@${ACCEPTED_DOMAIN}`;
    const to = `dave@${REMOTE_DOMAIN}`;
    const raw = buildMessage({ from, to, subject: 'signed outbound' });
    const r = await send(stack, { from, to, raw, localAddress: TRUSTED_CLIENT });
    const got = await byId(stack.mx1, r.id);
    const sigs = headers(got.data).filter((h) => h.name === 'dkim-signature');
    assert.equal(sigs.length, 2, 'one Ed25519 and one RSA signature');
    assert.equal(bodyOf(got.data), bodyOf(Buffer.from(raw)));
    const v = await dkimpyVerify(got.data, { host: stack.dns.host, port: stack.dns.port });
    assert.deepEqual(
      v.map((x) => [x.ok, x.domain, x.selector]).sort(),
      [
        [true, ACCEPTED_DOMAIN, 'mg-ed'],
        [true, ACCEPTED_DOMAIN, 'mg-rsa'],
      ],
      JSON.stringify(v),
    );
    const view = await timeline(stack, r.id, (x) => x.events.some((e) => e.type === 'delivered'));
    const st = view.events.find((e) => e.type === 'stage' && e.service === 'delivery');
    assert.equal((st?.details?.['dkim'] as string[]).length, 2);
  });
});
