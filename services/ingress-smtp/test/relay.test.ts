import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  buildRelayPolicy,
  checkRecipient,
  commandArgument,
  directionOf,
  normalizeDomain,
  parsePath,
  type ClientFacts,
} from '../src/index.js';

const policy = buildRelayPolicy([
  'ours.test',
  { domain: 'listed.test', recipients: ['alice', 'Bob@listed.test'] },
  '*.sub.test',
  'xn--bcher-kva.test', // bücher.test
]);
const untrusted: ClientFacts = { authenticated: false, trusted: false };
const trusted: ClientFacts = { authenticated: false, trusted: true };
const authed: ClientFacts = { authenticated: true, trusted: false };

function code(arg: string, client = untrusted): string {
  const d = checkRecipient(arg, client, policy);
  return d.accept ? `accept:${d.inbound ? 'in' : 'out'}:${d.address}` : `${d.reply.code} ${d.reply.enhanced}`;
}

describe('relay control: untrusted client', () => {
  it('accepts plain local mail for accepted domains, case-insensitively', () => {
    assert.equal(code('<user@ours.test>'), 'accept:in:user@ours.test');
    assert.equal(code('<User@OURS.TEST>'), 'accept:in:User@ours.test');
    assert.equal(code('<a.b+tag@ours.test> NOTIFY=NEVER'), 'accept:in:a.b+tag@ours.test');
    assert.equal(code('<x@deep.sub.test>'), 'accept:in:x@deep.sub.test');
    assert.equal(code('<x@bücher.test>'), 'accept:in:x@xn--bcher-kva.test');
  });

  it('denies foreign domains with 550 5.7.1', () => {
    assert.equal(code('<user@foreign.test>'), '550 5.7.1');
    assert.equal(code('<user@ours.test.foreign.test>'), '550 5.7.1');
    assert.equal(code('<user@notours.test>'), '550 5.7.1');
    assert.equal(code('<user@sub.test>'), '550 5.7.1', 'wildcard does not cover the apex');
    assert.equal(code('<user@evilsub.test>'), '550 5.7.1');
  });

  it('percent hack never relays', () => {
    assert.equal(code('<user%foreign.test@ours.test>'), '550 5.7.1');
    assert.equal(code('<user%foreign.test%ours.test@ours.test>'), '550 5.7.1');
  });

  it('bang paths never relay', () => {
    assert.equal(code('<foreign.test!user@ours.test>'), '550 5.7.1');
    assert.equal(code('<foreign.test!user>'), '501 5.1.3');
  });

  it('source routes: the route is ignored, the final mailbox decides', () => {
    assert.equal(code('<@ours.test:user@foreign.test>'), '550 5.7.1');
    assert.equal(code('<@ours.test,@ours.test:user@foreign.test>'), '550 5.7.1');
    assert.equal(code('<@foreign.test:user@ours.test>'), 'accept:in:user@ours.test');
    assert.equal(code('<@ours.test:>'), '501 5.1.3');
    assert.equal(code('<@bad..route:user@ours.test>'), '501 5.1.3');
  });

  it('user@foreign@ours and friends are syntax errors', () => {
    assert.equal(code('<user@foreign.test@ours.test>'), '501 5.1.3');
    assert.equal(code('<user@ours.test@foreign.test>'), '501 5.1.3');
    assert.equal(code('<@ours.test>'), '501 5.1.3');
    assert.equal(code('<user@>'), '501 5.1.3');
    assert.equal(code('<@>'), '501 5.1.3');
  });

  it('quoted local parts containing @ (or routing characters) never relay', () => {
    assert.equal(code('<"user@foreign.test"@ours.test>'), '550 5.7.1');
    assert.equal(code('<"user%foreign.test"@ours.test>'), '550 5.7.1');
    assert.equal(code('<"foreign.test!user"@ours.test>'), '550 5.7.1');
    assert.equal(code('<"user\\@foreign.test"@ours.test>'), '550 5.7.1');
    // a quoted string that is a plain dot-string is the same mailbox
    assert.equal(code('<"user"@ours.test>'), 'accept:in:user@ours.test');
    assert.equal(code('<"john doe"@ours.test>'), 'accept:in:"john doe"@ours.test');
    assert.equal(code('<"unterminated@ours.test>'), '501 5.1.3');
  });

  it('address literals are never accepted domains', () => {
    assert.equal(code('<user@[192.0.2.1]>'), '550 5.7.1');
    assert.equal(code('<user@[IPv6:2001:db8::1]>'), '550 5.7.1');
    assert.equal(code('<user@[127.0.0.1]>'), '550 5.7.1');
    assert.equal(code('<user@[999.0.0.1]>'), '501 5.1.3');
    assert.equal(code('<user@[ours.test]>'), '501 5.1.3');
  });

  it('trailing dots and malformed domains are refused', () => {
    assert.equal(code('<user@ours.test.>'), '501 5.1.3');
    assert.equal(code('<user@.ours.test>'), '501 5.1.3');
    assert.equal(code('<user@ours..test>'), '501 5.1.3');
    assert.equal(code('<user@-ours.test>'), '501 5.1.3');
    assert.equal(code('<user@ours_test>'), '501 5.1.3');
    assert.equal(code('<user.@ours.test>'), '501 5.1.3');
    assert.equal(code('<.user@ours.test>'), '501 5.1.3');
    assert.equal(code('<us..er@ours.test>'), '501 5.1.3');
  });

  it('homographs and control characters do not match accepted domains', () => {
    assert.equal(code('<user@ours.tеst>'), '550 5.7.1'); // Cyrillic е → xn--
    assert.equal(code('<user@ours.test\u200b>'), '501 5.1.3');
    assert.equal(code('<user\r\n@ours.test>'), '501 5.1.3');
    assert.equal(code('<us\u0000er@ours.test>'), '501 5.1.3');
  });

  it('syntax: brackets and lengths', () => {
    assert.equal(code('user@ours.test'), '501 5.1.3');
    assert.equal(code('<user@ours.test'), '501 5.1.3');
    assert.equal(code('<<user@ours.test>>'), '501 5.1.3');
    assert.equal(code(`<${'a'.repeat(65)}@ours.test>`), '501 5.1.3');
    assert.equal(code(`<${'a'.repeat(64)}@ours.test>`), `accept:in:${'a'.repeat(64)}@ours.test`);
    assert.equal(code('<user@ours.test>X'), '501 5.1.3');
  });

  it('per-domain recipient lists', () => {
    assert.equal(code('<alice@listed.test>'), 'accept:in:alice@listed.test');
    assert.equal(code('<ALICE@listed.test>'), 'accept:in:ALICE@listed.test');
    assert.equal(code('<bob@listed.test>'), 'accept:in:bob@listed.test');
    assert.equal(code('<carol@listed.test>'), '550 5.1.1');
    assert.equal(code('<carol@listed.test>', trusted), '550 5.1.1');
  });

  it('bare postmaster maps to the first accepted domain', () => {
    assert.equal(code('<postmaster>'), 'accept:in:postmaster@ours.test');
    assert.equal(code('<Postmaster>'), 'accept:in:postmaster@ours.test');
    assert.equal(checkRecipient('<postmaster>', untrusted, buildRelayPolicy([])).accept, false);
  });

  it('no accepted domains: nothing is accepted from untrusted clients', () => {
    const empty = buildRelayPolicy([]);
    assert.equal(checkRecipient('<user@ours.test>', untrusted, empty).accept, false);
  });
});

describe('relay control: trusted network or authenticated client', () => {
  for (const [name, client] of [
    ['trusted', trusted],
    ['authenticated', authed],
  ] as const) {
    it(`${name}: relays to any syntactically valid recipient`, () => {
      assert.equal(code('<user@foreign.test>', client), 'accept:out:user@foreign.test');
      assert.equal(code('<user@ours.test>', client), 'accept:in:user@ours.test');
      assert.equal(code('<user%x@ours.test>', client), 'accept:out:user%x@ours.test');
      assert.equal(code('<user@[192.0.2.1]>', client), 'accept:out:user@[192.0.2.1]');
      // syntax errors stay syntax errors
      assert.equal(code('<user@foreign.test@ours.test>', client), '501 5.1.3');
      assert.equal(code('<user@ours.test.>', client), '501 5.1.3');
    });
  }
});

describe('paths', () => {
  it('MAIL FROM accepts the null sender and parameters', () => {
    const p = parsePath('<> SIZE=100', { allowNull: true });
    assert.ok(p.ok && p.mailbox === null && p.params === 'SIZE=100');
    assert.equal(parsePath('<>', { allowNull: false }).ok, false);
  });

  it('commandArgument splits verb and argument case-insensitively', () => {
    assert.equal(commandArgument('MAIL FROM:<a@b.test> SIZE=1', 'MAIL FROM'), '<a@b.test> SIZE=1');
    assert.equal(commandArgument('rcpt to: <a@b.test>', 'RCPT TO'), ' <a@b.test>');
    assert.equal(commandArgument('RCPT TO:<a@b.test>', 'MAIL FROM'), null);
    assert.equal(commandArgument('NOOP', 'MAIL FROM'), null);
  });

  it('normalizeDomain', () => {
    assert.equal(normalizeDomain('Example.TEST'), 'example.test');
    assert.equal(normalizeDomain('bücher.test'), 'xn--bcher-kva.test');
    assert.equal(normalizeDomain('example.test.'), null);
    assert.equal(normalizeDomain('exa mple.test'), null);
  });

  it('direction: inbound only when every recipient is local', () => {
    assert.equal(directionOf([true, true]), 'inbound');
    assert.equal(directionOf([true, false]), 'outbound');
    assert.equal(directionOf([]), 'outbound');
  });

  it('rejects invalid accepted-domain config', () => {
    assert.throws(() => buildRelayPolicy(['bad..domain']));
    assert.throws(() => buildRelayPolicy([{ domain: 'a.test', recipients: ['x@b.test'] }]));
  });
});
