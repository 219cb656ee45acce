import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Body, RawClient, broker, connected, defer, fastConsumer, kafkaFor, waitFor } from './helpers.js';

async function expectClosed(c: RawClient): Promise<void> {
  await Promise.race([
    c.closed,
    new Promise((_, rej) => setTimeout(() => rej(new Error('connection was not closed')), 5000).unref()),
  ]);
}

test(
  'malformed frames close only the offending connection; other clients keep working',
  { timeout: 60_000 },
  async (t) => {
    const warnings: string[] = [];
    const b = await broker(t, { logger: { info() {}, error() {}, warn: (m: string) => void warnings.push(m) } });
    const kafka = kafkaFor(b);
    const producer = await connected(t, kafka.producer());
    await producer.send({ topic: 'robust', messages: [{ partition: 0, value: 'before' }] });

    // A healthy raw client that stays connected throughout.
    const healthy = await RawClient.connect(b.port);
    defer(t, () => healthy.close());

    // 1. garbage bytes
    const garbage = await RawClient.connect(b.port);
    garbage.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await expectClosed(garbage);
    // 2. oversized length prefix
    const huge = await RawClient.connect(b.port);
    const hdr = Buffer.alloc(8);
    hdr.writeInt32BE(0x7fffffff, 0);
    huge.write(hdr);
    await expectClosed(huge);
    // 3. negative length
    const neg = await RawClient.connect(b.port);
    neg.write(Buffer.from([0xff, 0xff, 0xff, 0xf0, 1, 2, 3, 4]));
    await expectClosed(neg);
    // 4. unknown api key
    const unk = await RawClient.connect(b.port);
    unk.write(unk.frame(999, 0, Buffer.alloc(0)));
    await expectClosed(unk);
    // 5. a version newer than any Kafka defines (no layout to answer in)
    const newv = await RawClient.connect(b.port);
    newv.write(newv.frame(3, 99, new Body().i32(0).build()));
    await expectClosed(newv);
    // 6. body truncated inside a valid frame (array count with no elements)
    const trunc = await RawClient.connect(b.port);
    trunc.write(trunc.frame(3, 6, new Body().i32(1000).build()));
    await expectClosed(trunc);
    // 7. a frame that never completes, then the peer goes away
    const partial = await RawClient.connect(b.port);
    partial.write(Buffer.from([0, 0, 1, 0, 0, 3, 0, 6]));
    await new Promise((r) => setTimeout(r, 100));
    partial.close();
    // 8. random bytes with a plausible size prefix
    const rnd = await RawClient.connect(b.port);
    const junk = Buffer.alloc(64, 0xab);
    junk.writeInt32BE(60, 0);
    rnd.write(junk);
    await expectClosed(rnd);

    // ApiVersions with an unknown version gets UNSUPPORTED_VERSION in the v0 layout.
    const av = await healthy.request(18, 9, Buffer.alloc(0));
    assert.equal(av.readInt16BE(0), 35);
    // A known version this broker does not serve (Fetch v3: magic 0/1 clients) is answered, not dropped:
    // v3 layout = throttle, [topic, [partition, error, ...]] with UNSUPPORTED_VERSION per partition.
    const f3 = await healthy.request(
      1,
      3,
      new Body().i32(-1).i32(100).i32(1).i32(1024).i32(1).str('robust').i32(1).i32(0).i64(0).i32(1024).build(),
    );
    assert.equal(f3.readInt32BE(4), 1); // one topic
    assert.equal(f3.readInt16BE(8 + 2 + 'robust'.length + 4 + 4), 35);
    // Pipelined requests are answered in order.
    const replies = await Promise.all([
      healthy.request(18, 2, Buffer.alloc(0)),
      healthy.request(3, 6, new Body().i32(-1).i8(0).build()),
      healthy.request(18, 0, Buffer.alloc(0)),
    ]);
    assert.equal(replies[0]!.readInt16BE(0), 0);
    assert.equal(replies[2]!.readInt16BE(0), 0);

    assert.ok(warnings.length >= 6, `logged: ${warnings.join(' | ')}`);

    // kafkajs still works and nothing acknowledged was lost.
    await producer.send({ topic: 'robust', messages: [{ partition: 0, value: 'after' }] });
    const c = await connected(t, kafka.consumer({ groupId: 'robust-g', ...fastConsumer }));
    await c.subscribe({ topic: 'robust', fromBeginning: true });
    const got: string[] = [];
    await c.run({ eachMessage: async ({ message }) => void got.push(message.value!.toString()) });
    await waitFor(() => got.length >= 2, 20_000, 'records');
    assert.deepEqual(got, ['before', 'after']);
  },
);

test('corrupt record batch (bad CRC) is rejected with CORRUPT_MESSAGE, not stored', { timeout: 30_000 }, async (t) => {
  const b = await broker(t);
  const kafka = kafkaFor(b);
  const admin = await connected(t, kafka.admin());
  await admin.createTopics({ topics: [{ topic: 'crc', numPartitions: 1 }] });
  const { encodeBatch, produceBody, parseProduce } = await import('./helpers.js');
  const raw = await RawClient.connect(b.port);
  defer(t, () => raw.close());
  const batch = await encodeBatch({ values: ['hello'] });
  batch[batch.length - 1] = batch[batch.length - 1]! ^ 0xff;
  const [err] = parseProduce(await raw.request(0, 7, produceBody('crc', 0, batch)));
  assert.equal(err, 2);
  const [err2] = parseProduce(
    await raw.request(
      0,
      7,
      produceBody(
        'crc',
        0,
        Buffer.from('not a batch at all, just text padding it out to more than sixty-one bytes....'),
      ),
    ),
  );
  assert.equal(err2, 2);
  assert.equal((await admin.fetchTopicOffsets('crc'))[0]!.high, '0');
});
