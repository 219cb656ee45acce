// DKIM verification of messages signed by an independent implementation (dkimpy), keys served by loopback DNS.
import { dkimpySign, startDnsServer, type DnsServerHandle } from '@mailgate/testkit';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AuthResults } from '../src/index.js';
import { keyRecord, message, testKey, verifierFor } from './helpers.js';

const rsa = testKey('sender-rsa');
const ed = testKey('sender-ed', 'ed25519');
const weak = testKey('sender-weak', 'rsa', 1024);

describe('DKIM: dkimpy signs, mailgate verifies', () => {
  let dns: DnsServerHandle;
  before(async () => {
    dns = await startDnsServer({
      records: [
        keyRecord('rsa1', 'example.test', rsa),
        keyRecord('ed1', 'example.test', ed),
        keyRecord('weak', 'example.test', weak),
      ],
    });
    dns.setFault('slow._domainkey.example.test', 'timeout', 'TXT');
  });
  after(() => dns.close());

  const verify = async (raw: Buffer, overrides = {}): Promise<AuthResults> => {
    const v = verifierFor(dns, {
      spf: { enabled: false },
      dmarc: { enabled: false },
      arc: { enabled: false },
      ...overrides,
    });
    try {
      return await v.verifyMessage({ raw, ip: '192.0.2.1', helo: 'mail.example.test', mailFrom: 'alice@example.test' });
    } finally {
      v.close();
    }
  };
  const sign = (raw: Buffer, o: Partial<Parameters<typeof dkimpySign>[1]> = {}) =>
    dkimpySign(raw, { domain: 'example.test', selector: 'rsa1', key: rsa.dkimpy, ...o });

  test('rsa-sha256 relaxed/relaxed and simple/simple pass', async () => {
    for (const c of [
      ['relaxed', 'relaxed'],
      ['simple', 'simple'],
      ['relaxed', 'simple'],
    ] as const) {
      const r = await verify(await sign(message(), { canonicalize: [...c] }));
      const s = r.dkim!.signatures;
      assert.equal(s.length, 1);
      assert.equal(s[0]!.result, 'pass', `c=${c.join('/')}: ${s[0]!.reason ?? ''}`);
      assert.equal(s[0]!.domain, 'example.test');
      assert.equal(s[0]!.selector, 'rsa1');
      assert.equal(s[0]!.algorithm, 'rsa-sha256');
      assert.equal(s[0]!.canonicalization, c.join('/'));
      assert.equal(s[0]!.aligned, true);
      assert.equal(s[0]!.keyBits, 2048);
    }
  });

  test('ed25519-sha256 (RFC 8463) passes, alone and next to an RSA signature', async () => {
    const edOnly = await sign(message(), { selector: 'ed1', key: ed.dkimpy, algorithm: 'ed25519-sha256' });
    const r = await verify(edOnly);
    assert.equal(r.dkim!.signatures[0]!.result, 'pass');
    assert.equal(r.dkim!.signatures[0]!.algorithm, 'ed25519-sha256');
    const both = await sign(edOnly);
    const r2 = await verify(both);
    assert.deepEqual(
      r2.dkim!.signatures.map((s) => [s.selector, s.result]),
      [
        ['rsa1', 'pass'],
        ['ed1', 'pass'],
      ],
    );
  });

  test('body altered after signing → fail (body hash); header altered → fail (signature)', async () => {
    for (const c of [
      ['relaxed', 'relaxed'],
      ['simple', 'simple'],
    ] as const) {
      const signed = await sign(message(), { canonicalize: [...c] });
      const body = Buffer.from(signed.toString('latin1').replace('the numbers', 'the Numbers'), 'latin1');
      const rb = await verify(body);
      assert.equal(rb.dkim!.signatures[0]!.result, 'fail');
      assert.equal(rb.dkim!.signatures[0]!.reason, 'body hash did not verify');
      const hdr = Buffer.from(signed.toString('latin1').replace('Subject: quarterly', 'Subject: Quarterly'), 'latin1');
      const rh = await verify(hdr);
      assert.equal(rh.dkim!.signatures[0]!.result, 'fail');
      assert.equal(rh.dkim!.signatures[0]!.reason, 'bad signature');
    }
  });

  test('relaxed survives whitespace changes that simple does not', async () => {
    const reformat = (b: Buffer) =>
      Buffer.from(b.toString('latin1').replace('the numbers  are', 'the numbers are'), 'latin1');
    const relaxed = await verify(reformat(await sign(message(), { canonicalize: ['relaxed', 'relaxed'] })));
    assert.equal(relaxed.dkim!.signatures[0]!.result, 'pass');
    const simple = await verify(reformat(await sign(message(), { canonicalize: ['simple', 'simple'] })));
    assert.equal(simple.dkim!.signatures[0]!.result, 'fail');
  });

  test('l= (body length): content appended after the signed part is not trusted by default', async () => {
    const signed = await sign(message(), { length: true });
    assert.match(signed.toString('latin1'), /\bl=\d+/);
    assert.equal((await verify(signed)).dkim!.signatures[0]!.result, 'pass', 'nothing appended: pass');
    const appended = Buffer.concat([signed, Buffer.from('Click https://evil.test/ to claim your prize\r\n')]);
    const r = await verify(appended);
    assert.equal(r.dkim!.signatures[0]!.result, 'policy');
    assert.ok((r.dkim!.signatures[0]!.unsignedBodyBytes ?? 0) > 0);
    assert.match(r.dkim!.signatures[0]!.reason ?? '', /unsigned/);
    const accepted = await verify(appended, { dkim: { partialBody: 'accept' } });
    assert.equal(accepted.dkim!.signatures[0]!.result, 'pass');
  });

  test('no key → permerror; key lookup timeout → temperror; weak key → policy; rsa-sha1 → policy', async () => {
    const nokey = await verify(await sign(message(), { selector: 'missing' }));
    assert.equal(nokey.dkim!.signatures[0]!.result, 'permerror');
    const slow = await verify(await sign(message(), { selector: 'slow' }));
    assert.equal(slow.dkim!.signatures[0]!.result, 'temperror');
    const weakSig = await sign(message(), { selector: 'weak', key: weak.dkimpy });
    assert.equal((await verify(weakSig)).dkim!.signatures[0]!.result, 'pass', '1024 bits meets the default minimum');
    assert.equal((await verify(weakSig, { dkim: { minRsaBits: 2048 } })).dkim!.signatures[0]!.result, 'policy');
    const sha1 = await verify(await sign(message(), { algorithm: 'rsa-sha1' }));
    assert.equal(sha1.dkim!.signatures[0]!.result, 'policy');
    assert.match(sha1.dkim!.signatures[0]!.reason ?? '', /RFC 8301/);
  });

  test('an unsigned message has no signatures (dkim=none)', async () => {
    const r = await verify(message());
    assert.deepEqual(r.dkim!.signatures, []);
  });

  test('a signature of another domain is not aligned with From', async () => {
    const r = await verify(await sign(message({ from: 'ceo@customer.test' })));
    assert.equal(r.dkim!.signatures[0]!.result, 'pass');
    assert.equal(r.dkim!.signatures[0]!.aligned, false);
    assert.deepEqual(r.fromDomains, ['customer.test']);
  });
});
