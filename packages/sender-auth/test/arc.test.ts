// ARC (RFC 8617): chains sealed by dkimpy validated by mailgate, the trusted-sealer DMARC override, and
// mailgate's own seals validated by dkimpy.
import { dkimpyArcSign, dkimpyArcVerify, dkimpySign, startDnsServer, type DnsServerHandle } from '@mailgate/testkit';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { arcSeal, loadSigningKeys, senderAuthConfig, signMessage } from '../src/index.js';
import { keyRecord, message, testKey, txt, verifierFor } from './helpers.js';

const LIST_IP = '192.0.2.40';
const sender = testKey('arc-sender');
const list = testKey('arc-list');
const hop2 = testKey('arc-hop2');
const gw = testKey('arc-gateway');

/** What a mailing list does: records what it verified, rewrites subject and body, seals. */
async function throughList(
  raw: Buffer,
  dns: DnsServerHandle,
  claims = 'dkim=pass header.d=orig.test header.s=s1; spf=pass smtp.mailfrom=a@orig.test; dmarc=pass header.from=orig.test',
): Promise<Buffer> {
  const received = Buffer.concat([Buffer.from(`Authentication-Results: lists.test; ${claims}\r\n`), raw]);
  const modified = Buffer.from(
    received
      .toString('latin1')
      .replace('Subject: quarterly', 'Subject: [team] quarterly')
      .replace(/\r\n$/, '\r\n-- \r\nteam mailing list\r\n'),
    'latin1',
  );
  return dkimpyArcSign(modified, { domain: 'lists.test', selector: 'arc1', key: list.dkimpy, srvId: 'lists.test' });
}

describe('ARC', () => {
  let dns: DnsServerHandle;
  before(async () => {
    dns = await startDnsServer({
      records: [
        keyRecord('s1', 'orig.test', sender),
        txt('_dmarc.orig.test', 'v=DMARC1; p=reject'),
        txt('orig.test', 'v=spf1 ip4:203.0.113.5 -all'),
        keyRecord('arc1', 'lists.test', list),
        txt('lists.test', `v=spf1 ip4:${LIST_IP} -all`),
        keyRecord('arc2', 'hop2.test', hop2),
        keyRecord('gw1', 'gateway.test', gw),
      ],
    });
    dns.setFault('arcslow._domainkey.lists.test', 'timeout', 'TXT');
  });
  after(() => dns.close());

  const original = () =>
    dkimpySign(message({ from: 'a@orig.test' }), { domain: 'orig.test', selector: 's1', key: sender.dkimpy });
  const verify = async (raw: Buffer, overrides = {}) => {
    const v = verifierFor(dns, overrides);
    try {
      const results = await v.verifyMessage({
        raw,
        ip: LIST_IP,
        helo: 'mail.lists.test',
        mailFrom: 'team-bounces@lists.test',
      });
      return { results, decision: v.decide(results, { phase: 'data', clientIp: LIST_IP }), v };
    } finally {
      v.close();
    }
  };

  test('a list-modified message: DKIM and DMARC fail, the ARC chain passes; a trusted sealer overrides DMARC', async () => {
    const raw = await throughList(await original(), dns);
    const { results, decision } = await verify(raw);
    assert.equal(results.dkim!.signatures.find((s) => s.domain === 'orig.test')!.result, 'fail');
    assert.equal(results.spf!.result, 'pass');
    assert.equal(results.dmarc!.result, 'fail');
    assert.equal(results.arc!.result, 'pass');
    assert.equal(results.arc!.instance, 1);
    assert.equal(results.arc!.sealer, 'lists.test');
    assert.equal(results.arc!.claims!.dmarc, 'pass');
    assert.equal(decision.action, 'reject', 'not trusted: the DMARC policy applies');

    const trusted = await verify(raw, { arc: { trustedSealers: ['lists.test'] } });
    assert.equal(trusted.decision.action, 'accept');
    assert.match(trusted.decision.reason, /trusted ARC sealer lists\.test saw dmarc=pass/);
    assert.equal(trusted.decision.disposition, 'none');
    const hdr = trusted.v.headers(trusted.results, trusted.decision, { remoteIp: LIST_IP });
    assert.match(hdr, /arc=pass \(i=1 sealer=lists\.test\) smtp\.remote-ip=192\.0\.2\.40/);
    assert.match(hdr, /dmarc=fail \(p=REJECT dis=NONE/);
  });

  test('a trusted sealer that saw a DMARC failure does not override it', async () => {
    const raw = await throughList(
      await original(),
      dns,
      'dkim=fail header.d=orig.test; spf=fail smtp.mailfrom=a@orig.test; dmarc=fail header.from=orig.test',
    );
    const { results, decision } = await verify(raw, { arc: { trustedSealers: ['lists.test'] } });
    assert.equal(results.arc!.result, 'pass');
    assert.equal(decision.action, 'reject');
  });

  test('modified after sealing → arc=fail', async () => {
    const raw = await throughList(await original(), dns);
    const tampered = Buffer.from(raw.toString('latin1').replace('team mailing list', 'evil mailing list'), 'latin1');
    const { results, decision } = await verify(tampered, { arc: { trustedSealers: ['lists.test'] } });
    assert.equal(results.arc!.result, 'fail');
    assert.equal(decision.action, 'reject');
  });

  test('a chain of two sets (i=2) passes', async () => {
    const one = await throughList(await original(), dns);
    const withAr = Buffer.concat([
      Buffer.from('Authentication-Results: hop2.test; arc=pass; dmarc=fail header.from=orig.test\r\n'),
      one,
    ]);
    const two = await dkimpyArcSign(withAr, {
      domain: 'hop2.test',
      selector: 'arc2',
      key: hop2.dkimpy,
      srvId: 'hop2.test',
    });
    const { results } = await verify(two);
    assert.equal(results.arc!.result, 'pass');
    assert.equal(results.arc!.instance, 2);
    assert.equal(results.arc!.sealer, 'hop2.test');
  });

  test('seal key lookup timeout → arc=temperror → tempfail when the override could apply', async () => {
    const raw = await throughList(await original(), dns);
    const slowSel = Buffer.from(raw.toString('latin1').replace(/(ARC-Seal:[^]*?s=)arc1/, '$1arcslow'), 'latin1');
    const { results, decision } = await verify(slowSel, { arc: { trustedSealers: ['lists.test'] } });
    assert.equal(results.arc!.result, 'temperror');
    assert.equal(decision.action, 'tempfail');
    assert.equal(decision.reply?.code, 451);
  });

  /** The original message as our inbound check saw it: its results, and the message with our A-R on top. */
  async function verifiedByUs() {
    const v = verifierFor(dns);
    const inbound = await original();
    const results = await v.verifyMessage({
      raw: inbound,
      ip: '203.0.113.5',
      helo: 'mx.orig.test',
      mailFrom: 'a@orig.test',
    });
    v.close();
    const withOurs = Buffer.concat([Buffer.from(v.headers(results, v.decide(results, { phase: 'data' }))), inbound]);
    return { inbound, results, withOurs };
  }

  test("mailgate's ARC seal on forwarded mail is validated by dkimpy (new chain and continued chain)", async () => {
    const cfg = senderAuthConfig({
      signing: {
        enabled: true,
        domains: [{ domain: 'gateway.test', keys: [{ selector: 'gw1', keyFile: '/keys/gw1' }] }],
        arcSeal: { enabled: true, domain: 'gateway.test', selector: 'gw1', keyFile: '/keys/gw1' },
      },
    });
    const keys = loadSigningKeys(cfg.signing, { readFile: () => Buffer.from(gw.pem) });

    // New chain: a message we verified (our A-R at the top), forwarded outside.
    const { inbound, results, withOurs } = await verifiedByUs();
    assert.equal(results.dmarc!.result, 'pass');
    const sealed = await signMessage(withOurs, keys, { arcSeal: { authservId: 'mx.gateway.test' } });
    assert.equal(sealed.arcInstance, 1);
    assert.match(sealed.raw.toString('latin1'), /^ARC-Seal: i=1; a=rsa-sha256;[^]*cv=none/);
    assert.match(sealed.raw.toString('latin1'), /ARC-Authentication-Results: i=1; mx\.gateway\.test; spf=pass/);
    assert.equal((await dkimpyArcVerify(sealed.raw, dns)).cv, 'pass');

    // Continued chain: a list message (i=1 by lists.test) that we verified and forward: i=2, cv=pass.
    const listMsg = await throughList(await original(), dns);
    const v2 = verifierFor(dns);
    const r2 = await v2.verifyMessage({
      raw: listMsg,
      ip: LIST_IP,
      helo: 'mail.lists.test',
      mailFrom: 'team-bounces@lists.test',
    });
    v2.close();
    const fwd = Buffer.concat([Buffer.from(v2.headers(r2, v2.decide(r2, { phase: 'data' }))), listMsg]);
    const sealed2 = await signMessage(fwd, keys, { arcSeal: { authservId: 'mx.gateway.test' } });
    assert.equal(sealed2.arcInstance, 2);
    assert.equal((await dkimpyArcVerify(sealed2.raw, dns)).cv, 'pass');
    // And our own verifier agrees.
    const v3 = await verify(sealed2.raw);
    assert.equal(v3.results.arc!.result, 'pass');
    assert.equal(v3.results.arc!.instance, 2);
    assert.equal(v3.results.arc!.sealer, 'gateway.test');

    // Without our A-R there is nothing to record: not sealed, and said so.
    const bare = await signMessage(inbound, keys, { arcSeal: { authservId: 'mx.gateway.test' } });
    assert.equal(bare.arcInstance, undefined);
    assert.match(bare.skipped ?? '', /no Authentication-Results from mx\.gateway\.test/);
  });

  test('a seal whose signing straddles a clock second still validates: one t= for the whole set', async (t) => {
    const cfg = senderAuthConfig({
      signing: { enabled: false, arcSeal: { enabled: true, domain: 'gateway.test', selector: 'gw1', keyFile: '/k' } },
    });
    const keys = loadSigningKeys(cfg.signing, { readFile: () => Buffer.from(gw.pem) });
    const { withOurs } = await verifiedByUs();
    // Every read of the clock during the seal is a second later than the one before: what a slow signature (a
    // loaded machine) does at a second boundary. The seal must not depend on how often the library reads it.
    let clock = Date.now();
    t.mock.method(Date, 'now', () => (clock += 1000));
    const sealed = await arcSeal(withOurs, keys, { authservId: 'mx.gateway.test' });
    t.mock.restoreAll();
    assert.equal(sealed.arcInstance, 1);
    const stamps = [...sealed.raw.toString('latin1').matchAll(/^ARC-(?:Seal|Message-Signature):[^]*?\bt=(\d+)/gm)];
    assert.equal(stamps.length, 2);
    assert.equal(stamps[0]![1], stamps[1]![1], 'the AS and the AMS carry the same t=');
    assert.deepEqual(await dkimpyArcVerify(sealed.raw, dns), { cv: 'pass', comment: 'success' });

    // A signing time in the second half of a second: mailauth rounds it for the AS and truncates it for the AMS,
    // so the set is stamped with the whole second (what a clock at x.7 s gives half the time in production).
    const late = new Date(Math.floor(Date.now() / 1000) * 1000 + 700);
    const sealedLate = await arcSeal(withOurs, keys, { authservId: 'mx.gateway.test', time: late });
    const lateStamps = [
      ...sealedLate.raw.toString('latin1').matchAll(/^ARC-(?:Seal|Message-Signature):[^]*?\bt=(\d+)/gm),
    ];
    assert.deepEqual(
      lateStamps.map((m) => m[1]),
      [String(Math.floor(late.getTime() / 1000)), String(Math.floor(late.getTime() / 1000))],
    );
    assert.deepEqual(await dkimpyArcVerify(sealedLate.raw, dns), { cv: 'pass', comment: 'success' });
  });
});
