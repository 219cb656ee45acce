/**
 * dnsbl benchmark (prints figures, asserts nothing):
 *   1. lookups/s against rbldnsd with 3 IP zones, cold cache (every question goes to DNS), warm in Redis (a second
 *      checker, as another replica: Redis MGET hits) and warm in process (the first checker again: its 5 s front);
 *   2. the stage function called directly with a warm cache: msg/s at the bus' default concurrency (8), and the
 *      added latency per message (p50/p99) one message at a time.
 * Run: npm run bench:dnsbl   (env: N=2000 lookups, MSGS=5000 messages)
 */
import { performance } from 'node:perf_hooks';
import { newEnvelope, type PipelineMessage } from '@mailgate/contracts';
import { DnsblChecker, dnsblConfig } from '@mailgate/dnsbl';
import { createLogger, createRedis } from '@mailgate/runtime';
import { isolatedRedisPrefix, startRbldnsd, startRedis, testStageContext } from '@mailgate/testkit';
import { createDnsblStage } from '../src/index.js';

const N = Number(process.env['N'] ?? 2000);
const MSGS = Number(process.env['MSGS'] ?? 5000);
const log = createLogger('dnsbl-bench', 'silent');

const ip = (i: number) => `198.${18 + ((i >> 16) & 1)}.${(i >> 8) & 255}.${i & 255}`; // 198.18.0.0/15, benchmarking range
const listed = Array.from({ length: 200 }, (_, i) => ip(i * 7));

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function pool<T>(items: T[], concurrency: number, fn: (t: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

const dns = await startRbldnsd([
  { name: 'bl1.test', type: 'ip4set', lines: [':127.0.0.2:bl1', '127.0.0.2', ...listed] },
  { name: 'bl2.test', type: 'ip4set', lines: [':127.0.0.2:bl2', '127.0.0.2', ...listed.slice(0, 100)] },
  { name: 'wl.test', type: 'ip4set', lines: [':127.0.10.2:wl', '127.0.0.2', ...listed.slice(150)] },
  { name: 'dbl.test', type: 'dnset', lines: [':127.0.1.2:dbl', 'test', 'spammer.example'] },
  { name: 'uribl.test', type: 'dnset', lines: [':127.0.0.2:uribl', 'test', 'evil-link.example'] },
]);
const redisSrv = await startRedis();
const redis = createRedis({ url: redisSrv.url, keyPrefix: isolatedRedisPrefix('dnsblbench') }, { name: 'bench' });

try {
  const ipZones = [
    { name: 'bl1.test', weight: 2 },
    { name: 'bl2.test', weight: 1 },
    { name: 'wl.test', weight: -5 },
  ];
  const cfg = dnsblConfig({ resolvers: [dns.server], timeoutMs: 2000, zones: ipZones, health: { enabled: false } });
  const checker = new DnsblChecker(cfg, { log, redis });
  const replica = new DnsblChecker(cfg, { log, redis });
  const ips = Array.from({ length: N }, (_, i) => ip(i));

  console.log(`dnsbl bench: rbldnsd, 3 IP zones, ${N} distinct client IPs, concurrency 50, Redis cache`);
  for (const [phase, c] of [
    ['cold', checker],
    ['redis', replica],
    ['front', checker],
  ] as const) {
    const q0 = c.stats().dnsQueries;
    const t0 = performance.now();
    await pool(ips, 50, (x) => c.check([{ kind: 'ip', value: x, source: 'client' }]));
    const s = (performance.now() - t0) / 1000;
    const dq = c.stats().dnsQueries - q0;
    console.log(
      `  ${phase.padEnd(5)} cache: ${(N / s).toFixed(0).padStart(7)} checks/s = ${((N * 3) / s).toFixed(0).padStart(7)} zone lookups/s  (${dq} DNS questions)`,
    );
  }
  await checker.close();
  await replica.close();

  // Stage: client IP (3 zones) + HELO + sender (domain zone) + one body URL (URI zone).
  const allZones = [...ipZones, { name: 'dbl.test', type: 'domain' }, { name: 'uribl.test', type: 'uri' }];
  const scfg = dnsblConfig({ resolvers: [dns.server], timeoutMs: 2000, zones: allZones, health: { enabled: false } });
  const sc = new DnsblChecker(scfg, { log, redis });
  const fn = createDnsblStage({ checker: sc, cfg: scfg });
  const ctx = testStageContext('dnsbl-check', { log, host: 'bench' });
  const body = '<html><body><p>Hello, see <a href="https://www.example.org/page">our page</a>.</p></body></html>';
  const msgs: PipelineMessage[] = Array.from({ length: MSGS }, (_, i) => {
    const raw = Buffer.from(
      `Received: from mx.example.org (mx.example.org [${ip(i % 500)}]) by mailgate.test; Mon, 1 Jan 2026 10:00:00 +0000\r\n` +
        `From: a@sender${i % 50}.example\r\nTo: u@example.test\r\nSubject: bench ${i}\r\nMIME-Version: 1.0\r\n` +
        `Content-Type: text/html; charset=utf-8\r\n\r\n${body}\r\n`,
    );
    return {
      envelope: newEnvelope({
        mailFrom: `a@sender${i % 50}.example`,
        rcptTo: ['u@example.test'],
        size: raw.length,
        session: { clientIp: ip(i % 500), helo: `mx${i % 50}.sender.example` },
      }),
      raw,
    };
  });
  // Warm the cache with every fact the messages carry.
  await pool(msgs.slice(0, 500), 50, (m) => fn(m, ctx));

  const t0 = performance.now();
  await pool(msgs, 8, (m) => fn(m, ctx));
  const s = (performance.now() - t0) / 1000;
  console.log(`stage (warm cache, concurrency 8): ${(MSGS / s).toFixed(0)} msg/s over ${MSGS} messages`);

  const lat: number[] = [];
  for (const m of msgs.slice(0, Math.min(MSGS, 2000))) {
    const a = performance.now();
    await fn(m, ctx);
    lat.push(performance.now() - a);
  }
  lat.sort((a, b) => a - b);
  console.log(
    `stage added latency (warm, one at a time, ${lat.length} msgs): p50 ${pct(lat, 50).toFixed(3)} ms, p99 ${pct(lat, 99).toFixed(3)} ms, max ${lat[lat.length - 1]!.toFixed(3)} ms`,
  );
  await sc.close();
} finally {
  await redis.quit();
  await redisSrv.stop();
  await dns.stop();
}
