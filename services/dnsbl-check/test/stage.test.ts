import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MAIL_HEADERS } from '@mailgate/contracts';
import { CidrList, DnsblChecker, dnsblConfig } from '@mailgate/dnsbl';
import { startRbldnsd, type RbldnsdHandle } from '@mailgate/testkit';
import {
  createDnsblStage,
  findOrigin,
  headerValues,
  planChecks,
  prependHeader,
  receivedFromIp,
  urlHosts,
} from '../src/index.js';
import { log, message, stageContext, ZONES, zonesConfig } from './helpers.js';

// ---- pure parts: no I/O ----

describe('pure helpers', () => {
  test('Received "from" IPs in the formats of common MTAs', () => {
    const cases: [string, string | null][] = [
      [
        'from mail.example.org (mail.example.org [198.51.100.7]) by mx.example.test (Postfix) with ESMTPS id X; Mon, 1 Jan 2026',
        '198.51.100.7',
      ],
      ['from [198.51.100.8] (helo=foo) by mx with esmtp (Exim 4.96)', '198.51.100.8'],
      ['from host.example (unknown [IPv6:2001:db8:bad::1]) by mx.test', '2001:db8:bad::1'],
      ['from EX01.contoso.test (10.1.2.3) by EX02.contoso.test (10.1.2.4) with Microsoft SMTP Server', '10.1.2.3'],
      ['from 203.0.113.5 by relay.test', '203.0.113.5'],
      ['by mx.test with LMTP id Y; Mon, 1 Jan 2026', null],
      ['from localhost (localhost) by mx', null],
    ];
    for (const [v, ip] of cases) assert.equal(receivedFromIp(v), ip, v);
  });

  test('origin behind trusted relays; untrusted lines are never believed', () => {
    const trusted = new CidrList(['10.0.0.0/24']);
    const received = [
      'from relay1.internal (relay1.internal [10.0.0.5]) by mailgate.example.test; Mon, 1 Jan 2026', // our ingress
      'from relay2.internal (relay2.internal [10.0.0.6]) by relay1.internal; Mon, 1 Jan 2026',
      'from evil.example (evil.example [198.51.100.7]) by relay2.internal; Mon, 1 Jan 2026',
      'from forged.example (forged [203.0.113.1]) by evil.example; Mon, 1 Jan 2026',
    ];
    assert.deepEqual(findOrigin('10.0.0.5', received, trusted, 5), {
      ip: '198.51.100.7',
      source: 'received',
      via: ['10.0.0.5', '10.0.0.6'],
    });
    assert.deepEqual(findOrigin('198.51.100.40', received, trusted, 5), {
      ip: '198.51.100.40',
      source: 'client',
      via: [],
    });
    assert.equal(findOrigin('10.0.0.5', received, trusted, 1).ip, null);
    assert.match(findOrigin('10.0.0.5', received.slice(0, 1), trusted, 5).note!, /no Received line/);
  });

  test('URL hosts from text and HTML, entity-decoded, de-duplicated, bounded, minus skipped domains', () => {
    const html =
      '<a href="https://Evil-Link.example/x?a=1&amp;b=2">click</a> <a href="http&#58;//203.0.113.66/p">ip</a> <img src="http://cdn.ours.example/i.png">';
    const text = 'see www.other.example and https://evil-link.example/again, mailto:x@y.example';
    assert.deepEqual(urlHosts([html, text], 20, ['ours.example']), [
      'evil-link.example',
      '203.0.113.66',
      'www.other.example',
    ]);
    assert.deepEqual(urlHosts([html, text], 1), ['evil-link.example']);
  });

  test('headers: unfolded values; prepended header keeps the message bytes and line ending', () => {
    const raw = Buffer.from(
      'Received: from a\r\n (b [198.51.100.7])\r\n by c\r\nSubject: x\r\n\r\nReceived: not a header\r\n',
    );
    assert.deepEqual(headerValues(raw, 'received'), ['from a (b [198.51.100.7]) by c']);
    const out = prependHeader(raw, MAIL_HEADERS.dnsbl, 'score=0 (pass)');
    assert.equal(out.toString('latin1'), `X-Mailgate-DNSBL: score=0 (pass)\r\n${raw.toString('latin1')}`);
    const lf = Buffer.from('Subject: x\n\nbody\n');
    assert.equal(
      prependHeader(lf, 'X-A', 'b\r\nInjected: yes').toString(),
      'X-A: b Injected: yes\nSubject: x\n\nbody\n',
    );
  });

  test('plan: authenticated, outbound and trusted-network mail skips IP checks; domains still checked', async () => {
    const cfg = dnsblConfig({});
    const none = new CidrList([]);
    const auth = await planChecks(
      message({ session: { authUser: 'bob', clientIp: '198.51.100.7' } }),
      cfg,
      none,
      false,
    );
    assert.equal(auth.ipSkipped, 'authenticated');
    assert.deepEqual(
      auth.targets.map((t) => t.kind),
      ['domain', 'domain'],
    );
    assert.equal((await planChecks(message({ direction: 'outbound' }), cfg, none, false)).ipSkipped, 'outbound');
    assert.equal(
      (await planChecks(message({ session: { trustedNetwork: true } }), cfg, none, false)).ipSkipped,
      'trusted-network',
    );
    const plain = await planChecks(message(), cfg, none, false);
    assert.deepEqual(
      plain.targets.map((t) => [t.kind, t.value, t.source]),
      [
        ['ip', '198.51.100.99', 'client'],
        ['domain', 'mail.sender.example', 'helo'],
        ['domain', 'sender.example', 'mail-from'],
      ],
    );
    const nullSender = await planChecks(message({ mailFrom: '' }), cfg, none, false);
    assert.equal(nullSender.targets.filter((t) => t.source === 'mail-from').length, 0);
  });
});

// ---- the stage against a real rbldnsd ----

describe('stage with rbldnsd', () => {
  let dns: RbldnsdHandle;
  const checkers: DnsblChecker[] = [];
  before(async () => {
    dns = await startRbldnsd(ZONES);
  });
  after(async () => {
    for (const c of checkers) await c.close();
    await dns?.stop();
  });

  async function stageFor(extra: Record<string, unknown> = {}) {
    const cfg = dnsblConfig({ resolvers: [dns.server], timeoutMs: 1000, zones: zonesConfig(), ...extra });
    const checker = new DnsblChecker(cfg, { log });
    checkers.push(checker);
    await checker.start();
    return { fn: createDnsblStage({ checker, cfg }), checker };
  }

  test('listed client IP → reject with each zone answer; header prepended, rest of the bytes unchanged', async () => {
    const { fn } = await stageFor();
    const msg = message({ session: { clientIp: '198.51.100.7' } });
    const out = await fn(msg, stageContext());
    assert.equal(out.verdict.kind, 'reject');
    assert.match((out.verdict as { reason: string }).reason, /listed in bl\.test\[198\.51\.100\.7\]/);
    const zones = out.details!['zones'] as { zone: string; status: string; hits?: { txt?: string }[] }[];
    assert.deepEqual(
      zones.map((z) => [z.zone, z.status]),
      [
        ['bl.test', 'listed'],
        ['dbl.test', 'not-listed'],
      ],
    );
    assert.equal(zones[0]!.hits![0]!.txt, 'Listed in bl.test');
    const header = `X-Mailgate-DNSBL: score=1 (reject); listed=bl.test[198.51.100.7]\r\n`;
    assert.equal(out.raw!.subarray(0, header.length).toString(), header);
    assert.ok(out.raw!.subarray(header.length).equals(msg.raw));
  });

  test('clean message passes; IPv6 client listed is rejected', async () => {
    const { fn } = await stageFor();
    const ok = await fn(message(), stageContext());
    assert.equal(ok.verdict.kind, 'pass');
    assert.equal(ok.raw!.toString().split('\r\n')[0], 'X-Mailgate-DNSBL: score=0 (pass)');
    const v6 = await fn(message({ session: { clientIp: '2001:db8:bad::9' } }), stageContext());
    assert.equal(v6.verdict.kind, 'reject');
  });

  test('authenticated senders skip IP checks (outbound)', async () => {
    const { fn } = await stageFor();
    const out = await fn(message({ session: { clientIp: '198.51.100.7', authUser: 'alice' } }), stageContext());
    assert.equal(out.verdict.kind, 'pass');
    assert.equal(out.details!['ipChecksSkipped'], 'authenticated');
  });

  test('a client allow-listed at ingress (ip-allow) passes unchecked: reason allow-listed, nothing looked up', async () => {
    const { fn } = await stageFor();
    // Listed on every count: client IP, HELO, sender domain and a body URL.
    const listed = {
      session: { clientIp: '198.51.100.7', helo: 'bad-helo.example' },
      mailFrom: 'x@spammer.example',
      body: 'see https://evil-link.example/x',
    };
    assert.equal((await fn(message(listed), stageContext())).verdict.kind, 'reject', 'listed without the mark');
    const msg = message({ ...listed, session: { ...listed.session, ipAllowListed: true } });
    const out = await fn(msg, stageContext());
    assert.equal(out.verdict.kind, 'pass');
    assert.deepEqual(out.details, { result: 'skipped', reason: 'allow-listed', clientIp: '198.51.100.7' });
    const header = 'X-Mailgate-DNSBL: skipped (allow-listed)\r\n';
    assert.equal(out.raw!.subarray(0, header.length).toString(), header);
    assert.ok(out.raw!.subarray(header.length).equals(msg.raw));
  });

  test('Received-header origin found behind a trusted relay, ignored behind an untrusted one', async () => {
    const { fn } = await stageFor({ receivedHeaders: { enabled: true, trustedRelays: ['10.0.0.0/24'] } });
    const headers = [
      'Received: from relay.internal (relay.internal [10.0.0.5]) by mailgate.example.test with ESMTP; Mon, 1 Jan 2026 10:00:00 +0000',
      'Received: from evil.example (evil.example [198.51.100.7])',
      '\tby relay.internal with ESMTP; Mon, 1 Jan 2026 09:59:59 +0000',
    ];
    // Through the trusted relay (ingress marked it a trusted network): judged by the real origin.
    const viaRelay = await fn(
      message({ headers, session: { clientIp: '10.0.0.5', trustedNetwork: true } }),
      stageContext(),
    );
    assert.equal(viaRelay.verdict.kind, 'reject');
    assert.deepEqual(viaRelay.details!['origin'], { ip: '198.51.100.7', source: 'received', via: ['10.0.0.5'] });
    // The same lines from an untrusted client are the sender's own words: ignored, the client is judged.
    const forged = [
      'Received: from evil.example (evil.example [198.51.100.7]) by relay.internal; Mon, 1 Jan 2026 09:59:59 +0000',
    ];
    const direct = await fn(message({ headers: forged, session: { clientIp: '198.51.100.50' } }), stageContext());
    assert.equal(direct.verdict.kind, 'pass');
    assert.deepEqual((direct.details!['targets'] as { value: string }[])[0]!.value, '198.51.100.50');
  });

  test('URI list hit on a link in an HTML body (quoted-printable)', async () => {
    const { fn } = await stageFor();
    const body = [
      '<html><body><p>Great offer: <a href=3D"https://www.evil-link.example/offer?id=3D1">cl=',
      'ick here</a></p></body></html>',
    ].join('\r\n');
    const msg = message({
      contentType: 'text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable',
      body,
    });
    const out = await fn(msg, stageContext());
    assert.equal(out.verdict.kind, 'reject');
    const zones = out.details!['zones'] as {
      zone: string;
      status: string;
      hits?: { target: string; source: string }[];
    }[];
    const uri = zones.find((z) => z.zone === 'uribl.test')!;
    assert.equal(uri.status, 'listed');
    assert.deepEqual(
      uri.hits!.map((h) => [h.target, h.source]),
      [['www.evil-link.example', 'body-url']],
    );
  });

  test('HELO and envelope-sender domains against the domain list', async () => {
    const { fn } = await stageFor();
    const helo = await fn(message({ session: { helo: 'bad-helo.example' } }), stageContext());
    assert.equal(helo.verdict.kind, 'reject');
    const sender = await fn(message({ mailFrom: 'x@Spammer.Example' }), stageContext());
    assert.equal(sender.verdict.kind, 'reject');
    assert.match((sender.verdict as { reason: string }).reason, /dbl\.test\[spammer\.example\]/);
  });

  test('quarantine band and exceptions (every recipient postmaster@/abuse@ passes)', async () => {
    const { fn } = await stageFor({
      zones: [
        { name: 'bl.test', weight: 1 },
        { name: 'dbl.test', type: 'domain', weight: 2 },
      ],
      thresholds: { reject: 3, quarantine: 1 },
    });
    const q = await fn(message({ session: { clientIp: '198.51.100.7' } }), stageContext());
    assert.equal(q.verdict.kind, 'quarantine');
    const r = await fn(
      message({ session: { clientIp: '198.51.100.7' }, mailFrom: 'a@spammer.example' }),
      stageContext(),
    );
    assert.equal(r.verdict.kind, 'reject');
    const ex = await fn(
      message({ session: { clientIp: '198.51.100.7' }, rcptTo: ['postmaster@example.test', 'Abuse@example.test'] }),
      stageContext(),
    );
    assert.equal(ex.verdict.kind, 'pass');
    assert.ok(ex.details!['exception']);
    const mixed = await fn(
      message({ session: { clientIp: '198.51.100.7' }, rcptTo: ['postmaster@example.test', 'u@example.test'] }),
      stageContext(),
    );
    assert.equal(mixed.verdict.kind, 'quarantine');
  });

  test('a zone that cannot be asked: ignored by default, tempfail when the operator chose it', async () => {
    // rbldnsd REFUSES names outside its zones: a resolver failure, handled like a timeout.
    const zones = [...zonesConfig(), { name: 'gone.test', type: 'ip', weight: 5 }];
    const lenient = await stageFor({ zones, health: { enabled: false } });
    const a = await lenient.fn(message(), stageContext());
    assert.equal(a.verdict.kind, 'pass');
    const strict = await stageFor({
      zones: [...zonesConfig(), { name: 'gone.test', weight: 5, onTimeout: 'tempfail' }],
      health: { enabled: false },
    });
    const b = await strict.fn(message(), stageContext());
    assert.equal(b.verdict.kind, 'tempfail');
    assert.match((b.verdict as { reason: string }).reason, /gone\.test/);
    assert.equal(b.raw, undefined, 'nothing added to a message that will be retried');
  });
});
