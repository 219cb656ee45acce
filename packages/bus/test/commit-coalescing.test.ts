// Offset-commit coalescing in the StageRunner (bus.commitIntervalMs): a long batch is committed at its end, not after
// every chunk, and a drain that stops a batch early commits exactly what was produced — never a record whose output
// was not produced (the no-loss rule; the crash case is in runner.test.ts).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Kafka, logLevel, type Consumer } from 'kafkajs';
import { pass, TOPICS } from '@mailgate/contracts';
import type { StageFn } from '@mailgate/bus';
import { readTopic } from '@mailgate/testkit';
import { broker, committedOffset, fastBus, onePartitionBacklog, runStage } from './helpers.js';

describe('StageRunner offset-commit coalescing', () => {
  let b: Awaited<ReturnType<typeof broker>>;
  let kafka: Kafka;
  before(async () => {
    b = await broker();
    kafka = new Kafka({ clientId: 'coalesce-test', brokers: [b.brokers], logLevel: logLevel.NOTHING });
  });
  after(async () => {
    await b.close();
  });

  const backlog = (topic: string, n: number) => onePartitionBacklog(kafka, b.brokers, topic, n);

  const committed = (groupId: string, topic: string) => committedOffset(kafka, groupId, topic);

  const consumerOf = (s: Awaited<ReturnType<typeof runStage>>): Consumer =>
    (s.runner as unknown as { consumer: Consumer }).consumer;

  test('a backlog of 40 records in chunks of 4 is committed once per fetched batch, not once per chunk', async () => {
    const topic = 'coalesce.batch';
    await backlog(topic, 40);
    let decided = 0;
    const s = await runStage(b.brokers, async () => (decided++, { verdict: pass() }), {
      groupId: 'g-coalesce',
      topic,
      bus: { ...fastBus, commitIntervalMs: 60_000 },
    });
    const consumer = consumerOf(s);
    let commits = 0;
    let batches = 0;
    consumer.on(consumer.events.COMMIT_OFFSETS, () => commits++);
    consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
      if (e.payload.batchSize > 0) batches++;
    });
    try {
      await readTopic(b.brokers, TOPICS.scanned, 40); // every output produced…
      while ((await committed('g-coalesce', topic)) < 40) await new Promise((r) => setTimeout(r, 50)); // …and committed
    } finally {
      await s.stop(); // every batch has ended (and emitted its event) once the runner stopped
    }
    assert.equal(decided, 40);
    assert.ok(batches >= 1);
    assert.equal(commits, batches, `one commit per fetched batch (${batches}), not one per chunk (10)`);
  });

  test('a drain in the middle of a batch commits exactly the records whose output was produced', async () => {
    const topic = 'coalesce.drain';
    await backlog(topic, 20);
    let reached!: () => void;
    const blocked = new Promise<void>((r) => (reached = r));
    // Records 0–7 pass (two chunks of 4, produced); record 10 never decides until the drain aborts it, so the
    // chunk 8–11 is not produced and must stay uncommitted.
    let n = 0;
    const fn: StageFn = async (_msg, ctx) => {
      const i = n++;
      if (i < 8 || i === 8 || i === 9 || i === 11) return { verdict: pass() };
      reached();
      await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('aborted'))));
      return { verdict: pass() };
    };
    const s = await runStage(b.brokers, fn, {
      groupId: 'g-drain',
      topic,
      bus: { ...fastBus, commitIntervalMs: 60_000 },
    });
    await blocked;
    await s.runner.stop(100); // the blocked record holds the drain until the stage function is told to abort
    await s.stop();
    assert.equal(await committed('g-drain', topic), 8, 'the two produced chunks, and nothing after them');
  });
});
