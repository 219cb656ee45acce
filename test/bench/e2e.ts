// `npm run bench:e2e` — the whole pipeline under load, side by side with Haraka and the raw SMTP ceiling.
//
// Load: Postfix's smtp-source (Debian `postfix`), 20 sessions, 10 KiB and 100 KiB messages. Destination: the
// project's SMTP sink (records each arrival, so delivered msg/s and latency can be measured). Latency is measured
// by probe messages (nodemailer, one every 250 ms during the peak run; then a paced run at half the peak delivered
// rate), each from its `250` to its arrival at the sink. CPU (% of one core) and RSS per process from /proc.
//
// Systems: `--systems split,chain,haraka` (default split,haraka): `split` is mailgate with every stage its own process
// (rows `mailgate`), `chain` the check stages as one stage chain process (`mailgate chain dnsbl-check,…,spam-check`,
// rows `mailgate-chain`), `chain-delivery` the same chain ending in delivery (`…,spam-check,delivery`, rows
// `mailgate-chain-delivery`), `haraka` Haraka. `--chain` or BENCH_CHAIN=1 adds `chain` to the default.
// Environment: BENCH_MESSAGES_10K (default 3000), BENCH_MESSAGES_100K (default 600), BENCH_SESSIONS (20),
// BENCH_HALF_SECONDS (15), BENCH_SKIP_HARAKA=1, BENCH_SKIP_SCALE=1, BENCH_PARTITIONS (6), HARAKA_DIR,
// BENCH_SENDER_AUTH=0 (senderAuth.enabled: false in mailgate's config: the same code with and without the ingress
// checks; the harness does not pass MAILGATE__* variables through, so this is the way to toggle it),
// BENCH_SPAM=0 (the same stack with spam-check skipping every message: spamCheck.skip.ips 0.0.0.0/0 and ::/0, so no
// message goes to rspamd; the stage graph is fixed, so the stage's Kafka hop stays and the on/off difference is the
// rspamd scan and the header edits). CPU per message is printed for the spam-check stage and for rspamd (main and
// worker processes summed, from /proc/<pid>/stat before and after the peak run).
// `--config JSON` deep-merges a config over mailgate's (e.g. '{"bus":{"slidingWindow":false}}'). `--chains-first`
// runs the chain systems before the split stack and Haraka (default: after them).
// Haraka's checks: `--haraka-checks full|core` (env BENCH_HARAKA_CHECKS, default full). full = dns-list,
// rcpt_to.in_host_list, spf, dkim (verify), attachment, clamd, rspamd (the stack's rspamd, kept running for the Haraka
// run) and queue/smtp_forward: the checks mailgate runs, except DMARC (no Haraka 3.3.4 plugin). core = without spf,
// dkim and rspamd (the older comparison). BENCH_HARAKA_LOG=info logs each Haraka plugin's result per message.
// BENCH_HARAKA_NODES (1): Haraka cluster workers (smtp.ini `nodes`); 2 = one per core, as mailgate uses both cores.
// Runs the compiled build (`npm run build` first; `--source` runs from TypeScript through tsx, which costs 6-16 %
// of a stage's CPU). `--runs N` repeats every measurement N times in the same run (one stack per system) and prints
// the median of each figure. CPU ms per message covers every process of each system: for mailgate the six stage
// services, admin (the tracking store), ingress, kafka-lite, redis-server, clamd and rspamd; for Haraka its master and
// workers, clamd and, with full checks, rspamd and redis-server (rspamd's Bayes store) (the DNS server serves both
// and is left out of both).
// Prints figures, never asserts.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { cpus, totalmem } from 'node:os';
import nodemailer from 'nodemailer';
import { freePort, ManagedProcess, startSmtpSink, type Sink } from '@mailgate/testkit';
import { buildMessage, header, headers } from '../harness/mail.js';
import { ACCEPTED_DOMAIN, deepMerge, DKIM_KEYS, sleep, startStack, STAGES, type Stack } from '../harness/stack.js';
import { ensureHaraka, harakaPlugins, startHaraka, type HarakaChecks } from './haraka.js';
import { describeSplit, groupMembers, LOAD_FROM as FROM, LOAD_TO as TO, smtpSource, waitCount } from './load.js';
import { childPids, rspamdProcs, usageMeter, type ProcUsage } from './procstat.js';

const env = (k: string, d: number): number => Number(process.env[k] ?? d);
const SESSIONS = env('BENCH_SESSIONS', 20);
const SIZES = [
  { label: '10 KiB', bytes: 10 * 1024, count: env('BENCH_MESSAGES_10K', 3000) },
  { label: '100 KiB', bytes: 100 * 1024, count: env('BENCH_MESSAGES_100K', 600) },
];
const HALF_SECONDS = env('BENCH_HALF_SECONDS', 15);
const argv = process.argv.slice(2);
const RUNS = argv.includes('--runs') ? Math.max(1, Number(argv[argv.indexOf('--runs') + 1]) || 1) : 1;
const FROM_SOURCE = argv.includes('--source');
/**
 * `--chains-first`: the chain systems run before the split stack and Haraka instead of after them (to see whether
 * running second costs a system anything; round 9 read mailgate ~10 % slower after Haraka than alone).
 */
const CHAINS_FIRST = argv.includes('--chains-first');
const PARTITIONS = env('BENCH_PARTITIONS', 6);
const SENDER_AUTH = process.env['BENCH_SENDER_AUTH'] !== '0';
const SPAM = process.env['BENCH_SPAM'] !== '0';
/** Haraka's cluster workers (smtp.ini `nodes`): 1 = its default single worker. */
const HARAKA_NODES = env('BENCH_HARAKA_NODES', 1);
const HARAKA_CHECKS = ((): HarakaChecks => {
  const v = argv.includes('--haraka-checks')
    ? argv[argv.indexOf('--haraka-checks') + 1]
    : (process.env['BENCH_HARAKA_CHECKS'] ?? 'full');
  if (v !== 'full' && v !== 'core') throw new Error(`--haraka-checks / BENCH_HARAKA_CHECKS: full or core, not ${v}`);
  return v;
})();
const SYSTEM_NAMES = ['split', 'chain', 'chain-delivery', 'haraka'] as const;
type SystemName = (typeof SYSTEM_NAMES)[number];
/** The systems to measure, in this order (rows: mailgate, mailgate-chain, mailgate-chain-delivery, haraka). */
const SYSTEMS = ((): Set<SystemName> => {
  const arg = argv.includes('--systems') ? argv[argv.indexOf('--systems') + 1] : undefined;
  const names = (arg ?? 'split,haraka').split(',').map((x) => x.trim());
  const bad = names.filter((x) => !(SYSTEM_NAMES as readonly string[]).includes(x));
  if (bad.length) throw new Error(`--systems: unknown ${bad.join(', ')} (${SYSTEM_NAMES.join(', ')})`);
  const out = new Set(names as SystemName[]);
  if (!arg && (argv.includes('--chain') || process.env['BENCH_CHAIN'] === '1')) out.add('chain');
  if (process.env['BENCH_SKIP_HARAKA'] === '1') out.delete('haraka');
  return out;
})();
/** The stages the `chain` system runs as one process (`chain-delivery`: these and delivery). */
const CHAIN = ['dnsbl-check', 'virus-scan', 'attachment-policy', 'spam-check'] as const;
/** Row names of the chain systems. */
const CHAIN_ROWS = ['mailgate-chain', 'mailgate-chain-delivery'] as const;
/** `--config JSON`: deep-merged over mailgate's config (an A/B of one setting in one session, as in bench:scale). */
const EXTRA_CONFIG = JSON.parse(
  argv.includes('--config') ? (argv[argv.indexOf('--config') + 1] ?? '{}') : '{}',
) as Parameters<typeof deepMerge>[1];
const STACK_CONFIG = {
  // Six services starting at once on a loaded 2-core machine can take minutes (BENCH_START_TIMEOUT_MS).
  startTimeoutMs: env('BENCH_START_TIMEOUT_MS', 300_000),
  config: deepMerge(
    {
      ...(SENDER_AUTH ? {} : { senderAuth: { enabled: false } }),
      ...(SPAM ? {} : { spamCheck: { skip: { ips: ['0.0.0.0/0', '::/0'] } } }),
    },
    EXTRA_CONFIG,
  ),
};
const log = (l: string): void => console.error(`[bench] ${l}`);

interface Row {
  system: string;
  size: string;
  accepted: number;
  delivered: number;
  peakLatency: Percentiles;
  halfLatency?: Percentiles;
  halfRate?: number;
  usage: ProcUsage[];
  /** Messages handled while `usage` was measured (load and probes). */
  handled: number;
  note?: string;
}
interface Percentiles {
  n: number;
  p50: number;
  p95: number;
  p99: number;
}

function percentiles(xs: number[]): Percentiles {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN);
  return { n: s.length, p50: q(50), p95: q(95), p99: q(99) };
}

const mid = (xs: number[]): number => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};

/**
 * The median of each figure over the runs of one system and size. CPU is normalised to seconds per 1000 messages
 * first (runs handle slightly different counts), so `handled` of the result is 1000.
 */
function medianRow(runs: Row[]): Row {
  if (runs.length === 1) return runs[0]!;
  const pct = (f: (r: Row) => Percentiles | undefined): Percentiles | undefined => {
    const ps = runs.map(f).filter((p): p is Percentiles => !!p);
    if (!ps.length) return undefined;
    return {
      n: mid(ps.map((p) => p.n)),
      p50: mid(ps.map((p) => p.p50)),
      p95: mid(ps.map((p) => p.p95)),
      p99: mid(ps.map((p) => p.p99)),
    };
  };
  const labels = [...new Set(runs.flatMap((r) => r.usage.map((u) => u.label)))];
  const usage = labels.map((label): ProcUsage => {
    const us = runs.flatMap((r) => r.usage.filter((u) => u.label === label).map((u) => ({ u, handled: r.handled })));
    return {
      label,
      cpuPercent: mid(us.map((x) => x.u.cpuPercent)),
      cpuSeconds: mid(us.map((x) => (x.u.cpuSeconds / x.handled) * 1000)),
      rssMiB: mid(us.map((x) => x.u.rssMiB)),
    };
  });
  const half = pct((r) => r.halfLatency);
  const first = runs[0]!;
  return {
    system: first.system,
    size: first.size,
    accepted: mid(runs.map((r) => r.accepted)),
    delivered: mid(runs.map((r) => r.delivered)),
    peakLatency: pct((r) => r.peakLatency)!,
    ...(half ? { halfLatency: half } : {}),
    halfRate: mid(runs.map((r) => r.halfRate ?? NaN)),
    usage,
    handled: 1000,
    note: [
      `median of ${runs.length} runs (delivered msg/s: ${runs.map((r) => fmt(r.delivered)).join(', ')})`,
      ...runs.flatMap((r) => (r.note ? [r.note] : [])),
    ].join('; '),
  };
}

/** Sends probe messages and measures 250 → arrival at the sink (matched by Message-ID). */
class Prober {
  private readonly sentAt = new Map<string, number>();
  private readonly transport;
  private seen = 0;
  readonly latencies: number[] = [];
  errors = 0;

  constructor(
    private readonly port: number,
    private readonly sink: Sink,
    private readonly bytes: number,
    pool: number,
  ) {
    this.transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port,
      pool: true,
      maxConnections: pool,
      maxMessages: 100,
      ignoreTLS: true,
      name: 'probe.test',
    } as nodemailer.TransportOptions);
  }

  /** Probes accepted so far (sentAt forgets them once matched). */
  sent = 0;

  async one(): Promise<void> {
    const mid = `<probe-${randomBytes(8).toString('hex')}@probe.test>`;
    const raw = buildMessage({ from: FROM, to: TO, messageId: mid, body: 'p'.repeat(this.bytes) });
    try {
      await this.transport.sendMail({ envelope: { from: FROM, to: [TO] }, raw });
      this.sentAt.set(mid.toLowerCase(), Date.now());
      this.sent++;
    } catch {
      this.errors++;
    }
  }

  /** Match arrivals so far. */
  collect(): void {
    for (; this.seen < this.sink.messages.length; this.seen++) {
      const m = this.sink.messages[this.seen]!;
      const mid = header(m.data.subarray(0, 8192), 'message-id')?.toLowerCase();
      const t = mid ? this.sentAt.get(mid) : undefined;
      if (t !== undefined) {
        this.latencies.push(m.receivedAt.getTime() - t);
        this.sentAt.delete(mid!);
      }
    }
  }

  get pending(): number {
    return this.sentAt.size;
  }

  close(): void {
    this.transport.close();
  }
}

/**
 * One system under load: peak (smtp-source + probes every 250 ms), then a paced run at half the peak delivered
 * rate. `procs` are sampled for CPU/RSS during the peak run.
 */
/** `measure` each size RUNS times in a row: one row per size, the median of its runs. */
async function measureSizes(
  system: string,
  port: number,
  sink: Sink,
  procs: () => { label: string; pid: number | undefined }[],
): Promise<Row[]> {
  const out: Row[] = [];
  for (const s of SIZES) {
    const runs: Row[] = [];
    for (let i = 0; i < RUNS; i++) runs.push(await measure(system, port, sink, s, procs));
    out.push(medianRow(runs));
  }
  return out;
}

/** Warm-up messages before each measured run. */
const WARM_UP = 40;

async function measure(
  system: string,
  port: number,
  sink: Sink,
  size: (typeof SIZES)[number],
  procs: () => { label: string; pid: number | undefined }[],
): Promise<Row> {
  sink.clear();
  // Warm-up: JIT, connection pools, DNSBL cache. (A bigger one, 300 messages over 20 sessions at 10 KiB, was tried
  // in round 9: mailgate's first measured run stayed its slowest, so it was not kept; docs/benchmarks.md.)
  await smtpSource(port, size.bytes, WARM_UP, 4).catch((e: unknown) =>
    log(`${system} warm-up: ${(e as Error).message}`),
  );
  await waitCount(sink, WARM_UP, 60_000);
  sink.clear();

  const meter = usageMeter(procs());
  const prober = new Prober(port, sink, size.bytes, 2);
  let probing = true;
  const probes = (async () => {
    while (probing) {
      void prober.one();
      await sleep(250);
    }
  })();
  const t0 = Date.now();
  let acceptedWall = 0;
  let note: string | undefined;
  try {
    acceptedWall = await smtpSource(port, size.bytes, size.count, SESSIONS);
  } catch (e) {
    note = (e as Error).message.slice(0, 200);
    acceptedWall = (Date.now() - t0) / 1000;
  }
  probing = false;
  await probes;
  const target = size.count; // smtp-source messages (probes come on top)
  const isLoad = (m: Sink['messages'][number]) => !m.data.subarray(0, 8192).includes('@probe.test>');
  const deadline = Date.now() + 300_000;
  let countLoad = 0;
  for (let seen = 0; ;) {
    for (; seen < sink.messages.length; seen++) if (isLoad(sink.messages[seen]!)) countLoad++;
    if (countLoad >= target || Date.now() > deadline) break;
    await sleep(100);
  }
  const ok = countLoad >= target;
  const lastLoad = [...sink.messages].reverse().find(isLoad);
  const deliveredWall = lastLoad ? (lastLoad.receivedAt.getTime() - t0) / 1000 : NaN;
  const usage = meter.finish();
  await sleep(500);
  prober.collect();
  if (!ok || countLoad < target) note = `${note ?? ''} only ${countLoad}/${target} delivered`.trim();
  const row: Row = {
    system,
    size: size.label,
    accepted: size.count / acceptedWall,
    delivered: countLoad / deliveredWall,
    peakLatency: percentiles(prober.latencies),
    usage,
    handled: countLoad + prober.sent,
    ...(note ? { note } : {}),
  };
  prober.close();

  // Half of the peak delivered rate, paced, latency of every message.
  const rate = row.delivered / 2;
  if (Number.isFinite(rate) && rate > 0) {
    sink.clear();
    const half = new Prober(port, sink, size.bytes, SESSIONS);
    const total = Math.max(20, Math.round(rate * HALF_SECONDS));
    const start = Date.now();
    const sends: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / rate;
      if (due > Date.now()) await sleep(due - Date.now());
      sends.push(half.one());
    }
    await Promise.all(sends);
    const deadline = Date.now() + 120_000;
    while (half.pending > 0 && Date.now() < deadline) {
      half.collect();
      await sleep(100);
    }
    half.collect();
    row.halfLatency = percentiles(half.latencies);
    row.halfRate = rate;
    half.close();
  }
  log(
    `${system} ${size.label}: accepted ${row.accepted.toFixed(0)}/s delivered ${row.delivered.toFixed(0)}/s ` +
      `p99(peak) ${row.peakLatency.p99} ms p99(half) ${row.halfLatency?.p99 ?? '-'} ms ${row.note ?? ''}`,
  );
  return row;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('connect', () => (c.destroy(), resolve(true)));
    c.once('error', () => resolve(false));
  });
}

async function ceiling(size: (typeof SIZES)[number]): Promise<number> {
  const port = await freePort();
  const sinkProc = new ManagedProcess('smtp-sink', '/usr/sbin/smtp-sink', [
    ...(process.getuid?.() === 0 ? ['-u', 'nobody'] : []),
    '-c',
    `127.0.0.1:${port}`,
    '256',
  ]);
  const until = Date.now() + 10_000;
  while (!(await portOpen(port))) {
    if (!sinkProc.isRunning() || Date.now() > until) throw sinkProc.describeFailure('smtp-sink did not listen');
    await sleep(100);
  }
  try {
    const wall = await smtpSource(port, size.bytes, size.count * 2, SESSIONS);
    return (size.count * 2) / wall;
  } finally {
    await sinkProc.stop('SIGTERM', 2000);
  }
}

/**
 * One message DKIM-signed (rsa-sha256) with the stack's mg-rsa key of example.test, whose record the bench's rbldnsd
 * serves (the load is unsigned, so this shows the verifier at work): Haraka's Authentication-Results for it.
 */
async function dkimProbe(port: number, sink: Sink): Promise<string> {
  const key = DKIM_KEYS.outbound.find((k) => k.selector === 'mg-rsa')!;
  const t = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    ignoreTLS: true,
    name: 'probe.test',
    dkim: { domainName: ACCEPTED_DOMAIN, keySelector: key.selector, privateKey: key.pem },
  } as nodemailer.TransportOptions);
  const mid = `<dkim-${randomBytes(8).toString('hex')}@probe.test>`;
  try {
    sink.clear();
    await t.sendMail({
      envelope: { from: FROM, to: [TO] },
      raw: buildMessage({ from: `news@${ACCEPTED_DOMAIN}`, to: TO, messageId: mid, body: 'signed\r\n' }),
    });
    await waitCount(sink, 1, 30_000);
    const m = sink.messages.find((x) => header(x.data.subarray(0, 65536), 'message-id') === mid);
    return m
      ? (header(m.data.subarray(0, 65536), 'authentication-results') ?? 'no Authentication-Results')
      : 'not delivered';
  } catch (e) {
    return `failed: ${(e as Error).message}`;
  } finally {
    t.close();
  }
}

/** rspamd's "Messages scanned" counter (rspamc stat on the controller); NaN if unavailable. */
async function rspamdScanned(st: Stack): Promise<number> {
  try {
    return Number(/Messages scanned: (\d+)/.exec(await st.rspamd.rspamc(['stat']))?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

/** mailgate_spam_actions_total by action from the spam-check stage's /metrics (what rspamd made of the load). */
async function spamActionCounts(port: number): Promise<string> {
  try {
    const text = await (
      await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(10_000) })
    ).text();
    const counts = new Map<string, number>();
    for (const m of text.matchAll(/^mailgate_spam_actions_total\{([^}]*)\} (\S+)/gm)) {
      const action = /action="([^"]*)"/.exec(m[1]!)?.[1] ?? '?';
      counts.set(action, (counts.get(action) ?? 0) + Number(m[2]));
    }
    return [...counts].map(([a, n]) => `${a} ${n}`).join(', ') || 'none recorded';
  } catch (e) {
    return `metrics unavailable (${(e as Error).message})`;
  }
}

const fmt = (n: number | undefined, d = 0): string => (n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(d));

function table(rows: Row[], ceil: Record<string, number>): string {
  const lines: string[] = [];
  lines.push(
    '| system | size | accepted msg/s | delivered msg/s | p50/p95/p99 ms at peak (probes) | half-load rate | p50/p95/p99 ms at half load |',
  );
  lines.push('|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const p = r.peakLatency;
    const h = r.halfLatency;
    lines.push(
      `| ${r.system} | ${r.size} | ${fmt(r.accepted)} | ${fmt(r.delivered)} | ${fmt(p.p50)}/${fmt(p.p95)}/${fmt(p.p99)} (n=${p.n}) | ${fmt(r.halfRate)}/s | ${h ? `${fmt(h.p50)}/${fmt(h.p95)}/${fmt(h.p99)} (n=${h.n})` : '-'} |`,
    );
  }
  for (const [size, v] of Object.entries(ceil))
    lines.push(`| smtp-source → smtp-sink (ceiling) | ${size} | ${fmt(v)} | ${fmt(v)} | - | - | - |`);
  lines.push('');
  for (const size of SIZES.map((s) => s.label)) {
    const mg = rows.find((r) => r.system === 'mailgate' && r.size === size);
    const hk = rows.find((r) => r.system === 'haraka' && r.size === size);
    const c = ceil[size];
    const parts: string[] = [];
    if (mg && hk) parts.push(`mailgate/Haraka delivered = ${(mg.delivered / hk.delivered).toFixed(2)}×`);
    for (const name of CHAIN_ROWS) {
      const ch = rows.find((r) => r.system === name && r.size === size);
      if (ch && hk) parts.push(`${name}/Haraka delivered = ${(ch.delivered / hk.delivered).toFixed(2)}×`);
    }
    if (mg && c) parts.push(`mailgate/ceiling = ${((mg.delivered / c) * 100).toFixed(1)} %`);
    if (hk && c) parts.push(`Haraka/ceiling = ${((hk.delivered / c) * 100).toFixed(1)} %`);
    lines.push(`${size}: ${parts.join(', ')}`);
  }
  lines.push('');
  lines.push('CPU (% of one core) and RSS (MiB) per process during the peak run:');
  for (const r of rows) {
    lines.push(
      `  ${r.system} ${r.size}: ${r.usage.map((u) => `${u.label} ${fmt(u.cpuPercent)}% ${fmt(u.rssMiB)}M`).join(', ')}`,
    );
  }
  lines.push('');
  lines.push(
    `CPU ms per message during the peak run (sender authentication ${SENDER_AUTH ? 'on' : 'off'}, ` +
      `spam check ${SPAM ? 'on' : 'off: every message skipped, none sent to rspamd'}):`,
  );
  const perMsg = (r: Row, us: ProcUsage[]) => (us.reduce((a, u) => a + u.cpuSeconds, 0) * 1000) / r.handled;
  for (const r of rows) {
    const part = (label: string, prefix: string) => {
      const us = r.usage.filter((u) => u.label.startsWith(prefix));
      return us.length ? `, ${label} ${fmt(perMsg(r, us), 2)} ms` : '';
    };
    lines.push(
      `  ${r.system} ${r.size}: all processes ${fmt(perMsg(r, r.usage), 2)} ms${part('ingress', 'ingress')}` +
        `${part('spam-check stage', 'spam-check')}${part('chain', 'chain')}${part(`rspamd (all ${r.usage.filter((u) => u.label.startsWith('rspamd')).length} processes)`, 'rspamd')} (${r.handled} messages${r.note ? `; ${r.note}` : ''})`,
    );
    lines.push(`    per process: ${r.usage.map((u) => `${u.label} ${fmt(perMsg(r, [u]), 2)}`).join(', ')}`);
  }
  for (const size of SIZES.map((s) => s.label)) {
    const mg = rows.find((r) => r.system === 'mailgate' && r.size === size);
    const hk = rows.find((r) => r.system === 'haraka' && r.size === size);
    if (mg && hk)
      lines.push(
        `  ${size}: CPU per message mailgate (all processes) / Haraka + clamd${HARAKA_CHECKS === 'full' ? ' + rspamd + redis' : ''} = ${(perMsg(mg, mg.usage) / perMsg(hk, hk.usage)).toFixed(2)}×` +
          `; delivered msg/s mailgate / Haraka = ${(mg.delivered / hk.delivered).toFixed(2)}×`,
      );
    for (const name of CHAIN_ROWS) {
      const ch = rows.find((r) => r.system === name && r.size === size);
      if (ch && hk)
        lines.push(
          `  ${size}: CPU per message ${name} (all processes) / Haraka + clamd${HARAKA_CHECKS === 'full' ? ' + rspamd + redis' : ''} = ${(perMsg(ch, ch.usage) / perMsg(hk, hk.usage)).toFixed(2)}×` +
            `; delivered msg/s ${name} / Haraka = ${(ch.delivered / hk.delivered).toFixed(2)}×`,
        );
      if (mg && ch)
        lines.push(
          `  ${size}: CPU per message ${name} / mailgate (all processes) = ${(perMsg(ch, ch.usage) / perMsg(mg, mg.usage)).toFixed(2)}×` +
            `; delivered msg/s ${name} / mailgate = ${(ch.delivered / mg.delivered).toFixed(2)}×`,
        );
    }
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  if (!FROM_SOURCE) {
    if (!existsSync(new URL('../../packages/cli/dist/index.js', import.meta.url)))
      throw new Error('bench:e2e runs the compiled build: run `npm run build` first (or pass --source)');
    process.env['MAILGATE_E2E_BUILT'] = '1';
  }
  console.log(
    `code: ${FROM_SOURCE ? 'from source (tsx, --source)' : 'compiled build (packages/*/dist)'}; runs: ${RUNS} (medians printed)${argv.includes('--config') ? `; --config ${JSON.stringify(EXTRA_CONFIG)}` : ''}`,
  );
  console.log(
    `machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}`,
  );
  console.log(
    `load: smtp-source -s ${SESSIONS}; ${SIZES.map((s) => `${s.count} × ${s.label}`).join(', ')}; partitions ${PARTITIONS}`,
  );
  console.log(
    `stages: sender authentication ${SENDER_AUTH ? 'on' : 'off (BENCH_SENDER_AUTH=0)'}; spam check ${SPAM ? 'on (rspamd scans every message)' : 'off (BENCH_SPAM=0: skipped, the stage only forwards)'}`,
  );
  if (SYSTEMS.has('haraka'))
    console.log(
      `haraka ${HARAKA_CHECKS} checks (--haraka-checks), ${HARAKA_NODES} worker${HARAKA_NODES > 1 ? 's' : ''} (BENCH_HARAKA_NODES): plugins ${harakaPlugins(HARAKA_CHECKS).join(', ')}` +
        (HARAKA_CHECKS === 'full'
          ? "; rspamd = the mailgate stack's; no DMARC (Haraka has no DMARC plugin; mailgate evaluates DMARC)"
          : '; no SPF, DKIM, DMARC or spam check (mailgate runs them)'),
    );
  console.log(`systems: ${[...SYSTEMS].join(', ')}`);
  const rows: Row[] = [];
  const ceil: Record<string, number> = {};
  for (const s of SIZES) ceil[s.label] = await ceiling(s);
  log(`ceiling: ${JSON.stringify(ceil)}`);

  const stageProcs = (st: Stack) => () => [
    ...st.processes().filter((p) => p.label !== 'rspamd'),
    ...rspamdProcs(st.rspamd.pid),
  ];
  let slowest = 'virus-scan';
  let spamActions = '';
  const harakaEvidence: string[] = [];
  // --- mailgate as a stage chain: the four check stages in one process (and, chain-delivery, delivery too) -------
  const chainSpamActions: string[] = [];
  const runChains = async () => {
    for (const [system, row, chain] of [
      ['chain', 'mailgate-chain', CHAIN],
      ['chain-delivery', 'mailgate-chain-delivery', [...CHAIN, 'delivery']],
    ] as const) {
      if (!SYSTEMS.has(system)) continue;
      const st = await startStack({ partitions: PARTITIONS, logLevel: 'warn', chain, ...STACK_CONFIG });
      try {
        rows.push(...(await measureSizes(row, st.smtp.port, st.internal, stageProcs(st))));
        chainSpamActions.push(`${row}: ${await spamActionCounts(st.proc('spam-check').httpPort)}`);
      } finally {
        // MAILGATE_E2E_LOGDIR: every process's log of this stack, kept (the services log at warn unless
        // MAILGATE_E2E_LOG says otherwise).
        if (process.env['MAILGATE_E2E_LOGDIR']) log(`${row}: logs in ${await st.dumpLogs()}`);
        await st.stop();
      }
    }
  };
  if (CHAINS_FIRST) await runChains();

  // --- mailgate (split: one process per stage); its stack also serves Haraka (clamd, rbldnsd) ---------------------
  let stack: Stack | undefined =
    SYSTEMS.has('split') || SYSTEMS.has('haraka')
      ? await startStack({ partitions: PARTITIONS, logLevel: 'warn', ...STACK_CONFIG })
      : undefined;
  try {
    if (stack && SYSTEMS.has('split')) {
      rows.push(...(await measureSizes('mailgate', stack.smtp.port, stack.internal, stageProcs(stack))));
      spamActions = await spamActionCounts(stack.proc('spam-check').httpPort);
      const u = rows.find((r) => r.system === 'mailgate')?.usage ?? [];
      const stageUse = u.filter((x) => STAGES.some((st) => x.label.startsWith(st)));
      slowest = stageUse.sort((a, b) => b.cpuPercent - a.cpuPercent)[0]?.label.replace(/#\d+$/, '') ?? slowest;
    }

    // --- Haraka against the same clamd, rbldnsd and a sink --------------------------------------------------------
    if (stack && SYSTEMS.has('haraka')) {
      // Free the CPU the pipeline's idle consumers would take (kafka-lite, clamd, rbldnsd stay: Haraka uses clamd).
      for (const list of stack.services.values()) for (const p of list) await p.stop();
      const bin = ensureHaraka(log);
      const sink = await startSmtpSink({ name: 'haraka-sink.test' });
      const full = HARAKA_CHECKS === 'full';
      const haraka = await startHaraka({
        bin,
        dir: stack.dir,
        dnsServer: stack.dns.server,
        clamd: { host: stack.clamd.host, port: stack.clamd.port },
        sink: { host: sink.host, port: sink.port },
        acceptedDomain: ACCEPTED_DOMAIN,
        checks: HARAKA_CHECKS,
        nodes: HARAKA_NODES,
        rspamd: { host: stack.rspamd.host, port: stack.rspamd.port },
        ...(process.env['BENCH_HARAKA_LOG'] ? { logLevel: process.env['BENCH_HARAKA_LOG'] } : {}),
      });
      // The stack's rspamd and its Redis (Bayes) stay up for Haraka: counted in Haraka's CPU with full checks.
      const redisPid = stack.processes().find((p) => p.label === 'redis-server')?.pid;
      const scannedBefore = full ? await rspamdScanned(stack) : NaN;
      try {
        rows.push(
          ...(await measureSizes('haraka', haraka.port, sink, () => [
            { label: 'haraka(master)', pid: haraka.pid },
            ...childPids(haraka.pid).map((pid, i) => ({ label: `haraka(worker ${i})`, pid })),
            { label: 'clamd', pid: stack!.clamd.pid },
            ...(full ? [...rspamdProcs(stack!.rspamd.pid), { label: 'redis-server', pid: redisPid }] : []),
          ])),
        );
        // Evidence that the checks ran: what Haraka added to the last message it delivered, and rspamd's counter.
        const last = sink.messages.at(-1);
        if (last)
          harakaEvidence.push(
            ...headers(last.data.subarray(0, 65536))
              .filter((h) => /^(received-spf|authentication-results|x-rspamd-|x-spam-|x-haraka-)/.test(h.name))
              .map((h) => `  ${h.name}: ${h.value.slice(0, 300)}`),
          );
        if (last && !harakaEvidence.length)
          harakaEvidence.push('  (no Received-SPF, Authentication-Results or X-Rspamd-*)');
        if (full) {
          harakaEvidence.push(`  DKIM-signed probe: ${await dkimProbe(haraka.port, sink)}`);
          const scanned = (await rspamdScanned(stack)) - scannedBefore;
          const hk = rows.filter((r) => r.system === 'haraka');
          const peak = hk.reduce((a, r) => a + r.handled, 0);
          const half = hk.reduce((a, r) => a + (r.halfLatency?.n ?? 0), 0);
          const warm = WARM_UP * SIZES.length;
          harakaEvidence.push(
            `  rspamd "Messages scanned" went up by ${scanned} during the Haraka run; Haraka accepted ` +
              (RUNS === 1
                ? `${peak} (peak runs) + ${warm} (warm-up) + ${half} (half load) + 1 (DKIM probe) = ${peak + warm + half + 1}`
                : `${RUNS} runs per size (medians; warm-up, half load and the DKIM probe on top)`),
          );
        }
      } catch (e) {
        log(`haraka run failed: ${(e as Error).message}\n${haraka.output().slice(-3000)}`);
      } finally {
        // BENCH_HARAKA_LOG=info: the plugins' per-message results, from the end of Haraka's log.
        if (process.env['BENCH_HARAKA_LOG'])
          log(
            `haraka log (plugin results, last 40 lines):\n${haraka
              .output()
              .split('\n')
              .filter((l) => /\[(dns-list|spf|dkim|attachment|clamd|rspamd|queue\/smtp_forward)\]/.test(l))
              .slice(-40)
              .join('\n')}`,
          );
        await haraka.stop();
        await sink.close();
      }
    }
  } finally {
    await stack?.stop();
    stack = undefined;
  }

  if (!CHAINS_FIRST) await runChains();
  const order = ['mailgate', ...CHAIN_ROWS, 'haraka'];
  rows.sort((a, b) => order.indexOf(a.system) - order.indexOf(b.system));

  console.log('\n' + table(rows, ceil));
  if (spamActions)
    console.log(`spam-check decisions over the whole mailgate run (warm-up, load, probes): ${spamActions}`);
  if (harakaEvidence.length)
    console.log(
      `Haraka (${HARAKA_CHECKS} checks): headers on the last message it delivered\n${harakaEvidence.join('\n')}`,
    );
  for (const a of chainSpamActions)
    console.log(`spam-check decisions over the whole run (warm-up, load, probes) of ${a}`);

  // --- scale-out: two replicas of the busiest stage -----------------------------------------------------------------
  if (process.env['BENCH_SKIP_SCALE'] !== '1' && SYSTEMS.has('split')) {
    const name = slowest as (typeof STAGES)[number];
    log(`scale-out: 2 × ${name}`);
    const st = await startStack({ partitions: PARTITIONS, logLevel: 'warn', replicas: { [name]: 2 }, ...STACK_CONFIG });
    try {
      const row = await measure(`mailgate, 2 × ${name}`, st.smtp.port, st.internal, SIZES[0]!, stageProcs(st));
      const split = describeSplit(await groupMembers(st.kafka.brokers, `mailgate.${name}`));
      const one = rows.find((r) => r.system === 'mailgate' && r.size === SIZES[0]!.label);
      console.log(`\nscale-out (${SIZES[0]!.label}): busiest stage by CPU = ${name}`);
      console.log(`  1 replica : delivered ${fmt(one?.delivered)} msg/s`);
      console.log(
        `  2 replicas: delivered ${fmt(row.delivered)} msg/s (${one ? ((row.delivered / one.delivered - 1) * 100).toFixed(0) : '?'} %)`,
      );
      console.log(`  partition split of mailgate.${name}: ${split.join('; ')}`);
      console.log(`  CPU: ${row.usage.map((u) => `${u.label} ${fmt(u.cpuPercent)}%`).join(', ')}`);
    } finally {
      await st.stop();
    }
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
