// The pending mark: written while the body goes out, before the final dot, so a transaction refused before DATA
// leaves none, and only the dot's round trip is left in which a crash makes the outcome unknown. A mark whose attempt
// got a refusal must not hold the mail back when Redis was away as the attempt wanted to remove it: left in Redis, it
// deferred the message with "451 4.4.7 outcome … unknown" for pendingTtlMs (10 minutes) though the server had
// refused it (found while reading this path for the chaos test's 4.4.7 holds).
// Real Redis (AOF, every write fsynced), a real SMTP server.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { Redis } from 'ioredis';
import { startDnsServer, startRedis, type DnsServerHandle, type RedisHandle } from '@mailgate/testkit';
import { DeliveredMarkers } from '../src/markers.js';
import type { DeliveryComponents } from '../src/components.js';
import { components, message, stageCtx } from './helpers.js';

let redis: RedisHandle;
let dns: DnsServerHandle;
let server: SMTPServer;
let port: number;
let c: DeliveryComponents;
const received: string[] = [];
/** Set by a test: runs before the server answers RCPT for that recipient (with 451 when `refuse`). */
const atRcpt = new Map<string, { hook: () => Promise<void>; refuse: boolean }>();
/** Set by a test: runs before the server answers the final dot for that recipient (with 451 when `refuse`). */
const atDot = new Map<string, { hook: () => Promise<void>; refuse: boolean }>();
const tryAgain = () => Object.assign(new Error('4.7.1 try again later'), { responseCode: 451 });
const PREFIX = 'pv:';

before(async () => {
  redis = await startRedis({ appendonly: true });
  dns = await startDnsServer({
    records: [
      { name: 'void.test', type: 'MX', priority: 10, exchange: 'mx.void.test' },
      { name: 'mx.void.test', type: 'A', address: '127.0.0.10' },
    ],
  });
  server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onRcptTo(address, _session, callback) {
      const at = atRcpt.get(address.address);
      if (!at) return callback();
      atRcpt.delete(address.address);
      void at.hook().then(() => callback(at.refuse ? tryAgain() : undefined));
    },
    onData(stream, session, callback) {
      stream.resume();
      stream.on('end', () => {
        const rcpts = session.envelope.rcptTo.map((r) => r.address);
        const at = rcpts.map((r) => atDot.get(r)).find((x) => x !== undefined);
        for (const r of rcpts) atDot.delete(r);
        void (at?.hook() ?? Promise.resolve()).then(() => {
          if (at?.refuse) return callback(tryAgain());
          received.push(...rcpts);
          callback();
        });
      });
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.10', r));
  port = (server.server.address() as { port: number }).port;
  c = components(redis.url, PREFIX, {
    dns: { resolvers: [dns.server], timeoutMs: 500, tries: 1 },
    mxPort: port,
    timeouts: { connectMs: 2000, greetingMs: 2000, commandMs: 5000, dataMs: 5000 },
    limits: { connectionIdleMs: 0, backoffAfterFailures: 1000 },
    // The refused attempt's claim outlives Redis' restart (AOF): short, so the second attempt need not wait 30 s.
    claim: { ttlMs: 2000 },
  });
});

after(async () => {
  await c?.close();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  await dns?.close();
  await redis?.stop();
});

const markKey = (id: string, rcpt: string) => `delivery:pending:${id}:${rcpt}`;

test('the pending mark is written after RCPT and before the final dot; a refusal at RCPT leaves none', async () => {
  const client = new Redis(redis.url, { keyPrefix: PREFIX });
  try {
    const ok = 'ordered@void.test';
    const msg = message({ from: 'a@src.test', to: [ok] });
    const seen: (string | null)[] = [];
    atRcpt.set(ok, { hook: async () => void seen.push(await client.get(markKey(msg.envelope.id, ok))), refuse: false });
    atDot.set(ok, { hook: async () => void seen.push(await client.get(markKey(msg.envelope.id, ok))), refuse: false });
    const r = await c.stage(msg, stageCtx());
    assert.equal(r.verdict.kind, 'pass');
    assert.equal(seen[0], null, 'no mark while the server answers RCPT');
    assert.ok(seen[1], 'the mark is in Redis when the server has the whole message');
    assert.equal(await client.get(markKey(msg.envelope.id, ok)), null, 'removed with the 250');

    const refused = 'refused@void.test';
    const msg2 = message({ from: 'a@src.test', to: [refused] });
    atRcpt.set(refused, { hook: async () => undefined, refuse: true });
    const r2 = await c.stage(msg2, stageCtx());
    assert.equal(r2.verdict.kind, 'pass', 'the deferral goes to the retry queue');
    assert.equal(r2.details!['deferred'], 1, JSON.stringify(r2.details));
    assert.equal(await client.get(markKey(msg2.envelope.id, refused)), null, 'a refusal at RCPT wrote no mark');
    await c.scheduler.unschedule(msg2.envelope.id);
  } finally {
    client.disconnect();
  }
});

test('Redis away while the mark of a refused attempt is removed: the next attempt of this process sends at once', async () => {
  const rcpt = 'late@void.test';
  const msg = message({ from: 'a@src.test', to: [rcpt] });
  // The mark is written (and fsynced) before the final dot; Redis dies before the server refuses the message after
  // the dot, so the attempt cannot remove the mark (nor record the deferral: the record is held, as a tempfail).
  atDot.set(rcpt, { hook: () => redis.kill(), refuse: true });
  const first = await c.stage(msg, stageCtx());
  assert.equal(first.verdict.kind, 'tempfail');
  await redis.restart();

  const client = new Redis(redis.url, { keyPrefix: PREFIX });
  try {
    const mark = await client.get(markKey(msg.envelope.id, rcpt));
    assert.ok(mark, 'the refused attempt left its pending mark in Redis');
    // Another process cannot know the mark is void: it keeps the conservative reading (outcome unknown).
    const elsewhere = await new DeliveredMarkers(client, 3600_000, 600_000).state(msg.envelope.id, [rcpt]);
    assert.equal(elsewhere.pending.size, 1);
  } finally {
    client.disconnect();
  }

  // The held record is tried again in this process: it must send now, not defer for pendingTtlMs.
  const second = await c.stage(msg, stageCtx());
  assert.equal(second.verdict.kind, 'pass');
  assert.equal(second.details!['delivered'], 1, JSON.stringify(second.details));
  assert.ok(received.includes(rcpt));
});
