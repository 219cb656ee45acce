// librdkafka-based clients against kafka-lite: Debian's kcat (librdkafka 2.0.x) and confluent-kafka-python.
// They negotiate other versions than kafkajs (ApiVersions v3 with flexible header, Metadata v4, OffsetFetch v7
// (flexible), LeaveGroup v1, ListOffsets v2, ...) and check features by version ranges. Installed by
// scripts/install-system-deps.sh; these tests fail (never skip) when the tools are missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startBroker, type BrokerHandle } from '@mailgate/kafka-lite';
import { CompressionTypes } from 'kafkajs';
import {
  Body,
  RawClient,
  broker,
  connected,
  defer,
  encodeBatch,
  fastConsumer,
  kafkaFor,
  quietLogger,
  waitFor,
} from './helpers.js';

const KCAT = 'kcat';
const PYTHON = '/usr/bin/python3'; // Debian's interpreter (python3-confluent-kafka), not a pyenv one

function version(): string {
  const r = spawnSync(KCAT, ['-V'], { encoding: 'utf8' });
  if (r.error) throw new Error(`kcat is not installed (run scripts/install-system-deps.sh): ${r.error.message}`);
  return r.stdout.split('\n').find((l) => l.startsWith('Version')) ?? r.stdout;
}

/** A running process whose stdout lines are collected (the positive signal tests wait on). */
interface Proc {
  child: ChildProcess;
  lines: string[];
  stderr(): string;
  exited: Promise<number | null>;
}

function run(t: Parameters<typeof defer>[0], cmd: string, args: string[], input?: string): Proc {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let partial = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) =>
    child.once('close', (code) => {
      if (partial) lines.push(partial);
      r(code);
    }),
  );
  if (input !== undefined) child.stdin!.end(input);
  defer(t, async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited;
  });
  return { child, lines, stderr: () => err, exited };
}

/** Runs a command to completion; fails with its stderr on a non-zero exit. */
async function runOk(t: Parameters<typeof defer>[0], cmd: string, args: string[], input?: string): Promise<string[]> {
  const p = run(t, cmd, args, input);
  const code = await p.exited;
  assert.equal(code, 0, `${cmd} ${args.join(' ')} exited ${code}: ${p.stderr()}`);
  return p.lines;
}

/** Everything in partition 0 of `topic`, formatted with kcat's `-f` format; kcat exits at the end (-e). */
function readPartition0(
  t: Parameters<typeof defer>[0],
  b: BrokerHandle,
  topic: string,
  format: string,
): Promise<string[]> {
  return runOk(t, KCAT, ['-b', b.brokers, '-C', '-t', topic, '-p', '0', '-o', 'beginning', '-e', '-q', '-f', format]);
}

function tmpDir(t: Parameters<typeof defer>[0]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kafka-lite-kcat-'));
  defer(t, () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test(
  `kcat ${version()}: metadata, keyed messages with headers both ways with kafkajs, offset query`,
  { timeout: 60_000 },
  async (t) => {
    const b = await broker(t);
    const kafka = kafkaFor(b);
    const admin = await connected(t, kafka.admin());
    await admin.createTopics({ topics: [{ topic: 'kc-meta', numPartitions: 3 }] });

    // -L: metadata (librdkafka sends Metadata v4 after ApiVersions v3).
    const meta = JSON.parse((await runOk(t, KCAT, ['-b', b.brokers, '-L', '-J'])).join('')) as {
      brokers: { id: number; name: string }[];
      topics: { topic: string; partitions: { partition: number; leader: number }[] }[];
    };
    assert.deepEqual(meta.brokers, [{ id: 1, name: b.brokers }]);
    const topic = meta.topics.find((x) => x.topic === 'kc-meta');
    assert.deepEqual(
      topic?.partitions.map((p) => [p.partition, p.leader]),
      [
        [0, 1],
        [1, 1],
        [2, 1],
      ],
    );

    // kcat produces keyed messages with headers; kcat and kafkajs read them back.
    const input = ['k1:one', 'k2:two', 'k3:three'].join('\n') + '\n';
    await runOk(
      t,
      KCAT,
      ['-b', b.brokers, '-P', '-t', 'kc-rt', '-p', '0', '-K', ':', '-H', 'h1=x', '-H', 'h2=y'],
      input,
    );
    const back = await readPartition0(t, b, 'kc-rt', '%o %k=%s %h\n');
    assert.deepEqual(back, ['0 k1=one h1=x,h2=y', '1 k2=two h1=x,h2=y', '2 k3=three h1=x,h2=y']);
    const consumer = await connected(t, kafka.consumer({ groupId: 'kc-js', ...fastConsumer }));
    await consumer.subscribe({ topic: 'kc-rt', fromBeginning: true });
    const seen: string[] = [];
    await consumer.run({
      eachMessage: async ({ message: m }) =>
        void seen.push(`${m.key} ${m.value} ${m.headers?.['h1']?.toString()} ${m.headers?.['h2']?.toString()}`),
    });
    await waitFor(() => seen.length === 3, 20_000, 'kafkajs reads what kcat produced');
    assert.deepEqual(seen, ['k1 one x y', 'k2 two x y', 'k3 three x y']);

    // kafkajs produces (gzip, headers); kcat reads.
    const producer = await connected(t, kafka.producer());
    await producer.send({
      topic: 'kc-js2kcat',
      compression: CompressionTypes.GZIP,
      messages: [
        { partition: 0, key: 'a', value: 'from kafkajs', headers: { via: 'kafkajs' } },
        { partition: 0, key: 'b', value: 'second', headers: { via: 'kafkajs' } },
      ],
    });
    const fromJs = await readPartition0(t, b, 'kc-js2kcat', '%k=%s %h\n');
    assert.deepEqual(fromJs, ['a=from kafkajs via=kafkajs', 'b=second via=kafkajs']);

    // -Q: offsets for a timestamp (ListOffsets v2 by time); far future -> end of log (-1).
    const q = await runOk(t, KCAT, ['-b', b.brokers, '-Q', '-t', `kc-rt:0:${Date.now() + 3_600_000}`]);
    assert.match(q.join('\n'), /kc-rt \[0\]\s+offset -1/);
  },
);

test(
  'kcat: every codec it offers round-trips and is stored compressed (gzip, snappy, lz4, zstd)',
  { timeout: 60_000 },
  async (t) => {
    const dir = tmpDir(t);
    const b = await broker(t, { dataDir: dir });
    const codecs = { none: 0, gzip: 1, snappy: 2, lz4: 3, zstd: 4 } as const;
    for (const [codec, id] of Object.entries(codecs)) {
      const topic = `kc-z-${codec}`;
      const values = Array.from({ length: 20 }, (_, i) => `${codec} message ${i} ${'x'.repeat(200)}`);
      await runOk(
        t,
        KCAT,
        ['-b', b.brokers, '-P', '-t', topic, '-p', '0', '-z', codec, '-X', 'linger.ms=50'],
        values.join('\n') + '\n',
      );
      const back = await readPartition0(t, b, topic, '%s\n');
      assert.deepEqual(back, values, `${codec} round trip`);
      // librdkafka silently sends uncompressed batches when it thinks the broker lacks a codec: check what is stored.
      const seg = fs.readFileSync(path.join(dir, 'topics', topic, '0', '00000000000000000000.log'));
      assert.equal(seg.readInt16BE(21) & 7, id, `${codec}: stored batch codec`);
    }
  },
);

test(
  'an unknown codec id or zstd on Produce < v7 is answered with UNSUPPORTED_COMPRESSION_TYPE, not a hang',
  { timeout: 30_000 },
  async (t) => {
    const b = await broker(t, { verifyCrc: false });
    const raw = await RawClient.connect(b.port);
    defer(t, () => raw.close());
    await raw.request(3, 4, new Body().i32(1).str('kc-codec').i8(1).build()); // auto-create
    const produce = async (version: number, codec: number): Promise<number> => {
      const batch = await encodeBatch({ values: ['v'] });
      batch.writeInt16BE(codec, 21);
      const body = new Body().str(null).i16(-1).i32(1000).i32(1).str('kc-codec').i32(1).i32(0).bytes(batch).build();
      const res = await raw.request(0, version, body);
      return res.readInt16BE(4 + 2 + 'kc-codec'.length + 4 + 4); // [topic] -> name -> [partition] -> index -> error
    };
    assert.equal(await produce(7, 5), 76);
    assert.equal(await produce(3, 4), 76);
    assert.equal(await produce(7, 4), 0); // zstd at v7 is stored as-is
  },
);

async function committed(b: BrokerHandle, group: string, topic: string): Promise<number> {
  const admin = kafkaFor(b).admin();
  await admin.connect();
  try {
    const [t] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    return t!.partitions.reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
  } finally {
    await admin.disconnect();
  }
}

test(
  'kcat -G: a consumer group commits, survives a broker restart (data dir) and resumes without duplicates',
  { timeout: 120_000 },
  async (t) => {
    const dir = tmpDir(t);
    let b = await startBroker({ port: 0, dataDir: dir, logger: quietLogger });
    defer(t, () => b.close());
    const port = b.port;
    const produce = async (from: number, to: number): Promise<void> => {
      const p = kafkaFor(b).producer();
      await p.connect();
      const messages = [];
      for (let i = from; i < to; i++) messages.push({ key: `k${i}`, value: `m${i}` });
      await p.send({ topic: 'kc-group', messages });
      await p.disconnect();
    };
    const admin = kafkaFor(b).admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'kc-group', numPartitions: 2 }] });
    await admin.disconnect();
    await produce(0, 6);

    // -E: keep running while the broker is down (kcat otherwise exits on "all brokers down").
    const kcat = run(t, KCAT, [
    '-b', `127.0.0.1:${port}`, '-G', 'kc-g', '-E', '-u', '-q', '-f', '%k=%s\n',
    '-X', 'auto.offset.reset=earliest', '-X', 'auto.commit.interval.ms=100',
    '-X', 'reconnect.backoff.max.ms=500', 'kc-group',
  ]); // prettier-ignore
    await waitFor(() => kcat.lines.length >= 6, 30_000, `kcat consumed 6 (got ${kcat.lines.length}: ${kcat.stderr()})`);
    await waitFor(async () => (await committed(b, 'kc-g', 'kc-group')) === 6, 30_000, 'kcat committed 6');

    await b.close();
    b = await startBroker({ port, dataDir: dir, logger: quietLogger });
    assert.equal(await committed(b, 'kc-g', 'kc-group'), 6, 'commits survived the restart');
    // Group membership is not persisted (only offsets): kcat's member is unknown to the new broker, so it rejoins.
    // Wait for that rebalance to finish; records fetched across it could legitimately be redelivered (at least once).
    await waitFor(
      async () => {
        const admin = kafkaFor(b).admin();
        await admin.connect();
        const { groups } = await admin.describeGroups(['kc-g']).finally(() => admin.disconnect());
        return groups[0]?.state === 'Stable' && groups[0].members.length === 1;
      },
      30_000,
      'kcat rejoined the group',
    );
    await produce(6, 10);
    await waitFor(
      () => kcat.lines.length >= 10,
      60_000,
      `kcat resumed (got ${kcat.lines.join(',')}: ${kcat.stderr()})`,
    );
    await waitFor(async () => (await committed(b, 'kc-g', 'kc-group')) === 10, 30_000, 'kcat committed 10');
    assert.deepEqual(
      [...kcat.lines].sort(),
      Array.from({ length: 10 }, (_, i) => `k${i}=m${i}`).sort(),
      'every message exactly once across the restart',
    );
    kcat.child.kill('SIGTERM');
    assert.equal(await kcat.exited, 0);
  },
);

test(
  'confluent-kafka-python (librdkafka): produce with headers, group consume and commit',
  { timeout: 60_000 },
  async (t) => {
    const b = await broker(t);
    const script = `
import sys
from confluent_kafka import Producer, Consumer, TopicPartition
bs = sys.argv[1]
p = Producer({'bootstrap.servers': bs, 'compression.type': 'gzip'})
for i in range(5):
    p.produce('py-topic', key=f'k{i}', value=f'v{i}', headers=[('n', str(i).encode())], partition=0)
assert p.flush(10) == 0
c = Consumer({'bootstrap.servers': bs, 'group.id': 'py-g', 'auto.offset.reset': 'earliest', 'enable.auto.commit': False})
c.subscribe(['py-topic'])
got = []
while len(got) < 5:
    m = c.poll(10)
    if m is None: raise SystemExit('no message within 10 s')
    if m.error(): raise SystemExit(str(m.error()))
    got.append(m)
    print(f"{m.key().decode()}={m.value().decode()} n={dict(m.headers())['n'].decode()}", flush=True)
c.commit(message=got[-1], asynchronous=False)
print('committed', c.committed([TopicPartition('py-topic', 0)], timeout=10)[0].offset, flush=True)
c.close()
`;
    const lines = await runOk(t, PYTHON, ['-c', script, b.brokers]);
    assert.deepEqual(lines, ['k0=v0 n=0', 'k1=v1 n=1', 'k2=v2 n=2', 'k3=v3 n=3', 'k4=v4 n=4', 'committed 5']);
  },
);
