// bus.inFlight: a replica that holds few partitions works on bigger chunks of each, so it keeps about as many records
// in flight as a replica holding them all (delivery's scale-out: 4 replicas on 12 partitions hold 3 each).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { pass } from '@mailgate/contracts';
import { stageInFlight, type StageFn } from '@mailgate/bus';
import { broker, fastBus, onePartitionBacklog, runStage } from './helpers.js';

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

test('bus.inFlight: the configured value wins (0 too); unset, a chain takes the largest default of its steps', () => {
  const checks = { inFlight: undefined };
  const delivery = { inFlight: 96 };
  assert.equal(stageInFlight({}, [checks]), 0);
  assert.equal(stageInFlight({}, [checks, checks, delivery]), 96);
  assert.equal(stageInFlight({ inFlight: 0 }, [checks, delivery]), 0);
  assert.equal(stageInFlight({ inFlight: 40 }, [delivery]), 40);
});
