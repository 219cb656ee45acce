// The stage function without I/O: a scripted scanner stands in for rspamd (the client is tested against a real
// rspamd in packages/rspamd, and this stage with a real rspamd in rspamd.test.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { testPipelineMessage, testStageContext } from '@mailgate/testkit';
import { RspamdUnavailableError, type CheckResult } from '@mailgate/rspamd';
import {
  actionOf,
  createSpamCheckStage,
  prefixSubject,
  sclOf,
  spamCheckSchema,
  stripHeaders,
  type SpamCheckInput,
  type SpamScanner,
} from '../src/index.js';

const RAW =
  'From: Alice <alice@partner.test>\r\nTo: bob@example.test\r\nSubject: Quarterly figures\r\n\r\nHello Bob\r\n';

function scanner(score: number | Error, symbols: [string, number][] = [['SOME_RULE', score as number]]) {
  const calls: { raw: Buffer; env: Parameters<SpamScanner['check']>[1] }[] = [];
  const s: SpamScanner & { calls: typeof calls } = {
    calls,
    async check(raw, env) {
      calls.push({ raw, env });
      if (score instanceof Error) throw score;
      return {
        score,
        requiredScore: 15,
        action: 'no action',
        skipped: false,
        symbols: symbols.map(([name, sc]) => ({ name, score: sc })),
        endpoint: 'rspamd:11333',
      } satisfies CheckResult;
    },
  };
  return s;
}

const cfg = (c: SpamCheckInput = {}) => spamCheckSchema.parse(c);
const ctx = () => testStageContext('spam-check');
const msg = (envelope: Parameters<typeof testPipelineMessage>[1] = {}) =>
  testPipelineMessage(RAW, { mailFrom: 'alice@partner.test', rcptTo: ['bob@example.test'], ...envelope });
const header = (raw: Buffer | undefined, name: string) =>
  new RegExp(`^${name}: (.*)$`, 'mi').exec(raw!.toString('latin1').split(/\r\n\r\n/)[0]!)?.[1];

describe('spam-check stage (no I/O)', () => {
  test('below tag: pass with X-Spam-Status: No, score and SCL; envelope passed to rspamd', async () => {
    const s = scanner(1.2, [
      ['ONCE_RECEIVED', 0.1],
      ['DATE_IN_PAST', 1.1],
    ]);
    const m = msg({ session: { clientIp: '192.0.2.7', helo: 'mx.partner.test', clientHostname: 'mx.partner.test' } });
    const out = await createSpamCheckStage({ config: cfg(), scanner: s }).fn(m, ctx());
    assert.equal(out.verdict.kind, 'pass');
    assert.equal(header(out.raw, 'X-Spam-Status'), 'No, score=1.2 required=6.0 tests=DATE_IN_PAST,ONCE_RECEIVED');
    assert.equal(header(out.raw, 'X-Spam-Score'), '1.2');
    assert.equal(header(out.raw, 'X-Mailgate-SCL'), '1');
    assert.equal(header(out.raw, 'X-Spam-Flag'), undefined);
    assert.ok(out.raw!.toString().endsWith(RAW), 'original bytes kept after the added headers');
    assert.deepEqual(s.calls[0]!.env, {
      from: 'alice@partner.test',
      rcpt: ['bob@example.test'],
      ip: '192.0.2.7',
      helo: 'mx.partner.test',
      hostname: 'mx.partner.test',
      queueId: m.envelope.id,
    });
    assert.equal(out.details?.['result'], 'pass');
  });

  test('tag: delivered with X-Spam-Flag: YES, symbols, subject prefix', async () => {
    const s = scanner(7.5);
    const out = await createSpamCheckStage({ config: cfg({ subjectPrefix: '[SPAM] ' }), scanner: s }).fn(msg(), ctx());
    assert.equal(out.verdict.kind, 'pass');
    assert.equal(header(out.raw, 'X-Spam-Flag'), 'YES');
    assert.match(header(out.raw, 'X-Spam-Status')!, /^Yes, score=7\.5 required=6\.0/);
    assert.equal(header(out.raw, 'X-Spam-Symbols'), 'SOME_RULE(7.5)');
    assert.equal(header(out.raw, 'Subject'), '[SPAM] Quarterly figures');
    assert.equal(out.details?.['scl'], 5);
  });

  test('quarantine and reject: held with the score and top symbols as reason (reject never bounces)', async () => {
    const q = await createSpamCheckStage({ config: cfg(), scanner: scanner(11) }).fn(msg(), ctx());
    assert.deepEqual(q.verdict, {
      kind: 'quarantine',
      reason: 'spam score 11.0 (SOME_RULE(11.0)) ≥ quarantine 10.0',
    });
    const r = await createSpamCheckStage({ config: cfg(), scanner: scanner(16) }).fn(msg(), ctx());
    assert.equal(r.verdict.kind, 'reject');
    assert.equal(r.details?.['scl'], 9);
    assert.equal(r.extraRecords, undefined, 'no DSN');
  });

  test('per-domain override: the strictest recipient domain wins; dry-run only if all domains are', async () => {
    const c = cfg({
      domains: { 'strict.test': { thresholds: { tag: 4, quarantine: 5, reject: 8 } }, 'trial.test': { dryRun: true } },
    });
    const st = createSpamCheckStage({ config: c, scanner: scanner(6) });
    assert.equal((await st.fn(msg({ rcptTo: ['a@strict.test'] }), ctx())).verdict.kind, 'quarantine');
    assert.equal((await st.fn(msg({ rcptTo: ['a@example.test'] }), ctx())).verdict.kind, 'pass');
    assert.equal((await st.fn(msg({ rcptTo: ['a@example.test', 'b@strict.test'] }), ctx())).verdict.kind, 'quarantine');
    const st2 = createSpamCheckStage({ config: c, scanner: scanner(20) });
    const dry = await st2.fn(msg({ rcptTo: ['a@trial.test'] }), ctx());
    assert.equal(dry.verdict.kind, 'pass');
    assert.deepEqual([dry.details?.['dryRun'], dry.details?.['wouldBe']], [true, 'reject']);
    assert.equal((await st2.fn(msg({ rcptTo: ['a@trial.test', 'b@example.test'] }), ctx())).verdict.kind, 'reject');
  });

  test('global dry-run: would-be action recorded, message passes (headers still added)', async () => {
    const out = await createSpamCheckStage({ config: cfg({ dryRun: true }), scanner: scanner(30) }).fn(msg(), ctx());
    assert.equal(out.verdict.kind, 'pass');
    assert.equal(out.details?.['wouldBe'], 'reject');
    assert.equal(header(out.raw, 'X-Spam-Flag'), 'YES');
  });

  test('authenticated, trusted, allow-listed sender and IP: skipped with SCL -1, rspamd not asked', async () => {
    const s = scanner(50);
    const st = createSpamCheckStage({
      config: cfg({ skip: { senders: ['.partner.test', 'boss@corp.test'], ips: ['198.51.100.0/24'] } }),
      scanner: s,
    });
    const cases = [
      [msg({ session: { authUser: 'alice' } }), 'authenticated'],
      [msg({ session: { trustedNetwork: true } }), 'trusted network'],
      [msg({ mailFrom: 'x@mail.partner.test' }), 'allow-listed sender'],
      [msg({ mailFrom: 'boss@CORP.test' }), 'allow-listed sender'],
      [msg({ mailFrom: 'x@other.test', session: { clientIp: '198.51.100.9' } }), 'allow-listed IP'],
    ] as const;
    for (const [m, why] of cases) {
      const out = await st.fn(m, ctx());
      assert.equal(out.verdict.kind, 'pass');
      assert.equal(header(out.raw, 'X-Spam-Status'), `skipped (${why})`);
      assert.equal(header(out.raw, 'X-Mailgate-SCL'), '-1');
    }
    assert.equal(s.calls.length, 0);
    // Authenticated users are checked (as outbound: User passed to rspamd) when the skip is off.
    const checked = createSpamCheckStage({ config: cfg({ skip: { authenticated: false } }), scanner: s });
    await checked.fn(msg({ session: { authUser: 'alice' } }), ctx());
    assert.equal(s.calls[0]!.env.user, 'alice');
  });

  test('rspamd unavailable: tempfail (fail closed); failOpen: pass with X-Spam-Status: unchecked', async () => {
    const err = new RspamdUnavailableError('rspamd:11333', 'connect', 'ECONNREFUSED');
    const closed = await createSpamCheckStage({ config: cfg(), scanner: scanner(err) }).fn(msg(), ctx());
    assert.equal(closed.verdict.kind, 'tempfail');
    assert.equal(closed.raw, undefined);
    const open = await createSpamCheckStage({ config: cfg({ failOpen: true }), scanner: scanner(err) }).fn(
      msg(),
      ctx(),
    );
    assert.equal(open.verdict.kind, 'pass');
    assert.equal(open.failedOpen, true);
    assert.match(header(open.raw, 'X-Spam-Status')!, /^unchecked \(/);
  });

  test('hold expired: quarantine "unchecked" (or pass unchecked with failOpen + unchecked: pass)', () => {
    const { hooks } = createSpamCheckStage({ config: cfg(), scanner: scanner(0) });
    const out = hooks.onHoldExpired!(msg(), { kind: 'tempfail', reason: 'rspamd down' }, 3_600_000);
    assert.equal(out.verdict.kind, 'quarantine');
    assert.match((out.verdict as { reason: string }).reason, /no rspamd answer after 3600 s/);
    assert.throws(() => cfg({ unchecked: 'pass' }), /failOpen/);
  });

  test('a sender cannot pre-set our headers', async () => {
    const forged = 'X-Spam-Flag: NO\r\nX-Spam-Status: No, score=-100\r\n  folded\r\nX-Mailgate-SCL: 0\r\n' + RAW;
    const m = testPipelineMessage(forged, { rcptTo: ['bob@example.test'] });
    const s = scanner(8);
    const out = await createSpamCheckStage({ config: cfg(), scanner: s }).fn(m, ctx());
    assert.equal(s.calls[0]!.raw.toString(), RAW, 'rspamd sees the message without them');
    const text = out.raw!.toString();
    assert.equal((text.match(/^X-Spam-Flag:/gim) ?? []).length, 1);
    assert.equal(header(out.raw, 'X-Spam-Flag'), 'YES');
    assert.ok(!text.includes('folded'));
  });

  test('SCL bands and actions', () => {
    const t = { tag: 6, quarantine: 10, reject: 15 };
    assert.deepEqual(
      [-3, 0, 0.5, 2, 5.9, 6, 8, 9.9, 10, 13, 14.9, 15, 100].map((s) => sclOf(s, t)),
      [0, 0, 1, 2, 4, 5, 6, 6, 7, 8, 8, 9, 9],
    );
    assert.deepEqual(
      [5.9, 6, 10, 15].map((s) => actionOf(s, t)),
      ['pass', 'tag', 'quarantine', 'reject'],
    );
  });

  test('config: thresholds must be ordered, per domain too', () => {
    assert.throws(() => cfg({ thresholds: { tag: 12, quarantine: 10 } }), /tag ≤ quarantine ≤ reject/);
    assert.throws(() => cfg({ domains: { 'x.test': { thresholds: { reject: 4 } } } }), /tag ≤ quarantine ≤ reject/);
  });

  test('header helpers: prefix once, strip only the named fields', () => {
    const raw = Buffer.from(RAW);
    const once = prefixSubject(raw, '[SPAM] ');
    assert.equal(prefixSubject(once, '[SPAM] ').toString(), once.toString());
    assert.equal(stripHeaders(raw, ['X-Spam-Flag']), raw);
  });
});
