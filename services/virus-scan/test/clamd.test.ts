// The clamd client, pool and stage against a real clamd (Debian clamav-daemon, generated EICAR database).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EICAR, EICAR_FOUND_NAME, freePort, startClamd } from '@mailgate/testkit';
import {
  ClamdPool,
  ClamdUnavailableError,
  clamdRequest,
  createScanMetrics,
  createVirusScanStage,
  type ClamdEndpoint,
  type VirusScanInput,
} from '../src/index.js';
import { clamdForFile, config, pipelineMessage, samples, stageContext, testMeter } from './helpers.js';

const gateway = { name: 'mailgate', hostname: 'mx1.example.test' };
const fx = clamdForFile();
const pool = fx.pool;

function stage(p: ClamdPool, input: VirusScanInput = {}, metrics?: ReturnType<typeof createScanMetrics>) {
  return createVirusScanStage({ config: config(input), scanner: p, gateway, ...(metrics ? { metrics } : {}) });
}

const firstLine = (b: Buffer | undefined) => b!.toString('latin1').split(/\r?\n/)[0]!;

describe('clamd client', () => {
  test('PING and VERSION over TCP and the Unix socket', async () => {
    const o = { connectTimeoutMs: 1000, readTimeoutMs: 2000 };
    assert.equal(await clamdRequest(fx.tcp, [Buffer.from('zPING\0')], o), 'PONG');
    assert.equal(await clamdRequest({ socket: fx.clamd.socketPath }, [Buffer.from('zPING\0')], o), 'PONG');
    const p = pool([{ socket: fx.clamd.socketPath }]);
    assert.equal(await p.ping(), true);
    const v = await p.version();
    assert.match(v!.engine, /^ClamAV \d+\.\d+/);
  });

  test('INSTREAM over the Unix socket finds EICAR', async () => {
    const r = await pool([{ socket: fx.clamd.socketPath }]).scan(Buffer.from(EICAR, 'latin1'));
    assert.equal(r.kind, 'found');
    assert.deepEqual(r.kind === 'found' && r.signatures, [EICAR_FOUND_NAME]);
  });
});

describe('stage with a real clamd', () => {
  for (const separately of [false, true]) {
    for (const [name, make] of [
      ['plain attachment', samples.plain],
      ['base64 attachment', samples.base64],
      ['inside a zip', samples.zip],
      ['inside a nested zip', samples.nestedZip],
      ['inside a message/rfc822 attachment', samples.rfc822],
    ] as const) {
      test(`EICAR ${name}${separately ? ' (attachments also scanned separately)' : ''} → quarantined with the signature`, async () => {
        const { fn } = stage(pool([fx.tcp]), { scanAttachmentsSeparately: separately });
        const out = await fn(pipelineMessage(make()), stageContext());
        assert.equal(out.verdict.kind, 'quarantine');
        assert.equal((out.verdict as { reason: string }).reason, `virus found: ${EICAR_FOUND_NAME}`);
        assert.deepEqual(out.details?.['signatures'], [EICAR_FOUND_NAME]);
        assert.match(
          firstLine(out.raw),
          new RegExp(`^X-Mailgate-Virus-Scanned: infected: ${EICAR_FOUND_NAME.replace(/\./g, '\\.')} `),
        );
      });
    }
  }

  test('a clean message passes and carries the scan header with engine and database version', async () => {
    const msg = pipelineMessage(samples.clean());
    const { fn } = stage(pool([fx.tcp]), { scanAttachmentsSeparately: true });
    const out = await fn(msg, stageContext());
    assert.equal(out.verdict.kind, 'pass');
    assert.match(
      firstLine(out.raw),
      /^X-Mailgate-Virus-Scanned: clean \(mailgate mx1\.example\.test; ClamAV \d+\.\d+\.\d+/,
    );
    assert.ok(out.raw!.subarray(out.raw!.length - msg.raw.length).equals(msg.raw));
    assert.equal(out.details?.['attachmentsScanned'], 1);
  });

  test('larger than clamd accepts (its StreamMaxLength 1M): the configured outcome, never a pass', async () => {
    const p = pool([fx.tcp]);
    // Our limit is set above clamd's, so clamd itself refuses; 8 MiB also exercises the reset-before-reply path.
    for (const size of [1_500_000, 8 * 1024 * 1024]) {
      const raw = samples.clean() + 'A'.repeat(size);
      const q = await stage(p, { clamd: { streamMaxLength: '16M' } }).fn(pipelineMessage(raw), stageContext());
      assert.equal(q.verdict.kind, 'quarantine', `size ${size}`);
      assert.match(
        (q.verdict as { reason: string }).reason,
        /too large to scan: message exceeds clamd's StreamMaxLength/,
      );
      const t = await stage(p, { clamd: { streamMaxLength: '16M' }, actions: { tooLarge: 'tempfail' } }).fn(
        pipelineMessage(raw),
        stageContext(),
      );
      assert.equal(t.verdict.kind, 'tempfail');
    }
    // A size-limit answer is clamd being healthy: the endpoint stays in rotation.
    assert.equal(p.status()[0]!.healthy, true);
  });

  test('two clamd endpoints, one dead: every scan succeeds on the other', async () => {
    const dead: ClamdEndpoint = { host: '127.0.0.1', port: await freePort() };
    const m = testMeter();
    const metrics = createScanMetrics(m.meter);
    const p = pool([dead, fx.tcp], { onError: (e) => metrics.clamdError(e) });
    const { fn } = stage(p, {}, metrics);
    for (let i = 0; i < 12; i++) {
      const out = await fn(pipelineMessage(i % 3 === 0 ? samples.zip() : samples.clean()), stageContext());
      assert.equal(out.verdict.kind, i % 3 === 0 ? 'quarantine' : 'pass');
      assert.equal(out.details?.['clamd'], `${fx.clamd.host}:${fx.clamd.port}`);
    }
    const [d, live] = p.status();
    assert.equal(d!.healthy, false);
    assert.equal(live!.healthy, true);
    assert.equal(await p.ping(), true, 'ready while one clamd answers');
    assert.ok((await m.value('mailgate_clamd_errors_total', { kind: 'connect' })) >= 1);
  });

  test('clamd down: tempfail (held, never passed); scans again once it is back', async () => {
    const c2 = await startClamd();
    try {
      const p = pool([{ host: c2.host, port: c2.port }]);
      const { fn } = stage(p);
      assert.equal((await fn(pipelineMessage(samples.clean()), stageContext())).verdict.kind, 'pass');
      await c2.kill();
      assert.equal(await p.ping(), false, 'not ready without a clamd');
      await assert.rejects(p.scan(Buffer.from('x')), ClamdUnavailableError);
      for (const make of [samples.clean, samples.base64]) {
        const out = await fn(pipelineMessage(make()), stageContext());
        assert.equal(out.verdict.kind, 'tempfail');
        assert.match((out.verdict as { reason: string }).reason, /^clamd unavailable: /);
      }
      await c2.restart();
      assert.equal((await fn(pipelineMessage(samples.base64()), stageContext())).verdict.kind, 'quarantine');
      assert.equal((await fn(pipelineMessage(samples.clean()), stageContext())).verdict.kind, 'pass');
    } finally {
      await c2.stop();
    }
  });

  test('fail-open configured and no clamd answers: pass with the warning header, metric counted', async () => {
    const m = testMeter();
    const metrics = createScanMetrics(m.meter);
    const p = pool([{ host: '127.0.0.1', port: await freePort() }], { onError: (e) => metrics.clamdError(e) });
    const { fn } = stage(p, { failOpen: true }, metrics);
    const out = await fn(pipelineMessage(samples.clean()), stageContext());
    assert.equal(out.verdict.kind, 'pass');
    assert.equal(out.failedOpen, true);
    assert.match(firstLine(out.raw), /^X-Mailgate-Virus-Scanned: UNSCANNED: clamd unavailable \(fail-open\)/);
    assert.equal(await m.value('mailgate_virus_fail_open_total'), 1);
    assert.equal(await m.value('mailgate_virus_scans_total', { result: 'failed_open' }), 1);
    assert.equal(await m.value('mailgate_clamd_errors_total', { kind: 'connect' }), 1);
  });
});
