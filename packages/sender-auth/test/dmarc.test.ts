// DMARC (RFC 7489): alignment, p=/sp=/pct=, strict modes, DNS failures; and the policy decision on real results.
import { dkimpySign, startDnsServer, type DnsServerHandle } from '@mailgate/testkit';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sampleBucket, type AuthResults, type DecisionPhase } from '../src/index.js';
import { keyRecord, message, testKey, txt, verifierFor } from './helpers.js';

const OK_IP = '192.0.2.10';
const BAD_IP = '198.51.100.7';
const key = testKey('dmarc-rsa');

const DOMAINS: Record<string, string> = {
  'reject.test': 'v=DMARC1; p=reject',
  'quar.test': 'v=DMARC1; p=quarantine',
  'none.test': 'v=DMARC1; p=none; rua=mailto:d@none.test',
  'sp.test': 'v=DMARC1; p=reject; sp=quarantine',
  'spnone.test': 'v=DMARC1; p=reject; sp=none',
  'strict.test': 'v=DMARC1; p=reject; adkim=s; aspf=s',
  'relaxed.test': 'v=DMARC1; p=reject',
  'pct0.test': 'v=DMARC1; p=reject; pct=0',
  'pct50.test': 'v=DMARC1; p=reject; pct=50',
  'other.test': 'v=DMARC1; p=none',
};

describe('DMARC against a loopback DNS server', () => {
  let dns: DnsServerHandle;
  before(async () => {
    const records = [];
    for (const [d, rec] of Object.entries(DOMAINS)) {
      records.push(txt(`_dmarc.${d}`, rec), txt(d, `v=spf1 ip4:${OK_IP} -all`), keyRecord('s1', d, key));
    }
    records.push(txt('mail.reject.test', `v=spf1 ip4:${OK_IP} -all`), txt('nodmarc.test', `v=spf1 ip4:${OK_IP} -all`));
    dns = await startDnsServer({ records });
    dns.setFault('_dmarc.dnsdown.test', 'timeout', 'TXT');
  });
  after(() => dns.close());

  const signAs = (raw: Buffer, domain: string) => dkimpySign(raw, { domain, selector: 's1', key: key.dkimpy });
  const run = async (
    raw: Buffer,
    env: { ip?: string; mailFrom?: string },
    overrides = {},
  ): Promise<{
    results: AuthResults;
    decide: (phase?: DecisionPhase, sampleKey?: string) => ReturnType<typeof v.decide>;
    header: string;
  }> => {
    const v = verifierFor(dns, overrides);
    const results = await v.verifyMessage({
      raw,
      ip: env.ip ?? BAD_IP,
      helo: 'mail.client.test',
      mailFrom: env.mailFrom ?? 'bounce@unrelated.test',
    });
    v.close();
    const decide = (phase: DecisionPhase = 'data', sampleKey?: string) =>
      v.decide(results, { phase, clientIp: env.ip ?? BAD_IP, ...(sampleKey ? { sampleKey } : {}) });
    return { results, decide, header: v.headers(results, decide()) };
  };

  test('aligned DKIM passes DMARC even when SPF fails', async () => {
    const r = await run(await signAs(message({ from: 'a@reject.test' }), 'reject.test'), {
      mailFrom: 'a@reject.test',
    });
    assert.equal(r.results.spf!.result, 'fail');
    assert.equal(r.results.dmarc!.result, 'pass');
    assert.equal(r.results.dmarc!.alignment!.dkim, 'reject.test');
    assert.equal(r.decide().action, 'accept');
    assert.match(r.header, /dmarc=pass \(p=REJECT\) header\.from=reject\.test/);
  });

  test('aligned SPF passes DMARC without DKIM, relaxed: envelope in a subdomain', async () => {
    const r = await run(message({ from: 'a@reject.test' }), { ip: OK_IP, mailFrom: 'bounce@mail.reject.test' });
    assert.equal(r.results.spf!.result, 'pass');
    assert.equal(r.results.dmarc!.result, 'pass');
    assert.equal(r.results.dmarc!.alignment!.spf, 'mail.reject.test');
  });

  test('unaligned: forged From of a p=reject domain → 550 5.7.1 at end of DATA, quarantine after the 250', async () => {
    // Everything authenticates, but for other.test: the From domain is not vouched for.
    const r = await run(await signAs(message({ from: 'ceo@reject.test' }), 'other.test'), {
      ip: OK_IP,
      mailFrom: 'bounce@other.test',
    });
    assert.equal(r.results.spf!.result, 'pass');
    assert.equal(r.results.dkim!.signatures[0]!.result, 'pass');
    assert.equal(r.results.dmarc!.result, 'fail');
    assert.equal(r.results.dmarc!.policy, 'reject');
    const d = r.decide('data');
    assert.equal(d.action, 'reject');
    assert.deepEqual([d.reply?.code, d.reply?.status], [550, '5.7.1']);
    assert.match(d.reply!.text, /reject\.test DMARC policy/);
    const after250 = r.decide('pipeline');
    assert.equal(after250.action, 'quarantine', 'never a bounce after acceptance');
    assert.equal(after250.reply, undefined);
    assert.match(r.header, /dmarc=fail \(p=REJECT dis=REJECT no aligned SPF or DKIM pass\) header\.from=reject\.test/);
  });

  test('p=quarantine → quarantine (or tag when configured); p=none → accept', async () => {
    const q = await run(message({ from: 'a@quar.test' }), {});
    assert.equal(q.results.dmarc!.result, 'fail');
    assert.equal(q.decide().action, 'quarantine');
    const tagged = await run(message({ from: 'a@quar.test' }), {}, { dmarc: { onQuarantine: 'tag' } });
    const td = tagged.decide();
    assert.equal(td.action, 'tag');
    assert.match(tagged.header, /X-Mailgate-Auth: DMARC fail for quar\.test/);
    const n = await run(message({ from: 'a@none.test' }), {});
    assert.equal(n.results.dmarc!.result, 'fail');
    assert.equal(n.results.dmarc!.policy, 'none');
    assert.equal(n.decide().action, 'accept');
  });

  test('subdomain policy sp= from the organisational record', async () => {
    const q = await run(message({ from: 'a@sub.sp.test' }), {});
    assert.equal(q.results.dmarc!.result, 'fail');
    assert.equal(q.results.dmarc!.policy, 'quarantine');
    assert.equal(q.results.dmarc!.orgDomain, 'sp.test');
    assert.equal(q.decide().action, 'quarantine');
    const n = await run(message({ from: 'a@sub.spnone.test' }), {});
    assert.equal(n.results.dmarc!.policy, 'none');
    assert.equal(n.decide().action, 'accept');
    const top = await run(message({ from: 'a@spnone.test' }), {});
    assert.equal(top.results.dmarc!.policy, 'reject', 'p= for the organisational domain itself');
  });

  test('strict alignment (adkim=s, aspf=s) is enforced; relaxed accepts the parent domain', async () => {
    const strict = await run(await signAs(message({ from: 'a@sub.strict.test' }), 'strict.test'), {
      ip: OK_IP,
      mailFrom: 'b@strict.test',
    });
    assert.equal(strict.results.dkim!.signatures[0]!.result, 'pass');
    assert.equal(strict.results.spf!.result, 'pass');
    assert.equal(strict.results.dmarc!.result, 'fail', 'd=strict.test does not strictly align with sub.strict.test');
    assert.deepEqual([strict.results.dmarc!.alignment!.adkim, strict.results.dmarc!.alignment!.aspf], ['s', 's']);
    const relaxed = await run(await signAs(message({ from: 'a@sub.relaxed.test' }), 'relaxed.test'), {});
    assert.equal(relaxed.results.dmarc!.result, 'pass');
  });

  test('pct=: outside the sample the next weaker policy applies; sampling is deterministic per message', async () => {
    const zero = await run(message({ from: 'a@pct0.test' }), {});
    assert.equal(zero.results.dmarc!.pct, 0);
    const d = zero.decide('data', 'msg-1');
    assert.equal(d.action, 'quarantine');
    assert.match(d.reason, /outside pct=0 sample/);
    const half = await run(message({ from: 'a@pct50.test' }), {});
    const inKey = ['k1', 'k2', 'k3', 'k4', 'k5', 'k6'].find((k) => sampleBucket(k) < 50)!;
    const outKey = ['k1', 'k2', 'k3', 'k4', 'k5', 'k6'].find((k) => sampleBucket(k) >= 50)!;
    assert.equal(half.decide('data', inKey).action, 'reject');
    assert.equal(half.decide('data', outKey).action, 'quarantine');
    assert.equal(half.decide('data', inKey).action, 'reject', 'same key, same answer');
    const ignored = await run(message({ from: 'a@pct0.test' }), {}, { dmarc: { honourPct: false } });
    assert.equal(ignored.decide('data', 'msg-1').action, 'reject');
  });

  test('DMARC record lookup failure → temperror → 451 4.7.5 (fail closed), or accept when configured fail-open', async () => {
    const r = await run(message({ from: 'a@dnsdown.test' }), {});
    assert.equal(r.results.dmarc!.result, 'temperror');
    const d = r.decide();
    assert.equal(d.action, 'tempfail');
    assert.deepEqual([d.reply?.code, d.reply?.status], [451, '4.7.5']);
    const open = await run(message({ from: 'a@dnsdown.test' }), {}, { temperror: { failOpen: ['dmarc'] } });
    const od = open.decide();
    assert.equal(od.action, 'accept');
    assert.deepEqual(od.failedOpen, ['dmarc']);
  });

  test('no DMARC record → none; several From domains → the strictest outcome', async () => {
    const none = await run(message({ from: 'a@nodmarc.test' }), {});
    assert.equal(none.results.dmarc!.result, 'none');
    assert.equal(none.decide().action, 'accept');
    const multi = await run(message({ from: 'a@none.test, b@reject.test' }), {});
    assert.equal(multi.results.dmarc!.result, 'fail');
    assert.equal(multi.results.dmarc!.fromDomain, 'reject.test');
    assert.equal(multi.decide().action, 'reject');
  });
});
