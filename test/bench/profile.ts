// `npm run bench:profile` — CPU profiles of every service process of the full pipeline under load.
//
// Starts the stack (test/harness/stack.ts) with `--cpu-prof` on every service, drives N messages of B bytes with
// Postfix's smtp-source (20 sessions, as bench:e2e), waits until they are all delivered, then stops each service
// with SIGTERM (a graceful exit writes the .cpuprofile; the harness's own stop() is a SIGKILL) and writes
// window.json: the load interval on the monotonic clock V8 stamps its samples with, so
// `node scripts/cpuprofile-summary.mjs <dir>` can leave out startup (tsx compiling) and the drain.
// Also prints each process's CPU share over the load interval from /proc (admin, kafka-lite, clamd and every rspamd
// process included), and the TCP connections opened to each server of the stack during it (connections.ts).
//
// Usage: node --import tsx --conditions=mailgate-src test/bench/profile.ts [messages=2000] [bytes=10240] [dir] [--chain]
// [--chain-delivery]
// --chain runs the four check stages as one stage chain process (its profile is in <dir>/dnsbl-check, the chain's
// first stage; the process is labelled `chain#0`); --chain-delivery runs them and delivery as one chain.
// Prints figures, never asserts.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { SERVICES, sleep, startStack } from '../harness/stack.js';
import { smtpSource } from './load.js';
import { connectionCounter } from './connections.js';
import { rspamdProcs, usageMeter } from './procstat.js';

const CHAIN_DELIVERY = process.argv.includes('--chain-delivery');
const CHAIN = CHAIN_DELIVERY || process.argv.includes('--chain');
const args = process.argv.slice(2).filter((a) => a !== '--chain' && a !== '--chain-delivery');
const CHECKS = ['dnsbl-check', 'virus-scan', 'attachment-policy', 'spam-check'] as const;
const COUNT = Number(args[0] ?? 2000);
const BYTES = Number(args[1] ?? 10240);
const DIR = args[2] ?? '/tmp/mg-prof';
const log = (l: string): void => console.error(`[profile] ${l}`);
const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);

async function main(): Promise<void> {
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  const nodeFlags = Object.fromEntries(
    // One folder per service: --cpu-prof writes one file per thread (tsx's module-loader worker too), named by
    // pid and thread id, so a fixed --cpu-prof-name would let the loader thread overwrite the main thread's profile.
    SERVICES.map((s) => [s, ['--cpu-prof', `--cpu-prof-dir=${DIR}/${s}`]]),
  );
  const stack = await startStack({
    partitions: 6,
    logLevel: 'warn',
    nodeFlags,
    ...(CHAIN ? { chain: CHAIN_DELIVERY ? [...CHECKS, 'delivery' as const] : CHECKS } : {}),
  });
  try {
    const sink = stack.internal;
    await smtpSource(stack.smtp.port, BYTES, 40, 4); // warm-up: JIT, pools, DNSBL cache
    while (sink.messages.length < 40) await sleep(100);
    sink.clear();
    const meter = usageMeter([
      ...stack.processes().filter((p) => p.label !== 'rspamd'),
      ...rspamdProcs(stack.rspamd.pid),
    ]);
    const conns = connectionCounter([
      { label: 'clamd', port: stack.clamd.port },
      { label: 'rspamd (normal worker)', port: stack.rspamd.port },
      { label: 'rspamd (controller)', port: stack.rspamd.controllerPort },
      { label: 'kafka-lite', port: stack.kafka.port },
      { label: 'redis-server', port: stack.redis.port },
      { label: 'internal mail server (sink)', port: stack.internal.port },
      { label: 'ingress-smtp', port: stack.smtp.port },
    ]);
    const start = monoUs();
    const t0 = Date.now();
    await smtpSource(stack.smtp.port, BYTES, COUNT, 20);
    const accepted = (Date.now() - t0) / 1000;
    const deadline = Date.now() + 300_000;
    while (sink.messages.length < COUNT && Date.now() < deadline) await sleep(50);
    const wall = (Date.now() - t0) / 1000;
    const end = monoUs();
    const usage = meter.finish();
    const connections = conns.finish();
    writeFileSync(`${DIR}/window.json`, JSON.stringify({ startUs: start, endUs: end, messages: sink.messages.length }));
    console.log(
      `${COUNT} × ${BYTES} B: accepted in ${accepted.toFixed(1)} s, ${sink.messages.length} delivered in ` +
        `${wall.toFixed(1)} s = ${(sink.messages.length / wall).toFixed(0)} msg/s`,
    );
    console.log('| process | % of a core | CPU ms per message |');
    console.log('|---|---|---|');
    for (const u of usage) {
      const msPerMsg = ((u.cpuPercent / 100) * wall * 1000) / Math.max(1, sink.messages.length);
      console.log(`| ${u.label} | ${u.cpuPercent.toFixed(0)} | ${msPerMsg.toFixed(2)} |`);
    }
    const n = Math.max(1, sink.messages.length);
    console.log('| TCP connections opened during the load, to | count | per message |');
    console.log('|---|---|---|');
    for (const c of connections) console.log(`| ${c.label} | ${c.connections} | ${(c.connections / n).toFixed(2)} |`);
    log('stopping services with SIGTERM (writes the profiles)');
    await Promise.all([...stack.services.values()].flat().map((p) => p.stop()));
  } finally {
    await stack.stop();
  }
  log(`profiles in ${DIR}; summarise with: node scripts/cpuprofile-summary.mjs ${DIR}`);
}

await main();
