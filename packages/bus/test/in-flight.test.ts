// bus.inFlight: a replica that holds few partitions works on a bigger window of each, so it keeps about as many
// records in flight as a replica holding them all (delivery's scale-out: 4 replicas on 12 partitions hold 3 each);
// the window slides record by record (no chunk barrier) and commits only the produced prefix.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { pass, tempfail, TOPICS } from '@mailgate/contracts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  pipelineRecord,
  producePipelineMessages,
  readTopic,
  startKafkaProcess,
  type KafkaProcessHandle,
} from '@mailgate/testkit';
import { stageInFlight, type StageFn } from '@mailgate/bus';
import { startBroker } from '@mailgate/kafka-lite';
import {
  broker,
  committedOffset,
  committedOffsets,
  decoded,
  fastBus,
  onePartitionBacklog,
  runStage,
  testMessage,
} from './helpers.js';

describe('StageRunner bus.inFlight', () => {
  let b: Awaited<ReturnType<typeof broker>>;
  let kafka: Kafka;
  before(async () => {
    b = await broker();
    kafka = new Kafka({ clientId: 'in-flight-test', brokers: [b.brokers], logLevel: logLevel.NOTHING });
  });
  after(async () => {
    await b.close();
  });

  const backlog = (topic: string, n: number) => onePartitionBacklog(kafka, b.brokers, topic, n);

  /** A stage function that counts the records in flight and resolves `decided` after `total` decisions. */
  function counting(total: number, hold: (inFlight: number) => Promise<void>) {
    let now = 0;
    let max = 0;
    let n = 0;
    let done!: () => void;
    const decided = new Promise<void>((r) => (done = r));
    const fn: StageFn = async () => {
      now++;
      max = Math.max(max, now);
      await hold(now);
      now--;
      if (++n === total) done();
      return { verdict: pass() };
    };
    return { fn, decided, max: () => max };
  }

  test('one partition held, inFlight 8, concurrency 2: the partition is worked on 8 records at a time', async () => {
    const topic = 'in-flight.grown';
    await backlog(topic, 8);
    // Every record waits until all 8 are in flight at once: with chunks of 2 (concurrency) this never happens and
    // the test times out; with chunks of inFlight ÷ 1 partition = 8 all of them are released together.
    let all!: () => void;
    const together = new Promise<void>((r) => (all = r));
    const c = counting(8, async (inFlight) => {
      if (inFlight === 8) all();
      await together;
    });
    const s = await runStage(b.brokers, c.fn, {
      groupId: 'g-grown',
      topic,
      bus: { ...fastBus, concurrency: 2, inFlight: 8 },
    });
    try {
      await c.decided;
    } finally {
      await s.stop();
    }
    assert.equal(c.max(), 8);
  });

  const committed = (groupId: string, topic: string) => committedOffset(kafka, groupId, topic);

  test('a window, not chunks: the records decided beside a slow one free their slots before it finishes', async () => {
    const topic = 'in-flight.window';
    await backlog(topic, 8);
    // inFlight 4 on one partition, concurrency 1: records 0–3 start. Record 1 waits until record 4 has started.
    // With chunks of 4 record 4 waits for record 1 (the test times out); with a window it starts as soon as one of
    // the others is decided (fewer than 4 in flight).
    let n = 0;
    let fourth!: () => void;
    const fourthStarted = new Promise<void>((r) => (fourth = r));
    let done!: () => void;
    const all = new Promise<void>((r) => (done = r));
    let decidedCount = 0;
    const fn = async () => {
      const i = n++;
      if (i === 4) fourth();
      if (i === 1) await fourthStarted;
      if (++decidedCount === 8) done();
      return { verdict: pass() };
    };
    const s = await runStage(b.brokers, fn, {
      groupId: 'g-window',
      topic,
      bus: { ...fastBus, concurrency: 1, inFlight: 4 },
    });
    try {
      await all;
      while ((await committed('g-window', topic)) < 8) await new Promise((r) => setTimeout(r, 50));
    } finally {
      await s.stop();
    }
    assert.equal(n, 8);
  });

  test('a drain while an early record is undecided commits only the produced prefix before it', async () => {
    const topic = 'in-flight.drain';
    await backlog(topic, 30);
    // inFlight 4: record 1 never decides until the drain aborts it; the others pass and are produced, up to 4
    // windows (16 records) past record 1: records 0 and 2–16. The commit may cover record 0 only: committing past
    // record 1 would lose it (its output was never produced).
    let n = 0;
    let blocked!: () => void;
    const reached = new Promise<void>((r) => (blocked = r));
    const passed = new Set<string>();
    const fn: StageFn = async (m, ctx) => {
      const i = n++;
      if (i !== 1) {
        passed.add(m.envelope.id);
        return { verdict: pass() };
      }
      blocked();
      await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('aborted'))));
      return { verdict: pass() };
    };
    const s = await runStage(b.brokers, fn, {
      groupId: 'g-window-drain',
      topic,
      bus: { ...fastBus, concurrency: 1, inFlight: 4, commitIntervalMs: 0 },
    });
    await reached;
    // 16 outputs (records 0 and 2–16) were produced; record 17 cannot start, 16 past record 1.
    let outputs = 0;
    await readTopic(b.brokers, TOPICS.scanned, (m) => passed.has(decoded(m).envelope.id) && ++outputs === 16);
    await s.runner.stop(100); // record 1 holds the drain until the stage function is told to abort
    await s.stop();
    assert.equal(n, 17, 'records 0–16 started, nothing more than 4 windows past the undecided record');
    assert.equal(await committed('g-window-drain', topic), 1, 'record 0 only: record 1 was never produced');
  });

  test('a slow record does not hold the next fetch: records produced after it are decided, the commit waits for it', async () => {
    const topic = 'in-flight.next-fetch';
    await backlog(topic, 1);
    // Record 0 is slow (held until released). Records 1 and 2 are produced only once it started, so they come in a
    // later fetch: kafkajs fetches again only after every batch of its last fetch returned, so while a window lived
    // inside its batch they waited for record 0 (the test times out); with the window in a lane across batches
    // they are decided meanwhile, and the commit stays before record 0 until it is decided.
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let slowStarted!: () => void;
    const started = new Promise<void>((r) => (slowStarted = r));
    const passed = new Set<string>();
    let n = 0;
    const fn: StageFn = async (m) => {
      if (n++ === 0) {
        slowStarted();
        await released;
      } else passed.add(m.envelope.id);
      return { verdict: pass() };
    };
    const s = await runStage(b.brokers, fn, {
      groupId: 'g-next-fetch',
      topic,
      bus: { ...fastBus, concurrency: 1, inFlight: 4, commitIntervalMs: 0 },
    });
    try {
      await started;
      await producePipelineMessages(b.brokers, topic, [testMessage('later 1'), testMessage('later 2')]);
      let outputs = 0;
      await readTopic(b.brokers, TOPICS.scanned, (m) => passed.has(decoded(m).envelope.id) && ++outputs === 2);
      assert.equal(await committed('g-next-fetch', topic), -1, 'nothing committed past the undecided record 0');
      release();
      while ((await committed('g-next-fetch', topic)) < 3) await new Promise((r) => setTimeout(r, 50));
    } finally {
      release();
      await s.stop();
    }
    assert.equal(n, 3);
  });

  test('a rebalance while an old lane holds a record: each partition is read again from its commit, nothing lost', async () => {
    const topic = 'in-flight.rebalance';
    const perPartition = 6;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] });
    await admin.disconnect();
    // Record 0 of each partition is held (tempfail) until released; records 1–5 pass. Runner A decides and produces
    // records 1–5 of both partitions while records 0 hold their commits back. Runner B then joins: A's lanes belong to
    // the old generation, their held records stop (a hold ends on a rebalance) and must not be skipped. Whichever
    // member owns a partition now must read it again from its commit (before record 0): a lane that took up the
    // fetch position instead (past record 0) would commit past a record whose output was never produced.
    const msgs = Array.from({ length: 2 * perPartition }, (_, i) =>
      testMessage(i % perPartition === 0 ? 'held' : `m${i}`),
    );
    const held = new Set(msgs.filter((_, i) => i % perPartition === 0).map((m) => m.envelope.id));
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({
      topic,
      acks: -1,
      messages: msgs.map((m, i) => ({ ...pipelineRecord(m), partition: Math.floor(i / perPartition) })),
    });
    await producer.disconnect();
    let released = false;
    /** Per runner: how many times a held record's decision began (attempt 1: a new read of the record). */
    const firstAttempts = { a: new Map<string, number>(), b: new Map<string, number>() };
    const passed = new Set<string>();
    let onChange = () => {};
    const fnOf =
      (who: 'a' | 'b'): StageFn =>
      async (m, ctx) => {
        const id = m.envelope.id;
        if (held.has(id) && !released) {
          if (ctx.attempt === 1) firstAttempts[who].set(id, (firstAttempts[who].get(id) ?? 0) + 1);
          onChange();
          return { verdict: tempfail('held by the test', 20) };
        }
        passed.add(id);
        onChange();
        return { verdict: pass() };
      };
    const until = (what: string, cond: () => boolean) =>
      new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`timeout: ${what}`)), 30_000);
        onChange = () => {
          if (!cond()) return;
          clearTimeout(t);
          resolve();
        };
        onChange();
      });
    const bus = { ...fastBus, concurrency: 2, inFlight: 4, commitIntervalMs: 0 };
    const a = await runStage(b.brokers, fnOf('a'), { groupId: 'g-rebalance', topic, bus });
    let bRunner: Awaited<ReturnType<typeof runStage>> | undefined;
    try {
      await until(
        'A decided records 1–5 of both partitions',
        () => firstAttempts.a.size === 2 && passed.size === 2 * (perPartition - 1),
      );
      bRunner = await runStage(b.brokers, fnOf('b'), { groupId: 'g-rebalance', topic, bus });
      // The positive signal of the new generation: both held records were read again, one in each member (B took a
      // partition and A read the one it kept again from its commit).
      await until(
        'both held records read again after the rebalance',
        () =>
          firstAttempts.b.size === 1 &&
          [...held].every((id) => (firstAttempts.a.get(id) ?? 0) + (firstAttempts.b.get(id) ?? 0) === 2),
      );
      assert.deepEqual(
        await committedOffsets(kafka, 'g-rebalance', topic),
        [-1, -1],
        'nothing committed past a held record',
      );
      released = true;
      const deadline = Date.now() + 30_000;
      while ((await committedOffsets(kafka, 'g-rebalance', topic)).some((o) => o < perPartition)) {
        assert.ok(Date.now() < deadline, 'both partitions committed to their end');
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      released = true;
      await bRunner?.stop();
      await a.stop();
    }
    const ids = new Set<string>();
    await readTopic(b.brokers, TOPICS.scanned, (m) => {
      const id = decoded(m).envelope.id;
      if (msgs.some((x) => x.envelope.id === id)) ids.add(id);
      return ids.size === msgs.length;
    });
    assert.equal(ids.size, msgs.length, 'every record has its output, the held ones too');
  });

  test('slidingWindow false: chunks of the same size, each decided before the next starts', async () => {
    const topic = 'in-flight.chunks';
    await backlog(topic, 8);
    // Record 1 takes a few turns of the event loop longer than the others: a window would start record 4 meanwhile.
    let n = 0;
    let decidedCount = 0;
    let startedEarly = false;
    let done!: () => void;
    const all = new Promise<void>((r) => (done = r));
    const fn = async () => {
      const i = n++;
      if (i === 4 && decidedCount < 4) startedEarly = true;
      if (i === 1) for (let k = 0; k < 5; k++) await new Promise((r) => setImmediate(r));
      if (++decidedCount === 8) done();
      return { verdict: pass() };
    };
    const s = await runStage(b.brokers, fn, {
      groupId: 'g-chunks',
      topic,
      bus: { ...fastBus, concurrency: 1, inFlight: 4, slidingWindow: false },
    });
    try {
      await all;
    } finally {
      await s.stop();
    }
    assert.equal(startedEarly, false, 'record 4 started before the chunk of records 0–3 was decided');
  });

  test('inFlight 0: chunks of `concurrency` whatever the partitions held', async () => {
    const topic = 'in-flight.off';
    await backlog(topic, 8);
    const c = counting(8, () => new Promise((r) => setImmediate(r)));
    const s = await runStage(b.brokers, c.fn, {
      groupId: 'g-off',
      topic,
      bus: { ...fastBus, concurrency: 2, inFlight: 0 },
    });
    try {
      await c.decided;
    } finally {
      await s.stop();
    }
    assert.equal(c.max(), 2, 'one chunk of 2 at a time (one partition)');
  });
});

/**
 * Waits until all `total` records of `topic` have their output in the scanned topic (each record once at least) and
 * `groupId` committed the whole partition: nothing was lost, whatever failed on the way.
 */
async function allOutputsAndCommitted(kafka: Kafka, brokers: string, groupId: string, topic: string, total: number) {
  const ids = new Set<string>();
  await readTopic(brokers, TOPICS.scanned, (m) => ids.add(decoded(m).envelope.id).size === total, {
    timeoutMs: 60_000,
  });
  while ((await committedOffset(kafka, groupId, topic)) < total) await new Promise((r) => setTimeout(r, 50));
  assert.equal(ids.size, total, 'every record has its output');
}

describe('StageRunner bus.inFlight: the broker dies in the middle of a window', () => {
  let k: KafkaProcessHandle;
  let dataDir: string;
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'in-flight-broker-'));
    k = await startKafkaProcess({ dataDir });
  });
  after(async () => {
    await k?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('records decided while the broker is down are neither committed nor lost: all arrive after it restarts', async () => {
    const topic = 'in-flight.broker-down';
    const total = 20;
    const kafka = new Kafka({ clientId: 'in-flight-down', brokers: [k.brokers], logLevel: logLevel.NOTHING });
    await onePartitionBacklog(kafka, k.brokers, topic, total);
    // inFlight 4 on one partition: records 0–5 go through; the broker is SIGKILLed while record 6 is being decided,
    // so its output (and that of the records decided after it) cannot be produced. The window must not commit past
    // what was produced, and its failure must not be swallowed with the records' outputs: the partition is read
    // again from the last commit (the window moves the fetch position back; the consumer also crashes and restarts,
    // its fetches failing).
    let n = 0;
    const decidedIds = new Set<string>();
    let killed!: () => void;
    const brokerKilled = new Promise<void>((r) => (killed = r));
    const fn: StageFn = async (m) => {
      if (n++ === 6) {
        await k.kill();
        killed();
      }
      decidedIds.add(m.envelope.id);
      return { verdict: pass() };
    };
    const s = await runStage(k.brokers, fn, {
      groupId: 'g-window-down',
      topic,
      bus: { ...fastBus, concurrency: 1, inFlight: 4, commitIntervalMs: 0 },
    });
    try {
      await brokerKilled;
      // The positive signal that kafkajs saw the broker go: the consumer crashed (it restarts on its own).
      while (s.runner.isReady) await new Promise((r) => setTimeout(r, 50));
      await k.restart();
      await allOutputsAndCommitted(kafka, k.brokers, 'g-window-down', topic, total);
      assert.equal(decidedIds.size, total);
    } finally {
      await s.stop();
    }
    assert.ok(n > total, `records after the last commit were decided again (${n} decisions for ${total} records)`);
  });
});

test('a produce the broker refuses mid-window: nothing after it is committed, the record is redelivered', async () => {
  // The broker stays up and refuses one request (a frame over its maxRequestBytes: it closes that connection), so
  // the commit after it would succeed: if the window marked a record produced whose send failed, or swallowed the
  // failure, the commit would pass it and its output would be lost. Record 6's first attempt adds a record too
  // large for the broker; its second attempt (after the window failed and the partition was read again from its last commit) does not.
  const b = await startBroker({ port: 0, logLevel: 'error', maxRequestBytes: 256 * 1024 } as Parameters<
    typeof startBroker
  >[0]);
  const kafka = new Kafka({ clientId: 'in-flight-refused', brokers: [b.brokers], logLevel: logLevel.NOTHING });
  const topic = 'in-flight.refused';
  const total = 20;
  try {
    await onePartitionBacklog(kafka, b.brokers, topic, total);
    const attempts = new Map<string, number>();
    let order = 0;
    let sixth: string | undefined;
    const fn: StageFn = async (m) => {
      const id = m.envelope.id;
      if (order++ === 6) sixth = id;
      const n = (attempts.get(id) ?? 0) + 1;
      attempts.set(id, n);
      const tooLarge = id === sixth && n === 1;
      return {
        verdict: pass(),
        ...(tooLarge ? { extraRecords: [{ topic: 'in-flight.refused-extra', value: Buffer.alloc(512 * 1024) }] } : {}),
      };
    };
    const s = await runStage(b.brokers, fn, {
      groupId: 'g-window-refused',
      topic,
      bus: { ...fastBus, concurrency: 1, inFlight: 4, commitIntervalMs: 0 },
    });
    try {
      await allOutputsAndCommitted(kafka, b.brokers, 'g-window-refused', topic, total);
    } finally {
      await s.stop();
    }
    assert.equal(attempts.get(sixth!), 2, 'the refused record was decided again');
  } finally {
    await b.close();
  }
});

test('bus.inFlight: the configured value wins (0 too); unset, a chain takes the largest default of its steps', () => {
  const checks = { inFlight: undefined };
  const delivery = { inFlight: 96 };
  assert.equal(stageInFlight({}, [checks]), 0);
  assert.equal(stageInFlight({}, [checks, checks, delivery]), 96);
  assert.equal(stageInFlight({ inFlight: 0 }, [checks, delivery]), 0);
  assert.equal(stageInFlight({ inFlight: 40 }, [delivery]), 40);
});
