// A pending mark whose attempt never sent DATA must not hold the mail back when Redis was away as the attempt
// wanted to remove it: left in Redis, it deferred the message with "451 4.4.7 outcome … unknown" for pendingTtlMs
// (10 minutes) though nothing was sent (found while reading this path for the chaos test's 4.4.7 holds).
// Real Redis (AOF, every write fsynced), a real SMTP server that refuses RCPT while Redis is down.
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
/** Set by a test: runs before the server answers RCPT for that recipient with 451. */
const refuseOnce = new Map<string, () => Promise<void>>();
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
      const hook = refuseOnce.get(address.address);
      if (!hook) return callback();
      refuseOnce.delete(address.address);
      void hook().then(() => callback(Object.assign(new Error('4.7.1 try again later'), { responseCode: 451 })));
    },
    onData(stream, session, callback) {
      stream.resume();
      stream.on('end', () => {
        received.push(...session.envelope.rcptTo.map((r) => r.address));
        callback();
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

test('Redis away while the mark of a refused attempt is removed: the next attempt of this process sends at once', async () => {
  const rcpt = 'late@void.test';
  const msg = message({ from: 'a@src.test', to: [rcpt] });
  // The mark is written (and fsynced) before MAIL; Redis dies before the server refuses RCPT, so the attempt cannot
  // remove the mark (nor record the deferral: the record is held, as a tempfail).
  refuseOnce.set(rcpt, () => redis.kill());
  const first = await c.stage(msg, stageCtx());
  assert.equal(first.verdict.kind, 'tempfail');
  await redis.restart();

  const client = new Redis(redis.url, { keyPrefix: PREFIX });
  try {
    const mark = await client.get(`delivery:pending:${msg.envelope.id}:${rcpt}`);
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
  assert.deepEqual(received, [rcpt]);
});
