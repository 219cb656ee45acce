// Delivery throughput to a loopback SMTP sink (Postfix smtp-sink), compared with Postfix smtp-source driving the
// same sink (the ceiling), and what each delivered message costs: CPU of this process (the delivery stage; no
// Kafka here) and of the bench's own redis-server, Redis commands (INFO commandstats, commands run by scripts
// included) and Redis read events (INFO stats total_reads_processed: about one per round trip, fewer when several
// clients' commands arrive in one read). Prints figures; asserts nothing.
//   node --import tsx --conditions=mailgate-src services/delivery/bench/delivery.ts
// Env: BENCH_MESSAGES (default 3000), BENCH_CONCURRENCY (default 24 = 3 partitions × bus.concurrency 8),
//      BENCH_SIZES (KiB, default "10,100"), BENCH_CEILING=0 (skip smtp-source), BENCH_REDIS_DETAIL=1 (commands by
//      name per message, 10 KiB one destination).
// Round trips are counted exactly in a last pass of 200 messages one at a time (no other client's commands to
// share a read with): read events per message there = round trips per message.
import { spawn, type ChildProcess } from 'node:child_process';
import { newMessageId } from '@mailgate/contracts';
import { freePort, startDnsServer, startRedis } from '@mailgate/testkit';
import { trace } from '@opentelemetry/api';
import { Redis } from 'ioredis';
import pino from 'pino';
import { sample } from '../../../test/bench/procstat.js';
import { createDeliveryComponents } from '../src/components.js';
import { deliverySchema } from '../src/config.js';
import { message } from '../test/helpers.js';

const N = Number(process.env['BENCH_MESSAGES'] ?? 3000);
const CONC = Number(process.env['BENCH_CONCURRENCY'] ?? 24);
const SIZES = (process.env['BENCH_SIZES'] ?? '10,100').split(',').map((k) => Number(k) * 1024);
const CEILING = process.env['BENCH_CEILING'] !== '0';
const DETAIL = process.env['BENCH_REDIS_DETAIL'] === '1';
const HOST = '127.0.0.9';
const DESTS = 50;

/** Calls per command name since the server started (INFO commandstats). */
async function commandStats(admin: Redis): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const m of (await admin.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
    out.set(m[1]!, Number(m[2]));
  return out;
}

async function readsProcessed(admin: Redis): Promise<number> {
  return Number(/^total_reads_processed:(\d+)/m.exec(await admin.info('stats'))?.[1] ?? 0);
}

interface Cost {
  msgPerSec: number;
  /** CPU ms per message of this process (the delivery stage) and of redis-server. */
  cpuMs: number;
  redisCpuMs: number;
  /** Redis commands and read events per message. */
  commands: number;
  reads: number;
  /** Commands by name per message. */
  byCommand: Map<string, number>;
}

function body(size: number): Buffer {
  const head = 'From: <bench@src.test>\r\nTo: <r@dest.test>\r\nSubject: bench\r\nMIME-Version: 1.0\r\n\r\n';
  const line = 'The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstuv\r\n';
  let s = head;
  while (s.length < size) s += line;
  return Buffer.from(s.slice(0, size - 2) + '\r\n');
}

async function startSink(port: number): Promise<ChildProcess> {
  // -c: count; -u nobody: required when run as root; backlog 256.
  const p = spawn('smtp-sink', ['-u', 'nobody', '-m', '1000', `${HOST}:${port}`, '256'], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 300));
  return p;
}

function smtpSource(port: number, size: number, msgs: number, sessions: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const p = spawn(
      'smtp-source',
      [
        '-d',
        '-s',
        String(sessions),
        '-l',
        String(size),
        '-m',
        String(msgs),
        '-f',
        'bench@src.test',
        '-t',
        'r@dest.test',
        `${HOST}:${port}`,
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let err = '';
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    p.on('exit', (code) => {
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      if (code !== 0) reject(new Error(`smtp-source exited ${code}: ${err}`));
      else resolve(msgs / s);
    });
  });
}

async function main(): Promise<void> {
  const port = await freePort(HOST);
  const sink = await startSink(port);
  const redis = await startRedis();
  const dns = await startDnsServer({
    records: Array.from({ length: DESTS }, (_, i) => [
      { name: `d${i}.test`, type: 'MX' as const, priority: 10, exchange: `mx.d${i}.test` },
      { name: `mx.d${i}.test`, type: 'A' as const, address: HOST },
    ]).flat(),
  });
  const delivery = deliverySchema.parse({
    routes: [{ domains: ['dest.test'], hosts: [`${HOST}:${port}`], tls: 'none' }],
    dns: { resolvers: [dns.server], ipv6: false },
    mxPort: port,
    defaultRoute: { type: 'mx', tls: 'none' },
    limits: { maxConnectionsPerDestination: 20 },
  });
  const c = createDeliveryComponents({
    delivery,
    redis: { url: redis.url, keyPrefix: 'bench:' },
    gateway: { name: 'mailgate', hostname: 'gw.test', instance: 'bench' },
    log: pino({ level: 'silent' }),
  });
  // Reads Redis' counters; its own INFO calls are left out of the figures.
  const admin = new Redis(redis.url, { lazyConnect: false });
  const ctx = {
    stage: 'delivery' as const,
    attempt: 1,
    firstAttemptAt: Date.now(),
    log: pino({ level: 'silent' }),
    span: trace.getTracer('bench').startSpan('bench'),
    signal: new AbortController().signal,
    host: 'bench',
  };

  const run = async (size: number, rcpt: (i: number) => string, n: number, conc = CONC): Promise<Cost> => {
    const raw = body(size);
    let next = 0;
    let failed = 0;
    const cmd0 = await commandStats(admin);
    const reads0 = await readsProcessed(admin);
    const redis0 = sample(redis.pid);
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: conc }, async () => {
        for (let i = next++; i < n; i = next++) {
          const out = await c.stage(message({ from: 'bench@src.test', to: [rcpt(i)], raw, id: newMessageId() }), ctx);
          if (out.details?.['delivered'] !== 1) failed++;
        }
      }),
    );
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    const redis1 = sample(redis.pid);
    const reads1 = await readsProcessed(admin);
    const cmd1 = await commandStats(admin);
    if (failed) console.log(`  (${failed} not delivered)`);
    const byCommand = new Map<string, number>();
    let commands = 0;
    for (const [name, calls] of cmd1) {
      // The INFO that read cmd0 is counted in cmd1; the one reading reads1 too.
      const d = calls - (cmd0.get(name) ?? 0) - (name === 'info' ? 2 : 0);
      if (d <= 0) continue;
      byCommand.set(name, d / n);
      commands += d;
    }
    return {
      msgPerSec: n / s,
      cpuMs: (cpu.user + cpu.system) / 1000 / n,
      redisCpuMs: redis0 && redis1 ? ((redis1.cpuSeconds - redis0.cpuSeconds) * 1000) / n : NaN,
      commands: commands / n,
      // The INFO stats reads of reads0 and of cmd1 come in after reads0 was taken: one of them is counted.
      reads: (reads1 - reads0 - 1) / n,
      byCommand,
    };
  };

  console.log(
    `delivery bench: ${N} messages per case, ${CONC} in parallel, sink = Postfix smtp-sink on ${HOST}:${port}`,
  );
  await run(10 * 1024, () => 'w@dest.test', Math.min(300, N)); // warm-up
  const rows: string[][] = [];
  const costs: string[][] = [];
  let detail: Map<string, number> | undefined;
  for (const size of SIZES) {
    const n = size > 50 * 1024 ? Math.ceil(N / 3) : N;
    const one = await run(size, (i) => `r${i}@dest.test`, n);
    const many = await run(size, (i) => `r${i}@d${i % DESTS}.test`, n);
    const ceiling = CEILING ? await smtpSource(port, size, n, 20) : NaN;
    detail ??= one.byCommand;
    rows.push([
      `${size / 1024} KiB`,
      one.msgPerSec.toFixed(0),
      many.msgPerSec.toFixed(0),
      CEILING ? ceiling.toFixed(0) : '-',
      CEILING ? `${((one.msgPerSec / ceiling) * 100).toFixed(0)} %` : '-',
    ]);
    for (const [label, x] of [
      ['one destination', one],
      ['50 destinations', many],
    ] as const)
      costs.push([
        `${size / 1024} KiB ${label}`,
        x.cpuMs.toFixed(3),
        x.redisCpuMs.toFixed(3),
        x.commands.toFixed(2),
        x.reads.toFixed(2),
      ]);
  }
  console.log(
    'size     | one destination msg/s | 50 destinations (MX) msg/s | smtp-source ceiling msg/s | ratio (one dest / ceiling)',
  );
  for (const r of rows) console.log(r.join(' | '));
  console.log(
    'case | CPU ms/msg (this process) | redis-server CPU ms/msg | Redis commands/msg | Redis reads/msg (≤ round trips)',
  );
  for (const r of costs) console.log(r.join(' | '));
  const sequential = await run(SIZES[0]!, (i) => `s${i}@dest.test`, Math.min(200, N), 1);
  console.log(
    `Redis round trips per message, one at a time (${SIZES[0]! / 1024} KiB, one destination): ${sequential.reads.toFixed(2)}`,
  );
  if (DETAIL && detail) {
    console.log('Redis commands per message by name (first size, one destination):');
    for (const [name, per] of [...detail].sort((a, b) => b[1] - a[1])) console.log(`  ${name} ${per.toFixed(2)}`);
  }
  admin.disconnect();
  await c.close();
  await dns.close();
  await redis.stop();
  sink.kill('SIGTERM');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
