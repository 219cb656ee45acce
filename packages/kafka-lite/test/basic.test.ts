import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CompressionTypes, type EachMessagePayload } from 'kafkajs';
import {
  Body,
  RawClient,
  broker,
  connected,
  defer,
  encodeBatch,
  fastConsumer,
  kafkaFor,
  parseProduce,
  produceBody,
  waitFor,
} from './helpers.js';

test('round trip with headers and gzip, ordering per partition', { timeout: 60_000 }, async (t) => {
  const b = await broker(t);
  const kafka = kafkaFor(b);
  const producer = await connected(t, kafka.producer());
  // 3 partitions x 50 records, sent in several requests, mixed compression.
  const admin = await connected(t, kafka.admin());
  assert.equal(await admin.createTopics({ topics: [{ topic: 'rt', numPartitions: 3 }] }), true);
  for (let round = 0; round < 5; round++) {
    await producer.send({
      topic: 'rt',
      compression: round % 2 ? CompressionTypes.GZIP : CompressionTypes.None,
      messages: Array.from({ length: 30 }, (_, i) => {
        const n = round * 30 + i;
        return { partition: n % 3, key: `k${n}`, value: `v${n}`, headers: { seq: String(n), multi: ['a', 'b'] } };
      }),
    });
  }
  const consumer = await connected(t, kafka.consumer({ groupId: 'rt-g', ...fastConsumer }));
  await consumer.subscribe({ topic: 'rt', fromBeginning: true });
  const got: EachMessagePayload[] = [];
  await consumer.run({ eachMessage: async (p) => void got.push(p) });
  await waitFor(() => got.length >= 150, 20_000, '150 messages');
  assert.equal(got.length, 150);
  for (let part = 0; part < 3; part++) {
    const seqs = got.filter((g) => g.partition === part).map((g) => Number(g.message.headers!.seq!.toString()));
    const offsets = got.filter((g) => g.partition === part).map((g) => Number(g.message.offset));
    assert.deepEqual(offsets, [...offsets.keys()], 'contiguous offsets from 0');
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
      'produce order kept per partition',
    );
    assert.equal(seqs.length, 50);
  }
  const m = got.find((g) => g.message.key?.toString() === 'k31')!;
  assert.equal(m.message.value!.toString(), 'v31');
  assert.deepEqual((m.message.headers!.multi as Buffer[]).map(String), ['a', 'b']);
});

test('admin: create/list/metadata/offsets/lag/describe/delete', { timeout: 60_000 }, async (t) => {
  const b = await broker(t, { defaultPartitions: 4 });
  const kafka = kafkaFor(b);
  const admin = await connected(t, kafka.admin());
  assert.equal(await admin.createTopics({ topics: [{ topic: 'a1', numPartitions: 2 }, { topic: 'a2' }] }), true);
  assert.equal(await admin.createTopics({ topics: [{ topic: 'a1', numPartitions: 2 }] }), false);
  assert.deepEqual((await admin.listTopics()).sort(), ['a1', 'a2']);
  const md = await admin.fetchTopicMetadata({ topics: ['a1', 'a2'] });
  assert.deepEqual(md.topics.map((x) => [x.name, x.partitions.length]).sort(), [
    ['a1', 2],
    ['a2', 4],
  ]);
  const producer = await connected(t, kafka.producer());
  await producer.send({
    topic: 'a1',
    messages: Array.from({ length: 10 }, (_, i) => ({ partition: 0, value: `x${i}` })),
  });
  await producer.send({ topic: 'a1', messages: [{ partition: 1, value: 'y' }] });
  const offs = await admin.fetchTopicOffsets('a1');
  assert.deepEqual(offs.map((o) => [o.partition, o.high, o.low]).sort(), [
    [0, '10', '0'],
    [1, '1', '0'],
  ]);
  // consume 10 of 11 via a group, then check committed offsets and lag
  const consumer = kafka.consumer({ groupId: 'lag-g', ...fastConsumer });
  await consumer.connect();
  await consumer.subscribe({ topic: 'a1', fromBeginning: true });
  let n = 0;
  await consumer.run({ eachMessage: async () => void n++ });
  await waitFor(() => n >= 11, 15_000, 'consume');
  await waitFor(async () => {
    const o = await admin.fetchOffsets({ groupId: 'lag-g', topics: ['a1'] });
    return o[0]!.partitions.every((p) => p.offset === (p.partition === 0 ? '10' : '1'));
  });
  const desc = await admin.describeGroups(['lag-g', 'nope']);
  const g = desc.groups.find((x) => x.groupId === 'lag-g')!;
  assert.equal(g.state, 'Stable');
  assert.equal(g.protocol, 'RoundRobinAssigner');
  assert.equal(g.members.length, 1);
  assert.equal(desc.groups.find((x) => x.groupId === 'nope')!.state, 'Dead');
  const groups = await admin.listGroups();
  assert.ok(groups.groups.some((x) => x.groupId === 'lag-g'));
  await consumer.disconnect();
  await producer.send({ topic: 'a1', messages: [{ partition: 0, value: 'late' }] });
  const committed = await admin.fetchOffsets({ groupId: 'lag-g', topics: ['a1'] });
  const high = await admin.fetchTopicOffsets('a1');
  const lag = committed[0]!.partitions.map(
    (p) => Number(high.find((h) => h.partition === p.partition)!.high) - Number(p.offset),
  );
  assert.deepEqual(lag.sort(), [0, 1]);
  assert.equal((await admin.describeGroups(['lag-g'])).groups[0]!.state, 'Empty');
  // all-topics offset fetch (null topic list)
  const all = await admin.fetchOffsets({ groupId: 'lag-g' });
  assert.equal(all.length, 1);
  await admin.deleteTopics({ topics: ['a2'] });
  assert.deepEqual(await admin.listTopics(), ['a1']);
});

test(
  'idempotent producer: kafkajs works; a retried batch is not appended twice; gaps rejected',
  { timeout: 60_000 },
  async (t) => {
    const b = await broker(t);
    const kafka = kafkaFor(b);
    const producer = await connected(t, kafka.producer({ idempotent: true, maxInFlightRequests: 1 }));
    for (let i = 0; i < 5; i++)
      await producer.send({
        topic: 'idem',
        messages: [
          { partition: 0, value: `m${i}` },
          { partition: 0, value: `n${i}` },
        ],
      });
    const admin = await connected(t, kafka.admin());
    assert.equal((await admin.fetchTopicOffsets('idem')).find((o) => o.partition === 0)!.high, '10');

    // Raw: same (pid, epoch, sequence) batch sent twice -> same base offset, appended once.
    const raw = await RawClient.connect(b.port);
    defer(t, () => raw.close());
    const init = await raw.request(22, 1, new Body().str(null).i32(60000).build());
    assert.equal(init.readInt16BE(4), 0);
    const pid = Number(init.readBigInt64BE(6));
    const batch = await encodeBatch({ producerId: pid, firstSequence: 0, values: ['a', 'b', 'c'] });
    const r1 = parseProduce(await raw.request(0, 7, produceBody('idem', 1, batch)));
    const r2 = parseProduce(await raw.request(0, 7, produceBody('idem', 1, batch)));
    assert.deepEqual(r1, [0, 0n]);
    assert.deepEqual(r2, [0, 0n]);
    const next = await encodeBatch({ producerId: pid, firstSequence: 3, values: ['d'] });
    assert.deepEqual(parseProduce(await raw.request(0, 7, produceBody('idem', 1, next))), [0, 3n]);
    const gap = await encodeBatch({ producerId: pid, firstSequence: 9, values: ['z'] });
    assert.equal(parseProduce(await raw.request(0, 7, produceBody('idem', 1, gap)))[0], 45);
    assert.equal((await admin.fetchTopicOffsets('idem')).find((o) => o.partition === 1)!.high, '4');
    // acks=0 gets no response but is appended; the next request is still answered in order
    raw.write(raw.frame(0, 7, produceBody('idem', 2, await encodeBatch({ values: ['q'] }), 0)));
    const r3 = parseProduce(await raw.request(0, 7, produceBody('idem', 2, await encodeBatch({ values: ['r'] }))));
    assert.deepEqual(r3, [0, 1n]);
  },
);

test('a 30 MiB record round trips; oversized batch gets MESSAGE_TOO_LARGE', { timeout: 60_000 }, async (t) => {
  const b = await broker(t, { maxBatchBytes: 40 * 1024 * 1024 });
  const kafka = kafkaFor(b);
  const producer = await connected(t, kafka.producer());
  const big = Buffer.alloc(30 * 1024 * 1024, 7);
  big.write('start', 0);
  big.write('end', big.length - 3);
  await producer.send({ topic: 'big', messages: [{ partition: 0, value: big }] });
  const consumer = await connected(t, kafka.consumer({ groupId: 'big-g', ...fastConsumer }));
  await consumer.subscribe({ topic: 'big', fromBeginning: true });
  let got: Buffer | null = null;
  await consumer.run({ eachMessage: async ({ message }) => void (got = message.value) });
  await waitFor(() => got !== null, 20_000, 'big record');
  assert.equal(got!.length, big.length);
  assert.ok(got!.equals(big));
  const tooBig = Buffer.alloc(41 * 1024 * 1024);
  await assert.rejects(
    producer.send({ topic: 'big', messages: [{ partition: 0, value: tooBig }] }),
    /too large|larger/i,
  );
});
