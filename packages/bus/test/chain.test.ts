import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  chainGroup,
  decodeEvent,
  pass,
  quarantine,
  RECORD_HEADERS,
  tempfail,
  TOPICS,
  type PipelineStage,
  type TrackingEvent,
} from '@mailgate/contracts';
import { defineChainService, StageRunner, type StageFn, type StageStep } from '@mailgate/bus';
import type { Telemetry } from '@mailgate/telemetry';
import { assertOneTrace } from '@mailgate/telemetry/testing';
import { producePipelineMessages, readTopic } from '@mailgate/testkit';
import { broker, decoded, fastBus, log, runChain, telemetry, testMessage } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const STAGES = ['dnsbl-check', 'virus-scan', 'attachment-policy'] as const satisfies readonly PipelineStage[];

type SpanProcessor = Parameters<Telemetry['addSpanProcessor']>[0];
type EndedSpan = Parameters<SpanProcessor['onEnd']>[0];

/** Every span ended in this process, for the one-trace assertions. */
const spans: EndedSpan[] = [];
telemetry.addSpanProcessor({
  onStart: () => undefined,
  onEnd: (s) => void spans.push(s),
  forceFlush: async () => undefined,
  shutdown: async () => undefined,
});

/** Test steps for STAGES: each counts its calls per message id; `decide` picks the outcome (default pass). */
function steps(decide: Partial<Record<PipelineStage, StageFn>> = {}) {
  const calls = new Map<PipelineStage, string[]>(STAGES.map((s) => [s, []]));
  const list: StageStep[] = STAGES.map((stage, k) => ({
    stage,
    fn: async (m, ctx) => {
      calls.get(stage)!.push(m.envelope.id);
      return decide[stage]?.(m, ctx) ?? { verdict: pass(), details: { step: k + 1 } };
    },
  }));
  return { list, calls };
}

const eventsOf = async (brokers: string, id: string, until: (e: TrackingEvent[]) => boolean) => {
  const got: TrackingEvent[] = [];
  await readTopic(brokers, TOPICS.events, (m) => {
    const e = decodeEvent(m.value);
    if (e.messageId === id) got.push(e);
    return until(got);
  });
  return got;
};

describe('StageRunner as a stage chain against kafka-lite', () => {
  let b: Awaited<ReturnType<typeof broker>>;
  beforeEach(async () => {
    b = await broker(); // one broker per test: the chain uses the real pipeline topics
  });
  afterEach(async () => {
    await b.close();
  });

  test('a pass runs every step in memory: last output topic, verdicts in order, one event per step, one trace', async () => {
    const msg = testMessage('clean');
    await producePipelineMessages(b.brokers, TOPICS.inbound, [msg]);
    const { list, calls } = steps();
    const c = await runChain(b.brokers, list);
    try {
      const [out] = await readTopic(b.brokers, TOPICS.policyChecked, 1);
      const d = decoded(out!);
      assert.equal(d.envelope.id, msg.envelope.id);
      assert.deepEqual(
        d.envelope.verdicts.map((v) => [v.stage, v.verdict.kind, v.details?.['step']]),
        [
          ['dnsbl-check', 'pass', 1],
          ['virus-scan', 'pass', 2],
          ['attachment-policy', 'pass', 3],
        ],
      );
      for (const s of STAGES) assert.deepEqual(calls.get(s), [msg.envelope.id]);
      const events = await eventsOf(b.brokers, msg.envelope.id, (e) => e.length >= 3);
      assert.deepEqual(
        events.map((e) => [e.type, e.service]),
        STAGES.map((s) => ['stage', s]),
      );
      assert.ok(events.every((e) => e.traceId === msg.envelope.trace.traceId));
      // One trace: ingress's (the record's headers) → dnsbl-check → virus-scan → attachment-policy, each a child of
      // the one before; the output record carries the last step's span as its parent.
      const t = assertOneTrace(spans, [...STAGES], msg.envelope.trace.traceId);
      const last = t.byService.get('attachment-policy')!;
      assert.equal(last.name, 'attachment-policy process');
      const tp = out!.headers?.[RECORD_HEADERS.traceparent]?.toString() ?? '';
      assert.equal(tp, `00-${msg.envelope.trace.traceId}-${last.spanContext().spanId}-01`);
      // No intermediate topic was written.
      assert.equal(await countRecords(b.brokers, TOPICS.dnsblChecked), 0);
      assert.equal(await countRecords(b.brokers, TOPICS.scanned), 0);
    } finally {
      await c.stop();
    }
  });

  test('bus.maxHoldMs bounds the hold across the chain: a later step gets what the earlier steps left', async () => {
    const msg = testMessage('slow');
    await producePipelineMessages(b.brokers, TOPICS.inbound, [msg]);
    const maxHoldMs = 600;
    // Step 1 holds the record for the whole budget once, then passes; step 2 cannot decide. Counted per step, step 2
    // would retry every 50 ms for another maxHoldMs; counted per record, its first tempfail ends the hold.
    const { list, calls } = steps({
      'dnsbl-check': async (_m, ctx) =>
        ctx.attempt === 1 ? { verdict: tempfail('dns slow', maxHoldMs) } : { verdict: pass() },
      'virus-scan': async () => ({ verdict: tempfail('clamd down', 50) }),
    });
    const c = await runChain(b.brokers, list, { bus: { ...fastBus, maxHoldMs } });
    try {
      const [q] = await readTopic(b.brokers, TOPICS.quarantine, 1);
      const d = decoded(q!);
      assert.equal(d.envelope.id, msg.envelope.id);
      const v = d.envelope.verdicts.at(-1)!;
      assert.equal(v.stage, 'virus-scan');
      assert.match('reason' in v.verdict ? v.verdict.reason : '', /^undecidable after .*clamd down/);
      assert.equal(calls.get('dnsbl-check')!.length, 2);
      assert.equal(calls.get('virus-scan')!.length, 1);
      assert.deepEqual(calls.get('attachment-policy'), []);
    } finally {
      await c.stop();
    }
  });

  test('a quarantine at step 2: quarantine topic naming step 2 input topic as its source; step 3 never runs', async () => {
    const bad = testMessage('bad');
    const good = testMessage('good');
    await producePipelineMessages(b.brokers, TOPICS.inbound, [bad, good]);
    const { list, calls } = steps({
      'virus-scan': async (m) =>
        m.raw.includes('bad') ? { verdict: quarantine('Eicar-Test-Signature') } : { verdict: pass() },
    });
    const c = await runChain(b.brokers, list);
    try {
      const [q] = await readTopic(b.brokers, TOPICS.quarantine, 1);
      const d = decoded(q!);
      assert.equal(d.envelope.id, bad.envelope.id);
      assert.equal(q!.headers?.[RECORD_HEADERS.sourceTopic]?.toString(), TOPICS.dnsblChecked);
      assert.deepEqual(
        d.envelope.verdicts.map((v) => [v.stage, v.verdict.kind]),
        [
          ['dnsbl-check', 'pass'],
          ['virus-scan', 'quarantine'],
        ],
      );
      const [out] = await readTopic(b.brokers, TOPICS.policyChecked, 1);
      assert.equal(decoded(out!).envelope.id, good.envelope.id);
      assert.ok(!calls.get('attachment-policy')!.includes(bad.envelope.id));
      const events = await eventsOf(b.brokers, bad.envelope.id, (e) => e.length >= 3);
      assert.deepEqual(
        events.map((e) => [e.type, e.service]),
        [
          ['stage', 'dnsbl-check'],
          ['stage', 'virus-scan'],
          ['quarantined', 'virus-scan'],
        ],
      );
    } finally {
      await c.stop();
    }
  });

  test("a record in step 2's input topic (release with recheck, a split backlog) starts at step 2", async () => {
    const msg = testMessage('released');
    await producePipelineMessages(b.brokers, TOPICS.dnsblChecked, [msg]);
    const { list, calls } = steps();
    const c = await runChain(b.brokers, list);
    try {
      const [out] = await readTopic(b.brokers, TOPICS.policyChecked, 1);
      assert.deepEqual(
        decoded(out!).envelope.verdicts.map((v) => v.stage),
        ['virus-scan', 'attachment-policy'],
      );
      assert.deepEqual(calls.get('dnsbl-check'), []);
      assert.deepEqual(calls.get('virus-scan'), [msg.envelope.id]);
    } finally {
      await c.stop();
    }
  });

  test('a step that keeps throwing dead-letters the record as read; earlier steps keep their events', async () => {
    const msg = testMessage('poison');
    await producePipelineMessages(b.brokers, TOPICS.inbound, [msg]);
    const { list, calls } = steps({
      'virus-scan': async () => {
        throw new Error('boom: cannot parse');
      },
    });
    const c = await runChain(b.brokers, list);
    try {
      const [dl] = await readTopic(b.brokers, TOPICS.deadLetter, 1);
      assert.equal(dl!.headers?.[RECORD_HEADERS.sourceTopic]?.toString(), TOPICS.inbound);
      assert.match(dl!.headers?.[RECORD_HEADERS.error]?.toString() ?? '', /boom: cannot parse/);
      // The record as read: no verdict appended.
      assert.equal(decoded(dl!).envelope.verdicts.length, 0);
      assert.equal(calls.get('virus-scan')!.length, fastBus.maxAttempts);
      const events = await eventsOf(b.brokers, msg.envelope.id, (e) => e.length >= 2);
      assert.deepEqual(
        events.map((e) => [e.type, e.service]),
        [
          ['stage', 'dnsbl-check'],
          ['dead-lettered', 'virus-scan'],
        ],
      );
    } finally {
      await c.stop();
    }
  });

  test('a crash between produce and commit re-runs the whole chain for the record (duplicate allowed, loss never)', async () => {
    const msg = testMessage('crash me');
    await producePipelineMessages(b.brokers, TOPICS.inbound, [msg]);
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--conditions=mailgate-src', path.join(here, 'fixtures', 'chain-crash-runner.ts'), b.brokers],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const exit = await new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_c, sig) => resolve(sig)));
    assert.equal(exit, 'SIGKILL');
    const [first] = await readTopic(b.brokers, 'test.out.chain-crash', 1);
    assert.equal(decoded(first!).envelope.id, msg.envelope.id);
    // The chain's group never committed: a new instance re-runs every step for the record.
    const { list, calls } = steps();
    const c = await runChain(b.brokers, list);
    try {
      let copies = 0;
      await readTopic(
        b.brokers,
        TOPICS.policyChecked,
        (m) => decoded(m).envelope.id === msg.envelope.id && ++copies === 2,
      );
      for (const s of STAGES) assert.deepEqual(calls.get(s), [msg.envelope.id]);
    } finally {
      await c.stop();
    }
  });

  test('steps that are not consecutive stages are a configuration error', () => {
    const fn: StageFn = async () => ({ verdict: pass() });
    const make = (stages: PipelineStage[]) => () =>
      new StageRunner({
        steps: stages.map((stage) => ({ stage, fn })),
        kafka: {} as never, // never reached: the steps are checked first
        producer: {} as never,
        bus: fastBus,
        log,
        telemetry,
        host: 'h',
      });
    assert.throws(make(['dnsbl-check', 'attachment-policy']), /attachment-policy does not follow dnsbl-check/);
    assert.throws(make(['virus-scan', 'dnsbl-check']), /dnsbl-check does not follow virus-scan/);
    assert.throws(make(['ingress-smtp', 'dnsbl-check']), /ingress-smtp consumes no topic/);
    assert.throws(make([]), /at least one stage/);
    const def = (stage: PipelineStage) => ({
      stage,
      section: 'dnsbl' as const,
      schema: {} as never,
      setup: async () => ({ fn }),
    });
    assert.throws(
      () => defineChainService([def('ingress-smtp'), def('dnsbl-check')]),
      /only the stages that read a topic/,
    );
    // delivery may end a chain (its retry worker runs in the chain process).
    assert.doesNotThrow(() => defineChainService([def('spam-check'), def('delivery')]));
    assert.throws(() => defineChainService([def('dnsbl-check'), def('spam-check')]), /does not follow/);
    assert.equal(chainGroup(['dnsbl-check', 'virus-scan', 'spam-check']), 'mailgate.chain.dnsbl-check..spam-check');
    assert.equal(chainGroup(['virus-scan']), 'mailgate.virus-scan');
  });
});

/** Records on `topic` (0 when it was never written). */
async function countRecords(brokers: string, topic: string): Promise<number> {
  const { Kafka, logLevel } = await import('kafkajs');
  const admin = new Kafka({ brokers: [brokers], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const topics = await admin.listTopics();
    if (!topics.includes(topic)) return 0;
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((n, o) => n + Number(o.high) - Number(o.low), 0);
  } finally {
    await admin.disconnect();
  }
}
