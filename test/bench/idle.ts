// What an idle stage replica costs: one StageRunner (the real consumer settings of the `bus:` defaults, 12
// partitions) and its DurableProducer, connected to a kafka-lite in a child process, with no traffic. Prints the
// fetches per second and the CPU of the stage process and of the broker, in ms per second, with kafkajs' request
// queue as released (its 1 ms timer loop, kafkajs#1556) and with the fix createKafka installs
// (packages/bus/src/request-queue-fix.ts). A replica with a CPU quota pays this on top of its work.
// Run: npm run bench:idle [-- SECONDS]. Prints figures, never asserts.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { busSchema, createLogger, kafkaSchema } from '@mailgate/runtime';
import { startTelemetry } from '@mailgate/telemetry';
import { pass } from '@mailgate/contracts';
import { createKafka, DurableProducer, StageRunner } from '@mailgate/bus';
import { startKafkaProcess } from '@mailgate/testkit';
import { Kafka, logLevel } from 'kafkajs';
import { sample } from './procstat.js';

const SECONDS = Number(process.argv[2] ?? 10);
const VARIANT = process.env['MG_IDLE_VARIANT'];

async function measure(upstream: boolean): Promise<void> {
  const queueProto = (
    createRequire(import.meta.url)('kafkajs/src/network/requestQueue/index.js') as {
      prototype: { scheduleCheckPendingRequests: unknown };
    }
  ).prototype;
  const released = queueProto.scheduleCheckPendingRequests;
  const dir = mkdtempSync(join(tmpdir(), 'mg-idle-'));
  const broker = await startKafkaProcess({ dataDir: dir });
  const cfg = kafkaSchema.parse({ brokers: [broker.brokers] });
  const topic = 'bench.idle.in';
  const admin = new Kafka({ clientId: 'bench-idle', brokers: [broker.brokers], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 12 }] });
  await admin.disconnect();
  const kafka = createKafka(cfg, 'bench');
  if (upstream) queueProto.scheduleCheckPendingRequests = released; // undo the fix createKafka just installed
  const producer = new DurableProducer(kafka, cfg);
  await producer.connect();
  const runner = new StageRunner({
    stage: 'virus-scan',
    topic,
    groupId: 'bench-idle',
    kafka,
    producer,
    fn: async () => ({ verdict: pass() }),
    bus: busSchema.parse({}),
    log: createLogger('bench', 'silent'),
    telemetry: startTelemetry({ serviceName: 'bench' }),
    host: 'bench',
  });
  let fetches = 0;
  const consumer = (runner as unknown as { consumer: import('kafkajs').Consumer }).consumer;
  consumer.on(consumer.events.FETCH, () => fetches++);
  const joined = new Promise<void>((r) => consumer.on(consumer.events.GROUP_JOIN, () => r()));
  void runner.start();
  await joined;
  // A few fetch rounds first, so start-up work (JIT, metadata) is over before the interval.
  const settled = fetches + 20;
  while (fetches < settled) await new Promise((r) => setTimeout(r, 50));
  const f0 = fetches;
  const self0 = process.cpuUsage();
  const broker0 = sample(broker.pid)!.cpuSeconds;
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const self = process.cpuUsage(self0);
  const brokerMs = ((sample(broker.pid)!.cpuSeconds - broker0) * 1000) / SECONDS;
  const clientMs = (self.user + self.system) / 1000 / SECONDS;
  console.log(
    `| ${upstream ? 'kafkajs 2.2.4 as released' : 'with request-queue-fix'} | ${((fetches - f0) / SECONDS).toFixed(1)} | ${clientMs.toFixed(1)} | ${brokerMs.toFixed(1)} |`,
  );
  await runner.stop();
  await producer.disconnect();
  await broker.stop();
  rmSync(dir, { recursive: true, force: true });
}

if (VARIANT) {
  await measure(VARIANT === 'upstream');
  process.exit(0);
} else {
  console.log(`idle stage replica, ${SECONDS} s, bus defaults (fetchMaxWaitMs 25, fetchMinBytes 65536), 12 partitions`);
  console.log('| kafkajs request queue | fetch/s | stage process CPU ms/s | kafka-lite CPU ms/s |');
  console.log('|---|---|---|---|');
  // Each variant in its own process: the fix patches a kafkajs prototype for the whole process.
  for (const variant of ['upstream', 'fixed', 'upstream', 'fixed']) {
    const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), String(SECONDS)], {
      env: { ...process.env, MG_IDLE_VARIANT: variant },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
}
