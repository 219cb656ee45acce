// The senderAuth config section: defaults, strictness, cross-field checks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { senderAuthConfig, senderAuthSchema } from '../src/index.js';

test('defaults: verification on and fail closed, DMARC enforced, SPF tagged, signing off', () => {
  const c = senderAuthConfig();
  assert.equal(c.enabled, true);
  assert.equal(c.verifyAt, 'data');
  assert.equal(c.dryRun, false);
  assert.equal(c.authservId, null);
  assert.deepEqual(c.dns, {
    resolvers: 'system',
    timeoutMs: 2000,
    tries: 2,
    cache: { maxEntries: 10000, ttlSec: 60, negativeTtlSec: 30 },
  });
  assert.deepEqual(c.timeouts, { spfMs: 10000, messageMs: 15000 });
  assert.deepEqual(c.exempt, { networks: [], domains: [], authenticated: true });
  assert.equal(c.spf.onFail, 'tag');
  assert.equal(c.spf.onSoftfail, 'ignore');
  assert.equal(c.dmarc.onReject, 'reject');
  assert.equal(c.dmarc.onQuarantine, 'quarantine');
  assert.deepEqual(c.temperror, { failOpen: [], failOpenAfterAttempts: null });
  assert.deepEqual(c.replies.dmarcReject.code, 550);
  assert.deepEqual([c.replies.tempfail.code, c.replies.tempfail.status], [451, '4.7.5']);
  assert.equal(c.signing.enabled, false);
  assert.equal(c.signing.canonicalization, 'relaxed/relaxed');
  assert.ok(c.signing.oversign.includes('from'));
});

test('strict: unknown keys are errors with their path', () => {
  const r = senderAuthSchema.safeParse({ dmarc: { onreject: 'reject' } });
  assert.equal(r.success, false);
  assert.match(JSON.stringify(r.error!.issues), /unrecognized_keys.*onreject/);
  const bad = senderAuthSchema.safeParse({ exempt: { networks: ['10.0.0.0/33'] } });
  assert.equal(bad.success, false);
  assert.deepEqual(bad.error!.issues[0]!.path, ['exempt', 'networks', 0]);
});

test('cross-field checks: replies, signing domains, oversign, ARC seal, fallback', () => {
  const fails = (input: unknown, path: string, msg: RegExp) => {
    const r = senderAuthSchema.safeParse(input);
    assert.equal(r.success, false, JSON.stringify(input));
    const issue = r.error!.issues.find((i) => i.path.join('.') === path);
    assert.ok(issue, `no issue at ${path}: ${JSON.stringify(r.error!.issues)}`);
    assert.match(issue.message, msg);
  };
  fails({ replies: { tempfail: { code: 451, status: '5.7.1' } } }, 'replies.tempfail', /same class/);
  fails({ signing: { enabled: true } }, 'signing.domains', /at least one domain/);
  const dom = { domain: 'example.com', keys: [{ selector: 's1', keyFile: '/k' }] };
  fails({ signing: { domains: [dom, dom] } }, 'signing.domains.1.domain', /duplicate domain/);
  fails(
    { signing: { domains: [{ ...dom, keys: [{ selector: 's1', keyFile: '/k', active: false }] }] } },
    'signing.domains.0.keys',
    /at least one key must be active/,
  );
  fails({ signing: { oversign: ['x-custom'] } }, 'signing.oversign', /not in signing\.headers/);
  fails({ signing: { headers: ['subject'] } }, 'signing.headers', /From must be signed/);
  fails({ signing: { arcSeal: { enabled: true } } }, 'signing.arcSeal', /domain, selector and keyFile/);
  fails({ signing: { fallbackDomain: 'other.com', domains: [dom] } }, 'signing.fallbackDomain', /no entry/);
  fails({ authservId: 'mx example.com' }, 'authservId', /token/);
  const ok = senderAuthConfig({
    signing: { enabled: true, domains: [dom], headers: ['From', 'Subject', 'X-Custom'], oversign: ['X-Custom'] },
  });
  assert.deepEqual(ok.signing.headers, ['from', 'subject', 'x-custom']);
  assert.deepEqual(ok.signing.oversign, ['from', 'x-custom']);
});
