// Outbound DKIM: mailgate signs, independent verifiers (dkimpy, OpenDKIM's libopendkim) and mailauth verify.
import { dkimpyVerify, opendkimVerify, startDnsServer, type DnsRecord, type DnsServerHandle } from '@mailgate/testkit';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadSigningKeys, senderAuthConfig, signMessage, SigningKeyError, type SigningKeys } from '../src/index.js';
import { keyRecord, message, testKey, verifierFor } from './helpers.js';

const rsa = testKey('out-rsa');
const ed = testKey('out-ed', 'ed25519');
const next = testKey('out-rsa-next');
const sub = testKey('out-sub');
const short = testKey('out-short', 'rsa', 1024);
const tiny = testKey('out-tiny', 'rsa', 512);

const FILES: Record<string, string> = {
  '/secret/rsa.pem': rsa.pem,
  '/secret/ed.pem': ed.pem,
  '/secret/ed.seed': ed.dkimpy, // dkimpy/rspamd format: base64 seed
  '/secret/next.pem': next.pem,
  '/secret/rsa-pkcs1.pem': rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string,
  '/secret/sub.pem': sub.pem,
  '/secret/short.pem': short.pem,
  '/secret/tiny.pem': tiny.pem,
  '/secret/garbage.pem': 'not a key',
};
const readFile = (f: string) => {
  const v = FILES[f];
  if (v === undefined) throw Object.assign(new Error(`ENOENT: no such file, open '${f}'`), { code: 'ENOENT' });
  return Buffer.from(v);
};

const RECORDS: DnsRecord[] = [
  keyRecord('mg2026r', 'example.test', rsa),
  keyRecord('mg2026e', 'example.test', ed),
  keyRecord('mg2027r', 'example.test', next),
  keyRecord('sub1', 'sub.example.test', sub),
];

function keysFor(signing: Record<string, unknown>): SigningKeys {
  return loadSigningKeys(senderAuthConfig({ signing: { enabled: true, ...signing } }).signing, { readFile });
}
const only = (selector: string, keyFile: string, extra: Record<string, unknown> = {}) =>
  keysFor({ domains: [{ domain: 'example.test', keys: [{ selector, keyFile }] }], ...extra });

describe('outbound DKIM signing', () => {
  let dns: DnsServerHandle;
  before(async () => {
    dns = await startDnsServer({ records: RECORDS });
  });
  after(() => dns.close());

  test('rsa-sha256 and ed25519-sha256 signatures verify with dkimpy for every canonicalisation', async () => {
    for (const c of ['relaxed/relaxed', 'simple/simple', 'relaxed/simple', 'simple/relaxed']) {
      const keys = keysFor({
        canonicalization: c,
        domains: [
          {
            domain: 'example.test',
            keys: [
              { selector: 'mg2026r', keyFile: '/secret/rsa.pem' },
              { selector: 'mg2026e', keyFile: '/secret/ed.pem' },
            ],
          },
        ],
      });
      const s = await signMessage(message(), keys);
      assert.deepEqual(
        s.signatures.map((x) => x.algorithm),
        ['rsa-sha256', 'ed25519-sha256'],
      );
      const verdicts = await dkimpyVerify(s.raw, dns);
      assert.deepEqual(
        verdicts.map((v) => [v.selector, v.ok]),
        [
          ['mg2026r', true],
          ['mg2026e', true],
        ],
        `c=${c}: ${JSON.stringify(verdicts)}`,
      );
    }
  });

  test('OpenDKIM (libopendkim 2.11, opendkim-testmsg) verifies the RSA and the Ed25519 signature', async () => {
    for (const [sel, file] of [
      ['mg2026r', '/secret/rsa.pem'],
      ['mg2026e', '/secret/ed.pem'],
    ] as const) {
      for (const c of ['relaxed/relaxed', 'simple/simple']) {
        const s = await signMessage(message(), only(sel, file, { canonicalization: c }));
        const good = await opendkimVerify(s.raw, RECORDS);
        assert.ok(good.ok, `${sel} c=${c}: ${good.output}`);
        const tampered = Buffer.from(s.raw.toString('latin1').replace('Hello Bob', 'Hello Eve'), 'latin1');
        const bad = await opendkimVerify(tampered, RECORDS);
        assert.ok(!bad.ok, `${sel}: a tampered body must fail`);
        assert.match(bad.output, /Bad signature|body hash/i);
      }
    }
  });

  test('mailauth verifies ours too, and DMARC aligns (d= is the From domain)', async () => {
    const s = await signMessage(message({ from: 'Alice <alice@example.test>' }), only('mg2026e', '/secret/ed.pem'));
    const v = verifierFor(dns, { spf: { enabled: false } });
    const r = await v.verifyMessage({ raw: s.raw, ip: '192.0.2.1', helo: 'x.test', mailFrom: '' });
    v.close();
    assert.equal(r.dkim!.signatures[0]!.result, 'pass');
    assert.equal(r.dkim!.signatures[0]!.aligned, true);
  });

  test('From and other oversigned fields: an added instance breaks the signature', async () => {
    const s = await signMessage(message(), only('mg2026r', '/secret/rsa.pem'));
    const sig = s.raw.toString('latin1');
    assert.match(
      sig.replace(/\r\n\t/g, ''),
      /h=from:from:reply-to:subject:subject:date:date:message-id:to:to:cc:mime-version:content-type;/,
    );
    assert.deepEqual(
      (await dkimpyVerify(s.raw, dns)).map((v) => v.ok),
      [true],
    );
    const split = sig.indexOf('From:');
    for (const added of [
      'From: "Bank" <security@bank.test>\r\n',
      'Reply-To: <attacker@evil.test>\r\n',
      'Subject: Urgent\r\n',
    ]) {
      const forged = Buffer.from(sig.slice(0, split) + added + sig.slice(split), 'latin1');
      assert.deepEqual(
        (await dkimpyVerify(forged, dns)).map((v) => v.ok),
        [false],
        `added ${added.trim()}`,
      );
    }
    // A field that is not signed may be added (e.g. a Received line by the next hop).
    const relayed = Buffer.concat([Buffer.from('Received: from a by b; Sat, 05 Dec 2026 10:00:01 +0000\r\n'), s.raw]);
    assert.deepEqual(
      (await dkimpyVerify(relayed, dns)).map((v) => v.ok),
      [true],
    );
  });

  test('key selection: the From domain, a parent domain with subdomains, the fallback domain, or none', async () => {
    const keys = keysFor({
      domains: [
        { domain: 'example.test', keys: [{ selector: 'mg2026r', keyFile: '/secret/rsa.pem' }] },
        { domain: 'sub.example.test', keys: [{ selector: 'sub1', keyFile: '/secret/sub.pem' }] },
      ],
    });
    const exact = await signMessage(message({ from: 'a@sub.example.test' }), keys);
    assert.deepEqual(
      exact.signatures.map((x) => x.domain),
      ['sub.example.test'],
    );
    const parent = await signMessage(message({ from: 'a@deep.other.example.test' }), keys);
    assert.deepEqual(
      parent.signatures.map((x) => x.domain),
      ['example.test'],
    );
    assert.deepEqual(
      (await dkimpyVerify(parent.raw, dns)).map((v) => v.ok),
      [true],
    );
    const unsignable = message({ from: 'a@customer.test' });
    const foreign = await signMessage(unsignable, keys);
    assert.deepEqual(foreign.signatures, []);
    assert.match(foreign.skipped ?? '', /no signing key for customer\.test/);
    assert.ok(foreign.raw.equals(unsignable), 'unchanged');
    const withFallback = keysFor({
      fallbackDomain: 'example.test',
      domains: [
        { domain: 'example.test', subdomains: false, keys: [{ selector: 'mg2026r', keyFile: '/secret/rsa.pem' }] },
      ],
    });
    const fb = await signMessage(message({ from: 'a@customer.test' }), withFallback);
    assert.deepEqual(
      fb.signatures.map((x) => x.domain),
      ['example.test'],
    );
    assert.deepEqual(
      (await dkimpyVerify(fb.raw, dns)).map((v) => v.ok),
      [true],
    );
  });

  test('rotation: only active keys sign; two active keys of one algorithm are refused', async () => {
    const rotating = keysFor({
      domains: [
        {
          domain: 'example.test',
          keys: [
            { selector: 'mg2026r', keyFile: '/secret/rsa.pem', active: false },
            { selector: 'mg2027r', keyFile: '/secret/next.pem', active: true },
          ],
        },
      ],
    });
    const s = await signMessage(message(), rotating);
    assert.deepEqual(
      s.signatures.map((x) => x.selector),
      ['mg2027r'],
    );
    assert.deepEqual(
      (await dkimpyVerify(s.raw, dns)).map((v) => [v.selector, v.ok]),
      [['mg2027r', true]],
    );
    assert.throws(
      () =>
        keysFor({
          domains: [
            {
              domain: 'example.test',
              keys: [
                { selector: 'mg2026r', keyFile: '/secret/rsa.pem' },
                { selector: 'mg2027r', keyFile: '/secret/next.pem' },
              ],
            },
          ],
        }),
      (e: unknown) =>
        e instanceof SigningKeyError && /two active rsa-sha256 keys/.test(e.message) && /keys\[1\]/.test(e.message),
    );
  });

  test('key files: PKCS#8, PKCS#1 and a base64 Ed25519 seed load; bad files name the key and the file', async () => {
    const pkcs1 = await signMessage(message(), only('mg2026r', '/secret/rsa-pkcs1.pem'));
    assert.deepEqual(
      (await dkimpyVerify(pkcs1.raw, dns)).map((v) => v.ok),
      [true],
    );
    const seed = await signMessage(message(), only('mg2026e', '/secret/ed.seed'));
    assert.deepEqual(
      (await dkimpyVerify(seed.raw, dns)).map((v) => v.ok),
      [true],
    );
    assert.equal(only('mg2026e', '/secret/ed.pem').keys[0]!.dnsRecord, ed.record, 'the DNS record to publish');
    assert.throws(
      () => only('x', '/secret/missing.pem'),
      /senderAuth\.signing\.domains\[0\]\.keys\[0\]\.keyFile \(\/secret\/missing\.pem\): cannot read key file/,
    );
    assert.throws(() => only('x', '/secret/garbage.pem'), /\(\/secret\/garbage\.pem\): not a usable private key/);
    assert.throws(() => only('x', '/secret/tiny.pem'), /512 bits; at least 1024/);
    assert.match(only('x', '/secret/short.pem').warnings.join(), /1024 bits; 2048 is recommended/);
  });

  test('bare LF line ends are signed as CRLF (what goes on the wire)', async () => {
    const lf = Buffer.from(message().toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
    const s = await signMessage(lf, only('mg2026r', '/secret/rsa.pem'));
    const wire = Buffer.from(s.raw.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');
    assert.deepEqual(
      (await dkimpyVerify(wire, dns)).map((v) => v.ok),
      [true],
    );
  });
});
