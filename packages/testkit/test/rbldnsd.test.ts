import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { dnsOutcome, startRbldnsd, type RbldnsdHandle } from '../src/index.js';

let dns: RbldnsdHandle;
before(async () => {
  dns = await startRbldnsd([
    { name: 'bl.test', type: 'ip4set', lines: [':127.0.0.2:Listed for test', '127.0.0.2', '10.0.0.0/8'] },
    { name: 'dbl.test', type: 'dnset', lines: [':127.0.1.2:Domain listed', 'spammer.test', '.wild.test'] },
    {
      name: 'remote.test',
      type: 'generic',
      lines: [
        '$TTL 60',
        '@ MX 10 mx1.remote.test',
        '@ MX 20 mx2.remote.test',
        'mx1 A 127.0.0.12',
        'mx2 A 127.0.0.13',
        '@ TXT "v=spf1 -all"',
        'nullmx MX 0 .',
      ],
    },
  ]);
});
after(() => dns.stop());

const code = dnsOutcome;

test('ip4set: listed IP, TXT, CIDR and NXDOMAIN for unlisted', async () => {
  const r = dns.resolver();
  assert.deepEqual(await r.resolve4('2.0.0.127.bl.test'), ['127.0.0.2']);
  assert.deepEqual(await r.resolveTxt('2.0.0.127.bl.test'), [['Listed for test']]);
  assert.deepEqual(await r.resolve4('4.3.2.10.bl.test'), ['127.0.0.2']);
  assert.equal(await code(r.resolve4('1.0.0.127.bl.test')), 'ENOTFOUND');
});

test('dnset: listed domain and wildcard', async () => {
  const r = dns.resolver();
  assert.deepEqual(await r.resolve4('spammer.test.dbl.test'), ['127.0.1.2']);
  assert.deepEqual(await r.resolve4('a.b.wild.test.dbl.test'), ['127.0.1.2']);
  assert.equal(await code(r.resolve4('good.test.dbl.test')), 'ENOTFOUND');
});

test('generic: MX, A, TXT, null MX; no AAAA; REFUSED outside zones', async () => {
  const r = dns.resolver();
  const mx = (await r.resolveMx('remote.test')).sort((a, b) => a.priority - b.priority);
  assert.deepEqual(mx, [
    { exchange: 'mx1.remote.test', priority: 10 },
    { exchange: 'mx2.remote.test', priority: 20 },
  ]);
  assert.deepEqual(await r.resolve4('mx1.remote.test'), ['127.0.0.12']);
  assert.deepEqual(await r.resolveTxt('remote.test'), [['v=spf1 -all']]);
  assert.deepEqual(await r.resolveMx('nullmx.remote.test'), [{ exchange: '', priority: 0 }]);
  assert.equal(await code(r.resolve6('mx1.remote.test')), 'ENODATA');
  assert.equal(await code(r.resolve4('www.elsewhere.test')), 'EREFUSED');
});

test('update() rewrites a zone and the change is visible when it resolves', async () => {
  const r = dns.resolver();
  assert.equal(await code(r.resolve4('9.0.0.127.bl.test')), 'ENOTFOUND');
  await dns.update('bl.test', [':127.0.0.2:Listed for test', '127.0.0.2', '127.0.0.9/32']);
  assert.deepEqual(await r.resolve4('9.0.0.127.bl.test'), ['127.0.0.2']);
  // a second update within the same second must also be seen
  await dns.update('bl.test', [':127.0.0.4:Now different', '127.0.0.9']);
  assert.deepEqual(await r.resolve4('9.0.0.127.bl.test'), ['127.0.0.4']);
  assert.equal(await code(r.resolve4('2.0.0.127.bl.test')), 'ENOTFOUND');
});

test('strict mode rejects zone lines rbldnsd cannot serve (AAAA in generic)', async () => {
  await assert.rejects(
    startRbldnsd([{ name: 'v6.test', type: 'generic', lines: ['mx1 A 127.0.0.12', 'mx1 AAAA ::1'] }]),
    /invalid\/unrecognized entry/,
  );
  const lax = await startRbldnsd([{ name: 'v6.test', type: 'generic', lines: ['mx1 A 127.0.0.12', 'mx1 AAAA ::1'] }], {
    strict: false,
  });
  try {
    assert.deepEqual(await lax.resolver().resolve4('mx1.v6.test'), ['127.0.0.12']);
    assert.equal(await code(lax.resolver().resolve6('mx1.v6.test')), 'ENODATA');
  } finally {
    await lax.stop();
  }
});

test('ip6trie: IPv6 DNSBL with nibble-reversed queries', async () => {
  const d = await startRbldnsd([
    { name: 'bl6.test', type: 'ip6trie', lines: [':127.0.0.2:v6 listed', '2001:db8::/32'] },
  ]);
  try {
    const nibbles = (hex32: string): string => hex32.split('').reverse().join('.');
    assert.deepEqual(await d.resolver().resolve4(`${nibbles('20010db8000000000000000000000001')}.bl6.test`), [
      '127.0.0.2',
    ]);
    assert.equal(
      await code(d.resolver().resolve4(`${nibbles('20010db9000000000000000000000001')}.bl6.test`)),
      'ENOTFOUND',
    );
  } finally {
    await d.stop();
  }
});
