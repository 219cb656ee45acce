import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigErrors, loadConfig } from '@mailgate/runtime';
import { domainCovered } from '../src/config.js';
import {
  LineEndingGuard,
  hashPassword,
  ingressSchema,
  isPasswordHash,
  loadUsers,
  messageFacts,
  networkMatcher,
  parseCidr,
  receivedHeader,
  stripHeaders,
  verifyPassword,
} from '../src/index.js';

describe('passwords (scrypt)', () => {
  it('hashes and verifies; wrong or malformed never verifies', async () => {
    const h = await hashPassword('s3cret', { logN: 10 });
    assert.ok(isPasswordHash(h), h);
    assert.equal(await verifyPassword('s3cret', h), true);
    assert.equal(await verifyPassword('s3cret ', h), false);
    assert.equal(await verifyPassword('s3cret', 'plain'), false);
    assert.equal(await verifyPassword('s3cret', h.replace('ln=10', 'ln=30')), false);
    assert.notEqual(await hashPassword('s3cret', { logN: 10 }), h, 'salted');
  });

  it('user store: config users plus a username:hash file', async () => {
    const a = await hashPassword('pa', { logN: 10 });
    const b = await hashPassword('pb', { logN: 10 });
    const dir = mkdtempSync(join(tmpdir(), 'ingress-users-'));
    const file = join(dir, 'users');
    writeFileSync(file, `# comment\nbob@example.test:${b}\n`);
    const users = await loadUsers({ alice: a }, file);
    assert.equal(users.size, 2);
    assert.equal(await users.verify('alice', 'pa'), true);
    assert.equal(await users.verify('bob@example.test', 'pb'), true);
    assert.equal(await users.verify('bob@example.test', 'pa'), false);
    assert.equal(await users.verify('nobody', 'pa'), false);
    writeFileSync(file, 'broken line\n');
    await assert.rejects(loadUsers({}, file), /users:1/);
  });
});

describe('line endings (DATA)', () => {
  const scan = (...chunks: string[]) => {
    const g = new LineEndingGuard();
    for (const c of chunks) g.scan(Buffer.from(c, 'latin1'));
    g.finish();
    return [g.bareLf, g.bareCr];
  };
  const norm = (...chunks: string[]) => {
    const g = new LineEndingGuard();
    const out = chunks.map((c) => g.normalize(Buffer.from(c, 'latin1')).toString('latin1')).join('');
    return out + g.finish().toString('latin1');
  };

  it('counts bare LF and bare CR, across chunk boundaries', () => {
    assert.deepEqual(scan('a\r\nb\r\n'), [0, 0]);
    assert.deepEqual(scan('a\nb\r\n'), [1, 0]);
    assert.deepEqual(scan('a\rb\r\n'), [0, 1]);
    assert.deepEqual(scan('a\r', '\nb'), [0, 0]);
    assert.deepEqual(scan('a\r', 'b'), [0, 1]);
    assert.deepEqual(scan('a\r'), [0, 1]);
    assert.deepEqual(scan('\n'), [1, 0]);
    assert.deepEqual(scan('x\r\n.\nMAIL FROM:<a@b>\n'), [2, 0]);
  });

  it('normalises every bare CR / LF to CRLF and leaves CRLF alone', () => {
    assert.equal(norm('a\r\nb\r\n'), 'a\r\nb\r\n');
    assert.equal(norm('a\nb\n'), 'a\r\nb\r\n');
    assert.equal(norm('a\rb'), 'a\r\nb');
    assert.equal(norm('a\r', '\nb'), 'a\r\nb');
    assert.equal(norm('a\r', 'b\n'), 'a\r\nb\r\n');
    assert.equal(norm('a\r'), 'a\r\n');
    assert.equal(norm('\n.\n'), '\r\n.\r\n');
    assert.equal(norm('\r\r\n'), '\r\n\r\n');
  });

  it('returns the same buffer when nothing changes (no copy)', () => {
    const b = Buffer.from('x\r\ny\r\n');
    assert.equal(new LineEndingGuard().normalize(b), b);
  });
});

describe('headers', () => {
  it('Received: one line per part, client values cleaned', () => {
    const h = receivedHeader({
      helo: 'client.test',
      clientHostname: 'mx.client.test',
      clientIp: '192.0.2.7',
      byHost: 'gw.example.test',
      protocol: 'ESMTPS',
      id: 'ID1',
      tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
      rcptTo: ['a@example.test'],
      date: new Date(Date.UTC(2025, 10, 27, 2, 20, 0)),
    });
    assert.equal(
      h,
      'Received: from client.test (mx.client.test [192.0.2.7])\r\n' +
        '\tby gw.example.test (mailgate) with ESMTPS id ID1\r\n' +
        '\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n' +
        '\tfor <a@example.test>;\r\n\tThu, 27 Nov 2025 02:20:00 +0000\r\n',
    );
    const evil = receivedHeader({
      helo: 'x)\r\nBcc: y',
      clientIp: '2001:db8::1',
      byHost: 'gw',
      protocol: 'ESMTP',
      id: 'I',
      rcptTo: ['a@b', 'c@d'],
      date: new Date(0),
    });
    assert.ok(!/\r\nBcc/.test(evil));
    assert.ok(evil.includes('[IPv6:2001:db8::1]'));
    assert.ok(!evil.includes('for <'));
    const spaced = receivedHeader({
      helo: '10.0.0.5 by relay',
      clientIp: '192.0.2.7',
      byHost: 'gw',
      protocol: 'ESMTP',
      id: 'I',
      rcptTo: [],
      date: new Date(0),
    });
    assert.ok(spaced.startsWith('Received: from 10.0.0.5?by?relay ([192.0.2.7])\r\n'), spaced);
  });

  it('strips forged X-Mailgate-* headers (with continuations) from the header section only', () => {
    const raw = Buffer.from(
      'From: a@b\r\nX-Mailgate-Virus-Scanned: clean\r\n folded\r\nx-mailgate-id: forged\r\nSubject: s\r\n\r\nX-Mailgate-Id: body stays\r\n',
    );
    assert.equal(stripHeaders(raw).toString(), 'From: a@b\r\nSubject: s\r\n\r\nX-Mailgate-Id: body stays\r\n');
    const clean = Buffer.from('From: a@b\r\n\r\nbody');
    assert.equal(stripHeaders(clean), clean);
  });
});

describe('networks', () => {
  it('matches IPv4, IPv6 and IPv4-mapped addresses', () => {
    const m = networkMatcher(['10.0.0.0/8', '192.0.2.7', '2001:db8::/32']);
    assert.equal(m.matches('10.1.2.3'), true);
    assert.equal(m.matches('::ffff:10.1.2.3'), true);
    assert.equal(m.matches('11.0.0.1'), false);
    assert.equal(m.matches('192.0.2.7'), true);
    assert.equal(m.matches('192.0.2.8'), false);
    assert.equal(m.matches('2001:DB8::5'), true);
    assert.equal(m.matches('2001:db9::5'), false);
    assert.equal(m.matches('garbage'), false);
    assert.equal(networkMatcher([]).matches('127.0.0.1'), false);
    assert.equal(parseCidr('10.0.0.0/33'), null);
    assert.equal(parseCidr('10.0.0/8'), null);
  });
});

describe('config', () => {
  it('defaults are valid and documented values', () => {
    const c = loadConfig({ sections: { ingress: ingressSchema }, env: {} });
    assert.equal(c.ingress.http.port, 9101);
    assert.equal(c.ingress.listeners.mx.port, 2525);
    assert.equal(c.ingress.listeners.submission.enabled, false);
    assert.equal(c.ingress.limits.maxMessageBytes, 50 * 1024 * 1024);
    assert.equal(c.ingress.lineEndings, 'reject');
    assert.deepEqual(c.ingress.trustedNetworks, []);
  });

  it('errors name the key: submission without TLS, bad CIDR, bad hash, unknown key', () => {
    const errs = (document: unknown) => {
      try {
        loadConfig({ sections: { ingress: ingressSchema }, env: {}, document });
      } catch (e) {
        assert.ok(e instanceof ConfigErrors);
        return e.errors.map((x) => x.key);
      }
      return [];
    };
    assert.deepEqual(errs({ ingress: { listeners: { submission: { enabled: true } } } }), [
      'ingress.listeners.submission.enabled',
    ]);
    assert.deepEqual(errs({ ingress: { trustedNetworks: ['10.0.0.0/99'] } }), ['ingress.trustedNetworks[0]']);
    assert.deepEqual(errs({ ingress: { auth: { users: { a: 'plain' } } } }), ['ingress.auth.users.a']);
    assert.deepEqual(errs({ ingress: { limits: { maxMesageBytes: 1 } } }), ['ingress.limits.maxMesageBytes']);
    assert.deepEqual(errs({ ingress: { acceptedDomains: ['bad..x'] } }), ['ingress.acceptedDomains[0]']);
  });

  it('recipients.domains must be accepted domains: the error names the key and the file', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'mg-ingress-cfg-')), 'mailgate.yaml');
    writeFileSync(
      file,
      [
        'ingress:',
        '  acceptedDomains: [corp.test, { domain: "*.group.test" }]',
        '  recipients:',
        '    sources: { s: { type: static, addresses: [a] } }',
        '    domains:',
        '      - { domain: Corp.Test., sources: [s] }',
        '      - { domain: eu.group.test, sources: [s] }',
        '      - { domain: "*.group.test", sources: [s] }',
        '      - { domain: corp.tset, sources: [s] }',
        '      - { domain: "*.corp.test", sources: [s] }',
        '',
      ].join('\n'),
    );
    try {
      loadConfig({ sections: { ingress: ingressSchema }, env: {}, file });
      assert.fail('expected a config error');
    } catch (e) {
      assert.ok(e instanceof ConfigErrors, String(e));
      assert.deepEqual(
        e.errors.map((x) => x.message),
        [
          `config error at ingress.recipients.domains[3].domain (file ${file}): "corp.tset" is not in ingress.acceptedDomains (recipient rules apply only to accepted domains)`,
          `config error at ingress.recipients.domains[4].domain (file ${file}): "*.corp.test" is not in ingress.acceptedDomains (recipient rules apply only to accepted domains)`,
        ],
      );
    }
    assert.equal(domainCovered('group.test', ['*.group.test']), false, '*.x does not accept x itself');
    assert.equal(domainCovered('*.a.group.test', ['*.group.test']), true);
  });
});

describe('message facts for tracking (Subject, Message-ID)', () => {
  it('reads folded, encoded and raw UTF-8 subjects and the Message-ID, from the header block only', () => {
    const m = (s: string) => messageFacts(Buffer.from(s, 'utf8'));
    assert.deepEqual(
      m(
        'From: a@x.test\r\nSubject: =?UTF-8?B?UmVjaG51bmc=?=\r\n =?ISO-8859-1?Q?_M=E4rz?=\r\nMessage-ID: <abc.123@x.test> (c)\r\n\r\nSubject: no',
      ),
      { subject: 'Rechnung März', messageIdHeader: '<abc.123@x.test>' },
    );
    assert.deepEqual(m('Subject: Grüße\r\n\r\nbody'), { subject: 'Grüße' });
    assert.deepEqual(m('subject: =?x-unknown?Q?a?= b\r\nmessage-id:\r\n  <folded@x.test>\r\n\r\n'), {
      subject: '=?x-unknown?Q?a?= b',
      messageIdHeader: '<folded@x.test>',
    });
    assert.deepEqual(m('\r\nSubject: in the body\r\n'), {});
  });
});
