// The policy decision: pure, so every rule is tested on hand-made results.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  decide,
  senderAuthConfig,
  type AuthResults,
  type DecisionContext,
  type DkimSignatureResult,
  type DmarcResult,
  type SpfResult,
} from '../src/index.js';

const spf = (result: SpfResult['result'], domain = 'example.test'): SpfResult => ({
  result,
  identity: 'mailfrom',
  domain,
  mailFrom: `a@${domain}`,
  helo: 'mail.client.test',
  ip: '198.51.100.7',
  durationMs: 1,
});
const dkim = (result: DkimSignatureResult['result'], domain = 'example.test'): DkimSignatureResult => ({
  result,
  domain,
  selector: 's1',
  algorithm: 'rsa-sha256',
  aligned: domain.endsWith('example.test'),
});
const dmarc = (
  result: DmarcResult['result'],
  policy: DmarcResult['policy'] = 'reject',
  extra: Partial<DmarcResult> = {},
): DmarcResult => ({
  result,
  fromDomain: 'example.test',
  orgDomain: 'example.test',
  policy,
  p: policy,
  sp: policy,
  pct: 100,
  alignment: { adkim: 'r', aspf: 'r' },
  durationMs: 1,
  ...extra,
});
const results = (r: Partial<AuthResults> & { sigs?: DkimSignatureResult[] }): AuthResults => ({
  ...(r.spf ? { spf: r.spf } : {}),
  dkim: { signatures: r.sigs ?? [], durationMs: 1 },
  ...(r.dmarc ? { dmarc: r.dmarc } : {}),
  ...(r.arc ? { arc: r.arc } : {}),
});
const DATA: DecisionContext = { phase: 'data', clientIp: '198.51.100.7' };

describe('policy: decide()', () => {
  const cfg = senderAuthConfig();

  test('defaults: DMARC p=reject fail → 550 5.7.1; p=quarantine → quarantine; pass/none → accept', () => {
    const r = decide(results({ spf: spf('fail'), dmarc: dmarc('fail') }), cfg, DATA);
    assert.equal(r.action, 'reject');
    assert.deepEqual(r.reply, {
      code: 550,
      status: '5.7.1',
      text: 'Message rejected: example.test DMARC policy does not allow this sender',
    });
    assert.equal(r.method, 'dmarc');
    assert.equal(r.disposition, 'reject');
    assert.equal(decide(results({ dmarc: dmarc('fail', 'quarantine') }), cfg, DATA).action, 'quarantine');
    assert.equal(decide(results({ dmarc: dmarc('pass') }), cfg, DATA).action, 'accept');
    assert.equal(decide(results({ dmarc: dmarc('none', undefined) }), cfg, DATA).action, 'accept');
    assert.equal(decide(results({ dmarc: dmarc('permerror', undefined) }), cfg, DATA).action, 'accept');
  });

  test('after the 250 (pipeline) a reject is a quarantine: never a bounce', () => {
    const r = decide(results({ dmarc: dmarc('fail') }), cfg, { phase: 'pipeline' });
    assert.equal(r.action, 'quarantine');
    assert.equal(r.reply, undefined);
    assert.equal(r.disposition, 'quarantine');
    const spfReject = senderAuthConfig({ spf: { onFail: 'reject' } });
    assert.equal(decide(results({ spf: spf('fail') }), spfReject, { phase: 'pipeline' }).action, 'tag');
  });

  test('DMARC actions are configurable: onReject quarantine/tag/ignore, onQuarantine tag/ignore', () => {
    const fail = results({ dmarc: dmarc('fail') });
    assert.equal(decide(fail, senderAuthConfig({ dmarc: { onReject: 'quarantine' } }), DATA).action, 'quarantine');
    assert.equal(decide(fail, senderAuthConfig({ dmarc: { onReject: 'tag' } }), DATA).action, 'tag');
    assert.equal(decide(fail, senderAuthConfig({ dmarc: { onReject: 'ignore' } }), DATA).action, 'accept');
    const q = results({ dmarc: dmarc('fail', 'quarantine') });
    assert.equal(decide(q, senderAuthConfig({ dmarc: { onQuarantine: 'tag' } }), DATA).action, 'tag');
    assert.equal(decide(q, senderAuthConfig({ dmarc: { onQuarantine: 'ignore' } }), DATA).action, 'accept');
    assert.equal(decide(fail, senderAuthConfig({ dmarc: { enabled: false } }), DATA).action, 'accept');
  });

  test('SPF -all: reject at MAIL FROM (550 5.7.23), tag, or ignore; softfail tag is opt-in', () => {
    const reject = senderAuthConfig({ spf: { onFail: 'reject' } });
    const r = decide(results({ spf: spf('fail') }), reject, { phase: 'mail-from' });
    assert.equal(r.action, 'reject');
    assert.deepEqual([r.reply?.code, r.reply?.status], [550, '5.7.23']);
    assert.match(r.reply!.text, /example\.test does not permit 198\.51\.100\.7/);
    assert.equal(decide(results({ spf: spf('fail') }), cfg, { phase: 'mail-from' }).action, 'tag');
    assert.equal(
      decide(results({ spf: spf('fail') }), senderAuthConfig({ spf: { onFail: 'ignore' } }), DATA).action,
      'accept',
    );
    assert.equal(decide(results({ spf: spf('softfail') }), cfg, DATA).action, 'accept');
    assert.equal(
      decide(results({ spf: spf('softfail') }), senderAuthConfig({ spf: { onSoftfail: 'tag' } }), DATA).action,
      'tag',
    );
    // DMARC is never decided at MAIL FROM: it is not known yet.
    assert.equal(decide(results({ dmarc: dmarc('fail') }), cfg, { phase: 'mail-from' }).action, 'accept');
  });

  test('an SPF warning is not added when DMARC passes (forwarded mail with an aligned DKIM signature)', () => {
    const fwd = results({ spf: spf('fail'), sigs: [dkim('pass')], dmarc: dmarc('pass') });
    assert.equal(decide(fwd, cfg, DATA).action, 'accept');
    assert.equal(
      decide(fwd, senderAuthConfig({ spf: { onFail: 'reject' } }), DATA).action,
      'reject',
      'an explicit reject stays',
    );
  });

  test('exemptions: authenticated sessions, trusted networks, sender domains', () => {
    const bad = results({ spf: spf('fail'), dmarc: dmarc('fail') });
    const ex = senderAuthConfig({ exempt: { networks: ['10.0.0.0/8', '2001:db8::/32'], domains: ['example.test'] } });
    assert.equal(decide(bad, cfg, { ...DATA, authenticated: true }).action, 'accept');
    assert.equal(
      decide(bad, senderAuthConfig({ exempt: { authenticated: false } }), { ...DATA, authenticated: true }).action,
      'reject',
    );
    const net = decide(bad, ex, { phase: 'data', clientIp: '10.1.2.3' });
    assert.equal(net.action, 'accept');
    assert.match(net.reason, /trusted network 10\.0\.0\.0\/8/);
    assert.equal(decide(bad, ex, { phase: 'data', clientIp: '::ffff:10.1.2.3' }).action, 'accept');
    assert.equal(decide(bad, ex, { phase: 'data', clientIp: '2001:db8::1' }).action, 'accept');
    assert.equal(decide(bad, ex, DATA).action, 'accept', 'example.test is an exempt domain');
    const sub = results({
      spf: spf('fail', 'mail.example.test'),
      dmarc: { ...dmarc('fail'), fromDomain: 'eu.example.test' },
    });
    assert.equal(
      decide(sub, senderAuthConfig({ exempt: { domains: ['example.test'] }, spf: { onFail: 'reject' } }), DATA).action,
      'accept',
    );
  });

  test('dry run records the would-be decision and accepts', () => {
    const r = decide(results({ dmarc: dmarc('fail') }), senderAuthConfig({ dryRun: true }), DATA);
    assert.equal(r.action, 'accept');
    assert.equal(r.dryRun, true);
    assert.equal(r.wouldBe?.action, 'reject');
    assert.equal(r.wouldBe?.reply?.code, 550);
    assert.match(r.reason, /^dry run: would reject: DMARC fail/);
    assert.equal(r.disposition, 'none', 'nothing was done about the policy');
    const ok = decide(results({ dmarc: dmarc('pass') }), senderAuthConfig({ dryRun: true }), DATA);
    assert.equal(ok.dryRun, undefined);
  });

  test('temperror holds (451 4.7.5) only when it could change the outcome', () => {
    const tf = (r: AuthResults, c = cfg, ctx: DecisionContext = DATA) => decide(r, c, ctx);
    // DMARC record unknown.
    const rec = tf(results({ dmarc: dmarc('temperror', undefined) }));
    assert.equal(rec.action, 'tempfail');
    assert.deepEqual([rec.reply?.code, rec.reply?.status], [451, '4.7.5']);
    // An aligned DKIM signature could not be checked and DMARC would reject: hold.
    assert.equal(tf(results({ sigs: [dkim('temperror')], dmarc: dmarc('fail') })).action, 'tempfail');
    // Same, but the signature is of an unrelated domain: it cannot make DMARC pass.
    assert.equal(tf(results({ sigs: [dkim('temperror', 'other.test')], dmarc: dmarc('fail') })).action, 'reject');
    // Aligned SPF could not be checked.
    assert.equal(tf(results({ spf: spf('temperror'), dmarc: dmarc('fail') })).action, 'tempfail');
    // DMARC already passes: the temperrors do not matter.
    assert.equal(
      tf(results({ spf: spf('temperror'), sigs: [dkim('pass'), dkim('temperror')], dmarc: dmarc('pass') })).action,
      'accept',
    );
    // p=none: nothing to enforce, nothing to wait for.
    assert.equal(tf(results({ sigs: [dkim('temperror')], dmarc: dmarc('fail', 'none') })).action, 'accept');
    // SPF temperror at MAIL FROM holds only when an SPF fail would be rejected.
    assert.equal(tf(results({ spf: spf('temperror') }), cfg, { phase: 'mail-from' }).action, 'accept');
    assert.equal(
      tf(results({ spf: spf('temperror') }), senderAuthConfig({ spf: { onFail: 'reject' } }), { phase: 'mail-from' })
        .action,
      'tempfail',
    );
  });

  test('fail open per check, or after N attempts', () => {
    const pending = results({ sigs: [dkim('temperror')], dmarc: dmarc('fail') });
    const open = decide(pending, senderAuthConfig({ temperror: { failOpen: ['dkim'] } }), DATA);
    assert.equal(open.action, 'accept');
    assert.deepEqual(open.failedOpen, ['dkim']);
    assert.match(open.reason, /failed open on dkim/);
    const other = decide(pending, senderAuthConfig({ temperror: { failOpen: ['spf'] } }), DATA);
    assert.equal(other.action, 'tempfail', 'only the listed checks fail open');
    const afterN = senderAuthConfig({ temperror: { failOpenAfterAttempts: 3 } });
    assert.equal(decide(pending, afterN, { ...DATA, attempts: 2 }).action, 'tempfail');
    const third = decide(pending, afterN, { ...DATA, attempts: 3 });
    assert.equal(third.action, 'accept');
    assert.deepEqual(third.failedOpen, ['dkim']);
  });

  test('trusted ARC sealers override a DMARC fail when they saw it pass', () => {
    const arcPass = (claims: Record<string, unknown>, sealer = 'lists.test') =>
      results({ dmarc: dmarc('fail'), arc: { result: 'pass', instance: 1, sealer, claims, durationMs: 1 } });
    const trusting = senderAuthConfig({ arc: { trustedSealers: ['lists.test'] } });
    assert.equal(decide(arcPass({ dmarc: 'pass' }), trusting, DATA).action, 'accept');
    assert.equal(
      decide(arcPass({ dmarc: 'pass' }, 'mx.lists.test'), trusting, DATA).action,
      'accept',
      'subdomain of a trusted sealer',
    );
    assert.equal(
      decide(arcPass({ dkim: [{ result: 'pass', domain: 'mail.example.test' }] }), trusting, DATA).action,
      'accept',
    );
    assert.equal(decide(arcPass({ spf: 'pass', spfMailFrom: 'a@example.test' }), trusting, DATA).action, 'accept');
    assert.equal(
      decide(arcPass({ dkim: [{ result: 'pass', domain: 'lists.test' }] }), trusting, DATA).action,
      'reject',
      'unaligned claims do not count',
    );
    assert.equal(decide(arcPass({ dmarc: 'pass' }, 'evil.test'), trusting, DATA).action, 'reject');
    assert.equal(decide(arcPass({ dmarc: 'pass' }), cfg, DATA).action, 'reject', 'no trusted sealers configured');
    const failed = results({ dmarc: dmarc('fail'), arc: { result: 'fail', sealer: 'lists.test', durationMs: 1 } });
    assert.equal(decide(failed, trusting, DATA).action, 'reject');
    const temp = results({ dmarc: dmarc('fail'), arc: { result: 'temperror', durationMs: 1 } });
    assert.equal(decide(temp, trusting, DATA).action, 'tempfail');
    assert.equal(decide(temp, cfg, DATA).action, 'reject', 'ARC cannot matter without trusted sealers');
  });

  test('the most severe outcome wins across methods; replies can be reworded', () => {
    const c = senderAuthConfig({
      spf: { onFail: 'reject' },
      replies: { dmarcReject: { code: 554, status: '5.7.26', text: 'Policy of {domain} says no ({result})' } },
    });
    const r = decide(results({ spf: spf('fail'), dmarc: dmarc('temperror', undefined) }), c, DATA);
    assert.equal(r.action, 'reject', 'an SPF reject is not retried because DMARC was unknown');
    assert.equal(r.method, 'spf');
    const d = decide(results({ dmarc: dmarc('fail') }), c, DATA);
    assert.deepEqual(d.reply, { code: 554, status: '5.7.26', text: 'Policy of example.test says no (fail)' });
  });
});
