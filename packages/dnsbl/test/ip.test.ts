// Address forms of Received headers on top of runtime's networkMatcher; query names.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CidrList, parseCidr, reverseIp } from '../src/index.js';

test('CidrList: Received-header address forms, per-family matching, the entry as configured', () => {
  const l = new CidrList(['10.0.0.0/24', 'fd00::/64', '[192.0.2.1]', 'IPv6:2001:db8::1']);
  assert.equal(l.size, 4);
  assert.equal(l.has('10.0.0.9'), true);
  assert.equal(l.has('[10.0.0.9]'), true);
  assert.equal(l.has('::ffff:10.0.0.9'), true);
  assert.equal(l.has('IPv6:fd00::1%eth0'), true);
  assert.equal(l.has('10.0.1.9'), false);
  assert.equal(l.has('not an ip'), false);
  assert.equal(l.find('192.0.2.1'), '[192.0.2.1]');
  assert.equal(l.find('2001:db8::1'), 'IPv6:2001:db8::1');
  assert.equal(l.find('10.0.0.200'), '10.0.0.0/24');
  assert.equal(l.find('10.0.1.1'), null);
  assert.equal(new CidrList(['::/0']).has('10.0.0.1'), false);
  assert.equal(new CidrList([]).has('10.0.0.1'), false);
});

test('parseCidr: config errors say what is wrong', () => {
  assert.deepEqual(parseCidr(' 10.0.0.0/8 '), { address: '10.0.0.0', prefix: 8, type: 'ipv4' });
  assert.throws(() => parseCidr('nonsense/8'), /not an IP address or CIDR: nonsense\/8/);
  assert.throws(() => parseCidr('10.0.0.0/33'), /bad prefix length in 10\.0\.0\.0\/33/);
  // "/" with no length used to mean /0 (every address): now refused.
  assert.throws(() => parseCidr('10.0.0.0/'), /bad prefix length/);
});

test('reverseIp: RFC 5782 query labels', () => {
  assert.equal(reverseIp('192.0.2.99'), '99.2.0.192');
  assert.equal(
    reverseIp('2001:db8:1:2:3:4:567:89ab'),
    'b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2',
  );
});
