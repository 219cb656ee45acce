// The retry worker's watchdog against a real Redis and real BullMQ workers: a worker that stops taking jobs is
// found by the reconciler and replaced, and the deferred message then goes out; a worker busy with long attempts
// is left alone. (BullMQ's own wedge after a Redis restart could not be reproduced on demand, so "stopped taking
// jobs" is a paused BullMQ worker here: to the queue the two look the same: a due job nobody takes.)
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createRedis } from '@mailgate/runtime';
import {
  startDnsServer,
  startRedis,
  startSmtpSink,
  waitFor,
  type DnsServerHandle,
  type RedisHandle,
  type Sink,
} from '@mailgate/testkit';
import { bullPrefix } from '@mailgate/delivery-queue';
import type { DeliveryComponents } from '../src/components.js';
import { reconcile, RetryWorker, RetryWorkerWatchdog } from '../src/worker.js';
import { collectingProducer, components, message, stageCtx, workerDeps } from './helpers.js';

let redis: RedisHandle;
let dns: DnsServerHandle;
let mx: Sink;
const open: { close(): Promise<void> }[] = [];
let n = 0;

const section = () => ({
  dns: { resolvers: [dns.server], timeoutMs: 500, tries: 1 },
  mxPort: mx.port,
  timeouts: { connectMs: 2000, greetingMs: 2000, commandMs: 2000, dataMs: 5000 },
  retry: { schedule: { initialMs: 100, factor: 1, maxMs: 100, giveUpAfterMs: 120_000 } },
  limits: { connectionIdleMs: 100, backoffAfterFailures: 1000 },
});

function setup(): { c: DeliveryComponents; worker: RetryWorker; prefix: string } {
  const prefix = `wd${++n}:`;
  const c = components(redis.url, prefix, section());
  const worker = new RetryWorker(workerDeps(c, collectingProducer(), section()), {
    connect: () => createRedis({ url: redis.url, keyPrefix: prefix }, { name: 'test-worker', forBullmq: true }),
    queue: 'delivery-retry',
    prefix: bullPrefix(prefix),
    concurrency: 2,
    hungAttemptMs: 60_000,
  });
  open.push(worker, c);
  return { c, worker, prefix };
}

/** Defers a message for `rcpt` (the sink refuses it once) through the stage, which schedules its retry job. */
async function defer(c: DeliveryComponents, rcpt: string): Promise<string> {
  mx.setReply({ stage: 'rcpt', code: 451, rcpt, message: '4.7.1 try later', times: 1 });
  const msg = message({ from: 'a@src.test', to: [rcpt] });
  const out = await c.stage(msg, stageCtx());
  assert.equal(out.details!['deferred'], 1);
  return msg.envelope.id;
}

before(async () => {
  redis = await startRedis();
  dns = await startDnsServer({
    records: [
      { name: 'wd.test', type: 'MX', priority: 10, exchange: 'mx.wd.test' },
      { name: 'mx.wd.test', type: 'A', address: '127.0.0.9' },
    ],
  });
  mx = await startSmtpSink({ host: '127.0.0.9' });
});

after(async () => {
  for (const x of open.reverse()) await x.close().catch(() => undefined);
  await mx?.close();
  await dns?.close();
  await redis?.stop();
});

test('a retry worker that stopped taking jobs is replaced, and the deferred message goes out', async () => {
  const { c, worker } = setup();
  await worker.current.waitUntilReady();
  await worker.current.pause(); // from here on it takes nothing: a wedged worker, as far as the queue can tell
  const id = await defer(c, 'stuck@wd.test');
  const watchdog = new RetryWorkerWatchdog();
  const graceMs = 200;

  // First pass that sees the job due and overdue: suspect only.
  const first = await waitFor(
    async () => {
      const r = await reconcile(c.store, c.scheduler, graceMs);
      return r.dueOverdue.includes(id) ? r : undefined;
    },
    { timeoutMs: 10_000, message: 'the delayed job past its time is reported due' },
  );
  assert.equal(first.recreated, 0, 'the job exists: nothing to re-create');
  assert.equal(watchdog.check(first.dueOverdue, worker.started, worker.freeSlots()), false, 'one pass is not enough');
  // Second pass, nothing started in between: stuck.
  const second = await reconcile(c.store, c.scheduler, graceMs);
  assert.deepEqual(second.dueOverdue, [id]);
  assert.equal(worker.started, 0);
  assert.equal(watchdog.check(second.dueOverdue, worker.started, worker.freeSlots()), true);

  const wedged = worker.current;
  worker.replace();
  assert.notEqual(worker.current, wedged);
  assert.equal(worker.replaced, 1);
  await mx.waitFor((m) => m.rcptTo.includes('stuck@wd.test'), 30_000);
  await waitFor(async () => !(await c.store.exists(id)), { timeoutMs: 10_000, message: 'the entry is finished' });
  assert.equal(worker.started, 1, 'the new worker ran the attempt once');
  assert.equal(mx.messages.filter((m) => m.rcptTo.includes('stuck@wd.test')).length, 1);
});

test('a worker whose slots are all taken is not called stuck; one that keeps starting attempts neither', () => {
  const w = new RetryWorkerWatchdog();
  assert.equal(w.check([], 0, 2), false, 'nothing due');
  assert.equal(w.check(['a'], 0, 2), false, 'due once');
  assert.equal(w.check(['a'], 0, 0), false, 'due twice but every slot busy');
  assert.equal(w.check(['a'], 3, 1), false, 'due twice but it started attempts in between');
  assert.equal(w.check(['b'], 3, 1), false, 'another job due: not the same one twice');
  assert.equal(w.check(['b'], 3, 1), true, 'the same job due twice, idle, with room');
  assert.equal(w.check(['b'], 3, 1), false, 'after a verdict it starts over');
});

test('the reconciler reports a job due only once it is overdue by the grace period', async () => {
  const { c, worker } = setup();
  await worker.current.waitUntilReady();
  await worker.current.pause();
  const id = await defer(c, 'grace@wd.test');
  // Due (100 ms) but not yet 60 s overdue: not reported; with no job at all it would be re-created instead.
  const r = await reconcile(c.store, c.scheduler, 60_000);
  assert.deepEqual(r, { recreated: 0, dueOverdue: [] });
  await c.scheduler.unschedule(id);
  const later = await reconcile(c.store, c.scheduler, 0, Date.now() + 1000);
  assert.deepEqual(later, { recreated: 1, dueOverdue: [] });
  assert.equal(await c.scheduler.state(id), 'waiting');
  await worker.current.resume();
  await mx.waitFor((m) => m.rcptTo.includes('grace@wd.test'), 30_000);
});
