import { spawn, type ChildProcessByStdio } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import type { TestContext } from 'node:test';
import { Kafka, logLevel, type KafkaConfig } from 'kafkajs';
import { startBroker, type BrokerHandle, type BrokerOptions } from '@mailgate/kafka-lite';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

export const quietLogger = { info() {}, warn() {}, error() {}, debug() {} };

const stacks = new WeakMap<TestContext, (() => unknown)[]>();
/** Registers cleanup that runs in reverse order (clients before the broker), each bounded to 10 s. */
export function defer(t: TestContext, fn: () => unknown): void {
  let stack = stacks.get(t);
  if (!stack) {
    const s: (() => unknown)[] = [];
    stacks.set(t, s);
    stack = s;
    t.after(async () => {
      for (const f of s.reverse()) {
        await Promise.race([
          Promise.resolve()
            .then(f)
            .catch(() => {}),
          new Promise((r) => setTimeout(r, 10_000).unref()),
        ]);
      }
    });
  }
  stack.push(fn);
}

/** Connects a kafkajs admin, producer or consumer and disconnects it when the test ends. */
export async function connected<C extends { connect(): Promise<void>; disconnect(): Promise<void> }>(
  t: TestContext,
  client: C,
): Promise<C> {
  await client.connect();
  defer(t, () => client.disconnect());
  return client;
}

export async function broker(t: TestContext | null, opts: BrokerOptions = {}): Promise<BrokerHandle> {
  const b = await startBroker({ port: 0, logger: quietLogger, ...opts });
  if (t) defer(t, () => b.close());
  return b;
}

export function kafkaFor(b: BrokerHandle, extra: Partial<KafkaConfig> = {}): Kafka {
  return new Kafka({
    clientId: 'kafka-lite-test',
    brokers: [b.brokers],
    logLevel: logLevel.NOTHING,
    retry: { initialRetryTime: 100, retries: 8 },
    ...extra,
  });
}

/** Consumer settings that keep rebalances fast in tests. */
export const fastConsumer = {
  sessionTimeout: 6000,
  heartbeatInterval: 300,
  rebalanceTimeout: 4000,
  maxWaitTimeInMs: 200,
};

export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
  what = 'condition',
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

// ---- raw wire client ---------------------------------------------------------------------------

export class RawClient {
  private buf = Buffer.alloc(0);
  private pending = new Map<number, (b: Buffer) => void>();
  private nextId = 1;
  closed: Promise<void>;
  constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 4) {
        const size = this.buf.readInt32BE(0);
        if (this.buf.length < 4 + size) break;
        const frame = this.buf.subarray(4, 4 + size);
        this.buf = this.buf.subarray(4 + size);
        const id = frame.readInt32BE(0);
        const cb = this.pending.get(id);
        this.pending.delete(id);
        cb?.(frame.subarray(4));
      }
    });
    sock.on('error', () => {});
    this.closed = new Promise((r) => sock.once('close', () => r()));
  }
  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }
  frame(apiKey: number, version: number, body: Buffer, id = this.nextId++): Buffer {
    const client = Buffer.from('raw');
    const head = Buffer.alloc(4 + 2 + 2 + 4 + 2 + client.length);
    head.writeInt32BE(head.length - 4 + body.length, 0);
    head.writeInt16BE(apiKey, 4);
    head.writeInt16BE(version, 6);
    head.writeInt32BE(id, 8);
    head.writeInt16BE(client.length, 12);
    client.copy(head, 14);
    return Buffer.concat([head, body]);
  }
  request(apiKey: number, version: number, body: Buffer): Promise<Buffer> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.sock.write(this.frame(apiKey, version, body, id));
    });
  }
  write(b: Buffer): void {
    this.sock.write(b);
  }
  close(): void {
    this.sock.destroy();
  }
}

/** Minimal big-endian body builder for raw requests. */
export class Body {
  parts: Buffer[] = [];
  i8(v: number): this {
    const b = Buffer.alloc(1);
    b.writeInt8(v);
    this.parts.push(b);
    return this;
  }
  i16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeInt16BE(v);
    this.parts.push(b);
    return this;
  }
  i32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    this.parts.push(b);
    return this;
  }
  i64(v: number | bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(BigInt(v));
    this.parts.push(b);
    return this;
  }
  str(s: string | null): this {
    if (s === null) return this.i16(-1);
    const b = Buffer.from(s);
    this.i16(b.length);
    this.parts.push(b);
    return this;
  }
  bytes(b: Buffer | null): this {
    if (b === null) return this.i32(-1);
    this.i32(b.length);
    this.parts.push(b);
    return this;
  }
  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

const require = createRequire(import.meta.url);
/** Encodes a RecordBatch v2 with kafkajs' own encoder. */
export async function encodeBatch(opts: {
  producerId?: number;
  producerEpoch?: number;
  firstSequence?: number;
  values: string[];
}): Promise<Buffer> {
  const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0') as {
    RecordBatch: (o: unknown) => Promise<{ buffer: Buffer }>;
  };
  const Record = require('kafkajs/src/protocol/recordBatch/record/v0') as (o: unknown) => unknown;
  const Long = require('kafkajs/src/utils/long') as { fromValue(v: number): unknown };
  const now = Date.now();
  const enc = await RecordBatch({
    firstTimestamp: now,
    maxTimestamp: now,
    lastOffsetDelta: opts.values.length - 1,
    producerId: Long.fromValue(opts.producerId ?? -1),
    producerEpoch: opts.producerEpoch ?? 0,
    firstSequence: opts.firstSequence ?? 0,
    records: opts.values.map((v, i) => Record({ offsetDelta: i, key: null, value: Buffer.from(v) })),
  });
  return enc.buffer;
}

/** Produce v7 body for one partition. */
export function produceBody(topic: string, partition: number, batch: Buffer, acks = -1): Buffer {
  return new Body().str(null).i16(acks).i32(30000).i32(1).str(topic).i32(1).i32(partition).bytes(batch).build();
}

/** Parses a Produce v7 response with one topic/partition: [error, baseOffset]. */
export function parseProduce(b: Buffer): [number, bigint] {
  let pos = 4; // topics count
  const tlen = b.readInt16BE(pos);
  pos += 2 + tlen + 4 + 4; // name, partitions count, index
  return [b.readInt16BE(pos), b.readBigInt64BE(pos + 2)];
}

// ---- a broker in a child process (crash tests, memory measurements) ---------------------------

/** Runs test/fixtures/<file> from source (tsx) in a child process; stdout piped, stderr inherited. */
export function fixtureProcess(file: string, args: string[]): ChildProcessByStdio<null, Readable, null> {
  return spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--conditions=mailgate-src',
      fileURLToPath(new URL(`./fixtures/${file}`, import.meta.url)),
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
}

export interface ChildBroker extends BrokerHandle {
  pid: number;
  /** Peak resident set size of the broker process so far (Linux VmHWM), in MiB. */
  peakRssMiB(): number;
  kill(): Promise<void>;
}

export async function childBroker(t: TestContext, opts: BrokerOptions): Promise<ChildBroker> {
  const child = fixtureProcess('broker-child.ts', [JSON.stringify(opts)]);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const kill = async (): Promise<void> => {
    child.kill('SIGKILL');
    await exited;
  };
  defer(t, kill);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(() => /PORT \d+/.test(out), 20_000, 'child broker');
  const port = Number(/PORT (\d+)/.exec(out)![1]);
  return {
    host: '127.0.0.1',
    port,
    brokers: `127.0.0.1:${port}`,
    pid: child.pid!,
    close: kill,
    kill,
    peakRssMiB: () => {
      const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
      return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
    },
  };
}
