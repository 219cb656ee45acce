// npm run bench:recipients — the latency recipient validation adds to RCPT: LDAP (slapd) and SMTP callout (sink),
// cache miss (a fresh address every time) and cache hit (Redis), p50/p99. Prints figures; asserts nothing.
import { performance } from 'node:perf_hooks';
import { createRedis } from '@mailgate/runtime';
import { isolatedRedisPrefix, ldapSource, startRedis, startSlapd, startSmtpSink } from '@mailgate/testkit';
import { RecipientChecker, recipientsSchema } from '../src/index.js';

const N = Number(process.env['BENCH_N'] ?? 500);
const users = Array.from({ length: N }, (_, i) => ({ uid: `user${i}`, mail: `user${i}@corp.test` }));
const [slapd, sink, redisSrv] = await Promise.all([startSlapd({ users }), startSmtpSink(), startRedis()]);
const redis = createRedis({ url: redisSrv.url, keyPrefix: isolatedRedisPrefix('rcptbench') }, { name: 'bench' });
const checker = new RecipientChecker(
  recipientsSchema.parse({
    sources: {
      ad: ldapSource(slapd),
      internal: { type: 'callout', host: sink.host, port: sink.port, maxPerSecond: 100_000 },
    },
    domains: [
      { domain: 'corp.test', sources: ['ad'] },
      { domain: 'internal.test', sources: ['internal'] },
    ],
  }),
  { redis, hostname: 'bench.test' },
);

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function series(label: string, addr: (i: number) => string, expectCached: boolean): Promise<void> {
  const ms: number[] = [];
  for (let i = 0; i < N; i++) {
    const t0 = performance.now();
    const d = await checker.check(addr(i));
    ms.push(performance.now() - t0);
    if (d.cached !== expectCached) throw new Error(`${label}: unexpected cached=${d.cached}`);
  }
  console.log(
    `${label.padEnd(34)} n=${N}  p50=${pct(ms, 50).toFixed(2)} ms  p99=${pct(ms, 99).toFixed(2)} ms  max=${Math.max(...ms).toFixed(2)} ms`,
  );
}

console.log(`recipient check latency (sequential, one replica; slapd mdb with ${N + 1} entries; redis cache)`);
await checker.check('warmup@corp.test');
await series('LDAP miss (found, not cached)', (i) => `user${i}@corp.test`, false);
await series('LDAP hit (found, cached)', (i) => `user${i}@corp.test`, true);
await series('LDAP unknown (not cached)', (i) => `nobody${i}@corp.test`, false);
await series('callout miss (250, not cached)', (i) => `user${i}@internal.test`, false);
await series('callout hit (cached)', (i) => `user${i}@internal.test`, true);

await checker.close();
await redis.quit();
await Promise.all([slapd.stop(), sink.close(), redisSrv.stop()]);
