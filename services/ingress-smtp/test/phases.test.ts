// The SMTP phases as pure functions (src/phases/*, src/replies.ts): no sockets, no Redis, no broker. The SMTP-level
// behaviour of the same code is covered end to end by ingress/edges/guard/recipients/resilience.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MAIL_HEADERS,
  RECORD_HEADERS,
  TOPICS,
  decodeEvent,
  decodeMessage,
  type StageVerdict,
} from '@mailgate/contracts';
import { MailgateError } from '@mailgate/runtime';
import { buildAccepted, type AcceptedContext, type AcceptedSession } from '../src/phases/accepted.js';
import { AUTH_LINE_OCTETS, commandPhase, type CommandLine, type CommandSettings } from '../src/phases/command.js';
import { connectPhase, dnsblDecision, hasExceptions } from '../src/phases/connect.js';
import { DataCollector, dataVerdict, type DataSettings } from '../src/phases/data.js';
import { disabledCommands } from '../src/phases/helo.js';
import { needsDnsblRecheck, parseSender, rateLimited, senderPolicy, type MailFacts } from '../src/phases/mail.js';
import { rcptPhase } from '../src/phases/rcpt.js';
import { REPLIES, SmtpReplyError, replyLine, replyText, smtpError, type SmtpReply } from '../src/replies.js';
import { buildRelayPolicy } from '../src/relay.js';
import { BARE_CR, BARE_LF } from '../src/smtp-guard.js';

const line = (r: { error: SmtpReplyError } | null | undefined) => (r ? replyLine(r.error.reply) : null);

describe('replies catalogue', () => {
  const args: Record<string, unknown[]> = { listed: ['192.0.2.1', { zone: 'bl.test' }], messageTooBig: [1000] };
  const all: [string, SmtpReply][] = Object.entries(REPLIES).map(([name, v]) => [
    name,
    typeof v === 'function' ? (v as (...a: unknown[]) => SmtpReply)(...(args[name] ?? ['192.0.2.1'])) : v,
  ]);

  it('every reply has a code, an enhanced status code of the same class and one line of text', () => {
    assert.ok(all.length >= 30, `${all.length} replies`);
    for (const [name, r] of all) {
      assert.match(String(r.code), /^[245]\d\d$/, name);
      assert.match(r.enhanced, /^[245]\.\d{1,3}\.\d{1,3}$/, name);
      assert.equal(r.enhanced[0], String(r.code)[0], `${name}: class of ${r.code} ${r.enhanced}`);
      assert.ok(r.text.length > 0 && !/[\r\n]/.test(r.text), name);
    }
  });

  it('wire texts the tests and docs quote', () => {
    assert.equal(replyLine(REPLIES.lineTooLong), '500 5.5.2 Line too long');
    assert.equal(replyLine(REPLIES.nulInData), '554 5.6.0 Message contains NUL characters; refused');
    assert.equal(replyLine(REPLIES.relayDenied('a@b.test')), '550 5.7.1 <a@b.test>: relaying denied');
    assert.equal(replyText(REPLIES.queued('ID1')), '2.0.0 Ok: queued as ID1');
    assert.equal(
      replyLine(REPLIES.messageTooBig(1000)),
      '552 5.3.4 Message size exceeds fixed maximum message size of 1000 bytes',
    );
    assert.equal(replyLine(REPLIES.badSenderSyntax()), '501 5.1.7 Bad sender address syntax');
    assert.equal(replyLine(REPLIES.badSenderSyntax('x')), '501 5.1.7 Bad sender address syntax: x');
  });

  it('listed: the DNSBL text as is when it names the list, else a generic text; printable only', () => {
    assert.equal(
      replyText(REPLIES.listed('192.0.2.1', { zone: 'bl.test', text: 'listed on bl.test, see x' })),
      '5.7.1 listed on bl.test, see x',
    );
    assert.equal(
      replyText(REPLIES.listed('192.0.2.1', { zone: 'bl.test', text: 'spam\r\nsource' })),
      '5.7.1 Service unavailable; client [192.0.2.1] blocked using bl.test: spam??source',
    );
    assert.equal(replyText(REPLIES.listed('192.0.2.1', {})), '5.7.1 Service unavailable; client [192.0.2.1] blocked');
    assert.equal(
      replyText(REPLIES.ipBlocked('192.0.2.1', 'abuse\u0007')),
      '5.7.1 Client host [192.0.2.1] blocked by local policy: abuse?',
    );
  });

  it('a refusal is a MailgateError carrying the reply: .smtp, and what smtp-server reads', () => {
    const e = smtpError(REPLIES.messageRateExceeded('192.0.2.1'));
    assert.ok(e instanceof MailgateError);
    assert.ok(e instanceof SmtpReplyError);
    assert.deepEqual(e.smtp, { code: 450, status: '4.7.1' });
    assert.equal(e.responseCode, 450);
    assert.equal(e.message, '4.7.1 Too many messages from [192.0.2.1], try again later');
    assert.equal(e.temporary, true);
    assert.equal(smtpError(REPLIES.authRequired).temporary, false);
  });
});

describe('command phase', () => {
  const settings: CommandSettings = {
    lineEndings: 'reject',
    limits: { maxCommandLineOctets: 512, maxUnknownCommands: 3 },
  };
  const base: CommandLine = {
    listener: 'mx',
    line: 'EHLO client.test',
    flags: 0,
    expired: false,
    ready: true,
    secure: false,
    inAuthExchange: false,
    known: true,
    unknownSoFar: 0,
  };
  const run = (c: Partial<CommandLine>, s = settings) => commandPhase({ ...base, ...c }, s);

  it('a normal command is remembered and passed on', () => {
    assert.deepEqual(run({}), { reasons: [], remember: true });
  });

  it('session clock, bare line endings, PROXY: refused (and closed where the session cannot go on)', () => {
    assert.deepEqual(run({ expired: true }).refuse, { ...wire(REPLIES.sessionExpired), close: true });
    assert.deepEqual(run({ flags: BARE_LF }), {
      reasons: ['bare-cr-lf'],
      refuse: { ...wire(REPLIES.bareLineEndingInCommand), close: true },
    });
    const normalize = { ...settings, lineEndings: 'normalize' as const };
    assert.deepEqual(run({ flags: BARE_CR }, normalize).refuse, { ...wire(REPLIES.bareCrInCommand), close: false });
    assert.deepEqual(run({ flags: BARE_LF }, normalize), { reasons: ['bare-cr-lf'], remember: true });
    assert.deepEqual(run({ line: 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2' }).refuse?.close, true);
  });

  it('line length: 500 5.5.2 for commands, AUTH lines up to 12288 octets, 5.5.6 beyond (exchange cancelled)', () => {
    const long = 'NOOP ' + 'x'.repeat(600);
    assert.deepEqual(run({ line: long }), {
      reasons: ['line-too-long'],
      refuse: { ...wire(REPLIES.lineTooLong), close: false },
    });
    assert.deepEqual(run({ line: 'AUTH PLAIN ' + 'x'.repeat(600) }), { reasons: [], remember: true });
    const sasl = run({ line: 'x'.repeat(AUTH_LINE_OCTETS), inAuthExchange: true });
    assert.equal(sasl.cancelAuthExchange, true);
    assert.deepEqual(sasl.refuse, { ...wire(REPLIES.authLineTooLong), close: false });
    assert.deepEqual(run({ line: 'x'.repeat(600), inAuthExchange: true }), { reasons: [] }, 'SASL: not remembered');
  });

  it('early talkers are counted (the library answers); AUTH before STARTTLS on submission is 538', () => {
    assert.deepEqual(run({ ready: false }), { reasons: ['pregreet'] });
    const d = run({ listener: 'submission', line: 'AUTH PLAIN' });
    assert.deepEqual(d.reasons, ['auth-before-tls']);
    assert.deepEqual(d.refuse, { ...wire(REPLIES.startTlsFirst), close: false });
    assert.equal(run({ listener: 'submission', line: 'AUTH PLAIN', secure: true }).refuse, undefined);
  });

  it('unknown commands are counted; the limit closes the session', () => {
    assert.deepEqual(run({ known: false, unknownSoFar: 1 }), { reasons: [], remember: true, unknownCommand: true });
    const d = run({ known: false, unknownSoFar: 2 });
    assert.deepEqual(d.reasons, ['unknown-commands']);
    assert.deepEqual(d.refuse, { ...wire(REPLIES.tooManyUnknownCommands), close: true });
  });
});

function wire(r: SmtpReply) {
  return { code: r.code, text: replyText(r) };
}

describe('connect phase', () => {
  const limits = { maxConnectionsPerIp: 2, pregreetDelayMs: 300 };
  const facts = { listener: 'mx' as const, ip: '192.0.2.1', connectionsFromIp: 0, trusted: false };
  const lists = (action: 'block' | 'allow' | 'none') => ({
    atConnect: (ip: string) =>
      action === 'block'
        ? { refusal: REPLIES.ipBlocked(ip), skipDnsbl: true }
        : { refusal: null, skipDnsbl: action === 'allow' },
  });

  it('MX, untrusted: greeting delay and DNSBL; trusted or submission: neither', () => {
    assert.deepEqual(connectPhase(facts, limits, null), {
      holdsSlot: true,
      allowListed: false,
      pregreetDelayMs: 300,
      dnsbl: true,
    });
    const trusted = connectPhase({ ...facts, trusted: true }, limits, null);
    assert.equal(!trusted.refuse && trusted.dnsbl, false);
    const sub = connectPhase({ ...facts, listener: 'submission' }, limits, null);
    assert.equal(sub.refuse, undefined);
    assert.equal(!sub.refuse && sub.pregreetDelayMs, 0);
  });

  it('per-IP limit: 421 before the connection takes a slot', () => {
    const d = connectPhase({ ...facts, connectionsFromIp: 2 }, limits, null);
    assert.equal(d.holdsSlot, false);
    assert.equal(line(d.refuse), '421 4.7.0 Too many connections from [192.0.2.1], try again later');
    assert.deepEqual(d.refuse?.track, { phase: 'connect', helo: false });
    assert.equal(d.refuse?.reason, 'connections-per-ip');
  });

  it('live lists: ip-block refuses (trusted networks never), ip-allow skips the delay and the DNSBL', () => {
    const b = connectPhase(facts, limits, lists('block'));
    assert.equal(b.refuse?.reason, 'ip-blocked');
    assert.equal(line(b.refuse), '554 5.7.1 Client host [192.0.2.1] blocked by local policy');
    assert.equal(connectPhase({ ...facts, trusted: true }, limits, lists('block')).refuse, undefined);
    assert.deepEqual(connectPhase(facts, limits, lists('allow')), {
      holdsSlot: true,
      allowListed: true,
      pregreetDelayMs: 0,
      dnsbl: false,
    });
  });

  it('DNSBL answer: pass, refuse, or keep the session for exception recipients', () => {
    const listed = { action: 'reject' as const, zone: 'bl.test', score: 1 };
    assert.equal(dnsblDecision('192.0.2.1', { action: 'pass', score: 0 }, false).refuse, null);
    const r = dnsblDecision('192.0.2.1', listed, false);
    assert.equal(r.refuse?.reason, 'dnsbl');
    assert.equal(line(r.refuse), '554 5.7.1 Service unavailable; client [192.0.2.1] blocked using bl.test');
    assert.deepEqual(dnsblDecision('192.0.2.1', listed, true), { result: listed, listed, refuse: null });
    assert.equal(hasExceptions({ exceptions: ['postmaster@'], isException: () => true }), true);
    assert.equal(hasExceptions({ exceptions: [], isException: () => true }), false);
    assert.equal(hasExceptions(null), false);
  });
});

describe('helo phase', () => {
  it('AUTH only on submission, only after STARTTLS; STARTTLS only with a certificate', () => {
    assert.deepEqual(disabledCommands('mx', true, true), ['AUTH']);
    assert.deepEqual(disabledCommands('mx', false, false), ['AUTH', 'STARTTLS']);
    assert.deepEqual(disabledCommands('submission', true, true), []);
    assert.deepEqual(disabledCommands('submission', true, false), ['AUTH']);
  });
});

describe('mail phase', () => {
  const m: MailFacts = {
    listener: 'mx',
    ip: '192.0.2.1',
    sender: 'a@b.test',
    authenticated: false,
    trusted: false,
    dnsblCheckedIp: '192.0.2.1',
  };
  const blockAll = { atMailFrom: (s: string) => REPLIES.senderBlocked(s) };

  it('parses the sender strictly from the raw line', () => {
    assert.deepEqual(parseSender('MAIL FROM:<a@b.test> SIZE=10'), { sender: 'a@b.test' });
    assert.deepEqual(parseSender('MAIL FROM:<>'), { sender: '' });
    const bad = parseSender('MAIL FROM:a@b.test');
    assert.ok('refuse' in bad);
    assert.match(replyLine(bad.refuse.error.reply), /^501 5\.1\.7 Bad sender address syntax: /);
    const none = parseSender('HELO x');
    assert.ok('refuse' in none && replyLine(none.refuse.error.reply) === '501 5.1.7 Bad sender address syntax');
  });

  it('submission needs AUTH; the sender-block list spares trusted and authenticated clients', () => {
    const r = senderPolicy({ ...m, listener: 'submission' }, null);
    assert.equal(line(r), '530 5.7.0 Authentication required');
    assert.deepEqual(r?.track, { phase: 'mail', mailFrom: 'a@b.test' });
    assert.equal(line(senderPolicy(m, blockAll)), '550 5.7.1 <a@b.test>: sender blocked by local policy');
    assert.equal(senderPolicy({ ...m, trusted: true }, blockAll), null);
    assert.equal(senderPolicy({ ...m, authenticated: true }, blockAll), null);
  });

  it('XCLIENT changed the address: the DNSBL looks again (MX, untrusted only)', () => {
    assert.equal(needsDnsblRecheck(m), false);
    assert.equal(needsDnsblRecheck({ ...m, ip: '192.0.2.9' }), true);
    assert.equal(needsDnsblRecheck({ ...m, ip: '192.0.2.9', trusted: true }), false);
    assert.equal(needsDnsblRecheck({ ...m, ip: '192.0.2.9', listener: 'submission' }), false);
  });

  it('message rate: trusted and authenticated clients are exempt unless configured otherwise', () => {
    assert.equal(rateLimited(m, { rateLimitExemptTrusted: true }), true);
    assert.equal(rateLimited({ ...m, trusted: true }, { rateLimitExemptTrusted: true }), false);
    assert.equal(rateLimited({ ...m, authenticated: true }, { rateLimitExemptTrusted: false }), true);
  });
});

describe('rcpt phase', () => {
  const policy = buildRelayPolicy(['ours.test', { domain: 'listed.test', recipients: ['alice'] }]);
  const r = { ip: '192.0.2.1', authenticated: false, trusted: false, listed: null };
  const rcpt = (l: string, extra: Partial<typeof r> = {}) => rcptPhase({ ...r, ...extra, line: l }, policy, null);

  it('accepts local mail (inbound) and relays for trusted clients (outbound)', () => {
    assert.deepEqual(rcpt('RCPT TO:<u@ours.test>'), { address: 'u@ours.test', inbound: true });
    assert.deepEqual(rcpt('RCPT TO:<u@far.test>', { trusted: true }), { address: 'u@far.test', inbound: false });
  });

  it('relay denied, unknown user, bad syntax: each with its reply, reason and tracking facts', () => {
    const denied = rcpt('RCPT TO:<u@far.test>').refuse;
    assert.equal(line(denied), '550 5.7.1 <u@far.test>: relaying denied');
    assert.equal(denied?.reason, 'relay-denied');
    assert.deepEqual(denied?.track, { phase: 'rcpt', rcptTo: ['u@far.test'] });
    const unknown = rcpt('RCPT TO:<bob@listed.test>').refuse;
    assert.equal(line(unknown), '550 5.1.1 <bob@listed.test>: recipient address rejected: user unknown');
    assert.equal(unknown?.reason, 'recipient-unknown');
    const bad = rcpt('RCPT TO:<u@>').refuse;
    assert.match(line(bad) ?? '', /^501 5\.1\.3 Bad recipient address syntax: /);
    assert.equal(bad?.reason, undefined, 'syntax errors are not counted as refusals');
  });

  it('a DNSBL-listed client kept for exceptions reaches only those', () => {
    const listed = { action: 'reject' as const, zone: 'bl.test', score: 1 };
    const filter = { isException: (a: string) => a.startsWith('postmaster@') };
    const d = rcptPhase({ ...r, listed, line: 'RCPT TO:<u@ours.test>' }, policy, filter);
    assert.equal(d.refuse?.reason, 'dnsbl');
    const ok = rcptPhase({ ...r, listed, line: 'RCPT TO:<postmaster@ours.test>' }, policy, filter);
    assert.deepEqual(ok, { address: 'postmaster@ours.test', inbound: true });
  });
});

describe('data phase', () => {
  const s: DataSettings = { lineEndings: 'reject', nulBytes: 'reject', limits: { maxMessageBytes: 64 } };
  const collect = (settings: DataSettings, ...chunks: string[]) => {
    const c = new DataCollector(settings);
    for (const ch of chunks) c.feed(Buffer.from(ch, 'latin1'));
    return c.finish();
  };

  it('clean content passes whole', () => {
    const d = collect(s, 'Subject: x\r\n', '\r\nbody\r\n');
    assert.equal(d.body.toString(), 'Subject: x\r\n\r\nbody\r\n');
    assert.equal(dataVerdict(d, s), null);
  });

  it('too big (552), bare line endings (554 5.6.0), NUL (554 5.6.0): in that order', () => {
    const big = collect(s, 'x'.repeat(40), 'y'.repeat(40));
    assert.equal(big.over, true);
    assert.equal(big.body.length, 0, 'content past the limit is not kept');
    assert.equal(line(dataVerdict(big, s)), replyLine(REPLIES.messageTooBig(64)));
    assert.equal(dataVerdict(collect(s, 'ok\r\n'), s, true)?.reason, 'size', "smtp-server's own count");
    const bare = dataVerdict(collect(s, 'a\nb\r\n\0'), s);
    assert.equal(bare?.reason, 'bare-cr-lf');
    assert.equal(line(bare), replyLine(REPLIES.bareLineEndingInData));
    const nul = dataVerdict(collect(s, 'a\0b\r\n'), s);
    assert.equal(line(nul), '554 5.6.0 Message contains NUL characters; refused');
    assert.equal(nul?.track, undefined, 'NUL refusals are counted, not tracked');
  });

  it('normalize / strip: the content is repaired instead', () => {
    const fix: DataSettings = { ...s, lineEndings: 'normalize', nulBytes: 'strip' };
    const d = collect(fix, 'a\nb\0\r', '\nc\r');
    assert.equal(d.body.toString('latin1'), 'a\r\nb\r\nc\r\n');
    assert.equal(d.nul, 1);
    assert.equal(dataVerdict(d, fix), null);
  });
});

describe('buildAccepted (the records behind a 250)', () => {
  const session: AcceptedSession = {
    listener: 'mx',
    clientIp: '192.0.2.1',
    clientPort: 40000,
    clientHostname: 'client.example',
    helo: 'client.example',
    protocol: 'ESMTPS',
    tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
    trustedNetwork: false,
    mailFrom: 'a@far.test',
    rcptTo: ['u@ours.test'],
    inbound: [true],
  };
  const ctx: AcceptedContext = {
    id: 'MSGID0001',
    now: new Date('2026-01-02T03:04:05Z'),
    trace: {
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      traceId: '0af7651916cd43dd8448eb211c80319c',
      headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    },
    hostname: 'mx.ours.test',
    instance: 'ingress-0',
  };
  const body = Buffer.from('Subject: Hello\r\nMessage-ID: <m1@far.test>\r\nX-Mailgate-Verdict: clean\r\n\r\nhi\r\n');

  it('one record for mailgate.inbound (contracts newRecord) and its received event, built without I/O', () => {
    const a = buildAccepted(session, body, ctx);
    assert.equal(a.id, 'MSGID0001');
    assert.equal(a.direction, 'inbound');
    assert.equal(a.records.length, 2);
    const [rec, ev] = a.records;
    assert.equal(rec!.topic, TOPICS.inbound);
    assert.equal(rec!.key, 'MSGID0001');
    assert.equal(rec!.headers?.[RECORD_HEADERS.messageId], 'MSGID0001');
    assert.equal(rec!.headers?.[RECORD_HEADERS.traceparent], ctx.trace.traceparent);
    const msg = decodeMessage(rec!.value);
    assert.equal(msg.envelope.mailFrom, 'a@far.test');
    assert.deepEqual(msg.envelope.rcptTo, ['u@ours.test']);
    assert.equal(msg.envelope.receivedAt, '2026-01-02T03:04:05.000Z');
    assert.equal(msg.envelope.size, a.size);
    assert.equal(msg.envelope.session.clientHostname, 'client.example');
    assert.deepEqual(msg.envelope.session.tls, {
      enabled: true,
      protocol: 'TLSv1.3',
      cipher: 'TLS_AES_256_GCM_SHA384',
    });
    const raw = msg.raw.toString('latin1');
    assert.ok(raw.startsWith('Received: from client.example (client.example [192.0.2.1])\r\n\tby mx.ours.test'));
    assert.ok(raw.includes('\r\n\tfor <u@ours.test>;'));
    assert.ok(raw.includes(`${MAIL_HEADERS.messageId}: MSGID0001\r\n`));
    assert.ok(!raw.includes('X-Mailgate-Verdict'), 'forged gateway headers are removed');
    assert.equal(ev!.topic, TOPICS.events);
    const e = decodeEvent(ev!.value);
    assert.equal(e.type, 'received');
    assert.equal(e.details?.subject, 'Hello');
    assert.equal(e.details?.messageIdHeader, '<m1@far.test>');
    assert.deepEqual(buildAccepted(session, body, ctx).records, a.records, 'same input, same records');
  });

  it('relayed recipients make it outbound; held by sender authentication it goes to quarantine', () => {
    const out = buildAccepted({ ...session, inbound: [true, false], rcptTo: ['u@ours.test', 'x@far.test'] }, body, ctx);
    assert.equal(out.direction, 'outbound');
    assert.ok(!decodeMessage(out.records[0]!.value).raw.toString().includes('\tfor <'), 'no "for" with two rcpts');
    const verdict: StageVerdict = {
      stage: 'ingress-smtp',
      verdict: { kind: 'quarantine', reason: 'sender authentication: dmarc' },
      at: ctx.now.toISOString(),
      durationMs: 1,
      host: 'ingress-0',
    };
    const held = buildAccepted(session, body, {
      ...ctx,
      auth: { raw: body, topic: TOPICS.quarantine, verdict, event: { dmarc: 'fail' }, quarantined: true },
    });
    assert.equal(held.records.length, 3);
    assert.equal(held.records[0]!.topic, TOPICS.quarantine);
    assert.equal(held.records[0]!.headers?.[RECORD_HEADERS.sourceTopic], TOPICS.inbound);
    assert.deepEqual(
      held.records.slice(1).map((r) => decodeEvent(r.value).type),
      ['received', 'quarantined'],
    );
    assert.deepEqual(held.message.envelope.verdicts.at(-1)?.verdict, verdict.verdict);
  });
});
