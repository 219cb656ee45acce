// SPF (RFC 7208) through mailauth, against a real DNS server on loopback.
import { freeUdpPort, startDnsServer, type DnsServerHandle } from '@mailgate/testkit';
import { InMemorySpanExporter, SimpleSpanProcessor, BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SenderAuth, senderAuthConfig } from '../src/index.js';
import { txt, verifierFor } from './helpers.js';

const OK_IP = '192.0.2.10';
const BAD_IP = '198.51.100.7';

describe('SPF against a loopback DNS server', () => {
  let dns: DnsServerHandle;
  before(async () => {
    const includes = Array.from({ length: 11 }, (_, i) =>
      txt(`inc${i}.chain.test`, i < 10 ? `v=spf1 include:inc${i + 1}.chain.test -all` : `v=spf1 ip4:${OK_IP} -all`),
    );
    dns = await startDnsServer({
      records: [
        txt('pass.test', `v=spf1 ip4:192.0.2.0/24 -all`),
        txt('fail.test', 'v=spf1 ip4:203.0.113.1 -all'),
        txt('soft.test', 'v=spf1 ip4:203.0.113.1 ~all'),
        txt('neutral.test', 'v=spf1 ?all'),
        txt('nospf.test', 'some other text record'),
        txt('syntax.test', 'v=spf1 ip4:192.0.2.10 foo:bar -all'),
        txt('twice.test', 'v=spf1 -all'),
        txt('twice.test', 'v=spf1 +all'),
        txt('v6.test', 'v=spf1 ip6:2001:db8::/32 -all'),
        txt('include.test', 'v=spf1 include:_spf.provider.test -all'),
        txt('_spf.provider.test', `v=spf1 ip4:${OK_IP} -all`),
        txt('include-none.test', 'v=spf1 include:nothing-here.test -all'),
        txt('redirect.test', 'v=spf1 redirect=_spf.provider.test'),
        txt('macro.test', 'v=spf1 exists:%{i}._spf.%{d} -all'),
        { name: `${OK_IP}._spf.macro.test`, type: 'A', address: '127.0.0.2' },
        txt('mx.test', 'v=spf1 mx -all'),
        { name: 'mx.test', type: 'MX', priority: 10, exchange: 'mail.mx.test' },
        { name: 'mail.mx.test', type: 'A', address: OK_IP },
        txt('a.test', 'v=spf1 a:host.a.test -all'),
        { name: 'host.a.test', type: 'A', address: OK_IP },
        ...includes,
        txt('chain9.test', 'v=spf1 include:inc1.chain.test -all'), // inc1..inc10: 10 lookups, allowed
        txt('chain11.test', 'v=spf1 include:inc0.chain.test -all'), // 11 lookups: over the limit
        txt('void.test', 'v=spf1 a:v1.void.test a:v2.void.test a:v3.void.test -all'),
        txt('helo.example.test', `v=spf1 ip4:${OK_IP} -all`),
        txt('slow.test', 'v=spf1 include:timeout.slow.test -all'),
      ],
    });
    dns.setFault('timeout.test', 'timeout', 'TXT');
    dns.setFault('servfail.test', 'servfail', 'TXT');
    dns.setFault('timeout.slow.test', 'timeout', 'TXT');
  });
  after(() => dns.close());

  const check = async (mailFrom: string, ip = BAD_IP, helo = 'mail.client.test', overrides = {}) => {
    const v = verifierFor(dns, overrides);
    try {
      return await v.checkSpf({ ip, helo, mailFrom });
    } finally {
      v.close();
    }
  };

  test('pass, fail, softfail, neutral, none', async () => {
    const pass = await check('a@pass.test', OK_IP);
    assert.equal(pass.result, 'pass');
    assert.equal(pass.identity, 'mailfrom');
    assert.equal(pass.domain, 'pass.test');
    assert.equal(pass.record, 'v=spf1 ip4:192.0.2.0/24 -all');
    assert.equal((await check('a@fail.test')).result, 'fail');
    assert.equal((await check('a@soft.test')).result, 'softfail');
    assert.equal((await check('a@neutral.test')).result, 'neutral');
    assert.equal((await check('a@nospf.test')).result, 'none');
    assert.equal((await check('a@nxdomain.test')).result, 'none');
  });

  test('permerror: unknown mechanism, two SPF records', async () => {
    assert.equal((await check('a@syntax.test', OK_IP)).result, 'permerror');
    assert.equal((await check('a@twice.test')).result, 'permerror');
  });

  test('temperror: DNS timeout, SERVFAIL, DNS server down', async () => {
    const t = await check('a@timeout.test');
    assert.equal(t.result, 'temperror');
    assert.match(t.reason ?? '', /timeout|ETIMEOUT/i);
    assert.equal((await check('a@servfail.test')).result, 'temperror');
    // Nobody listens on this port: the resolver gets ECONNREFUSED or times out, never an answer.
    const port = await freeUdpPort();
    const v = new SenderAuth(
      senderAuthConfig({ dns: { resolvers: [`127.0.0.1:${port}`], timeoutMs: 300, tries: 1 } }),
      { hostname: 'mx.gateway.test' },
    );
    try {
      const down = await v.checkSpf({ ip: BAD_IP, helo: 'x.test', mailFrom: 'a@pass.test' });
      assert.equal(down.result, 'temperror');
    } finally {
      v.close();
    }
  });

  test('the whole evaluation has a deadline (timeouts.spfMs)', async () => {
    const started = Date.now();
    const r = await check('a@slow.test', BAD_IP, 'x.test', { timeouts: { spfMs: 150 }, dns: { timeoutMs: 2000 } });
    assert.equal(r.result, 'temperror');
    assert.match(r.reason ?? '', /exceeded 150 ms/);
    assert.ok(Date.now() - started < 1500, 'the deadline cut the 2 s DNS timeout short');
  });

  test('include, redirect, exists with macros, mx, a', async () => {
    assert.equal((await check('a@include.test', OK_IP)).result, 'pass');
    assert.equal((await check('a@include.test', BAD_IP)).result, 'fail');
    assert.equal((await check('a@include-none.test', OK_IP)).result, 'permerror', 'include of a domain without SPF');
    assert.equal((await check('a@redirect.test', OK_IP)).result, 'pass');
    assert.equal((await check('a@redirect.test', BAD_IP)).result, 'fail');
    assert.equal((await check('a@macro.test', OK_IP)).result, 'pass', 'exists:%{i}._spf.%{d} expanded');
    assert.equal((await check('a@macro.test', BAD_IP)).result, 'fail');
    assert.equal((await check('a@mx.test', OK_IP)).result, 'pass');
    assert.equal((await check('a@a.test', OK_IP)).result, 'pass');
  });

  test('the 10 DNS-lookup limit and the void-lookup limit (RFC 7208 §4.6.4)', async () => {
    const ten = await check('a@chain9.test', OK_IP);
    assert.equal(ten.result, 'pass', 'exactly 10 lookups is allowed');
    const eleven = await check('a@chain11.test', OK_IP);
    assert.equal(eleven.result, 'permerror');
    assert.match(eleven.reason ?? '', /Too many DNS requests/);
    const voids = await check('a@void.test', OK_IP);
    assert.equal(voids.result, 'permerror');
    assert.match(voids.reason ?? '', /void/i);
  });

  test('IPv6 and IPv4-mapped addresses', async () => {
    assert.equal((await check('a@v6.test', '2001:db8::25')).result, 'pass');
    assert.equal((await check('a@v6.test', '2001:db9::25')).result, 'fail');
    assert.equal((await check('a@pass.test', `::ffff:${OK_IP}`)).result, 'pass');
  });

  test('null sender: the HELO identity is checked; an address-literal HELO gives none', async () => {
    const r = await check('', OK_IP, 'helo.example.test');
    assert.equal(r.identity, 'helo');
    assert.equal(r.domain, 'helo.example.test');
    assert.equal(r.mailFrom, 'postmaster@helo.example.test');
    assert.equal(r.result, 'pass');
    assert.equal((await check('<>', BAD_IP, 'helo.example.test')).result, 'fail');
    const lit = await check('', OK_IP, '[192.0.2.10]');
    assert.equal(lit.result, 'none');
  });

  test('answers are cached in process (positive and negative), failures are not', async () => {
    const v = verifierFor(dns, {}, { cache: true });
    try {
      await v.checkSpf({ ip: OK_IP, helo: 'x.test', mailFrom: 'a@include.test' });
      const q = v.dns.queries;
      await v.checkSpf({ ip: OK_IP, helo: 'x.test', mailFrom: 'a@include.test' });
      assert.equal(v.dns.queries, q, 'second check answered from the cache');
      await v.checkSpf({ ip: BAD_IP, helo: 'x.test', mailFrom: 'a@nxdomain.test' });
      const q2 = v.dns.queries;
      await v.checkSpf({ ip: BAD_IP, helo: 'x.test', mailFrom: 'a@nxdomain.test' });
      assert.equal(v.dns.queries, q2, 'NXDOMAIN cached');
      await v.checkSpf({ ip: BAD_IP, helo: 'x.test', mailFrom: 'a@servfail.test' });
      const q3 = v.dns.queries;
      await v.checkSpf({ ip: BAD_IP, helo: 'x.test', mailFrom: 'a@servfail.test' });
      assert.ok(v.dns.queries > q3, 'SERVFAIL is asked again');
    } finally {
      v.close();
    }
  });

  test('a cached negative answer throws what DNS threw (code, message), without capturing a stack', async () => {
    const v = verifierFor(dns, {}, { cache: true });
    try {
      const first = await v.dns.resolve('nxdomain.test', 'TXT').then(
        () => assert.fail('resolved'),
        (e: Error & { code?: string }) => e,
      );
      assert.ok(first.code === 'ENOTFOUND' || first.code === 'ENODATA', String(first.code));
      const limit = Error.stackTraceLimit;
      const hits = v.dns.cacheHits;
      const cached = await v.dns.resolve('NXDOMAIN.test.', 'txt').then(
        () => assert.fail('resolved'),
        (e: Error & { code?: string }) => e,
      );
      assert.equal(v.dns.cacheHits, hits + 1);
      assert.ok(cached instanceof Error);
      assert.equal(cached.code, first.code);
      assert.equal(cached.message, `${first.message} (cached)`);
      assert.doesNotMatch(String(cached.stack), /\n\s+at /, 'no stack frames captured');
      assert.equal(Error.stackTraceLimit, limit, 'stackTraceLimit restored');
      assert.notEqual(
        cached,
        await v.dns.resolve('nxdomain.test', 'TXT').catch((e: unknown) => e),
        'new object per hit',
      );
      // The check itself answers the same from the cache.
      const a = await v.checkSpf({ ip: BAD_IP, helo: 'x.test', mailFrom: 'a@nxdomain.test' });
      const b = await v.checkSpf({ ip: BAD_IP, helo: 'x.test', mailFrom: 'a@nxdomain.test' });
      assert.equal(b.result, a.result);
    } finally {
      v.close();
    }
  });

  test('one span per check, with the result', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const v = new SenderAuth(senderAuthConfig({ dns: { resolvers: [dns.server], timeoutMs: 400, tries: 1 } }), {
      hostname: 'mx.gateway.test',
      tracer: provider.getTracer('test'),
    });
    try {
      await v.checkSpf({ ip: BAD_IP, helo: 'x.test', mailFrom: 'a@fail.test' });
    } finally {
      v.close();
    }
    const spans = exporter.getFinishedSpans();
    assert.equal(spans.length, 1);
    assert.equal(spans[0]!.name, 'sender-auth spf');
    assert.equal(spans[0]!.attributes['mailgate.auth.result'], 'fail');
    assert.equal(spans[0]!.attributes['mailgate.auth.domain'], 'fail.test');
  });
});
