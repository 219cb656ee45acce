// Authentication-Results (RFC 8601): our header, and removal of forged ones claiming our authserv-id.
import { DKIMPY_PYTHON, runCommand } from '@mailgate/testkit';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  authResultsHeader,
  authResultsValue,
  authservIdOf,
  removeAuthResults,
  SenderAuth,
  senderAuthConfig,
  type AuthResults,
} from '../src/index.js';

const RESULTS: AuthResults = {
  spf: {
    result: 'pass',
    identity: 'mailfrom',
    domain: 'example.test',
    mailFrom: 'bounce+tag=x@example.test',
    helo: 'mail.example.test',
    ip: '192.0.2.1',
    reason: 'mx.gw.test: domain of bounce+tag=x@example.test designates 192.0.2.1 as permitted sender',
    durationMs: 1,
  },
  dkim: {
    signatures: [
      {
        result: 'pass',
        domain: 'example.test',
        selector: 's1',
        algorithm: 'rsa-sha256',
        b: 'AbC/dE+f',
        aligned: true,
        keyBits: 2048,
      },
      {
        result: 'fail',
        domain: 'other.test',
        selector: 's2',
        algorithm: 'ed25519-sha256',
        aligned: false,
        reason: 'body hash did not verify',
      },
    ],
    durationMs: 1,
  },
  dmarc: {
    result: 'pass',
    fromDomain: 'example.test',
    policy: 'reject',
    p: 'reject',
    sp: 'reject',
    pct: 100,
    durationMs: 1,
  },
  arc: { result: 'none', durationMs: 0 },
};

describe('Authentication-Results builder', () => {
  test('one resinfo per folded line; values quoted where RFC 8601 needs it; comments escaped', () => {
    const h = authResultsHeader('mx.gw.test', RESULTS, { disposition: 'none' });
    assert.equal(
      h,
      'Authentication-Results: mx.gw.test;\r\n' +
        '\tspf=pass (mx.gw.test: domain of bounce+tag=x@example.test designates 192.0.2.1 as permitted sender) smtp.mailfrom=bounce+tag=x@example.test;\r\n' +
        '\tdkim=pass (2048-bit key) header.d=example.test header.s=s1 header.a=rsa-sha256 header.b="AbC/dE+f";\r\n' +
        '\tdkim=fail (body hash did not verify) header.d=other.test header.s=s2 header.a=ed25519-sha256;\r\n' +
        '\tdmarc=pass (p=REJECT dis=NONE) header.from=example.test;\r\n' +
        '\tarc=none\r\n',
    );
    assert.equal(authservIdOf(h.slice('Authentication-Results:'.length)), 'mx.gw.test');
  });

  test('an independent RFC 8601 parser (python3-authres) reads our header back', async () => {
    const h = authResultsHeader('mx.gw.test', RESULTS, { disposition: 'none', remoteIp: '192.0.2.1' });
    const py = [
      'import sys, json, authres',
      'h = authres.AuthenticationResultsHeader.parse(sys.stdin.read().rstrip())',
      'print(json.dumps([h.authserv_id] + [[r.method, r.result] + [[p.type, p.name, p.value] for p in r.properties] for r in h.results]))',
    ].join('\n');
    const r = await runCommand(DKIMPY_PYTHON, ['-c', py], h);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.toString()), [
      'mx.gw.test',
      ['spf', 'pass', ['smtp', 'mailfrom', 'bounce+tag=x@example.test']],
      [
        'dkim',
        'pass',
        ['header', 'd', 'example.test'],
        ['header', 's', 's1'],
        ['header', 'a', 'rsa-sha256'],
        ['header', 'b', 'AbC/dE+f'],
      ],
      ['dkim', 'fail', ['header', 'd', 'other.test'], ['header', 's', 's2'], ['header', 'a', 'ed25519-sha256']],
      ['dmarc', 'pass', ['header', 'from', 'example.test']],
      ['arc', 'none', ['smtp', 'remote-ip', '192.0.2.1']],
    ]);
  });

  test('HELO identity, no results, hostile text', () => {
    const helo = authResultsValue('gw', {
      spf: {
        result: 'none',
        identity: 'helo',
        domain: 'x',
        mailFrom: 'postmaster@x',
        helo: 'we ird;"',
        ip: '1.2.3.4',
        reason: 'a (nested) \\ comment\r\nX-Injected: yes',
        durationMs: 0,
      },
    });
    assert.equal(helo, 'gw; spf=none (a \\(nested\\) \\\\ comment X-Injected: yes) smtp.helo="we ird;\\""');
    assert.equal(authResultsHeader('gw', {}), 'Authentication-Results: gw; none\r\n');
  });
});

describe('removing forged Authentication-Results', () => {
  const body = 'Authentication-Results: mx.gw.test; this line is in the body\r\n';
  const msg = (headers: string[]) =>
    Buffer.from(`${headers.join('\r\n')}\r\nFrom: a@example.test\r\nSubject: hi\r\n\r\n${body}`, 'latin1');

  test('exact, case-insensitive, folded, commented, versioned, quoted and trailing-dot ids are removed', () => {
    const forged = [
      'Authentication-Results: mx.gw.test; dkim=pass header.d=bank.test',
      'authentication-results: MX.GW.TEST; spf=pass',
      'AUTHENTICATION-RESULTS:mx.gw.test;dmarc=pass',
      'Authentication-Results:\r\n  mx.gw.test;\r\n\tdkim=pass\r\n\theader.d=bank.test',
      'Authentication-Results: (forged by (a) friend) mx.gw.test; dkim=pass',
      'Authentication-Results: mx.gw.test 1; dkim=pass',
      'Authentication-Results: "mx.gw.test"; dkim=pass',
      'Authentication-Results: mx.gw.test.; dkim=pass',
      'Authentication-Results : mx.gw.test; dkim=pass',
      'Authentication-Results: old-name.gw.test; dkim=pass',
    ];
    const kept = [
      'Authentication-Results: mx.gw.test.evil.test; dkim=pass',
      'Authentication-Results: other.test; dkim=pass header.d=x.test (mentions mx.gw.test)',
      'Authentication-Results: mx.gw.testing; spf=pass',
      'ARC-Authentication-Results: i=1; mx.gw.test; dkim=pass',
      'X-Authentication-Results: mx.gw.test; spf=pass',
    ];
    const interleaved = forged.flatMap((f, i) => (kept[i] ? [f, kept[i]!] : [f]));
    const r = removeAuthResults(msg(interleaved), ['mx.gw.test', 'old-name.gw.test']);
    assert.equal(r.removed, forged.length);
    assert.equal(r.raw.toString('latin1'), msg(kept).toString('latin1'), 'every other byte kept, body untouched');
  });

  test('nothing to remove: the same buffer; all: every Authentication-Results goes; LF-only messages work', () => {
    const m = msg(['Authentication-Results: other.test; spf=pass']);
    const same = removeAuthResults(m, ['mx.gw.test']);
    assert.equal(same.removed, 0);
    assert.equal(same.raw, m);
    assert.equal(removeAuthResults(m, [], { all: true }).removed, 1);
    const lf = Buffer.from('Authentication-Results: mx.gw.test;\n spf=pass\nFrom: a@b.test\n\nbody\n');
    assert.equal(removeAuthResults(lf, ['mx.gw.test']).raw.toString(), 'From: a@b.test\n\nbody\n');
  });

  test('no body separator, or a line that is not a header field: the header section ends there', () => {
    const noBody = Buffer.from('From: a@b.test\r\nAuthentication-Results: mx.gw.test; spf=pass\r\n');
    assert.equal(removeAuthResults(noBody, ['mx.gw.test']).raw.toString(), 'From: a@b.test\r\n');
    const junk = Buffer.from('From: a@b.test\r\nnot a header\r\nAuthentication-Results: mx.gw.test; spf=pass\r\n\r\nx');
    assert.equal(removeAuthResults(junk, ['mx.gw.test']).removed, 0, 'what follows a non-header line is body');
  });

  test('SenderAuth.sanitize removes forged A-R with our id, removeAuthservIds, and our tag header', () => {
    const v = new SenderAuth(senderAuthConfig({ authservId: 'mx.gw.test', removeAuthservIds: ['legacy.gw.test'] }), {
      hostname: 'ignored',
    });
    const m = msg([
      'Authentication-Results: mx.gw.test; dmarc=pass',
      'Authentication-Results: legacy.gw.test; dmarc=pass',
      'X-Mailgate-Auth: all good, trust me',
      'Authentication-Results: upstream.test; dmarc=fail',
    ]);
    const r = v.sanitize(m);
    v.close();
    assert.equal(r.removed, 3);
    assert.equal(
      r.raw.toString('latin1'),
      msg(['Authentication-Results: upstream.test; dmarc=fail']).toString('latin1'),
    );
  });
});
