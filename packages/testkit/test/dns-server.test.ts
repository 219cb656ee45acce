import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { dnsOutcome, startDnsServer, type DnsServerHandle } from '../src/index.js';

let dns: DnsServerHandle;
before(async () => {
  dns = await startDnsServer({
    records: [
      { name: 'remote.test', type: 'MX', priority: 10, exchange: 'mx1.remote.test' },
      { name: 'remote.test', type: 'MX', priority: 20, exchange: 'mx2.remote.test' },
      { name: 'mx1.remote.test', type: 'A', address: '127.0.0.12' },
      { name: 'mx1.remote.test', type: 'AAAA', address: '::1' },
      { name: 'mx2.remote.test', type: 'AAAA', address: '2001:db8::13' },
      { name: 'nullmx.test', type: 'MX', priority: 0, exchange: '.' },
      { name: 'remote.test', type: 'TXT', text: ['v=spf1 ', '-all'] },
      { name: 'long.test', type: 'TXT', text: 'x'.repeat(300) },
      { name: 'alias.remote.test', type: 'CNAME', target: 'mx1.remote.test' },
      { name: '12.0.0.127.in-addr.arpa', type: 'PTR', target: 'mx1.remote.test' },
      { name: '2.0.0.127.bl.test', type: 'A', address: '127.0.0.2' },
    ],
  });
});
after(() => dns.close());

const code = dnsOutcome;

test('A, AAAA, MX, TXT, CNAME, PTR, null MX', async () => {
  const r = dns.resolver();
  assert.deepEqual(
    (await r.resolveMx('remote.test')).sort((a, b) => a.priority - b.priority),
    [
      { exchange: 'mx1.remote.test', priority: 10 },
      { exchange: 'mx2.remote.test', priority: 20 },
    ],
  );
  assert.deepEqual(await r.resolve4('mx1.remote.test'), ['127.0.0.12']);
  assert.deepEqual(await r.resolve6('mx1.remote.test'), ['::1']);
  assert.deepEqual(await r.resolve6('mx2.remote.test'), ['2001:db8::13']);
  assert.deepEqual(await r.resolveTxt('remote.test'), [['v=spf1 ', '-all']]);
  assert.equal((await r.resolveTxt('long.test'))[0]!.join(''), 'x'.repeat(300));
  assert.deepEqual(await r.resolve4('alias.remote.test'), ['127.0.0.12']);
  assert.deepEqual(await r.resolveCname('alias.remote.test'), ['mx1.remote.test']);
  assert.deepEqual(await r.reverse('127.0.0.12'), ['mx1.remote.test']);
  assert.deepEqual(await r.resolveMx('nullmx.test'), [{ exchange: '', priority: 0 }]);
  assert.deepEqual(await r.resolve4('2.0.0.127.bl.test'), ['127.0.0.2']);
});

test('NXDOMAIN vs NODATA', async () => {
  const r = dns.resolver();
  assert.equal(await code(r.resolve4('nope.test')), 'ENOTFOUND');
  assert.equal(await code(r.resolve6('mx1.remote.test')), 'ok');
  assert.equal(await code(r.resolve4('mx2.remote.test')), 'ENODATA');
  assert.equal(await code(r.resolve4('remote.test')), 'ENODATA');
  assert.equal(await code(r.resolve4('0.127.bl.test')), 'ENODATA'); // empty non-terminal
});

test('faults: servfail, refused, nxdomain, timeout, per type; records can change', async () => {
  const r = dns.resolver({ timeout: 300, tries: 1 });
  dns.setFault('remote.test', 'servfail', 'MX');
  assert.equal(await code(r.resolveMx('remote.test')), 'ESERVFAIL');
  assert.equal(await code(r.resolveTxt('remote.test')), 'ok');
  dns.setFault('remote.test', 'refused');
  assert.equal(await code(r.resolveTxt('remote.test')), 'EREFUSED');
  dns.setFault('remote.test', null);
  dns.setFault('remote.test', null, 'MX');
  dns.setFault('mx1.remote.test', 'nxdomain');
  assert.equal(await code(r.resolve4('mx1.remote.test')), 'ENOTFOUND');
  dns.setFault('slow.test', 'timeout');
  const t0 = Date.now();
  assert.equal(await code(r.resolve4('slow.test')), 'ETIMEOUT');
  assert.ok(Date.now() - t0 >= 250);
  dns.clearFaults();
  assert.equal(await code(r.resolve4('mx1.remote.test')), 'ok');
  assert.ok(dns.queries.some((q) => q.name === 'slow.test' && q.rcode === 'dropped'));

  dns.addRecords({ name: 'new.test', type: 'A', address: '192.0.2.1' });
  assert.deepEqual(await r.resolve4('new.test'), ['192.0.2.1']);
  dns.removeRecords('new.test');
  assert.equal(await code(r.resolve4('new.test')), 'ENOTFOUND');
});
