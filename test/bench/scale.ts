// `npm run bench:scale` — does a stage's throughput grow with its replicas? For each of dnsbl-check, virus-scan,
// attachment-policy and delivery: the stage alone (compiled build; kafka-lite, Redis, clamd, rbldnsd and the SMTP
// sink as in the e2e stack) drains a backlog of N messages from its input topic, at 1, 2 and 4 replicas, each
// replica in its own cgroup with the same CPU quota. The rate is read from the consumer group's committed offsets
// (between 10 % and 90 % of the backlog, so start-up, group joins and the last partition's tail do not count), so
// no other stage's capacity limits it. Each replica set first drains a warm-up backlog (--warm per replica), so the
// replicas are measured warm, as long-running ones are; the measured messages follow the warm-up's in one backlog
// (no pause between them). Prints msg/s per replica count, the speed-up, how often each
// replica used its whole quota, the partition assignment and CPU ms per message per process; writes
// var/bench/scale.json (`npm run bench:chart` draws it).
//
// Options: --stages a,b  --replicas 1,2,4  --quota 0.25 (cores per replica)  --messages 2000  --bytes 10240
//          --warm 300 (messages per replica drained before each point is measured)
//          --runs 1 (each stage measured N times, stages interleaved; msg/s is the median, every run is printed: one
//          point at a quota of 0.1 core varies by about ±25 % from run to run on a 2-core machine)
//          --partitions 12  --source (run from TypeScript instead of the build)
//          --config JSON (deep-merged over the bench's config: an A/B of one setting in one session)
//          --slow-remote N,MS (delivery: the sink holds every Nth message's DATA reply for MS ms, a slow remote server
//          among fast ones; what a chunk of records waits for and a sliding window does not)
//          --cpu-prof DIR (V8 CPU profile of every replica run, one file per process in DIR/<stage>: the replicas stop
//          gracefully after each point, which writes them, into DIR/<stage>/x<replicas>/ with a window.json of the
//          measured interval for scripts/cpuprofile-summary.mjs; profiling adds its own CPU, so rates are lower)
// Needs root for the cgroups (v1 cpu.cfs_quota_us or v2 cpu.max): when quotas cannot be set it says why and exits 1,
// never printing figures it did not measure. Prints figures, never asserts.
import { existsSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { SERVICES as SERVICE_TABLE } from '@mailgate/contracts';
import { producePipelineMessages, testPipelineMessage } from '@mailgate/testkit';
import { Kafka, logLevel } from 'kafkajs';
import { buildMessage } from '../harness/mail.js';
import {
  ACCEPTED_DOMAIN,
  deepMerge,
  REMOTE_DOMAIN,
  sleep,
  startStack,
  type ServiceName,
  type Stack,
} from '../harness/stack.js';
import { CgroupError, cpuCgroups, type CgroupDriver, type CpuGroup } from './cgroup.js';
import { describeSplit, groupMembers, type Member } from './load.js';
import { sample, usageMeter } from './procstat.js';
import { connectionCounter } from './connections.js';
import { execFileSync } from 'node:child_process';

const argv = process.argv.slice(2);
const opt = (name: string, d: string): string => (argv.includes(name) ? (argv[argv.indexOf(name) + 1] ?? d) : d);
const STAGES = opt('--stages', 'dnsbl-check,virus-scan,attachment-policy,delivery').split(',') as ServiceName[];
const REPLICAS = opt('--replicas', '1,2,4')
  .split(',')
  .map(Number)
  .sort((a, b) => b - a);
const QUOTA = Number(opt('--quota', '0.25'));
const MESSAGES = Number(opt('--messages', '2000'));
const BYTES = Number(opt('--bytes', '10240'));
const PARTITIONS = Number(opt('--partitions', '12'));
const WARM_PER_REPLICA = Number(opt('--warm', '300'));
const RUNS = Number(opt('--runs', '1'));
const FROM_SOURCE = argv.includes('--source');
const CPU_PROF = opt('--cpu-prof', '');
/** Every Nth message's DATA reply is held MS ms by the sink ('' = none). */
const SLOW_REMOTE = opt('--slow-remote', '').split(',').filter(Boolean).map(Number) as [number, number] | [];
/** Deep-merged over the bench's config (A/B of a setting, e.g. '{"delivery":{"bus":{"inFlight":0}}}'). */
const EXTRA_CONFIG = JSON.parse(opt('--config', '{}')) as Parameters<typeof deepMerge>[1];
const log = (l: string): void => console.error(`[scale] ${l}`);
const fmt = (n: number, d = 1): string => (Number.isFinite(n) ? n.toFixed(d) : '-');

export interface ScalePoint {
  stage: string;
  replicas: number;
  /** The median over the runs (`runs`). */
  msgPerSec: number;
  /** msg/s of every run, in run order. */
  runs?: number[];
  /** Share of CFS periods in which each replica used its whole quota (1 = always CPU-bound at the quota). */
  throttled: number[];
  assignment: string[];
  cpuMsPerMessage: { label: string; ms: number }[];
  /**
   * CPU ms per message of each replica between 10 % and 90 % of the backlog (the rate's interval), per message the
   * whole stage committed: their sum is the stage's steady-state CPU per message.
   */
  steadyCpuMsPerMessage?: number[];
  /** Redis commands per message over the measured interval, by command (the stage's own and its libraries'). */
  redisPerMessage?: Record<string, number>;
  /** TCP connections opened per message during the measured interval, by server. */
  connectionsPerMessage?: Record<string, number>;
}

/** Calls per command since the server started (INFO commandstats). */
function redisCommandCounts(port: number): Map<string, number> {
  const out = execFileSync('redis-cli', ['-p', String(port), 'INFO', 'commandstats'], { encoding: 'utf8' });
  const counts = new Map<string, number>();
  for (const m of out.matchAll(/^cmdstat_(\S+?):calls=(\d+)/gm)) counts.set(m[1]!, Number(m[2]));
  return counts;
}

/** Waits until the stage's consumer group is stable with `n` members that together hold every partition. */
async function settled(stack: Stack, group: string, n: number): Promise<Member[]> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const members = await groupMembers(stack.kafka.brokers, group).catch(() => []);
    const covered = new Set(members.flatMap((m) => m.partitions)).size;
    if (members.length === n && covered === PARTITIONS) return members;
    if (Date.now() > deadline)
      throw new Error(`${group}: ${members.length}/${n} members, ${covered}/${PARTITIONS} partitions`);
    await sleep(250);
  }
}

/** Produces `count` backlog messages into `topic` (far faster than a stage drains them). */
async function produceBacklog(stack: Stack, topic: string, messages: ReturnType<typeof backlog>): Promise<void> {
  for (let i = 0; i < messages.length; i += 500)
    await producePipelineMessages(stack.kafka.brokers, topic, messages.slice(i, i + 500));
}

/**
 * Waits until `count` more messages than `from` are committed (offsets every 100 ms) and returns the rate between
 * 10 % and 90 % of them, so group joins and the last partition's tail do not count; with `pids`, also the CPU ms
 * per message of those processes over the same interval (the replicas' steady-state cost, without the idle tail).
 */
async function drain(
  kafka: Kafka,
  group: string,
  topic: string,
  from: number,
  count: number,
  pids: (number | undefined)[] = [],
): Promise<{ rate: number; cpuMsPerMessage: number[] }> {
  const samples: { t: number; done: number; cpu: number[] }[] = [];
  for (;;) {
    const p = await progress(kafka, group, topic);
    const cpu = pids.map((pid) => sample(pid)?.cpuSeconds ?? NaN);
    samples.push({ t: performance.now(), done: p.committed - from, cpu });
    // Not `committed >= end`: while the backlog is still being produced a fast stage can catch up with it.
    if (p.committed - from >= count) break;
    await sleep(100);
  }
  const at = (frac: number) => samples.find((x) => x.done >= count * frac)!;
  const a = at(0.1);
  const b = at(0.9);
  return {
    rate: ((b.done - a.done) * 1000) / (b.t - a.t),
    cpuMsPerMessage: pids.map((_, i) => ((b.cpu[i]! - a.cpu[i]!) * 1000) / (b.done - a.done)),
  };
}

/** N messages like smtp-source's (headers + a body of BYTES), addressed to the stack's accepted domain. */
function backlog(n: number): ReturnType<typeof testPipelineMessage>[] {
  const body = 'x'.repeat(Math.max(0, BYTES - 300));
  return Array.from({ length: n }, (_, i) =>
    testPipelineMessage(
      buildMessage({ from: `load@${REMOTE_DOMAIN}`, to: `inbox@${ACCEPTED_DOMAIN}`, subject: `load ${i}`, body }),
      { mailFrom: `load@${REMOTE_DOMAIN}`, rcptTo: [`inbox@${ACCEPTED_DOMAIN}`] },
    ),
  );
}

/** Sum over partitions of (committed offset of `group`) and of the end offsets of `topic`. */
async function progress(kafka: Kafka, group: string, topic: string): Promise<{ committed: number; end: number }> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [ends, [committed]] = await Promise.all([
      admin.fetchTopicOffsets(topic),
      admin.fetchOffsets({ groupId: group, topics: [topic] }),
    ]);
    const sum = (xs: { offset: string }[]) => xs.reduce((a, p) => a + Math.max(0, Number(p.offset)), 0);
    return { committed: sum(committed?.partitions ?? []), end: sum(ends) };
  } finally {
    await admin.disconnect();
  }
}

async function measureStage(cg: CgroupDriver, stage: ServiceName): Promise<ScalePoint[]> {
  const max = REPLICAS[0]!;
  const { consumes: topic, group } = SERVICE_TABLE[stage];
  if (!topic || !group) throw new Error(`${stage} is not a pipeline stage that consumes a topic`);
  log(`${stage}: starting kafka-lite, Redis, clamd, rbldnsd, the sink and ${max} replicas`);
  const stack = await startStack({
    partitions: PARTITIONS,
    logLevel: 'warn',
    services: [stage],
    replicas: { [stage]: max },
    ...(CPU_PROF ? { nodeFlags: { [stage]: ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}/${stage}`] } } : {}),
    // Every message goes to the one sink: the fleet-wide connection cap per destination (default 20, shared through
    // Redis) would be the bottleneck at 4 replicas, not the replicas' CPU. 1000: each delivery replica keeps up to
    // bus.inFlight (96) messages in flight, plus the idle connections that keep their slot for connectionIdleMs.
    // (400 until round 5, when 4 replicas had 24 in flight each; with 96 each, 400 bound: 30 % of periods at quota.)
    // connectionIdleMs: delivery's default (2,000). The test stack's 500 ms closes the tests' idle connections
    // quickly; in this bench it closed connections a replica needed again a moment later (round 7: at 4 replicas
    // 0.26 new connections per message and 2.03 ms against 0.13 and 1.69 ms with the default).
    // The rate is read from committed offsets: commit every 100 ms (the stages coalesce commits per second by
    // default), or a 4-replica point of a few seconds would be read in steps of a second.
    config: deepMerge(
      {
        delivery: { limits: { maxConnectionsPerDestination: 1000, connectionIdleMs: 2000 } },
        bus: { commitIntervalMs: 100 },
      },
      EXTRA_CONFIG,
    ),
  });
  if (SLOW_REMOTE.length === 2) {
    const [every, ms] = SLOW_REMOTE;
    let n = 0;
    stack.internal.beforeDataReply(() => (++n % every === 0 ? new Promise((r) => setTimeout(r, ms)) : undefined));
  }
  const kafka = new Kafka({ clientId: 'bench-scale', brokers: [stack.kafka.brokers], logLevel: logLevel.NOTHING });
  const groups: CpuGroup[] = [];
  const points: ScalePoint[] = [];
  try {
    for (let i = 0; i < max; i++) groups.push(cg.create(`${stage}-${i}`, QUOTA));
    for (let i = 0; i < max; i++) await stack.proc(stage, i).stop();
    // Every replica set is warmed before it is measured: each replica process starts cold, and V8's optimising
    // compiler (its CPU is the process's, inside the quota) needs a few hundred messages to settle. Measuring cold
    // replicas charged that fixed cost to 500 messages per replica at 4 replicas but to 2,000 at 1, which made
    // the speed-up look worse than a long-running deployment's (issue 22: 1.39 → 2.14 ms per message).
    for (const n of REPLICAS) {
      for (let i = 0; i < n; i++) {
        const p = stack.proc(stage, i);
        await p.start();
        groups[i]!.add(p.pid!);
      }
      const members = await settled(stack, group, n);
      const warm = WARM_PER_REPLICA * n;
      const count = MESSAGES;
      // Built before the clock starts: building them blocks this process (and its polling of the offsets).
      const messages = backlog(warm + count);
      const warmStart = await progress(kafka, group, topic);
      // One backlog: the measured messages follow the warm-up's without a pause, as in a deployment under steady
      // load. Until round 7 the measured backlog was produced after the warm-up had drained: the replicas idled
      // meanwhile, delivery's idle SMTP connections closed (connectionIdleMs), and each measured interval began by
      // reopening them — a ramp-up that a short interval (4 replicas: ~8 s) paid three times as much per message as
      // a long one (0.12 new connections per message at 4 replicas, 0.04 at 1).
      const producing = produceBacklog(stack, topic, messages);
      const warmRate = (await drain(kafka, group, topic, warmStart.committed, warm)).rate;
      log(`${stage} × ${n}: warm-up done (${warm} messages, ${fmt(warmRate)} msg/s)`);
      const start = { committed: warmStart.committed + warm };
      const before = groups.slice(0, n).map((g) => g.throttling());
      const meter = usageMeter(stack.processes());
      const redis0 = redisCommandCounts(stack.redis.port);
      const conns = connectionCounter([
        { label: 'sink', port: stack.internal.port },
        { label: 'redis', port: stack.redis.port },
        { label: 'kafka-lite', port: stack.kafka.port },
      ]);
      const startUs = monoUs();
      // The meters started when this process saw the warm-up drained, which producing the backlog can delay: divide
      // what they measured by the messages committed since they started, not by `count`.
      const metered = Math.max(1, start.committed + count - (await progress(kafka, group, topic)).committed);
      await producing;
      const pids = Array.from({ length: n }, (_, i) => stack.proc(stage, i).pid);
      const { rate, cpuMsPerMessage: steady } = await drain(kafka, group, topic, start.committed, count, pids);
      const endUs = monoUs();
      const usage = meter.finish();
      const redis1 = redisCommandCounts(stack.redis.port);
      const redisPerMessage: Record<string, number> = {};
      for (const [cmd, calls] of redis1) {
        const d = (calls - (redis0.get(cmd) ?? 0)) / metered;
        if (d >= 0.01 && cmd !== 'info') redisPerMessage[cmd] = Number(d.toFixed(2));
      }
      const connectionsPerMessage = Object.fromEntries(
        conns.finish().map((c) => [c.label, Number((c.connections / metered).toFixed(3))]),
      );
      const throttled = groups.slice(0, n).map((g, i) => {
        const a = g.throttling();
        const periods = a.periods - before[i]!.periods;
        return periods ? (a.throttled - before[i]!.throttled) / periods : 0;
      });
      for (let i = 0; i < n; i++) await stack.proc(stage, i).stop();
      if (CPU_PROF) keepProfiles(`${CPU_PROF}/${stage}`, n, { startUs, endUs, messages: metered });
      points.push({
        stage,
        replicas: n,
        msgPerSec: rate,
        throttled,
        assignment: describeSplit(members),
        cpuMsPerMessage: usage.map((u) => ({ label: u.label, ms: (u.cpuSeconds * 1000) / metered })),
        steadyCpuMsPerMessage: steady,
        redisPerMessage,
        connectionsPerMessage,
      });
      log(`${stage} × ${n}: ${fmt(rate)} msg/s, throttled ${throttled.map((t) => fmt(t * 100, 0) + '%').join('/')}`);
    }
  } finally {
    await stack.stop();
    for (const g of groups) g.remove();
  }
  return points.sort((a, b) => a.replicas - b.replicas);
}

const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);

/**
 * Moves the profiles the replicas of one point just wrote into <dir>/x<n>/ with a window.json (the measured drain
 * on the monotonic clock V8 stamps its samples with), so `node scripts/cpuprofile-summary.mjs <dir>/x<n>` shows
 * the measured interval only, without start-up and warm-up.
 */
function keepProfiles(dir: string, n: number, window: { startUs: number; endUs: number; messages: number }): void {
  const out = `${dir}/x${n}`;
  mkdirSync(out, { recursive: true });
  for (const f of readdirSync(dir)) if (f.endsWith('.cpuprofile')) renameSync(`${dir}/${f}`, `${out}/${f}`);
  writeFileSync(`${out}/window.json`, JSON.stringify(window));
}

/** The stage was the bottleneck: every replica used its whole quota in most periods. */
const bound = (p: ScalePoint): boolean => p.throttled.every((t) => t >= 0.5);

async function main(): Promise<void> {
  let cg: CgroupDriver;
  try {
    cg = cpuCgroups();
  } catch (e) {
    console.error(`bench:scale: CPU quotas cannot be set on this machine, so nothing was measured.`);
    console.error(`  ${e instanceof CgroupError ? e.message : String(e)}`);
    console.error(`  It needs root and a cgroup cpu controller (v1 cpu.cfs_quota_us or v2 cpu.max).`);
    process.exit(1);
  }
  if (!FROM_SOURCE) {
    if (!existsSync(new URL('../../packages/cli/dist/index.js', import.meta.url)))
      throw new Error('bench:scale runs the compiled build: run `npm run build` first (or pass --source)');
    process.env['MAILGATE_E2E_BUILT'] = '1';
  }
  console.log(
    `machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}; cgroup ${cg.version}`,
  );
  console.log(
    `load: ${MESSAGES} × ${BYTES} B per point, backlog in the input topic; quota ${QUOTA} core per replica; ${PARTITIONS} partitions; delivery.limits.maxConnectionsPerDestination 1000, connectionIdleMs 2000; bus.commitIntervalMs 100${SLOW_REMOTE.length === 2 ? `; slow remote: every ${SLOW_REMOTE[0]}th DATA reply held ${SLOW_REMOTE[1]} ms` : ''}${argv.includes('--config') ? `; --config ${JSON.stringify(EXTRA_CONFIG)}` : ''}`,
  );
  const measured: ScalePoint[] = [];
  for (let run = 1; run <= RUNS; run++) {
    if (RUNS > 1) log(`run ${run} of ${RUNS}`);
    for (const stage of STAGES) measured.push(...(await measureStage(cg, stage)));
  }
  // One point per stage and replica count: the median rate; throttling, assignment and CPU of the median run.
  const all: ScalePoint[] = [];
  for (const stage of STAGES) {
    for (const n of [...REPLICAS].sort((a, b) => a - b)) {
      const pts = measured.filter((p) => p.stage === stage && p.replicas === n);
      const byRate = [...pts].sort((a, b) => a.msgPerSec - b.msgPerSec);
      const mid = byRate[Math.floor((byRate.length - 1) / 2)]!;
      all.push({ ...mid, runs: pts.map((p) => p.msgPerSec) });
    }
  }

  console.log(
    `\n| stage | replicas | msg/s${RUNS > 1 ? ` (median of ${RUNS}; every run)` : ''} | speed-up | replicas at quota (% of periods throttled) |`,
  );
  console.log('|---|---|---|---|---|');
  for (const stage of STAGES) {
    const pts = all.filter((p) => p.stage === stage);
    const one = pts.find((p) => p.replicas === 1)?.msgPerSec ?? NaN;
    for (const p of pts)
      console.log(
        `| ${stage} | ${p.replicas} | ${fmt(p.msgPerSec)}${RUNS > 1 ? ` (${(p.runs ?? []).map((r) => fmt(r)).join(', ')})` : ''} | ${fmt(p.msgPerSec / one, 2)}× | ${p.throttled.map((t) => fmt(t * 100, 0)).join(' / ')}${bound(p) ? '' : ' (not CPU-bound at its quota: the bottleneck was elsewhere, so this is not the stage’s throughput)'} |`,
      );
  }
  console.log(
    "\nper message (median run): replicas' CPU ms between 10 and 90 % of the backlog; CPU ms by process over the whole interval; Redis commands; TCP connections opened",
  );
  for (const p of all)
    console.log(
      `  ${p.stage} × ${p.replicas}: steady state ${fmt(
        (p.steadyCpuMsPerMessage ?? []).reduce((x, y) => x + y, 0),
        2,
      )} (replicas ${(p.steadyCpuMsPerMessage ?? []).map((x) => fmt(x, 2)).join(' + ')}); whole interval ${p.cpuMsPerMessage
        .filter((u) => u.ms >= 0.01)
        .map((u) => `${u.label} ${fmt(u.ms, 2)}`)
        .join(', ')}; Redis ${Object.entries(p.redisPerMessage ?? {})
        .map(([k, v]) => `${k} ${v}`)
        .join(' ')}; connections ${Object.entries(p.connectionsPerMessage ?? {})
        .map(([k, v]) => `${k} ${v}`)
        .join(' ')}`,
    );
  console.log('\npartition assignment:');
  for (const p of all) console.log(`  ${p.stage} × ${p.replicas}: ${p.assignment.join('; ')}`);
  mkdirSync('var/bench', { recursive: true });
  const out = {
    machine: `${cpus().length} × ${cpus()[0]?.model ?? '?'}`,
    quota: QUOTA,
    messages: MESSAGES,
    bytes: BYTES,
    partitions: PARTITIONS,
    cgroup: cg.version,
    at: new Date().toISOString(),
    points: all,
  };
  writeFileSync('var/bench/scale.json', JSON.stringify(out, null, 2));
  console.log('\nwrote var/bench/scale.json (chart: npm run bench:chart)');
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
