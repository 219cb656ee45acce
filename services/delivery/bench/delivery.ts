// Delivery throughput to a loopback SMTP sink (Postfix smtp-sink), compared with Postfix smtp-source driving the
// same sink (the ceiling). Prints figures; asserts nothing.
//   node --import tsx --conditions=mailgate-src services/delivery/bench/delivery.ts
// Env: BENCH_MESSAGES (default 3000), BENCH_CONCURRENCY (default 24 = 3 partitions × bus.concurrency 8).
import { spawn, type ChildProcess } from 'node:child_process';
import { newMessageId } from '@mailgate/contracts';
import { freePort, startDnsServer, startRedis } from '@mailgate/testkit';
import { trace } from '@opentelemetry/api';
import pino from 'pino';
import { createDeliveryComponents } from '../src/components.js';
import { deliverySchema } from '../src/config.js';
import { message } from '../test/helpers.js';

const N = Number(process.env['BENCH_MESSAGES'] ?? 3000);
const CONC = Number(process.env['BENCH_CONCURRENCY'] ?? 24);
const HOST = '127.0.0.9';
const DESTS = 50;

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
  const ctx = {
    stage: 'delivery' as const,
    attempt: 1,
    firstAttemptAt: Date.now(),
    log: pino({ level: 'silent' }),
    span: trace.getTracer('bench').startSpan('bench'),
    signal: new AbortController().signal,
    host: 'bench',
  };

  const run = async (size: number, rcpt: (i: number) => string, n: number): Promise<number> => {
    const raw = body(size);
    let next = 0;
    let failed = 0;
    const t0 = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: CONC }, async () => {
        for (let i = next++; i < n; i = next++) {
          const out = await c.stage(message({ from: 'bench@src.test', to: [rcpt(i)], raw, id: newMessageId() }), ctx);
          if (out.details?.['delivered'] !== 1) failed++;
        }
      }),
    );
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (failed) console.log(`  (${failed} not delivered)`);
    return n / s;
  };

  console.log(
    `delivery bench: ${N} messages per case, ${CONC} in parallel, sink = Postfix smtp-sink on ${HOST}:${port}`,
  );
  await run(10 * 1024, () => 'w@dest.test', Math.min(300, N)); // warm-up
  const rows: string[][] = [];
  for (const size of [10 * 1024, 100 * 1024]) {
    const n = size > 50 * 1024 ? Math.ceil(N / 3) : N;
    const one = await run(size, (i) => `r${i}@dest.test`, n);
    const many = await run(size, (i) => `r${i}@d${i % DESTS}.test`, n);
    const ceiling = await smtpSource(port, size, n, 20);
    rows.push([
      `${size / 1024} KiB`,
      one.toFixed(0),
      many.toFixed(0),
      ceiling.toFixed(0),
      `${((one / ceiling) * 100).toFixed(0)} %`,
    ]);
  }
  console.log(
    'size     | one destination msg/s | 50 destinations (MX) msg/s | smtp-source ceiling msg/s | ratio (one dest / ceiling)',
  );
  for (const r of rows) console.log(r.join(' | '));
  await c.close();
  await dns.close();
  await redis.stop();
  sink.kill('SIGTERM');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
