/**
 * Ingress throughput benchmark: Postfix `smtp-source` (20 concurrent sessions, one message per connection)
 * against (a) ingress-smtp producing each message durably (acks=-1) into kafka-lite running in its own process,
 * and (b) Postfix `smtp-sink` (accepts and discards: the ceiling on this machine). Prints msg/s for 10 KiB and
 * 100 KiB messages, p50/p99 of end-of-DATA → 250 measured inside the server, and the ingress/sink ratio.
 *
 *   node --import tsx --conditions=mailgate-src services/ingress-smtp/bench/ingress.ts [--messages 2000] [--sender-auth]
 *
 * --sender-auth: SPF at MAIL FROM and DKIM/ARC/DMARC at end of DATA, with DNS answered by rbldnsd on loopback
 * (remote.test: SPF `ip4:127.0.0.1 -all`, DMARC p=reject; smtp-source's mail is unsigned, so DMARC passes through
 * aligned SPF). --auth-records none: rbldnsd publishes no SPF or DMARC record for remote.test, as in the e2e stack
 * (test/harness/stack.ts), so SPF and DMARC answer from cached negative answers. Compare its end-of-DATA→250 with a run without the flag for the added latency.
 *
 * --sizes 10,100: the message sizes to run, KiB (default both). Each run also prints the benchmark process's CPU ms
 * per message while smtp-source ran against ingress: the process is ingress alone (kafka-lite, Redis and rbldnsd
 * run in their own processes), so this is ingress-smtp's CPU cost per message — the figure to compare A/B on a
 * shared machine, where msg/s is noisy.
 *
 * --profile-window DIR: write DIR/window.json (the measured ingress run of the first size, on the monotonic clock
 * V8 stamps profile samples with) so `node --cpu-prof --cpu-prof-dir DIR …` then `scripts/cpuprofile-summary.mjs
 * DIR` summarises the load only, not start-up and warm-up.
 *
 * --dnsbl: the connect-time DNSBL check (packages/dnsbl, Redis answer cache) against an rbldnsd zone on loopback, as
 * in the e2e stack; without it the bench runs with no connect filter.
 *
 * Figures only, never assertions. Runs with the production config defaults except: ports, accepted domain,
 * reverseDns off (no DNS in the sandbox) and pregreetDelayMs 0 (the early-talker wait would dominate a
 * one-message-per-connection run; it is a per-connection constant, not throughput).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startService } from '@mailgate/runtime';
import { freePort, startKafkaProcess, startRbldnsd, startRedis, waitFor } from '@mailgate/testkit';
import pino from 'pino';
import { createIngressService, type Ingress } from '../src/index.js';

const args = process.argv.slice(2);
const arg = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const MESSAGES = arg('messages', 2000);
const SESSIONS = arg('sessions', 20);
/** --reuse: smtp-source -d (several messages per connection), to separate connection cost from message cost. */
const REUSE = args.includes('--reuse');
const SENDER_AUTH = args.includes('--sender-auth');
const DNSBL = args.includes('--dnsbl');
const NO_AUTH_RECORDS = args[args.indexOf('--auth-records') + 1] === 'none';
const sizesArg = args.indexOf('--sizes');
const windowArg = args.indexOf('--profile-window');
const PROFILE_WINDOW_DIR = windowArg >= 0 ? args[windowArg + 1] : undefined;
const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);
const SIZES_KIB =
  sizesArg >= 0
    ? String(args[sizesArg + 1])
        .split(',')
        .map(Number)
    : [10, 100];

function run(cmd: string, argv: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('error', reject);
    p.on('exit', (code) => resolve({ code: code ?? -1, out }));
  });
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function smtpSource(
  port: number,
  size: number,
  messages: number,
): Promise<{ secs: number; out: string; code: number }> {
  const t0 = performance.now();
  const r = await run('smtp-source', [
    ...(REUSE ? ['-d'] : []),
    '-s',
    String(SESSIONS),
    '-l',
    String(size),
    '-m',
    String(messages),
    '-f',
    'sender@remote.test',
    '-t',
    'user@example.test',
    `127.0.0.1:${port}`,
  ]);
  return { secs: (performance.now() - t0) / 1000, out: r.out, code: r.code };
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-kafka-'));
  const kafka = await startKafkaProcess({ dataDir });
  const redis = await startRedis();
  const zones = [
    ...(SENDER_AUTH
      ? [
          {
            name: 'test',
            type: 'generic' as const,
            lines: NO_AUTH_RECORDS
              ? ['$TTL 60', 'other TXT "v=spf1 -all"']
              : ['$TTL 60', 'remote TXT "v=spf1 ip4:127.0.0.1 -all"', '_dmarc.remote TXT "v=DMARC1; p=reject"'],
          },
        ]
      : []),
    // 127.0.0.2: the RFC 5782 test point the zone's health check asks for; the bench client (127.0.0.1) is not listed.
    ...(DNSBL
      ? [{ name: 'bl.test', type: 'ip4set' as const, lines: [':127.0.0.2:listed at bl.test', '127.0.0.2'] }]
      : []),
  ];
  const dns = zones.length > 0 ? await startRbldnsd(zones) : null;
  let ingress: Ingress | undefined;
  const svc = createIngressService({ onStarted: (i) => (ingress = i), ...(DNSBL ? {} : { connectFilter: null }) });
  const running = await startService(svc, {
    httpPort: 0,
    env: {},
    log: pino({ level: 'warn' }),
    configDocument: {
      gateway: { hostname: 'bench.test', instance: 'bench' },
      kafka: { brokers: [kafka.brokers] },
      redis: { url: redis.url, keyPrefix: 'bench:' },
      logging: { level: 'warn' },
      telemetry: { tracing: { enabled: true } },
      ...(DNSBL ? { dnsbl: { resolvers: [dns!.server], zones: [{ name: 'bl.test' }], skipNetworks: [] } } : {}),
      senderAuth: SENDER_AUTH
        ? { authservId: 'bench.test', dns: { resolvers: [dns!.server], timeoutMs: 1000 } }
        : { enabled: false },
      ingress: {
        listeners: { mx: { host: '127.0.0.1', port: 0 } },
        acceptedDomains: ['example.test'],
        reverseDns: false,
        limits: { pregreetDelayMs: 0, maxConnectionsPerIp: 1000, messageRate: { max: 10_000_000 } },
      },
    },
  });
  const gw = ingress!;
  const authStats = gw.senderAuthStats;
  const sinkPort = await freePort();
  // smtp-sink refuses to run as root without a user to drop to.
  const asRoot = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
  const sink = spawn('smtp-sink', [...asRoot, '-c', `127.0.0.1:${sinkPort}`, '256'], { stdio: 'ignore' });
  await waitFor(
    async () =>
      (await run('smtp-source', ['-m', '1', '-l', '10', '-f', 'a@b.test', '-t', 'c@d.test', `127.0.0.1:${sinkPort}`]))
        .code === 0,
    { timeoutMs: 5000 },
  );

  console.log(
    `ingress-smtp benchmark: smtp-source -s ${SESSIONS}, ${MESSAGES} messages per run, ${REUSE ? 'connections reused (-d)' : 'one message per connection'}`,
  );
  console.log(
    `ingress → kafka-lite (separate process, acks=-1, fsync interval) with Redis rate limit; ceiling = Postfix smtp-sink\n`,
  );
  try {
    for (const kib of SIZES_KIB) {
      const label = `${kib} KiB`;
      const size = kib * 1024;
      // Larger messages take longer each: half as many from 100 KiB up.
      const count = kib >= 100 ? Math.max(200, Math.floor(MESSAGES / 2)) : MESSAGES;
      // warm-up (connections, JIT, topic metadata)
      await smtpSource(gw.addresses.mx!.port, size, 100);
      const before = { n: gw.stats.acceptLatencyMs.length, accepted: gw.stats.accepted, failed: gw.stats.tempfailed };
      const authBefore = { mf: authStats?.mailFromMs.length ?? 0, data: authStats?.dataMs.length ?? 0 };
      const cpu0 = process.cpuUsage();
      const startUs = monoUs();
      const ing = await smtpSource(gw.addresses.mx!.port, size, count);
      const cpu = process.cpuUsage(cpu0);
      if (PROFILE_WINDOW_DIR && kib === SIZES_KIB[0]) {
        mkdirSync(PROFILE_WINDOW_DIR, { recursive: true });
        const window = { startUs, endUs: monoUs(), messages: count };
        writeFileSync(join(PROFILE_WINDOW_DIR, 'window.json'), JSON.stringify(window));
      }
      const cpuMsPerMsg = (cpu.user + cpu.system) / 1000 / count;
      const lat = gw.stats.acceptLatencyMs.slice(before.n).sort((a, b) => a - b);
      const accepted = gw.stats.accepted - before.accepted;
      const sinkRun = await smtpSource(sinkPort, size, count);
      const ingRate = count / ing.secs;
      const sinkRate = count / sinkRun.secs;
      console.log(`${label}:`);
      console.log(
        `  ingress   ${ingRate.toFixed(0).padStart(6)} msg/s  (${accepted}/${count} queued, ${gw.stats.tempfailed - before.failed} tempfailed, ${ing.secs.toFixed(2)} s)` +
          `  end-of-DATA→250 p50 ${pct(lat, 50).toFixed(2)} ms  p99 ${pct(lat, 99).toFixed(2)} ms  max ${pct(lat, 100).toFixed(2)} ms`,
      );
      if (authStats) {
        const mf = authStats.mailFromMs.slice(authBefore.mf).sort((a, b) => a - b);
        const dt = authStats.dataMs.slice(authBefore.data).sort((a, b) => a - b);
        console.log(
          `  sender-auth: MAIL FROM (SPF) p50 ${pct(mf, 50).toFixed(2)} ms p99 ${pct(mf, 99).toFixed(2)} ms;` +
            ` end of DATA (DKIM/ARC/DMARC) p50 ${pct(dt, 50).toFixed(2)} ms p99 ${pct(dt, 99).toFixed(2)} ms (${dt.length} messages)`,
        );
      }
      console.log(
        `  ingress CPU ${cpuMsPerMsg.toFixed(3)} ms/msg (user ${(cpu.user / 1000 / count).toFixed(3)}, system ${(cpu.system / 1000 / count).toFixed(3)})`,
      );
      console.log(`  smtp-sink ${sinkRate.toFixed(0).padStart(6)} msg/s  (${sinkRun.secs.toFixed(2)} s)`);
      console.log(`  ratio ingress/sink ${(ingRate / sinkRate).toFixed(2)}`);
      if (ing.code !== 0 || /error|reject/i.test(ing.out))
        console.log(`  smtp-source (ingress) said: ${ing.out.trim().slice(0, 300)}`);
    }
  } finally {
    sink.kill('SIGTERM');
    await running.stop();
    await Promise.all([kafka.stop(), redis.stop(), dns?.stop()]);
    rmSync(dataDir, { recursive: true, force: true });
  }
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
