// `npm run bench:scale` — does a stage's throughput grow with its replicas? For each of dnsbl-check, virus-scan,
// attachment-policy and delivery: the whole pipeline (compiled build) with that stage at 1, 2 and 4 replicas, each
// replica in its own cgroup with the same CPU quota, every other process unconstrained, so the stage under test is
// the bottleneck and delivered msg/s is its throughput. Prints msg/s per replica count, the speed-up, the partition
// assignment and how often each replica hit its quota, and writes var/bench/scale.json (for bench/chart.ts).
//
// Options: --stages a,b  --replicas 1,2,4  --quota 0.1 (cores per replica)  --messages 1500  --bytes 10240
//          --partitions 8  --source (run from TypeScript instead of the build)
// Needs root for the cgroups (v1 cpu.cfs_quota_us or v2 cpu.max): when quotas cannot be set it says why and exits 1,
// never printing figures it did not measure. Prints figures, never asserts.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { startStack, type ServiceName, type Stack } from '../harness/stack.js';
import { CgroupError, cpuCgroups, type CgroupDriver, type CpuGroup } from './cgroup.js';
import { describeSplit, groupMembers, smtpSource, waitCount, type Member } from './load.js';
import { usageMeter, type ProcUsage } from './procstat.js';

const argv = process.argv.slice(2);
const opt = (name: string, d: string): string => (argv.includes(name) ? (argv[argv.indexOf(name) + 1] ?? d) : d);
const STAGES = opt('--stages', 'dnsbl-check,virus-scan,attachment-policy,delivery').split(',') as ServiceName[];
const REPLICAS = opt('--replicas', '1,2,4')
  .split(',')
  .map(Number)
  .sort((a, b) => b - a);
const QUOTA = Number(opt('--quota', '0.1'));
const MESSAGES = Number(opt('--messages', '1500'));
const BYTES = Number(opt('--bytes', '10240'));
const PARTITIONS = Number(opt('--partitions', '8'));
const FROM_SOURCE = argv.includes('--source');
const log = (l: string): void => console.error(`[scale] ${l}`);
const fmt = (n: number, d = 1): string => (Number.isFinite(n) ? n.toFixed(d) : '-');

export interface ScalePoint {
  stage: string;
  replicas: number;
  msgPerSec: number;
  /** Share of CFS periods in which each replica used its whole quota (1 = always CPU-bound at the quota). */
  throttled: number[];
  assignment: string[];
  cpuMsPerMessage: { label: string; ms: number }[];
}

/** Waits until the stage's consumer group is stable with `n` members that together hold every partition. */
async function settled(stack: Stack, stage: string, n: number): Promise<Member[]> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const members = await groupMembers(stack.kafka.brokers, `mailgate.${stage}`).catch(() => []);
    const covered = new Set(members.flatMap((m) => m.partitions)).size;
    if (members.length === n && covered === PARTITIONS) return members;
    if (Date.now() > deadline)
      throw new Error(`mailgate.${stage}: ${members.length}/${n} members, ${covered}/${PARTITIONS} partitions`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Delivered msg/s while the stage works through a backlog: smtp-source sends MESSAGES at full speed (ingress and the
 * unconstrained stages keep up), and the rate is timed at the sink between the 10th and the 90th percentile of
 * arrivals, so start-up and the tail of the last partition do not count.
 */
async function throughput(stack: Stack): Promise<{ rate: number; usage: ProcUsage[] }> {
  const sink = stack.internal;
  sink.clear();
  await smtpSource(stack.smtp.port, BYTES, 40, 4); // warm-up: JIT, pools, DNSBL cache
  if (!(await waitCount(sink, 40, 120_000))) throw new Error('warm-up messages did not arrive');
  sink.clear();
  const meter = usageMeter(stack.processes());
  const sending = smtpSource(stack.smtp.port, BYTES, MESSAGES, 20);
  const lo = Math.floor(MESSAGES * 0.1);
  const hi = Math.floor(MESSAGES * 0.9);
  if (!(await waitCount(sink, MESSAGES, 600_000))) throw new Error(`only ${sink.messages.length}/${MESSAGES} arrived`);
  await sending;
  const usage = meter.finish();
  const at = (i: number) => sink.messages[i]!.receivedAt.getTime();
  return { rate: (hi - lo) / ((at(hi) - at(lo)) / 1000), usage };
}

async function measureStage(cg: CgroupDriver, stage: ServiceName): Promise<ScalePoint[]> {
  const max = REPLICAS[0]!;
  log(`${stage}: starting the stack with ${max} replicas`);
  const stack = await startStack({ partitions: PARTITIONS, logLevel: 'warn', replicas: { [stage]: max } });
  const groups: CpuGroup[] = [];
  const points: ScalePoint[] = [];
  try {
    for (let i = 0; i < max; i++) {
      const g = cg.create(`${stage}-${i}`, QUOTA);
      g.add(stack.proc(stage, i).pid!);
      groups.push(g);
    }
    let running = max;
    for (const n of REPLICAS) {
      // Fewest-first would need replicas started later; most-first only stops them (the group rebalances).
      while (running > n) await stack.proc(stage, --running).stop();
      const members = await settled(stack, stage, n);
      const before = groups.slice(0, n).map((g) => g.throttling());
      const { rate, usage } = await throughput(stack);
      const throttled = groups.slice(0, n).map((g, i) => {
        const a = g.throttling();
        const periods = a.periods - before[i]!.periods;
        return periods ? (a.throttled - before[i]!.throttled) / periods : 0;
      });
      const point: ScalePoint = {
        stage,
        replicas: n,
        msgPerSec: rate,
        throttled,
        assignment: describeSplit(members),
        cpuMsPerMessage: usage.map((u) => ({ label: u.label, ms: (u.cpuSeconds * 1000) / MESSAGES })),
      };
      log(`${stage} × ${n}: ${fmt(rate)} msg/s, throttled ${throttled.map((t) => fmt(t * 100, 0) + '%').join('/')}`);
      points.push(point);
    }
  } finally {
    await stack.stop();
    for (const g of groups) g.remove();
  }
  return points.sort((a, b) => a.replicas - b.replicas);
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
    `load: ${MESSAGES} × ${BYTES} B per point, smtp-source -s 20; quota ${QUOTA} core per replica; ${PARTITIONS} partitions`,
  );
  const all: ScalePoint[] = [];
  for (const stage of STAGES) all.push(...(await measureStage(cg, stage)));

  console.log('\n| stage | replicas | msg/s | speed-up | replicas at quota (% of periods throttled) |');
  console.log('|---|---|---|---|---|');
  for (const stage of STAGES) {
    const pts = all.filter((p) => p.stage === stage);
    const one = pts.find((p) => p.replicas === 1)?.msgPerSec ?? NaN;
    for (const p of pts)
      console.log(
        `| ${stage} | ${p.replicas} | ${fmt(p.msgPerSec)} | ${fmt(p.msgPerSec / one, 2)}× | ${p.throttled.map((t) => fmt(t * 100, 0)).join(' / ')}${bound(p) ? '' : ' (not CPU-bound at its quota: the bottleneck was elsewhere, so this is not the stage’s throughput)'} |`,
      );
  }
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
