// `npm run bench:idle-replicas` — what idle replicas of one stage cost, as the scale bench runs them (the compiled
// build, the e2e stack's config, `bus.commitIntervalMs` 100): N replicas joined to their group, no traffic. Prints
// each replica's CPU in ms per second and the stack's Redis commands per second by connection name and command
// (from MONITOR, attributed to the connection names in CLIENT LIST), so a per-replica fixed cost — polling timers,
// heartbeats, retry-queue workers — can be told from the work a message costs.
//
// Usage: npm run bench:idle-replicas -- [--stage delivery] [--replicas 4] [--seconds 20] [--source]
//        [--cpu-prof DIR] (V8 CPU profile of every replica in DIR/<stage>, written when they stop)
// Prints figures, never asserts.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { SERVICES as SERVICE_TABLE } from '@mailgate/contracts';
import { sleep, startStack, type ServiceName } from '../harness/stack.js';
import { groupMembers } from './load.js';
import { sample } from './procstat.js';

const argv = process.argv.slice(2);
const opt = (name: string, d: string): string => (argv.includes(name) ? (argv[argv.indexOf(name) + 1] ?? d) : d);
const STAGE = opt('--stage', 'delivery') as ServiceName;
const REPLICAS = Number(opt('--replicas', '4'));
const SECONDS = Number(opt('--seconds', '20'));
const CPU_PROF = opt('--cpu-prof', '');
const PARTITIONS = 12;
const log = (l: string): void => console.error(`[idle-replicas] ${l}`);

/** `addr → name` of every connection Redis has now (CLIENT LIST). */
async function clientNames(port: number): Promise<Map<string, string>> {
  const out = await run('redis-cli', ['-p', String(port), 'CLIENT', 'LIST']);
  const names = new Map<string, string>();
  for (const line of out.split('\n')) {
    const addr = /\baddr=(\S+)/.exec(line)?.[1];
    if (addr) names.set(addr, /\bname=(\S*)/.exec(line)?.[1] || '(unnamed)');
  }
  return names;
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('exit', () => resolve(out));
  });
}

async function main(): Promise<void> {
  if (!argv.includes('--source')) {
    if (!existsSync(new URL('../../packages/cli/dist/index.js', import.meta.url)))
      throw new Error('run `npm run build` first (or pass --source)');
    process.env['MAILGATE_E2E_BUILT'] = '1';
  }
  const group = SERVICE_TABLE[STAGE].group!;
  if (CPU_PROF) mkdirSync(CPU_PROF, { recursive: true });
  const stack = await startStack({
    partitions: PARTITIONS,
    logLevel: 'warn',
    services: [STAGE],
    replicas: { [STAGE]: REPLICAS },
    ...(CPU_PROF ? { nodeFlags: { [STAGE]: ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}/${STAGE}`] } } : {}),
    config: { delivery: { limits: { maxConnectionsPerDestination: 400 } }, bus: { commitIntervalMs: 100 } },
  });
  try {
    for (;;) {
      const members = await groupMembers(stack.kafka.brokers, group).catch(() => []);
      if (members.length === REPLICAS) break;
      await sleep(250);
    }
    await sleep(3000); // start-up work (JIT, first metadata) out of the interval
    const procs = Array.from({ length: REPLICAS }, (_, i) => stack.proc(STAGE, i));
    const names = await clientNames(stack.redis.port);
    const monitor = spawn('redis-cli', ['-p', String(stack.redis.port), 'MONITOR'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let text = '';
    monitor.stdout.on('data', (d: Buffer) => (text += d.toString()));
    await sleep(300);
    const cpu0 = procs.map((p) => sample(p.pid)!.cpuSeconds);
    const redis0 = sample(stack.redis.pid)!.cpuSeconds;
    const kafka0 = sample(stack.kafka.pid)?.cpuSeconds ?? 0;
    const t0 = Date.now();
    const from = t0 / 1000;
    const startUs = Number(process.hrtime.bigint() / 1000n);
    await sleep(SECONDS * 1000);
    const secs = (Date.now() - t0) / 1000;
    const cpu = procs.map((p, i) => ((sample(p.pid)!.cpuSeconds - cpu0[i]!) * 1000) / secs);
    const redisMs = ((sample(stack.redis.pid)!.cpuSeconds - redis0) * 1000) / secs;
    const kafkaMs = (((sample(stack.kafka.pid)?.cpuSeconds ?? 0) - kafka0) * 1000) / secs;
    const to = Date.now() / 1000;
    // The interval on the monotonic clock V8 stamps its samples with (scripts/cpuprofile-summary.mjs leaves out
    // start-up and the stop).
    if (CPU_PROF)
      writeFileSync(
        `${CPU_PROF}/window.json`,
        JSON.stringify({ startUs, endUs: Number(process.hrtime.bigint() / 1000n), messages: 0 }),
      );
    monitor.kill();
    for (const [k, v] of await clientNames(stack.redis.port)) names.set(k, v);
    const counts = new Map<string, number>();
    for (const line of text.split('\n')) {
      const m = /^(\d+\.\d+) \[\d+ (\S+)\] "(\w+)"(?: "([^"]*)")?/.exec(line);
      if (!m) continue;
      const t = Number(m[1]);
      if (t < from || t > to) continue;
      // A script call is named by its sha (first 8 hex digits) so polling scripts can be told apart.
      const cmd = m[3]!.toUpperCase();
      const what = cmd === 'EVALSHA' ? `EVALSHA ${m[4]?.slice(0, 8)}` : cmd;
      const key = `${names.get(m[2]!) ?? m[2]} ${what}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    console.log(
      `${REPLICAS} idle ${STAGE} replicas, ${secs.toFixed(1)} s, ${PARTITIONS} partitions (e2e stack config, bus.commitIntervalMs 100)`,
    );
    console.log(
      `CPU ms/s per replica: ${cpu.map((c) => c.toFixed(1)).join(' / ')} (mean ${(cpu.reduce((a, b) => a + b, 0) / REPLICAS).toFixed(1)}); redis-server ${redisMs.toFixed(1)}, kafka-lite ${kafkaMs.toFixed(1)}`,
    );
    console.log(
      `Redis commands/s: ${(total / secs).toFixed(1)} in all, ${(total / secs / REPLICAS).toFixed(1)} per replica`,
    );
    console.log('| connection name, command | per second (all replicas) | per replica per second |');
    console.log('|---|---|---|');
    for (const [k, v] of [...counts.entries()].sort((a, b) => b[1] - a[1]))
      console.log(`| ${k} | ${(v / secs).toFixed(2)} | ${(v / secs / REPLICAS).toFixed(2)} |`);
    // A graceful stop writes the profiles.
    if (CPU_PROF) await Promise.all(procs.map((p) => p.stop()));
  } finally {
    log('stopping');
    await stack.stop();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
