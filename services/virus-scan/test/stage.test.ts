// The stage function without I/O: a scripted Scanner stands in for the clamd pool (the pool itself is tested
// against a real clamd in clamd.test.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  ClamdError,
  ClamdUnavailableError,
  createScanMetrics,
  createVirusScanStage,
  type ScanResult,
  type Scanner,
  type WaitBudget,
} from '../src/index.js';
import { config, pipelineMessage, samples, stageContext, testMeter } from './helpers.js';

const VERSION = { raw: 'ClamAV 1.4.6/27470/Thu Nov 27 09:32:01 2025', engine: 'ClamAV 1.4.6', database: '27470' };
const gateway = { name: 'mailgate', hostname: 'mx1.example.test' };

function scanner(
  answer: (data: Buffer) => Omit<ScanResult, 'endpoint' | 'version'> | Error,
): Scanner & { calls: Buffer[] } {
  const calls: Buffer[] = [];
  return {
    calls,
    async scan(data) {
      calls.push(data);
      const a = answer(data);
      if (a instanceof Error) throw a;
      return { ...a, endpoint: 'clamd-a:3310', version: VERSION } as ScanResult;
    },
  };
}

const unavailable = () =>
  new ClamdUnavailableError([new ClamdError('connect', 'clamd-a:3310', 'ECONNREFUSED: connect ECONNREFUSED')]);

const firstLine = (b: Buffer | undefined) => b!.toString('latin1').split('\r\n')[0]!;

describe('virus-scan stage (no I/O)', () => {
  test('clean: pass, raw = scan header + the original bytes', async () => {
    const msg = pipelineMessage(samples.clean());
    const s = scanner(() => ({ kind: 'clean' }));
    const { fn } = createVirusScanStage({ config: config(), scanner: s, gateway });
    const out = await fn(msg, stageContext());
    assert.equal(out.verdict.kind, 'pass');
    assert.equal(
      firstLine(out.raw),
      'X-Mailgate-Virus-Scanned: clean (mailgate mx1.example.test; ClamAV 1.4.6/27470/Thu Nov 27 09:32:01 2025)',
    );
    assert.ok(out.raw!.subarray(out.raw!.length - msg.raw.length).equals(msg.raw), 'original bytes untouched');
    assert.equal(out.details?.['result'], 'clean');
    assert.equal(out.details?.['database'], '27470');
    // The whole message, then the zip attachment on its own (scanAttachmentsSeparately, on by default).
    assert.equal(s.calls.length, 2);
    assert.equal(out.details?.['attachmentsScanned'], 1);
  });

  test('infected: quarantine with the signature names; reject when configured', async () => {
    const s = scanner(() => ({ kind: 'found', signatures: ['Win.Test.EICAR_HDB-1'] }));
    const { fn } = createVirusScanStage({ config: config(), scanner: s, gateway });
    const out = await fn(pipelineMessage(samples.base64()), stageContext());
    assert.deepEqual(out.verdict, { kind: 'quarantine', reason: 'virus found: Win.Test.EICAR_HDB-1' });
    assert.deepEqual(out.details?.['signatures'], ['Win.Test.EICAR_HDB-1']);
    assert.match(firstLine(out.raw), /^X-Mailgate-Virus-Scanned: infected: Win\.Test\.EICAR_HDB-1 \(/);

    const r = createVirusScanStage({ config: config({ actions: { infected: 'reject' } }), scanner: s, gateway });
    assert.equal((await r.fn(pipelineMessage(samples.base64()), stageContext())).verdict.kind, 'reject');
  });

  test('heuristics: listed classes are infections, the others are recorded and ignored', async () => {
    const s = scanner(() => ({ kind: 'found', signatures: ['Heuristics.Encrypted.Zip', 'PUA.Win.Packer.Upx'] }));
    const strict = createVirusScanStage({ config: config(), scanner: s, gateway });
    const all = await strict.fn(pipelineMessage(samples.clean()), stageContext());
    assert.equal(all.verdict.kind, 'quarantine');
    assert.deepEqual(all.details?.['signatures'], ['Heuristics.Encrypted.Zip', 'PUA.Win.Packer.Upx']);

    const onlyEncrypted = createVirusScanStage({
      config: config({ heuristics: ['Heuristics.Encrypted.*'] }),
      scanner: s,
      gateway,
    });
    const some = await onlyEncrypted.fn(pipelineMessage(samples.clean()), stageContext());
    assert.equal(some.verdict.kind, 'quarantine');
    assert.deepEqual(some.details?.['signatures'], ['Heuristics.Encrypted.Zip']);
    assert.deepEqual(some.details?.['ignoredHeuristics'], ['PUA.Win.Packer.Upx']);

    const none = createVirusScanStage({ config: config({ heuristics: [] }), scanner: s, gateway });
    const ignored = await none.fn(pipelineMessage(samples.clean()), stageContext());
    assert.equal(ignored.verdict.kind, 'pass');
    assert.match(
      firstLine(ignored.raw),
      /clean, ignored heuristics: Heuristics\.Encrypted\.Zip, PUA\.Win\.Packer\.Upx/,
    );
  });

  test('clamd unavailable: tempfail (fail closed), never pass', async () => {
    const { fn } = createVirusScanStage({ config: config(), scanner: scanner(unavailable), gateway });
    const out = await fn(pipelineMessage(samples.clean()), stageContext());
    assert.equal(out.verdict.kind, 'tempfail');
    assert.match((out.verdict as { reason: string }).reason, /clamd unavailable/);
    assert.equal(out.raw, undefined);
    assert.equal(out.failedOpen, undefined);
  });

  test('fail-open: pass with a warning header, failedOpen set, metric counted', async () => {
    const m = testMeter();
    const { fn } = createVirusScanStage({
      config: config({ failOpen: true }),
      scanner: scanner(unavailable),
      gateway,
      metrics: createScanMetrics(m.meter),
    });
    const out = await fn(pipelineMessage(samples.base64()), stageContext());
    assert.equal(out.verdict.kind, 'pass');
    assert.equal(out.failedOpen, true);
    assert.match(
      firstLine(out.raw),
      /^X-Mailgate-Virus-Scanned: UNSCANNED: clamd unavailable \(fail-open\) \(mailgate /,
    );
    assert.equal(await m.value('mailgate_virus_fail_open_total', { reason: 'unavailable' }), 1);
  });

  test('one wait budget per message: every scan of a message (whole, then each attachment) gets the same one', async () => {
    const budgets: (WaitBudget | undefined)[] = [];
    const s: Scanner = {
      scan: (_data, _signal, budget) => {
        budgets.push(budget);
        return Promise.resolve({ kind: 'clean', endpoint: 'clamd-a:3310', version: VERSION });
      },
    };
    const { fn } = createVirusScanStage({ config: config(), scanner: s, gateway });
    assert.equal((await fn(pipelineMessage(samples.clean()), stageContext())).verdict.kind, 'pass');
    assert.equal(budgets.length, 2, 'the message and its attachment');
    assert.deepEqual(budgets[0], {}, 'the pool sets it to its sessionWaitMs on the first scan');
    assert.equal(budgets[1], budgets[0], 'the same budget object');
    await fn(pipelineMessage(samples.clean()), stageContext());
    assert.notEqual(budgets[2], budgets[0], 'a fresh budget for the next message');
  });

  test('fail-open does not cover a busy pool: every endpoint busy (all sessions in use) is held, never passed', async () => {
    const busy = () =>
      new ClamdUnavailableError([
        new ClamdError('busy', 'clamd-a:3310', 'no session came free within 60000 ms'),
        new ClamdError('busy', 'clamd-b:3310', 'no session came free within 60000 ms'),
      ]);
    const { fn } = createVirusScanStage({ config: config({ failOpen: true }), scanner: scanner(busy), gateway });
    const out = await fn(pipelineMessage(samples.clean()), stageContext());
    assert.equal(out.verdict.kind, 'tempfail');
    assert.equal(out.failedOpen, undefined);
    assert.equal(out.raw, undefined);
    // One endpoint down and the other busy: clamd is (partly) unavailable, and fail-open applies as configured.
    const mixed = () =>
      new ClamdUnavailableError([
        new ClamdError('connect', 'clamd-a:3310', 'ECONNREFUSED'),
        new ClamdError('busy', 'clamd-b:3310', 'no session came free within 60000 ms'),
      ]);
    const m = createVirusScanStage({ config: config({ failOpen: true }), scanner: scanner(mixed), gateway });
    assert.equal((await m.fn(pipelineMessage(samples.clean()), stageContext())).verdict.kind, 'pass');
  });

  test('too large: not sent to clamd; quarantine by default, tempfail or fail-open pass when configured', async () => {
    const big = pipelineMessage(samples.clean() + 'x'.repeat(2000));
    const s = scanner(() => ({ kind: 'clean' }));
    const q = createVirusScanStage({ config: config({ clamd: { streamMaxLength: 1024 } }), scanner: s, gateway });
    const out = await q.fn(big, stageContext());
    assert.equal(out.verdict.kind, 'quarantine');
    assert.match((out.verdict as { reason: string }).reason, /^too large to scan: \d+ bytes > streamMaxLength 1024$/);
    assert.equal(s.calls.length, 0);

    const t = createVirusScanStage({
      config: config({ clamd: { streamMaxLength: '1K' }, actions: { tooLarge: 'tempfail' } }),
      scanner: s,
      gateway,
    });
    assert.equal((await t.fn(big, stageContext())).verdict.kind, 'tempfail');

    const p = createVirusScanStage({
      config: config({ clamd: { streamMaxLength: '1K' }, actions: { tooLarge: 'pass' }, failOpen: true }),
      scanner: s,
      gateway,
    });
    const passed = await p.fn(big, stageContext());
    assert.equal(passed.verdict.kind, 'pass');
    assert.equal(passed.failedOpen, true);
    assert.match(firstLine(passed.raw), /UNSCANNED: too large to scan/);
  });

  test('clamd says size limit exceeded, or reports Heuristics.Limits.Exceeded: the too-large outcome', async () => {
    const sl = createVirusScanStage({ config: config(), scanner: scanner(() => ({ kind: 'size-limit' })), gateway });
    const a = await sl.fn(pipelineMessage(samples.clean()), stageContext());
    assert.equal(a.verdict.kind, 'quarantine');
    assert.match(
      (a.verdict as { reason: string }).reason,
      /too large to scan: message exceeds clamd's StreamMaxLength/,
    );

    const lim = createVirusScanStage({
      config: config({ heuristics: [] }),
      scanner: scanner(() => ({ kind: 'found', signatures: ['Heuristics.Limits.Exceeded.MaxFileSize'] })),
      gateway,
    });
    const b = await lim.fn(pipelineMessage(samples.clean()), stageContext());
    assert.equal(b.verdict.kind, 'quarantine');
    assert.match((b.verdict as { reason: string }).reason, /scan limits exceeded/);
  });

  test('a forged scan header is removed before scanning and forwarding', async () => {
    const forged = 'X-Mailgate-Virus-Scanned: clean (trust me)\r\n\tfolded\r\n' + samples.clean();
    const s = scanner(() => ({ kind: 'clean' }));
    const { fn } = createVirusScanStage({ config: config(), scanner: s, gateway });
    const out = await fn(pipelineMessage(forged), stageContext());
    const text = out.raw!.toString('latin1');
    assert.equal(text.match(/X-Mailgate-Virus-Scanned/g)!.length, 1);
    assert.ok(!text.includes('trust me') && !text.includes('folded'));
    assert.ok(!s.calls[0]!.toString('latin1').includes('trust me'));
  });

  test('scanAttachmentsSeparately: each decoded attachment is scanned too', async () => {
    const eicarMarker = 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE';
    // This scripted scanner "misses" the encoded form and only finds the decoded one.
    const s = scanner((d) =>
      d.toString('latin1').startsWith('X5O!') && d.toString('latin1').includes(eicarMarker)
        ? { kind: 'found', signatures: ['Eicar'] }
        : { kind: 'clean' },
    );
    const off = createVirusScanStage({ config: config({ scanAttachmentsSeparately: false }), scanner: s, gateway });
    assert.equal((await off.fn(pipelineMessage(samples.base64()), stageContext())).verdict.kind, 'pass');
    const on = createVirusScanStage({ config: config(), scanner: s, gateway });
    const out = await on.fn(pipelineMessage(samples.base64()), stageContext());
    assert.equal(out.verdict.kind, 'quarantine');
    assert.deepEqual(out.details?.['parts'], [
      { part: 'message', result: 'clean' },
      { part: 'attachment eicar.com', result: 'found' },
    ]);
  });

  test('onHoldExpired: quarantined as unscannable (reject when configured)', () => {
    const { hooks } = createVirusScanStage({ config: config(), scanner: scanner(unavailable), gateway });
    const out = hooks.onHoldExpired!(
      pipelineMessage(samples.clean()),
      { kind: 'tempfail', reason: 'clamd unavailable: x' },
      7_200_000,
    );
    assert.equal(out.verdict.kind, 'quarantine');
    assert.match(
      (out.verdict as { reason: string }).reason,
      /^unscannable: no scan verdict after 7200 s \(clamd unavailable: x\)$/,
    );
    assert.match(firstLine(out.raw), /not scanned: unscannable after 7200 s/);
    const r = createVirusScanStage({
      config: config({ actions: { unscannable: 'reject' } }),
      scanner: scanner(unavailable),
      gateway,
    });
    assert.equal(
      r.hooks.onHoldExpired!(pipelineMessage('x'), { kind: 'tempfail', reason: 'r' }, 1).verdict.kind,
      'reject',
    );
  });

  test('shutdown during a scan: the error propagates (record redelivered), no verdict', async () => {
    const ac = new AbortController();
    ac.abort();
    const { fn } = createVirusScanStage({ config: config({ failOpen: true }), scanner: scanner(unavailable), gateway });
    await assert.rejects(
      fn(pipelineMessage(samples.clean()), stageContext({ signal: ac.signal })),
      ClamdUnavailableError,
    );
  });
});
