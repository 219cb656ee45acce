import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeEvent, RECORD_HEADERS, TOPICS, pass, quarantine, tempfail } from '@mailgate/contracts';
import type { StageFn } from '@mailgate/bus';
import { producePipelineMessages, readTopic } from '@mailgate/testkit';
import { broker, decoded, fastBus, runStage as runStageOn, testMessage } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));

describe('StageRunner against kafka-lite', () => {
  let b: Awaited<ReturnType<typeof broker>>;
  before(async () => {
    b = await broker();
  });
  after(async () => {
    await b.close();
  });

  const runStage = (fn: StageFn, opts: { groupId: string; topic: string; bus?: typeof fastBus }) =>
    runStageOn(b.brokers, fn, opts);

  test('moves records from its input topic to its output topic, verdict appended, trace carried', async () => {
    const input = 'test.in.move';
    const msgs = [testMessage('one'), testMessage('two'), testMessage('three')];
    await producePipelineMessages(b.brokers, input, msgs);
    const s = await runStage(async () => ({ verdict: pass(), details: { scanned: true } }), {
      groupId: 'g-move',
      topic: input,
    });
    try {
      const out = await readTopic(b.brokers, TOPICS.scanned, 3);
      const ids = out.map((m) => decoded(m).envelope.id).sort();
      assert.deepEqual(ids, msgs.map((m) => m.envelope.id).sort());
      for (const m of out) {
        const d = decoded(m);
        assert.equal(d.envelope.verdicts.length, 1);
        assert.equal(d.envelope.verdicts[0]!.stage, 'virus-scan');
        assert.deepEqual(d.envelope.verdicts[0]!.verdict, { kind: 'pass' });
        const tp = m.headers?.[RECORD_HEADERS.traceparent]?.toString() ?? '';
        // Same trace as the one ingress started, new parent span (this stage's span).
        assert.match(tp, /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
        assert.notEqual(tp, msgs[0]!.envelope.trace.traceparent);
        assert.ok(d.raw.toString().includes('Subject: t'));
      }
      const events = (await readTopic(b.brokers, TOPICS.events, 3)).map((e) => decodeEvent(e.value));
      assert.ok(events.every((e) => e.type === 'stage' && e.traceId === '0af7651916cd43dd8448eb211c80319c'));
    } finally {
      await s.stop();
    }
  });

  test('a stage that throws is retried, then dead-lettered with the error', async () => {
    const input = 'test.in.throw';
    const msg = testMessage('poison');
    await producePipelineMessages(b.brokers, input, [msg]);
    let calls = 0;
    const s = await runStage(
      async () => {
        calls++;
        throw new Error('boom: cannot parse');
      },
      { groupId: 'g-throw', topic: input },
    );
    try {
      const [dl] = await readTopic(b.brokers, TOPICS.deadLetter, 1);
      assert.equal(calls, fastBus.maxAttempts);
      assert.match(dl!.headers?.[RECORD_HEADERS.error]?.toString() ?? '', /boom: cannot parse/);
      assert.equal(dl!.headers?.[RECORD_HEADERS.sourceTopic]?.toString(), input);
      assert.equal(decoded(dl!).envelope.id, msg.envelope.id);
    } finally {
      await s.stop();
    }
  });

  test('tempfail holds the message (nothing passes) until the stage can decide', async () => {
    const input = 'test.in.tempfail';
    const msg = testMessage('held');
    await producePipelineMessages(b.brokers, input, [msg]);
    let calls = 0;
    const s = await runStage(
      async () => (++calls < 4 ? { verdict: tempfail('scanner down', 100) } : { verdict: quarantine('infected') }),
      { groupId: 'g-tempfail', topic: input },
    );
    try {
      const [q] = await readTopic(b.brokers, TOPICS.quarantine, 1);
      assert.equal(calls, 4);
      const d = decoded(q!);
      assert.equal(d.envelope.id, msg.envelope.id);
      assert.deepEqual(d.envelope.verdicts.at(-1)!.verdict, { kind: 'quarantine', reason: 'infected' });
    } finally {
      await s.stop();
    }
  });

  test('tempfail beyond maxHoldMs is quarantined (fail closed), never passed', async () => {
    const input = 'test.in.hold';
    await producePipelineMessages(b.brokers, input, [testMessage('never decidable')]);
    const s = await runStage(async () => ({ verdict: tempfail('dns timeout', 50) }), {
      groupId: 'g-hold',
      topic: input,
      bus: { ...fastBus, maxHoldMs: 300 },
    });
    try {
      const q = (await readTopic(b.brokers, TOPICS.quarantine, 2)).map(decoded);
      const held = q.find((m) => m.raw.toString().includes('never decidable'));
      assert.ok(held);
      const v = held.envelope.verdicts.at(-1)!.verdict;
      assert.equal(v.kind, 'quarantine');
      assert.match('reason' in v ? v.reason : '', /undecidable .*dns timeout/);
    } finally {
      await s.stop();
    }
  });

  for (const inFlight of [0, 8]) {
    const how = inFlight ? ', with bus.inFlight (the sliding window)' : '';
    const group = `g-crash-${inFlight}`;
    test(`a crash between produce and commit redelivers (duplicate allowed, loss never)${how}`, async () => {
      const input = `test.in.crash${inFlight}`;
      const msg = testMessage('crash me');
      await producePipelineMessages(b.brokers, input, [msg]);
      // A real process, killed with SIGKILL right after its output was acknowledged and before its commit.
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          '--conditions=mailgate-src',
          path.join(here, 'fixtures', 'crash-runner.ts'),
          b.brokers,
          input,
          group,
          String(inFlight),
        ],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      );
      const exit = await new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_c, sig) => resolve(sig)));
      assert.equal(exit, 'SIGKILL');
      // The crashed instance's output (a side topic the other case's instance wrote to as well).
      await readTopic(b.brokers, 'test.out.crash', (m) => decoded(m).envelope.id === msg.envelope.id);
      // The group's offset was never committed: a new instance gets the record again.
      let seen = 0;
      const s = await runStage(
        async (m) => {
          if (m.envelope.id === msg.envelope.id) seen++;
          return { verdict: pass() };
        },
        { groupId: group, topic: input, bus: { ...fastBus, inFlight } },
      );
      try {
        // Wait for the survivor's output of this message: the second one with its id (the crashed instance had
        // produced the first before it was killed; earlier tests wrote other records to the same topic).
        let copies = 0;
        await readTopic(b.brokers, TOPICS.scanned, (m) => decoded(m).envelope.id === msg.envelope.id && ++copies === 2);
        assert.equal(seen, 1);
      } finally {
        await s.stop();
      }
    });
  }
});
