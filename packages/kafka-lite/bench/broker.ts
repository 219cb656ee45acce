// Benchmark: produce + consume through kafkajs against kafka-lite running in a child process.
// Prints records/s, MB/s and where the CPU time goes (broker process vs. kafkajs client process), and first the raw
// loopback copy rate of this machine (one TCP socket, 64 KiB writes, nothing parsed) as the ceiling to compare with.
// kafkajs checksums with the native CRC-32C the services install (@mailgate/bus); MG_JS_CRC=1 keeps kafkajs' own.
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { installNativeCrc32c } from '@mailgate/bus';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const nativeCrc = process.env['MG_JS_CRC'] !== '1' && installNativeCrc32c();

/** MB/s of pushing `mib` MiB through one loopback TCP connection (64 KiB writes, the reader only counts). */
async function loopbackCopy(mib: number): Promise<number> {
  const total = mib * 1024 * 1024;
  const chunk = Buffer.alloc(64 * 1024, 'x');
  let received = 0;
  let t0 = 0;
  const done = new Promise<number>((resolve) => {
    const server = net.createServer((sock) => {
      sock.on('data', (d: Buffer) => {
        received += d.length;
        if (received >= total) {
          const secs = (performance.now() - t0) / 1000;
          sock.destroy();
          server.close();
          resolve(mib / secs);
        }
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      const c = net.connect(port, '127.0.0.1', () => {
        t0 = performance.now();
        let sent = 0;
        const write = (): void => {
          while (sent < total) {
            sent += chunk.length;
            if (!c.write(chunk)) return void c.once('drain', write);
          }
          c.end();
        };
        write();
      });
    });
  });
  return done;
}

interface Cpu {
  user: number;
  system: number;
}

async function startChild(
  opts: Record<string, unknown>,
): Promise<{ child: ChildProcess; port: number; cpu(): Promise<{ cpu: Cpu; rss: number }> }> {
  const child = fork(fileURLToPath(new URL('./broker-proc.ts', import.meta.url)), [JSON.stringify(opts)], {
    execArgv: ['--import', 'tsx', '--conditions=mailgate-src'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve) =>
    child.once('message', (m) => resolve((m as { port: number }).port)),
  );
  const cpu = (): Promise<{ cpu: Cpu; rss: number }> =>
    new Promise((resolve) => {
      child.once('message', (m) => resolve(m as { cpu: Cpu; rss: number }));
      child.send('cpu');
    });
  return { child, port, cpu };
}

async function scenario(
  name: string,
  opts: Record<string, unknown>,
  recordSize: number,
  total: number,
  perSend: number,
): Promise<void> {
  const { child, port, cpu } = await startChild(opts);
  const kafka = new Kafka({ clientId: 'bench', brokers: [`127.0.0.1:${port}`], logLevel: logLevel.NOTHING });
  const topic = `bench-${recordSize}`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 6 }] });
  await admin.disconnect();
  const producer = kafka.producer();
  await producer.connect();
  const consumer = kafka.consumer({
    groupId: 'bench',
    maxWaitTimeInMs: 100,
    maxBytesPerPartition: 4 * 1024 * 1024,
    maxBytes: 24 * 1024 * 1024,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let consumed = 0;
  let doneAt = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const joined = new Promise<void>((r) => consumer.on(consumer.events.GROUP_JOIN, () => r()));
  await consumer.run({
    eachBatch: async ({ batch }) => {
      consumed += batch.messages.length;
      if (consumed >= total && !doneAt) {
        doneAt = performance.now();
        resolveDone();
      }
    },
  });
  await joined;
  const value = Buffer.alloc(recordSize, 'x');
  const messages = Array.from({ length: perSend }, () => ({ value }));
  const b0 = await cpu();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  // 4 concurrent senders, like a busy service with several in-flight requests.
  let sent = 0;
  const sender = async (): Promise<void> => {
    while (sent < total) {
      sent += perSend;
      await producer.send({ topic, acks: -1, messages });
    }
  };
  await Promise.all([sender(), sender(), sender(), sender()]);
  const produced = performance.now();
  await done;
  const elapsed = (doneAt - t0) / 1000;
  const b1 = await cpu();
  const c1 = process.cpuUsage(c0);
  const brokerCpu = (b1.cpu.user - b0.cpu.user + b1.cpu.system - b0.cpu.system) / 1e6;
  const clientCpu = (c1.user + c1.system) / 1e6;
  const mb = (consumed * recordSize) / 1024 / 1024;
  console.log(
    `${name.padEnd(22)} ${String(recordSize / 1024).padStart(4)} KiB x ${String(consumed).padStart(6)}: ` +
      `${Math.round(consumed / elapsed)
        .toLocaleString('en-US')
        .padStart(8)} rec/s ${(mb / elapsed).toFixed(1).padStart(6)} MB/s ` +
      `(produce ${((produced - t0) / 1000).toFixed(2)}s, e2e ${elapsed.toFixed(2)}s) ` +
      `CPU broker ${brokerCpu.toFixed(2)}s (${Math.round((brokerCpu / elapsed) * 100)}% of a core), kafkajs client ${clientCpu.toFixed(2)}s; broker rss ${Math.round(b1.rss / 1048576)} MiB`,
  );
  await consumer.disconnect();
  await producer.disconnect();
  child.send('close');
  await new Promise((r) => child.once('exit', r));
}

const small = Number(process.env.BENCH_SMALL_RECORDS ?? 100_000);
const large = Number(process.env.BENCH_LARGE_RECORDS ?? 2_000);
console.log(
  `kafka-lite bench: node ${process.version}, ${os.cpus().length} CPUs, broker in a child process, kafkajs producer (acks=-1, 4 concurrent sends) + group consumer in this process; kafkajs CRC-32C ${nativeCrc ? 'native (@node-rs/crc32)' : 'kafkajs’ own (JavaScript)'}`,
);
const copies = [await loopbackCopy(512), await loopbackCopy(512), await loopbackCopy(512)].sort((a, b) => a - b);
console.log(`raw loopback copy (one TCP socket, 64 KiB writes): median ${copies[1]!.toFixed(0)} MB/s of 3`);
for (const mode of ['memory', 'data-dir', 'data-dir fsync=always'] as const) {
  const dir = mode === 'memory' ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), 'kafka-lite-bench-'));
  const opts: Record<string, unknown> = dir ? { dataDir: dir, fsync: mode === 'data-dir' ? 'interval' : 'always' } : {};
  try {
    await scenario(mode, opts, 1024, small, 500);
    await scenario(mode, opts, 100 * 1024, large, 10);
  } finally {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }
}
