// The service through the real StageRunner and kafka-lite: what reaches the next topic, and when.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { SERVICES, TOPICS, type PipelineMessage } from '@mailgate/contracts';
import { startService } from '@mailgate/runtime';
import {
  EICAR_FOUND_NAME,
  freePort,
  groupCaughtUp,
  observeTopics,
  producePipelineMessages,
  startClamd,
  startKafka,
  testStageService,
  waitFor,
} from '@mailgate/testkit';
import { setupVirusScan, virusScanSchema, type VirusScanInput } from '../src/index.js';
import { log, pipelineMessage, samples } from './helpers.js';

/** The production definition, with fast group membership for tests. */
const service = testStageService({
  stage: 'virus-scan',
  section: 'virusScan',
  schema: virusScanSchema,
  setup: setupVirusScan,
});

async function pipeline(t: TestContext, virusScan: VirusScanInput) {
  // One after-hook, stopping in dependency order (node:test runs after-hooks first-registered first).
  const stops: (() => Promise<unknown>)[] = [];
  t.after(async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  });
  const kafka = await startKafka();
  stops.push(() => kafka.close());
  const s = await startService(service, {
    configDocument: {
      gateway: { hostname: 'mx.test' },
      kafka: { brokers: [kafka.brokers], topics: { partitions: 1 } },
      virusScan: { bus: { concurrency: 4, retry: { initialMs: 200, maxMs: 500 } }, ...virusScan },
    },
    httpPort: 0,
    log,
  });
  stops.push(() => s.stop());

  const observer = await observeTopics(kafka.brokers, [TOPICS.scanned, TOPICS.quarantine]);
  stops.push(() => observer.stop());

  return {
    brokers: kafka.brokers,
    send: (m: PipelineMessage) => producePipelineMessages(kafka.brokers, TOPICS.dnsblChecked, [m]),
    of: (m: PipelineMessage) => observer.of(m.envelope.id),
    /** Every input record committed by the stage and every output record seen by the observer. */
    committed: () => groupCaughtUp(kafka.brokers, SERVICES['virus-scan'].group, TOPICS.dnsblChecked),
    settled: async () =>
      (await groupCaughtUp(kafka.brokers, SERVICES['virus-scan'].group, TOPICS.dnsblChecked)) &&
      (await observer.caughtUp()),
    ready: async () => (await fetch(`http://127.0.0.1:${s.http.port}/readyz`)).status,
    metrics: async () => (await fetch(`http://127.0.0.1:${s.http.port}/metrics`)).text(),
  };
}

test('clean → next topic with the header; EICAR → quarantine; clamd down → held, delivered once when it returns', async (t) => {
  const clamd = await startClamd();
  t.after(() => clamd.stop());
  const p = await pipeline(t, {
    clamd: { endpoints: [{ host: clamd.host, port: clamd.port }], healthIntervalMs: 300, connectTimeoutMs: 500 },
  });

  const clean = pipelineMessage(samples.clean());
  const infected = pipelineMessage(samples.nestedZip());
  await p.send(clean);
  await p.send(infected);
  await waitFor(() => p.of(clean).length === 1 && p.of(infected).length === 1, {
    timeoutMs: 30_000,
    message: 'first two verdicts',
  });
  const [c] = p.of(clean);
  assert.equal(c!.topic, TOPICS.scanned);
  assert.match(c!.value.raw.toString('latin1'), /^X-Mailgate-Virus-Scanned: clean \(mailgate mx\.test; ClamAV /);
  assert.equal(c!.value.envelope.verdicts.at(-1)?.stage, 'virus-scan');
  const [q] = p.of(infected);
  assert.equal(q!.topic, TOPICS.quarantine);
  assert.deepEqual(q!.value.envelope.verdicts.at(-1)?.details?.['signatures'], [EICAR_FOUND_NAME]);
  await waitFor(async () => (await p.ready()) === 200, { timeoutMs: 20_000, message: 'ready' });

  // clamd goes away: the next message is held in place, never passed on.
  await clamd.kill();
  await waitFor(async () => (await p.ready()) === 503, { timeoutMs: 10_000, message: 'not ready without clamd' });
  const held = pipelineMessage(samples.clean());
  await p.send(held);
  // Positive signal: the stage tried the record and held it (a tempfail retry is counted), then nothing came out.
  await waitFor(
    async () => /mailgate_stage_retries_total\{[^}]*cause="tempfail"[^}]*\} [1-9]/.test(await p.metrics()),
    {
      timeoutMs: 20_000,
      message: 'the held record was tried and held (tempfail counted)',
    },
  );
  assert.equal(await p.committed(), false, 'the held record is not committed');
  assert.deepEqual(p.of(held), [], 'nothing on any topic while clamd is down');

  await clamd.restart();
  await waitFor(() => p.of(held).length > 0, {
    timeoutMs: 20_000,
    message: 'held message delivered after clamd returned',
  });
  // Positive signal: the record is committed and the observer has read every output record there is.
  await waitFor(() => p.settled(), { timeoutMs: 20_000, message: 'held record committed, outputs all observed' });
  assert.equal(p.of(held).length, 1, 'delivered exactly once');
  assert.equal(p.of(held)[0]!.topic, TOPICS.scanned);
  assert.match(p.of(held)[0]!.value.raw.toString('latin1'), /^X-Mailgate-Virus-Scanned: clean /);
  await waitFor(async () => (await p.ready()) === 200, { timeoutMs: 10_000, message: 'ready again' });
});

test('no clamd for longer than maxHoldMs: quarantined as unscannable, never passed', async (t) => {
  const p = await pipeline(t, {
    clamd: { endpoints: [{ host: '127.0.0.1', port: await freePort() }], connectTimeoutMs: 300 },
    maxHoldMs: 1500,
  });
  const m = pipelineMessage(samples.clean());
  await p.send(m);
  await waitFor(() => p.of(m).length > 0, { timeoutMs: 30_000, message: 'unscannable verdict' });
  const [q] = p.of(m);
  assert.equal(q!.topic, TOPICS.quarantine);
  const v = q!.value.envelope.verdicts.at(-1)!;
  assert.equal(v.verdict.kind, 'quarantine');
  assert.match(
    (v.verdict as { reason: string }).reason,
    /^unscannable: no scan verdict after \d+ s \(clamd unavailable: /,
  );
  assert.match(q!.value.raw.toString('latin1'), /^X-Mailgate-Virus-Scanned: not scanned: unscannable/);
});

test('every clamd session busy past clamd.sessionWaitMs: the message is held as busy (counted), delivered once when a session frees', async (t) => {
  const clamd = await startClamd();
  let stopped = false;
  t.after(async () => {
    if (stopped) process.kill(clamd.pid!, 'SIGCONT');
    await clamd.stop();
  });
  const p = await pipeline(t, {
    clamd: {
      endpoints: [{ host: clamd.host, port: clamd.port }],
      sessionsPerEndpoint: 1,
      sessionWaitMs: 300,
      // The scan on the one session outlasts the test while clamd is stopped; no PING takes clamd out of rotation.
      readTimeoutMs: 120_000,
      healthIntervalMs: 600_000,
    },
    failOpen: true, // busy is load, not an outage: held even so
  });
  const warm = pipelineMessage(samples.clean());
  await p.send(warm);
  await waitFor(() => p.of(warm).length === 1, { timeoutMs: 30_000, message: 'warm-up scanned (session open)' });

  process.kill(clamd.pid!, 'SIGSTOP');
  stopped = true;
  // One record takes the session (clamd never answers while stopped), the other finds it busy.
  const a = pipelineMessage(samples.clean());
  const b = pipelineMessage(samples.clean());
  await producePipelineMessages(p.brokers, TOPICS.dnsblChecked, [a, b]);
  await waitFor(
    async () => {
      const m = await p.metrics();
      return (
        /mailgate_clamd_errors_total\{[^}]*kind="busy"[^}]*\} [1-9]/.test(m) &&
        /mailgate_stage_retries_total\{[^}]*cause="tempfail"[^}]*\} [1-9]/.test(m)
      );
    },
    { timeoutMs: 20_000, message: 'a scan ran out of its session wait (busy) and its record was held (tempfail)' },
  );
  const m = await p.metrics();
  assert.doesNotMatch(m, /mailgate_virus_fail_open_total\{[^}]*\} [1-9]/, 'never passed unscanned');
  assert.doesNotMatch(m, /mailgate_clamd_errors_total\{[^}]*kind="(connect|timeout|closed)"[^}]*\} [1-9]/);
  assert.equal(await p.committed(), false, 'the held records are not committed');
  assert.deepEqual([...p.of(a), ...p.of(b)], [], 'nothing passed on while clamd is stopped');

  process.kill(clamd.pid!, 'SIGCONT');
  stopped = false;
  await waitFor(() => p.settled(), { timeoutMs: 30_000, message: 'both records committed, outputs all observed' });
  for (const x of [a, b]) {
    assert.equal(p.of(x).length, 1, 'delivered exactly once');
    assert.equal(p.of(x)[0]!.topic, TOPICS.scanned);
    assert.match(p.of(x)[0]!.value.raw.toString('latin1'), /^X-Mailgate-Virus-Scanned: clean /);
  }
});
