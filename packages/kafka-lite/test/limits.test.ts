// Abusive clients: each test sends what one hostile (or broken) client can send over a raw socket and checks that
// the broker stays within its limits — memory bounded, the offender dropped, every other client still served.
// The memory tests run the broker in a child process and read its peak RSS (VmHWM) from /proc.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { Body, RawClient, broker, childBroker, defer, kafkaFor, type ChildBroker } from './helpers.js';

const MiB = 1024 * 1024;
const RSS_BOUND_MIB = 512;
const SERVED_WITHIN_MS = 2000;

async function expectClosed(c: RawClient, what: string, ms = 10_000): Promise<void> {
  await Promise.race([
    c.closed,
    new Promise((_, rej) => setTimeout(() => rej(new Error(`${what}: connection was not closed`)), ms).unref()),
  ]);
}

function writeAll(c: RawClient, b: Buffer): Promise<void> {
  return new Promise((resolve) => c.sock.write(b, () => resolve()));
}

/** A kafkajs producer that is connected and has metadata, so a later send is one Produce round trip. */
async function warmProducer(t: Parameters<typeof defer>[0], b: ChildBroker) {
  const producer = kafkaFor(b, { retry: { retries: 0 } }).producer();
  await producer.connect();
  defer(t, () => producer.disconnect());
  await producer.send({ topic: 'victim', messages: [{ value: 'warm-up' }] });
  return async (): Promise<number> => {
    const t0 = performance.now();
    await producer.send({ topic: 'victim', messages: [{ value: 'during the attack' }] });
    return performance.now() - t0;
  };
}

test(
  'a Produce frame declaring 16 million empty topics: rejected by the decode budget, memory bounded, others served',
  { timeout: 120_000 },
  async (t) => {
    const b = await childBroker(t, { logLevel: 'error' }); // default limits
    const send = await warmProducer(t, b);
    const attacker = await RawClient.connect(b.port);
    defer(t, () => attacker.close());
    // Produce v7: transactional_id null, acks -1, timeout, [topic] with 16 Mi entries of (name "", partitions []):
    // 6 zero bytes each, so the whole 96 MiB body is well-formed.
    const count = 16 * MiB;
    const body = Buffer.alloc(12 + count * 6);
    body.writeInt16BE(-1, 0);
    body.writeInt16BE(-1, 2);
    body.writeInt32BE(30_000, 4);
    body.writeInt32BE(count, 8);
    await writeAll(attacker, attacker.frame(0, 7, body));
    const servedMs = await send();
    const dropped = await expectClosed(attacker, 'abusive Produce').then(
      () => true,
      () => false,
    );
    const peak = b.peakRssMiB();
    t.diagnostic(`served another client in ${servedMs.toFixed(0)} ms; broker peak RSS ${peak.toFixed(0)} MiB`);
    assert.ok(servedMs < SERVED_WITHIN_MS, `other client waited ${servedMs.toFixed(0)} ms`);
    assert.ok(peak < RSS_BOUND_MIB, `broker peak RSS ${peak.toFixed(0)} MiB`);
    assert.ok(dropped, 'the abusive connection was closed');
  },
);

test(
  'partial frames parked on 60 connections (480 MiB): oldest dropped at maxBufferedRequestBytes, others served',
  { timeout: 120_000 },
  async (t) => {
    const b = await childBroker(t, { logLevel: 'error' }); // default limits: 256 MiB of pending request bytes
    const send = await warmProducer(t, b);
    const chunk = Buffer.alloc(8 * MiB, 0x41);
    const head = Buffer.alloc(4);
    head.writeInt32BE(99 * MiB); // under maxRequestBytes (100 MiB), never completed
    const attackers: RawClient[] = [];
    let closed = 0;
    for (let i = 0; i < 60; i++) {
      const c = await RawClient.connect(b.port);
      defer(t, () => c.close());
      void c.closed.then(() => closed++);
      attackers.push(c);
      c.write(head);
      await writeAll(c, chunk);
    }
    const servedMs = await send();
    // 480 MiB were sent against a 256 MiB cap: at least (480 - 256) / 8 = 28 connections must have been dropped.
    const droppedEnough = await Promise.race([
      Promise.all(attackers.slice(0, 28).map((c) => c.closed)).then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 10_000).unref()),
    ]);
    const peak = b.peakRssMiB();
    t.diagnostic(
      `${closed} of 60 dropped; other client served in ${servedMs.toFixed(0)} ms; peak RSS ${peak.toFixed(0)} MiB`,
    );
    assert.ok(servedMs < SERVED_WITHIN_MS, `other client waited ${servedMs.toFixed(0)} ms`);
    assert.ok(peak < RSS_BOUND_MIB, `broker peak RSS ${peak.toFixed(0)} MiB`);
    assert.ok(droppedEnough, `only ${closed} connections dropped`);
  },
);

test(
  'one byte per segment is charged per held chunk: trickling senders are dropped at maxBufferedRequestBytes',
  { timeout: 60_000 },
  async (t) => {
    // 100 connections x up to 100 one-byte segments = 10,000 bytes of data, but 10,000 Buffers the broker would hold
    // (~0.5 KiB each): with a 1 MiB cap the accounting (data + 1 KiB per chunk) must drop the oldest senders.
    const b = await broker(t, { maxBufferedRequestBytes: 1024 * 1024, maxConnections: 200 });
    const conns = await Promise.all(Array.from({ length: 100 }, () => RawClient.connect(b.port)));
    for (const c of conns) defer(t, () => c.close());
    for (const c of conns) c.sock.setNoDelay(true); // one segment per write
    const head = Buffer.alloc(4);
    head.writeInt32BE(1024 * 1024);
    for (const c of conns) c.write(head);
    let dropped = 0;
    for (const c of conns) void c.closed.then(() => dropped++);
    for (let k = 0; k < 100 && dropped === 0; k++) {
      await Promise.all(conns.map((c) => writeAll(c, Buffer.from([k]))));
      await new Promise((r) => setImmediate(r));
    }
    await Promise.race([
      Promise.any(conns.map((c) => c.closed)),
      new Promise((_, rej) => setTimeout(() => rej(new Error('no trickling sender was dropped')), 10_000).unref()),
    ]);
    t.diagnostic(`${dropped} of 100 trickling senders dropped`);
    // The healthy path still works on a new connection.
    const c = await RawClient.connect(b.port);
    defer(t, () => c.close());
    assert.equal((await c.request(18, 0, Buffer.alloc(0))).readInt16BE(0), 0);
  },
);

test(
  'idle and request-read timeouts close only the silent and the trickling connection',
  { timeout: 60_000 },
  async (t) => {
    const b = await broker(t, { idleTimeoutMs: 300, requestReadTimeoutMs: 600 });
    // Silent from the start.
    const silent = await RawClient.connect(b.port);
    defer(t, () => silent.close());
    // One byte of a frame every 100 ms: never idle, but the frame never completes.
    const trickle = await RawClient.connect(b.port);
    defer(t, () => trickle.close());
    const frame = trickle.frame(18, 0, Buffer.alloc(0));
    let i = 0;
    const drip = setInterval(() => trickle.write(frame.subarray(i, ++i)), 100);
    defer(t, () => clearInterval(drip));
    // A parked request longer than the idle timeout is not idleness: Fetch on an empty partition, max_wait 1000 ms.
    const parked = await RawClient.connect(b.port);
    defer(t, () => parked.close());
    await parked.request(3, 6, new Body().i32(1).str('idle-topic').i8(1).build()); // auto-creates the topic
    const fetchBody = new Body()
      .i32(-1) // replica
      .i32(1000) // max wait
      .i32(1) // min bytes
      .i32(1024 * 1024)
      .i8(0)
      .i32(0)
      .i32(-1)
      .i32(1)
      .str('idle-topic')
      .i32(1)
      .i32(0) // partition
      .i32(-1) // leader epoch
      .i64(0) // fetch offset
      .i64(-1)
      .i32(1024 * 1024)
      .i32(0) // forgotten topics
      .str('')
      .build();
    const t0 = performance.now();
    const fetched = await parked.request(1, 11, fetchBody);
    assert.ok(performance.now() - t0 >= 900, 'the Fetch was parked for its max wait');
    assert.equal(fetched.readInt16BE(4), 0); // top-level error
    await expectClosed(silent, 'silent connection (idleTimeoutMs)');
    await expectClosed(trickle, 'trickling connection (requestReadTimeoutMs)');
    assert.ok(i < frame.length, 'the trickled frame never completed');
  },
);

test(
  'maxConnections: the connection over the limit is closed at accept; a freed slot is usable',
  { timeout: 30_000 },
  async (t) => {
    const b = await broker(t, { maxConnections: 3 });
    const held = await Promise.all([0, 1, 2].map(() => RawClient.connect(b.port)));
    for (const c of held) defer(t, () => c.close());
    // Each held connection is served (so all three are registered before the fourth arrives).
    for (const c of held) assert.equal((await c.request(18, 0, Buffer.alloc(0))).readInt16BE(0), 0);
    const extra = await RawClient.connect(b.port);
    await expectClosed(extra, 'fourth connection');
    held[0]!.close();
    await held[0]!.closed;
    // The slot is released when the broker sees the close; retry until a new connection is served.
    let served = false;
    for (let attempt = 0; attempt < 50 && !served; attempt++) {
      const c = await RawClient.connect(b.port);
      defer(t, () => c.close());
      served = await Promise.race([
        c.request(18, 0, Buffer.alloc(0)).then((r) => r.readInt16BE(0) === 0),
        c.closed.then(() => false),
      ]);
    }
    assert.ok(served, 'a new connection was served after one was closed');
  },
);

test(
  'maxInFlightRequests: 500 pipelined requests are answered in order (backpressure, not failure)',
  { timeout: 30_000 },
  async (t) => {
    const b = await broker(t, { maxInFlightRequests: 8 });
    const c = await RawClient.connect(b.port);
    defer(t, () => c.close());
    const replies = await Promise.all(
      Array.from({ length: 500 }, (_, i) =>
        c.request(
          3,
          6,
          new Body()
            .i32(1)
            .str(`pipelined-${i % 3}`)
            .i8(1)
            .build(),
        ),
      ),
    );
    for (const [i, r] of replies.entries()) {
      assert.ok(r.includes(Buffer.from(`pipelined-${i % 3}`)), `reply ${i} answers request ${i}`);
    }
  },
);

test(
  'maxPartitions: topic creation beyond the limit is refused with POLICY_VIOLATION',
  { timeout: 30_000 },
  async (t) => {
    const b = await broker(t, { maxPartitions: 8, defaultPartitions: 3 });
    const admin = kafkaFor(b).admin();
    await admin.connect();
    defer(t, () => admin.disconnect());
    assert.equal(await admin.createTopics({ topics: [{ topic: 'p6', numPartitions: 6 }] }), true);
    await assert.rejects(
      admin.createTopics({ topics: [{ topic: 'p3', numPartitions: 3 }] }),
      (err: Error & { errors?: { type: string }[] }) => err.errors?.[0]?.type === 'POLICY_VIOLATION',
    );
    assert.deepEqual((await admin.listTopics()).sort(), ['p6']);
  },
);

test('`mailgate broker` flags set every limit; a non-positive limit is a startup error naming the option', async () => {
  const { parseBrokerArgs, startBroker: start } = await import('@mailgate/kafka-lite');
  assert.deepEqual(
    parseBrokerArgs([
      'broker',
      '--max-request-bytes=1000',
      '--max-buffered-request-bytes',
      '2000',
      '--max-request-objects=3',
      '--max-connections=4',
      '--idle-timeout-ms=5',
      '--request-read-timeout-ms=6',
      '--max-in-flight-requests=7',
      '--max-fetch-bytes=8',
      '--max-partitions=9',
    ]),
    {
      maxRequestBytes: 1000,
      maxBufferedRequestBytes: 2000,
      maxRequestObjects: 3,
      maxConnections: 4,
      idleTimeoutMs: 5,
      requestReadTimeoutMs: 6,
      maxInFlightRequests: 7,
      maxFetchBytes: 8,
      maxPartitions: 9,
    },
  );
  await assert.rejects(start({ port: 0, maxConnections: 0 }), /maxConnections must be a positive number/);
});
