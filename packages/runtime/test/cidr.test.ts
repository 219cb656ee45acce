// networkMatcher: the one CIDR implementation of the workspace (node's BlockList), per address family.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isCidr, networkMatcher, parseCidr } from '../src/index.js';

test('matches IPv4, IPv6 and IPv4-mapped addresses; names the first network that matched', () => {
  const m = networkMatcher(['10.0.0.0/8', ' 10.1.0.0/16 ', '192.0.2.7', '2001:db8::/32']);
  assert.equal(m.size, 4);
  assert.equal(m.matches('10.1.2.3'), true);
  assert.equal(m.matches('::FFFF:10.1.2.3'), true);
  assert.equal(m.matches('2001:DB8::5'), true);
  assert.equal(m.matches('11.0.0.1'), false);
  assert.equal(m.matches(undefined), false);
  assert.equal(m.matches('garbage'), false);
  assert.equal(m.match('10.1.2.3'), '10.0.0.0/8');
  assert.equal(m.match('192.0.2.7'), '192.0.2.7');
  assert.equal(m.match('2001:db8:1::1'), '2001:db8::/32');
  assert.equal(m.match('192.0.2.8'), null);
});

test('an address is only checked against networks of its own family', () => {
  // BlockList alone would match 10.0.0.1 against ::/0 and ::ffff:0:0/96.
  const v6 = networkMatcher(['::/0', '::ffff:0:0/96']);
  assert.equal(v6.matches('10.0.0.1'), false);
  assert.equal(v6.matches('::ffff:10.0.0.1'), false);
  assert.equal(v6.matches('2001:db8::1'), true);
  const v4 = networkMatcher(['0.0.0.0/0']);
  assert.equal(v4.matches('2001:db8::1'), false);
  assert.equal(v4.matches('::ffff:192.0.2.1'), true);
});

test('parseCidr / isCidr: prefix bounds, one slash, digits only; bad entries throw in networkMatcher', () => {
  assert.deepEqual(parseCidr('::ffff:192.0.2.0/24'), { address: '192.0.2.0', prefix: 24, type: 'ipv4' });
  assert.deepEqual(parseCidr('2001:DB8::/32'), { address: '2001:db8::', prefix: 32, type: 'ipv6' });
  for (const bad of ['10.0.0.0/33', '10.0.0/8', '10.0.0.0/', '10.0.0.0/8/1', '10.0.0.0/8.0', '::/129', 'host.test'])
    assert.equal(isCidr(bad), false, bad);
  assert.throws(() => networkMatcher(['10.0.0.0/33']), /invalid network "10\.0\.0\.0\/33"/);
});

test('answers are memoised per address: repeated and past the memo bound they stay the same', () => {
  const m = networkMatcher(['10.0.0.0/8', '2001:db8::/32']);
  for (let round = 0; round < 2; round++) {
    assert.equal(m.matches('10.1.2.3'), true);
    assert.equal(m.matches('::ffff:10.1.2.3'), true);
    assert.equal(m.matches('11.0.0.1'), false);
    assert.equal(m.matches('2001:db8::1'), true);
    assert.equal(m.matches('garbage'), false);
    // More distinct addresses than the memo holds (it is dropped whole when full): answers are unchanged.
    for (let i = 0; i < 5000; i++) {
      const inside = i % 2 === 0;
      const ip = `${inside ? 10 : 11}.0.${(i >> 8) & 255}.${i & 255}`;
      assert.equal(m.matches(ip), inside, ip);
    }
  }
  assert.equal(m.match('10.1.2.3'), '10.0.0.0/8');
});
