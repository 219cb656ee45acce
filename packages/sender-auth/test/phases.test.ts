// The phase helpers ingress (or a stage) will call: atMailFrom and atEndOfData, with metrics, on real DNS.
import { dkimpySign, startDnsServer, type DnsServerHandle } from '@mailgate/testkit';
import { MeterProvider, MetricReader, type DataPoint } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SenderAuth, senderAuthConfig } from '../src/index.js';
import { keyRecord, message, testKey, txt } from './helpers.js';

const OK_IP = '192.0.2.10';
const FORGER_IP = '203.0.113.66';
const key = testKey('phases');

class Reader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

describe('phase helpers: atMailFrom, atEndOfData', () => {
  let dns: DnsServerHandle;
  const reader = new Reader();
  const meter = new MeterProvider({ readers: [reader] }).getMeter('sender-auth-test');
  const counted = async (attrs: Record<string, string>) => {
    const { resourceMetrics } = await reader.collect();
    let n = 0;
    for (const sm of resourceMetrics.scopeMetrics)
      for (const m of sm.metrics)
        if (m.descriptor.name === 'mailgate_auth_results_total')
          for (const dp of m.dataPoints as DataPoint<number>[])
            if (Object.entries(attrs).every(([k, v]) => dp.attributes[k] === v)) n += dp.value;
    return n;
  };
  const auth = (over: Record<string, unknown> = {}) =>
    new SenderAuth(
      senderAuthConfig({
        authservId: 'mx.gateway.test',
        dns: { resolvers: [dns.server], timeoutMs: 400, tries: 1 },
        exempt: { networks: ['10.0.0.0/8'] },
        ...over,
      }),
      { hostname: 'ignored', meter },
    );

  before(async () => {
    dns = await startDnsServer({
      records: [
        txt('bank.test', `v=spf1 ip4:${OK_IP} -all`),
        txt('_dmarc.bank.test', 'v=DMARC1; p=reject'),
        keyRecord('s1', 'bank.test', key),
      ],
    });
  });
  after(() => dns.close());

  const forged = () =>
    Buffer.concat([
      Buffer.from('Authentication-Results: mx.gateway.test; dmarc=pass header.from=bank.test\r\n'),
      message({ from: 'Security <security@bank.test>', subject: 'verify your account' }),
    ]);

  test('a forged From of a p=reject domain: 550 5.7.1 at end of DATA, the forged A-R gone', async () => {
    const a = auth();
    const mf = await a.atMailFrom({ ip: FORGER_IP, helo: 'x.forger.test', mailFrom: 'security@bank.test' });
    assert.equal(mf.spf?.result, 'fail');
    assert.equal(mf.decision.action, 'tag', 'SPF fail alone is tagged by default, not rejected');
    const eod = await a.atEndOfData({
      ip: FORGER_IP,
      helo: 'x.forger.test',
      mailFrom: 'security@bank.test',
      spf: mf.spf!,
      raw: forged(),
    });
    a.close();
    assert.equal(eod.decision.action, 'reject');
    assert.deepEqual([eod.decision.reply?.code, eod.decision.reply?.status], [550, '5.7.1']);
    const text = eod.raw.toString('latin1');
    assert.equal(text.match(/^Authentication-Results:/gm)?.length, 1, 'only ours');
    assert.match(text, /^Authentication-Results: mx\.gateway\.test;\r\n\tspf=fail/);
    assert.match(text, /dmarc=fail \(p=REJECT dis=REJECT/);
    assert.ok((await counted({ method: 'dmarc', result: 'fail' })) >= 1);
    assert.ok((await counted({ method: 'spf', result: 'fail' })) >= 1);
  });

  test('a correctly signed message arrives with spf=pass, dkim=pass, dmarc=pass', async () => {
    const a = auth();
    const raw = await dkimpySign(message({ from: 'a@bank.test' }), {
      domain: 'bank.test',
      selector: 's1',
      key: key.dkimpy,
    });
    const mf = await a.atMailFrom({ ip: OK_IP, helo: 'mail.bank.test', mailFrom: 'a@bank.test' });
    const eod = await a.atEndOfData({ ip: OK_IP, helo: 'mail.bank.test', mailFrom: 'a@bank.test', spf: mf.spf!, raw });
    a.close();
    assert.equal(eod.decision.action, 'accept');
    assert.match(
      eod.raw.toString('latin1'),
      /^Authentication-Results: mx\.gateway\.test;\r\n\tspf=pass [^\r]*;\r\n\tdkim=pass \(2048-bit key\) header\.d=bank\.test header\.s=s1 header\.a=rsa-sha256 header\.b=[^\r]+;\r\n\tdmarc=pass \(p=REJECT\) header\.from=bank\.test;\r\n\tarc=none/,
    );
    assert.ok(eod.raw.subarray(eod.raw.length - raw.length).equals(raw), 'the message follows unchanged');
    assert.ok((await counted({ method: 'dkim', result: 'pass' })) >= 1);
  });

  test('after the 250 (pipeline) the same forgery is quarantined; dry run only records it', async () => {
    const a = auth();
    const p = await a.atEndOfData({
      ip: FORGER_IP,
      helo: 'x',
      mailFrom: 'security@bank.test',
      raw: forged(),
      phase: 'pipeline',
    });
    assert.equal(p.decision.action, 'quarantine');
    a.close();
    const dry = auth({ dryRun: true });
    const d = await dry.atEndOfData({ ip: FORGER_IP, helo: 'x', mailFrom: 'security@bank.test', raw: forged() });
    dry.close();
    assert.equal(d.decision.action, 'accept');
    assert.equal(d.decision.wouldBe?.action, 'reject');
    assert.match(d.raw.toString('latin1'), /dmarc=fail \(p=REJECT dis=NONE/);
  });

  test('exempt sessions are not checked (no DNS), but forged headers are still removed', async () => {
    const a = auth();
    const q = a.dns.queries;
    const mf = await a.atMailFrom({ ip: '10.1.2.3', helo: 'relay.internal', mailFrom: 'x@bank.test' });
    assert.equal(mf.decision.action, 'accept');
    assert.equal(mf.spf, undefined);
    const sub = await a.atEndOfData({
      ip: FORGER_IP,
      helo: 'x',
      mailFrom: 'x@bank.test',
      authenticated: true,
      raw: forged(),
    });
    const relay = await a.atEndOfData({
      ip: '10.1.2.3',
      helo: 'relay.internal',
      mailFrom: 'x@bank.test',
      raw: forged(),
    });
    a.close();
    assert.equal(a.dns.queries, q, 'no DNS question for exempt sessions');
    for (const r of [sub, relay]) {
      assert.equal(r.decision.action, 'accept');
      assert.equal(r.decision.method, 'exempt');
      assert.doesNotMatch(r.raw.toString('latin1'), /^Authentication-Results/m);
    }
  });

  test('one span per check: spf, dkim, arc, dmarc', async () => {
    const exporter = new InMemorySpanExporter();
    const tracer = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).getTracer('t');
    const a = new SenderAuth(senderAuthConfig({ dns: { resolvers: [dns.server], timeoutMs: 400, tries: 1 } }), {
      hostname: 'mx.gateway.test',
      tracer,
    });
    await a.atEndOfData({ ip: FORGER_IP, helo: 'x', mailFrom: 'security@bank.test', raw: forged() });
    a.close();
    const spans = exporter.getFinishedSpans();
    assert.deepEqual(
      spans.map((s) => [s.name, s.attributes['mailgate.auth.result']]),
      [
        ['sender-auth spf', 'fail'],
        ['sender-auth dkim', 'none'],
        ['sender-auth arc', 'none'],
        ['sender-auth dmarc', 'fail'],
      ],
    );
  });

  test('SPF reject at MAIL FROM when configured', async () => {
    const a = auth({ spf: { onFail: 'reject' } });
    const mf = await a.atMailFrom({ ip: FORGER_IP, helo: 'x', mailFrom: 'security@bank.test' });
    a.close();
    assert.equal(mf.decision.action, 'reject');
    assert.deepEqual([mf.decision.reply?.code, mf.decision.reply?.status], [550, '5.7.23']);
  });
});
