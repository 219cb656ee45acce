// Exactly once toward the remote server under faults, with real processes: Redis killed while the remote server
// holds its reply to DATA, the delivery process SIGKILLed at the remote 250, a marker write that fails.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createRedis } from '@mailgate/runtime';
import { ManagedProcess, startRedis, startSmtpSink, waitFor, type Sink } from '@mailgate/testkit';
import { trace } from '@opentelemetry/api';
import { MessageClaims } from '../src/claim.js';
import { createDeliveryComponents } from '../src/components.js';
import { deliverySchema } from '../src/config.js';
import { DeliveryEngine } from '../src/deliver.js';
import { DeliveredMarkers } from '../src/markers.js';
import { countingMetrics } from '../src/metrics.js';
import { OutcomeJournal } from '../src/outcome-journal.js';
import { message, silentLog, stageCtx } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** How long Redis stays down while a delivered record waits in the journal (the issue asks for ≥ 30 s). */
const OUTAGE_MS = Number(process.env['MAILGATE_TEST_REDIS_OUTAGE_MS'] ?? 30_000);

let sink: Sink;
const cleanups: (() => Promise<unknown>)[] = [];
let n = 0;

before(async () => {
  sink = await startSmtpSink({ host: '127.0.0.11' });
});
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await sink?.close();
});

const section = (over: Record<string, unknown> = {}) => ({
  routes: [{ domains: ['once.test'], hosts: [`127.0.0.11:${sink.port}`], tls: 'none' }],
  timeouts: { connectMs: 2000, greetingMs: 2000, commandMs: 2000, dataMs: 60_000 },
  retry: { schedule: { initialMs: 100, factor: 1, maxMs: 200, giveUpAfterMs: 600_000 } },
  limits: { connectionIdleMs: 0, slotWaitMs: 500, maxConnectionsPerDestination: 20, backoffAfterFailures: 1000 },
  ...over,
});

function journalFile(): string {
  const f = path.join(tmpdir(), `mailgate-once-${process.pid}-${++n}.jsonl`);
  cleanups.push(async () => rmSync(f, { force: true }));
  return f;
}

function make(redisUrl: string, keyPrefix: string, over: Record<string, unknown> = {}) {
  const metrics = countingMetrics();
  const c = createDeliveryComponents({
    delivery: deliverySchema.parse(section({ outcomeJournalFile: journalFile(), ...over })),
    redis: { url: redisUrl, keyPrefix },
    gateway: { name: 'mailgate', hostname: 'gw.test', instance: 'once-test' },
    log: silentLog,
    metrics,
  });
  cleanups.push(() => c.close());
  return { c, metrics };
}

/** The destination key of the once.test route (slots, pending marks). */
const destOf = (c: { router: { route(r: string): { key: string } } }) => c.router.route('x@once.test').key;
const copies = (rcpt: string) => sink.messages.filter((m) => m.rcptTo.includes(rcpt)).length;

test('a failed pending-mark write defers, sends nothing and gives the connection slot back (every time)', async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const { c } = make(redis.url, 'slots:');
  // The markers' client logs in as a Redis user that may read but not SET: the marker state is read, the pending
  // mark write fails (NOPERM), while the slot semaphore (the components' own client) keeps working.
  const admin = createRedis({ url: redis.url, keyPrefix: '' }, { name: 'acl' });
  t.after(() => admin.quit());
  await admin.call('ACL', 'SETUSER', 'nomark', 'on', '>pw', '~*', '&*', '+@all', '-set');
  const markersClient = createRedis(
    { url: `redis://nomark:pw@${redis.host}:${redis.port}`, keyPrefix: 'slots:' },
    { name: 'markers' },
  );
  t.after(() => markersClient.quit());
  const markers = new DeliveredMarkers(markersClient, 3600_000, 60_000);
  const claimClient = createRedis({ url: redis.url, keyPrefix: 'slots:' }, { name: 'claims' });
  t.after(() => claimClient.quit());
  const engine = new DeliveryEngine({
    router: c.router,
    resolver: c.resolver,
    pool: c.pool,
    limits: c.limits,
    markers,
    journal: new OutcomeJournal(markers, { file: journalFile() }),
    metrics: countingMetrics(),
    claims: new MessageClaims(claimClient, { ttlMs: 30_000, waitMs: 5000, pollMs: 50 }),
    tracer: trace.getTracer('test'),
    log: silentLog,
  });
  const connectionsBefore = sink.connections;
  // More failures than the destination has slots: before the fix each leaked one, the 21st waited for a slot.
  for (let i = 0; i < 25; i++) {
    const rcpt = `slot${i}@once.test`;
    await assert.rejects(engine.deliver(message({ from: 'a@src.test', to: [rcpt] }), [rcpt]), /NOPERM|EXECABORT/);
    await waitFor(async () => (await c.limits.inUse(destOf(c))) === 0, {
      timeoutMs: 5000,
      message: `slot ${i} released`,
    });
    assert.equal(copies(rcpt), 0, 'nothing sent without a pending mark');
  }
  assert.equal(sink.connections - connectionsBefore, 25, 'each attempt had a slot and a connection');
});

test('Redis killed while the remote server holds its DATA reply, back after 30 s: delivered once, never tempfailed', async (t) => {
  const redis = await startRedis({ appendonly: true });
  t.after(() => redis.stop());
  // The first attempt's claim cannot be released while Redis is down: it blocks the message for claim.ttlMs.
  const { c, metrics } = make(redis.url, 'outage:', { claim: { ttlMs: 2000 } });
  const rcpt = 'outage@once.test';
  const msg = message({ from: 'a@src.test', to: [rcpt] });
  sink.beforeDataReply(async (m) => {
    if (m.rcptTo.includes(rcpt)) await redis.kill();
  });
  t.after(() => sink.beforeDataReply(undefined));

  const out = await c.stage(msg, stageCtx());
  sink.beforeDataReply(undefined);
  assert.equal(out.verdict.kind, 'pass', 'a remote 250 is never turned into a tempfail');
  assert.equal(out.details!['delivered'], 1);
  assert.equal(copies(rcpt), 1);
  assert.equal(c.journal.backlog, 1, 'the delivered record waits in the journal');
  assert.equal(metrics.journaled, 1);

  // A redelivery while Redis is still down is held (fail closed), and sends nothing.
  const again = await c.stage(msg, stageCtx());
  assert.equal(again.verdict.kind, 'tempfail');
  assert.equal(copies(rcpt), 1);

  // Redis stays away OUTAGE_MS (the Redis client gives up on each command long before), then comes back.
  await new Promise((r) => setTimeout(r, OUTAGE_MS));
  await redis.restart();
  await waitFor(() => c.journal.backlog === 0, { timeoutMs: 15_000, message: 'journal flushed after the restart' });
  const state = await c.markers.state(msg.envelope.id, [rcpt]);
  assert.ok(state.done.has(rcpt), 'delivered marker in Redis');
  assert.equal(state.pending.size, 0, 'pending mark removed');

  const third = await c.stage(msg, stageCtx());
  assert.equal(third.verdict.kind, 'pass');
  assert.deepEqual(third.details, { delivered: 1, deferred: 0, bounced: 0 });
  assert.equal(copies(rcpt), 1, 'exactly one copy');
  assert.equal(metrics.duplicates, 0);
});

test('journal replay: records a killed process could not write to Redis reach Redis on the next start', async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const file = journalFile();
  const client = createRedis({ url: redis.url, keyPrefix: 'replay:' }, { name: 'replay' });
  t.after(() => client.quit());
  const markers = new DeliveredMarkers(client, 3600_000, 60_000);
  await markers.markPending('m-replay', ['r@once.test'], 'smarthost:x', 'attempt-1');
  // What a process leaves behind when Redis was down at its 250 and it then died: one fsynced line (+ a torn one).
  const { appendFileSync } = await import('node:fs');
  appendFileSync(
    file,
    JSON.stringify({ id: 'm-replay', rcpts: ['r@once.test'], marker: { reply: '250 ok', at: 'x' } }) + '\n{"id":',
  );
  const j = new OutcomeJournal(markers, { file, retryMinMs: 20 });
  assert.equal(j.lookup('m-replay', ['r@once.test']).size, 1, 'replayed into memory at once');
  await waitFor(() => j.backlog === 0, { timeoutMs: 5000, message: 'replayed into Redis' });
  const s = await markers.state('m-replay', ['r@once.test']);
  assert.equal(s.done.get('r@once.test')?.reply, '250 ok');
  assert.equal(s.pending.size, 0);
  assert.equal(readFileSync(file, 'utf8'), '', 'journal truncated once flushed');
  await j.close();
});

test('delivery process SIGKILLed at the remote 250: no resend before the pending mark expires, then one counted resend', async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const keyPrefix = 'kill9:';
  const pendingTtlMs = 8000;
  const rcpt = 'killed@once.test';
  const msg = message({ from: 'a@src.test', to: [rcpt] });
  // The dead child's claim frees itself after claim.ttlMs; the pending mark must outlive it.
  const over = { pendingTtlMs, claim: { ttlMs: 1000 } };
  const childJournal = journalFile();
  const child = new ManagedProcess(
    'delivery-child',
    process.execPath,
    [
      '--import',
      'tsx',
      '--conditions=mailgate-src',
      path.join(here, 'fixtures/deliver-once.ts'),
      JSON.stringify({
        redisUrl: redis.url,
        keyPrefix,
        section: section({ ...over, outcomeJournalFile: childJournal }),
        message: { id: msg.envelope.id, from: msg.envelope.mailFrom, to: msg.envelope.rcptTo },
      }),
    ],
    { cwd: path.resolve(here, '../../..') },
  );
  t.after(() => child.kill());
  // The SIGKILL goes out synchronously before the sink writes its 250: the child cannot record what it never read.
  sink.beforeDataReply(async (m) => {
    if (m.rcptTo.includes(rcpt)) {
      child.signal('SIGKILL');
      await child.exited;
    }
  });
  t.after(() => sink.beforeDataReply(undefined));
  const exit = await child.exited;
  sink.beforeDataReply(undefined);
  assert.equal(exit.signal, 'SIGKILL', child.output());
  assert.equal(copies(rcpt), 1, 'the remote server has the message');
  assert.ok(!existsSync(childJournal) || readFileSync(childJournal, 'utf8') === '', 'child journaled nothing');

  // A new delivery process (here: in-process components on the same Redis) picks the message up again.
  const { c, metrics } = make(redis.url, keyPrefix, over);
  const st = await c.markers.state(msg.envelope.id, [rcpt]);
  assert.equal(st.done.size, 0, 'no delivered marker: the child died before it could write one');
  const mark = st.pending.get(rcpt);
  assert.ok(mark, 'pending mark written before the final dot');
  assert.equal(mark.dest, destOf(c));

  const first = await c.stage(msg, stageCtx());
  assert.deepEqual(first.details?.['deferred'], 1, 'deferred while the pending mark lives');
  assert.match(JSON.stringify(first.events), /451 4\.4\.7 outcome of an earlier attempt/);
  assert.equal(copies(rcpt), 1, 'no duplicate before the pending mark expires');
  assert.equal(metrics.duplicates, 0);

  // The documented rule: once the mark's time is up, the message is sent again and counted.
  await waitFor(() => Date.now() > mark.until, { timeoutMs: pendingTtlMs + 5000, intervalMs: 100 });
  await c.scheduler.unschedule(msg.envelope.id);
  const { runRetry } = await import('../src/worker.js');
  const r = await runRetry(
    {
      engine: c.engine,
      store: c.store,
      scheduler: c.scheduler,
      producer: { send: async () => undefined },
      schedule: deliverySchema.parse(section()).retry.schedule,
      reportingMta: 'gw.test',
      instance: 'once-test',
      tracer: trace.getTracer('test'),
      log: silentLog,
    },
    msg.envelope.id,
  );
  assert.equal(r, 'done');
  assert.equal(copies(rcpt), 2, 'resent once after the mark expired');
  assert.equal(metrics.duplicates, 1, 'counted as a possible duplicate');
  const after = await c.markers.state(msg.envelope.id, [rcpt]);
  assert.ok(after.done.has(rcpt));
  assert.equal(after.pending.size, 0);
});
