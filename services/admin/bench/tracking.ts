// npm run bench:tracking — what the admin's tracking store costs per message: Redis commands and request bytes
// (from the server's own INFO, so the counts are exact and independent of machine noise), events/s, CPU ms per
// message of this process writing them (the admin's share) and of the redis-server executing them (from
// /proc/<pid>/stat, 10 ms ticks: use enough MESSAGES): one add() per event, and addBatch() per BATCH events
// (default 100: what the ingest consumer hands over from one fetch under load). MODES=batch runs only the latter;
// MODES=records decodes each event from its record bytes first, as the admin's ingest does, and hands the batch to
// addRecords() (the record's JSON stored as is; addBatch() where the store has no addRecords() or with
// VIA=addBatch, for an A/B).
// SHAPE=chain|spread (below). Prints figures, asserts nothing.
//
// A message's events are what the pipeline emits for clean mail with one recipient: `received` from ingress, one
// `stage` event per stage (dnsbl-check, virus-scan, attachment-policy, spam-check, delivery) and `delivered`.
// Runs against its own redis-server on a free port (testkit), so nothing else's commands are counted. "Redis
// commands" counts what the server ran, a script's own calls included; "sent by the client" leaves those out (the
// TTL check of EXPIRE_WHERE_NONE); "µs in commands" is the server's own time in them (commandstats: less noisy than
// the CPU ticks on a shared machine).
import { encodeEvent, newMessageId, type TrackingEvent } from '@mailgate/contracts';
import { startRedis } from '@mailgate/testkit';
import { Redis } from 'ioredis';
import { readFileSync } from 'node:fs';
import { TrackingStore } from '../src/tracking-store.js';

const MESSAGES = Number(process.env['MESSAGES'] ?? 2000);
const ROUNDS = Number(process.env['ROUNDS'] ?? 3);
const BATCH = Number(process.env['BATCH'] ?? 100);
const STAGES = ['dnsbl-check', 'virus-scan', 'attachment-policy', 'spam-check', 'delivery'] as const;
// How a message's events interleave with other messages' (positions in the stream, in messages):
// spread: each event 10 messages after the previous one (a slow pipeline: one message's events span ~5 batches);
// chain: the stage chain produces the four checks' events together 2 messages after `received`, delivery its
// `stage` and `delivered` together 5 messages after it (one message's events in 1–2 batches).
const SHAPE = process.env['SHAPE'] === 'chain' ? 'chain' : 'spread';
const CHAIN_AT = [0, 2, 2, 2, 2, 5, 5];
const position = (i: number, k: number) => (SHAPE === 'chain' ? i + CHAIN_AT[k]! + k / 100 : i + k * 10);
const MODES = (process.env['MODES'] ?? 'one,batch').split(',');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function eventsOf(i: number, t0: number): TrackingEvent[] {
  const base = {
    messageId: newMessageId(),
    traceId: (i + 1).toString(16).padStart(32, '0'),
    mailFrom: `sender${i % 50}@partner${i % 7}.test`,
    rcptTo: [`user${i % 200}@example.test`],
    clientIp: `198.51.100.${i % 250}`,
    host: 'bench-0',
  };
  const at = (ms: number) => new Date(t0 + ms).toISOString();
  const out: TrackingEvent[] = [
    {
      ...base,
      type: 'received',
      at: at(0),
      service: 'ingress-smtp',
      details: {
        size: 10_240,
        subject: `Quarterly report ${i % 30} for the partner meeting`,
        messageIdHeader: `<${i}.bench@partner.test>`,
        auth: { spf: 'pass', dkim: 'pass', dmarc: 'pass' },
      },
    },
  ];
  STAGES.forEach((stage, k) =>
    out.push({ ...base, type: 'stage', at: at(5 + k), service: stage, details: { stage, verdict: { kind: 'pass' } } }),
  );
  out.push({
    ...base,
    type: 'delivered',
    at: at(20),
    service: 'delivery',
    details: { remoteHost: 'mx.example.test', reply: '250 2.0.0 Ok: queued', destination: 'example.test' },
  });
  return out;
}

async function serverCounts(redis: Redis): Promise<{ cmds: number; bytesIn: number }> {
  const info = await redis.info('stats');
  const n = (re: RegExp) => Number(re.exec(info)![1]);
  return { cmds: n(/total_commands_processed:(\d+)/), bytesIn: n(/total_net_input_bytes:(\d+)/) };
}

/** CPU ms (user + system) the process has used, from /proc/<pid>/stat (Linux; NaN elsewhere). */
function procCpuMs(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name (which may contain spaces): utime is the 14th, stime the 15th.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / TICKS;
  } catch {
    return NaN;
  }
}
const TICKS = Number(process.env['CLK_TCK'] ?? 100);

/**
 * MULTI/EXEC/pipeline: how many requests a client waited for is not in INFO; count the calls per command, and the
 * microseconds the server spent in each (a script's time includes the commands it calls, which are listed too).
 */
async function commandStats(redis: Redis): Promise<Map<string, { calls: number; usec: number }>> {
  const info = await redis.info('commandstats');
  const out = new Map<string, { calls: number; usec: number }>();
  for (const m of info.matchAll(/cmdstat_([a-z|]+):calls=(\d+),usec=(\d+)/g))
    out.set(m[1]!, { calls: Number(m[2]), usec: Number(m[3]) });
  return out;
}
/** Commands only the write path's script calls (EXPIRE_WHERE_NONE): not sent by the client. */
const IN_SCRIPT = new Set(['ttl']);

const server = await startRedis();
const redis = new Redis(server.url);
try {
  const events = eventsOf(0, 0).length;
  console.log(`tracking store: ${MESSAGES} messages × ${events} events (${SHAPE}), ${ROUNDS} rounds, own redis-server`);
  const modes = [
    ...(MODES.includes('one') ? ['one add() per event'] : []),
    ...(MODES.includes('batch') ? [`addBatch() of ${BATCH} events`] : []),
    ...(MODES.includes('records') ? [`${BATCH} records decoded and stored`] : []),
  ];
  for (const mode of modes) {
    const rows: {
      cmds: number;
      sent: number;
      usec: number;
      scriptUsec: number;
      bytesIn: number;
      perSec: number;
      cpuMs: number;
      redisMs: number;
    }[] = [];
    let lastStats = new Map<string, { calls: number; usec: number }>();
    for (let r = 0; r < ROUNDS; r++) {
      await redis.flushall();
      // A fresh store per round: a writer remembers the expiries it set (and the FLUSHALL just dropped them).
      const store = new TrackingStore(redis, 7);
      await redis.config('RESETSTAT');
      const t0 = Date.now() - 60_000;
      // Interleaved as a partition delivers them: every message's events in order, messages overlapping.
      const all = Array.from({ length: MESSAGES }, (_, i) => eventsOf(i, t0))
        .flatMap((evs, i) => evs.map((e, k) => ({ e, order: position(i, k) })))
        .sort((a, b) => a.order - b.order)
        .map((x) => x.e);
      const records = all.map((e) => encodeEvent(e));
      const before = await serverCounts(redis);
      const redis0 = procCpuMs(server.pid);
      const cpu0 = process.cpuUsage();
      const wall0 = process.hrtime.bigint();
      if (mode.startsWith('one')) for (const e of all) await store.add(e);
      else if (mode.includes('records')) {
        for (let i = 0; i < all.length; i += BATCH) {
          const batch = records.slice(i, i + BATCH).map((b) => {
            const json = b.toString('utf8');
            return { event: JSON.parse(json) as TrackingEvent, json };
          });
          await ('addRecords' in store && process.env['VIA'] !== 'addBatch'
            ? store.addRecords(batch)
            : store.addBatch(batch.map((r) => r.event)));
        }
      } else for (let i = 0; i < all.length; i += BATCH) await store.addBatch(all.slice(i, i + BATCH));
      const wallS = Number(process.hrtime.bigint() - wall0) / 1e9;
      const cpu = process.cpuUsage(cpu0);
      const redisMs = procCpuMs(server.pid) - redis0;
      // INFO itself is one command; RESETSTAT and the first INFO are before `before`.
      const after = await serverCounts(redis);
      const cmds = after.cmds - before.cmds - 1;
      lastStats = await commandStats(redis);
      const counted = [...lastStats].filter(([k]) => k !== 'info' && k !== 'config|resetstat');
      const inScript = counted.filter(([k]) => IN_SCRIPT.has(k)).reduce((n, [, v]) => n + v.calls, 0);
      rows.push({
        cmds: cmds / MESSAGES,
        sent: (cmds - inScript) / MESSAGES,
        // Each command once: EXEC's usec includes the transaction's commands, a script's the commands it calls.
        usec: counted.filter(([k]) => !IN_SCRIPT.has(k) && k !== 'exec').reduce((n, [, v]) => n + v.usec, 0) / MESSAGES,
        scriptUsec: ((lastStats.get('evalsha')?.usec ?? 0) + (lastStats.get('eval')?.usec ?? 0)) / MESSAGES,
        bytesIn: (after.bytesIn - before.bytesIn) / MESSAGES,
        perSec: MESSAGES / wallS,
        cpuMs: (cpu.user + cpu.system) / 1000 / MESSAGES,
        redisMs: redisMs / MESSAGES,
      });
    }
    console.log(`${mode}:`);
    console.log(`  Redis commands per message   ${median(rows.map((r) => r.cmds)).toFixed(1)}`);
    console.log(`  … sent by the client         ${median(rows.map((r) => r.sent)).toFixed(1)}`);
    console.log(
      `  µs in commands per message   ${median(rows.map((r) => r.usec)).toFixed(1)} (redis commandstats; in scripts ${median(rows.map((r) => r.scriptUsec)).toFixed(1)})`,
    );
    console.log(`  messages/s (one writer)      ${median(rows.map((r) => r.perSec)).toFixed(0)}`);
    console.log(`  bytes to Redis per message   ${median(rows.map((r) => r.bytesIn)).toFixed(0)}`);
    console.log(`  CPU ms per message (client)  ${median(rows.map((r) => r.cpuMs)).toFixed(3)}`);
    console.log(`  CPU ms per message (redis)   ${median(rows.map((r) => r.redisMs)).toFixed(3)}`);
    const top = [...lastStats]
      .filter(([k]) => k !== 'info' && k !== 'config|resetstat')
      .sort((a, b) => b[1].calls - a[1].calls);
    console.log(
      `  per message, by command:     ${top.map(([k, n]) => `${k} ${(n.calls / MESSAGES).toFixed(1)}`).join(', ')}`,
    );
  }
} finally {
  redis.disconnect();
  await server.stop();
}
