import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { decodeEvent, decodeMessage, TOPICS, type TrackingEvent } from '@mailgate/contracts';
import {
  startDnsServer,
  startRedis,
  startSmtpSink,
  waitFor,
  type DnsServerHandle,
  type RedisHandle,
  type Sink,
} from '@mailgate/testkit';
import { MessageClaims } from '../src/claim.js';
import { ConnectionPool } from '../src/pool.js';
import type { DeliveryComponents } from '../src/components.js';
import { runRetry } from '../src/worker.js';
import { collectingProducer, components, message, stageCtx, workerDeps } from './helpers.js';

let redis: RedisHandle;
let dns: DnsServerHandle;
let P: number; // the "MX port": every 127.0.0.x MX sink listens on it
let mx2: Sink; // 127.0.0.2
let mx3: Sink; // 127.0.0.3
let mx4: Sink; // 127.0.0.4
let tlsSink: Sink; // 127.0.0.6, offers STARTTLS
let hub: Sink; // 127.0.0.7:<own port>, the internal smarthost
let c: DeliveryComponents;
const extra: DeliveryComponents[] = [];
let prefixN = 0;

const section = (over: Record<string, unknown> = {}) => ({
  routes: [
    { domains: ['corp.test', '*.corp.test'], hosts: [`127.0.0.7:${hub.port}`], tls: 'opportunistic' },
    { domains: ['secure.test'], hosts: [`127.0.0.2:${P}`], tls: 'required' },
    { domains: ['secure-ok.test'], hosts: [`127.0.0.6:${P}`], tls: 'required' },
  ],
  dns: { resolvers: [dns.server], timeoutMs: 500, tries: 1 },
  mxPort: P,
  ehloName: 'gw.test',
  timeouts: { connectMs: 2000, greetingMs: 2000, commandMs: 2000, dataMs: 5000 },
  retry: { schedule: { initialMs: 100, factor: 1, maxMs: 200, giveUpAfterMs: 60_000 } },
  limits: { connectionIdleMs: 100, slotWaitMs: 3000, backoffAfterFailures: 1000 },
  ...over,
});

const make = (over: Record<string, unknown> = {}, prefix = `dtest${++prefixN}:`) => {
  const x = components(redis.url, prefix, section(over));
  extra.push(x);
  return x;
};

before(async () => {
  redis = await startRedis();
  dns = await startDnsServer({
    records: [
      { name: 'mx-order.test', type: 'MX', priority: 10, exchange: 'mx1.mx-order.test' },
      { name: 'mx-order.test', type: 'MX', priority: 20, exchange: 'mx2.mx-order.test' },
      { name: 'mx1.mx-order.test', type: 'A', address: '127.0.0.5' }, // nothing listens there
      { name: 'mx2.mx-order.test', type: 'A', address: '127.0.0.3' },
      { name: 'implicit.test', type: 'A', address: '127.0.0.4' },
      { name: 'nullmx.test', type: 'MX', priority: 0, exchange: '.' },
      { name: 'servfail.test', type: 'MX', priority: 10, exchange: 'mx.servfail.test' },
      { name: 'mix.test', type: 'MX', priority: 10, exchange: 'mx.mix.test' },
      { name: 'mx.mix.test', type: 'A', address: '127.0.0.2' },
      { name: 'senders.test', type: 'MX', priority: 10, exchange: 'mx.senders.test' },
      { name: 'mx.senders.test', type: 'A', address: '127.0.0.4' },
      { name: 'tls.test', type: 'MX', priority: 10, exchange: 'mx.tls.test' },
      { name: 'mx.tls.test', type: 'A', address: '127.0.0.6' },
      { name: 'cap.test', type: 'MX', priority: 10, exchange: 'mx.cap.test' },
      { name: 'mx.cap.test', type: 'A', address: '127.0.0.3' },
      { name: 'eq.test', type: 'MX', priority: 10, exchange: 'a.eq.test' },
      { name: 'eq.test', type: 'MX', priority: 10, exchange: 'b.eq.test' },
      { name: 'eq.test', type: 'MX', priority: 20, exchange: 'c.eq.test' },
      { name: 'a.eq.test', type: 'A', address: '127.0.0.2' },
      { name: 'b.eq.test', type: 'A', address: '127.0.0.3' },
      { name: 'c.eq.test', type: 'A', address: '127.0.0.4' },
    ],
  });
  dns.setFault('servfail.test', 'servfail');
  mx2 = await startSmtpSink({ host: '127.0.0.2' });
  P = mx2.port;
  mx3 = await startSmtpSink({ host: '127.0.0.3', port: P });
  mx4 = await startSmtpSink({ host: '127.0.0.4', port: P });
  tlsSink = await startSmtpSink({ host: '127.0.0.6', port: P, tls: true });
  hub = await startSmtpSink({ host: '127.0.0.7' });
  c = make();
});

after(async () => {
  for (const x of extra) await x.close();
  for (const s of [mx2, mx3, mx4, tlsSink, hub]) await s?.close();
  await dns?.close();
  await redis?.stop();
});

beforeEach(() => {
  for (const s of [mx2, mx3, mx4, tlsSink, hub]) {
    s.clear();
    s.clearReplies();
  }
});

const types = (events: { type: string }[] | undefined) => (events ?? []).map((e) => e.type);

test('smarthost route delivers byte-identical content, in one transaction for several recipients', async () => {
  const raw = Buffer.concat([
    Buffer.from('From: <a@src.test>\r\nTo: <x@corp.test>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\n'),
    Buffer.from('.line starting with a dot\r\n..two dots\r\n8bit: café\r\n\r\n.\r\nend\r\n'),
  ]);
  const msg = message({ from: 'a@src.test', to: ['x@corp.test', 'y@eu.corp.test'], raw });
  const out = await c.stage(msg, stageCtx());
  assert.equal(out.verdict.kind, 'pass');
  assert.deepEqual(out.details, { delivered: 2, deferred: 0, bounced: 0 });
  const [m] = await hub.waitFor(1);
  assert.ok(m!.data.equals(raw), 'content changed in transit');
  assert.deepEqual(m!.rcptTo, ['x@corp.test', 'y@eu.corp.test']);
  assert.equal(m!.heloName, 'gw.test');
  assert.equal(hub.messages.length, 1);
  const ev = out.events!.find((e) => e.type === 'delivered')!;
  assert.match(String(ev.details!['reply']), /^250 /);
  assert.match(String(ev.details!['remoteHost']), /^127\.0\.0\.7\[127\.0\.0\.7\]:/);
});

test('MX order: first MX refuses connections → second MX takes it', async () => {
  const out = await c.stage(message({ from: 'a@src.test', to: ['u@mx-order.test'] }), stageCtx());
  assert.deepEqual(out.details, { delivered: 1, deferred: 0, bounced: 0 });
  assert.equal(mx3.messages.length, 1);
  // mx1 (preference 10) was looked up before mx2 (20).
  const order = dns.queries.filter((q) => q.type === 'A' && q.name.endsWith('mx-order.test')).map((q) => q.name);
  assert.deepEqual(order.slice(0, 2), ['mx1.mx-order.test', 'mx2.mx-order.test']);
});

test('MX: equal preferences are shuffled, lower preference always first', async () => {
  const route = c.router.route('x@eq.test');
  const orders = new Set<string>();
  for (const seed of [0.1, 0.9]) {
    let i = 0;
    const random = () => (i++ % 3 === 0 ? seed : 1 - seed);
    const r = await c.resolver.resolve(route, random);
    assert.equal(r.kind, 'ok');
    const hosts = r.kind === 'ok' ? r.targets.map((t) => t.host) : [];
    assert.equal(hosts[2], 'c.eq.test');
    orders.add(hosts.slice(0, 2).join(','));
  }
  assert.deepEqual([...orders].sort(), ['a.eq.test,b.eq.test', 'b.eq.test,a.eq.test']);
});

test('implicit MX: a domain with only an A record gets mail at that address', async () => {
  const out = await c.stage(message({ from: 'a@src.test', to: ['i@implicit.test'] }), stageCtx());
  assert.deepEqual(out.details, { delivered: 1, deferred: 0, bounced: 0 });
  assert.equal(mx4.messages[0]!.rcptTo[0], 'i@implicit.test');
});

test('null MX bounces at once (no connection, DSN to the sender)', async () => {
  const msg = message({ from: 'a@senders.test', to: ['n@nullmx.test'] });
  const out = await c.stage(msg, stageCtx());
  assert.deepEqual(out.details, { delivered: 0, deferred: 0, bounced: 1 });
  assert.equal(out.extraRecords!.length, 1);
  const dsn = decodeMessage(out.extraRecords![0]!.value);
  assert.equal(dsn.envelope.mailFrom, '');
  assert.deepEqual(dsn.envelope.rcptTo, ['a@senders.test']);
  assert.match(dsn.raw.toString(), /Diagnostic-Code: smtp; 556 5\.1\.10 /);
  assert.equal(await c.store.exists(msg.envelope.id), false);
  assert.deepEqual(types(out.events), ['bounced', 'dsn-generated']);
});

test('DNS SERVFAIL is temporary: recipients deferred into the retry store', async () => {
  const msg = message({ from: 'a@src.test', to: ['s@servfail.test'] });
  const out = await c.stage(msg, stageCtx());
  assert.equal(out.verdict.kind, 'pass');
  assert.deepEqual(
    { ...out.details, nextAttemptAt: undefined },
    { delivered: 0, deferred: 1, bounced: 0, nextAttemptAt: undefined },
  );
  const entry = await c.store.load(msg.envelope.id);
  assert.match(entry!.pending.get('s@servfail.test')!, /^451 4\.4\.3 MX lookup/);
  assert.equal(await c.scheduler.state(msg.envelope.id), 'delayed');
  const deferred = out.events!.find((e) => e.type === 'deferred')!;
  assert.ok(deferred.details!['nextAttemptAt']);
  await c.scheduler.unschedule(msg.envelope.id);
  await c.store.remove(msg.envelope.id);
});

test('per-recipient 250/450/550: one delivery, one retry, one DSN; the retry succeeds once the sink stops 4xx', async () => {
  mx2.setReply({ stage: 'rcpt', code: 450, rcpt: 'b@mix.test', message: '4.2.1 mailbox busy', times: 1 });
  mx2.setReply({ stage: 'rcpt', code: 550, rcpt: 'c@mix.test', message: '5.1.1 no such user' });
  const msg = message({ from: 'sender@senders.test', to: ['a@mix.test', 'b@mix.test', 'c@mix.test'] });
  const out = await c.stage(msg, stageCtx());
  assert.equal(out.details!['delivered'], 1);
  assert.equal(out.details!['deferred'], 1);
  assert.equal(out.details!['bounced'], 1);
  assert.deepEqual(
    mx2.messages.map((m) => m.rcptTo),
    [['a@mix.test']],
  );
  assert.deepEqual(types(out.events), ['delivered', 'deferred', 'bounced', 'dsn-generated']);
  const dsn = decodeMessage(out.extraRecords![0]!.value);
  assert.match(dsn.raw.toString(), /Final-Recipient: rfc822; c@mix\.test/);
  assert.match(dsn.raw.toString(), /Diagnostic-Code: smtp; 550 5\.1\.1 no such user/);
  assert.doesNotMatch(dsn.raw.toString(), /Final-Recipient: rfc822; b@mix\.test/);
  const entry = await c.store.load(msg.envelope.id);
  assert.deepEqual([...entry!.pending.keys()], ['b@mix.test']);

  const producer = collectingProducer();
  await c.scheduler.unschedule(msg.envelope.id); // run the retry by hand (no worker in this test)
  assert.equal(await runRetry(workerDeps(c, producer, section()), msg.envelope.id), 'done');
  assert.deepEqual(
    mx2.messages.map((m) => m.rcptTo),
    [['a@mix.test'], ['b@mix.test']],
  );
  assert.equal(await c.store.exists(msg.envelope.id), false);
  const events = producer.records.filter((r) => r.topic === TOPICS.events).map((r) => decodeEvent(r.value));
  assert.deepEqual(
    events.map((e) => e.type),
    ['delivered'],
  );
  assert.deepEqual(events[0]!.rcptTo, ['b@mix.test']);
  assert.equal(events[0]!.details!['attempt'], 2);
});

test('give-up after the retry window: DSN with the last reply, and the DSN itself gets delivered', async () => {
  const short = make({ retry: { schedule: { initialMs: 50, factor: 1, maxMs: 50, giveUpAfterMs: 300 } } });
  mx2.setReply({ stage: 'rcpt', code: 452, rcpt: 'full@mix.test', message: '4.2.2 mailbox full' });
  const msg = message({ from: 'sender@senders.test', to: ['full@mix.test'] });
  const out = await short.stage(msg, stageCtx());
  assert.equal(out.details!['deferred'], 1);
  await short.scheduler.unschedule(msg.envelope.id);
  const producer = collectingProducer();
  const deps = workerDeps(
    short,
    producer,
    section({ retry: { schedule: { initialMs: 50, factor: 1, maxMs: 50, giveUpAfterMs: 300 } } }),
  );
  let r: Awaited<ReturnType<typeof runRetry>>;
  const started = Date.now();
  do {
    await new Promise((res) => setTimeout(res, 60));
    r = await runRetry(deps, msg.envelope.id);
  } while (typeof r === 'number' && Date.now() - started < 5000);
  assert.equal(r, 'done');
  const dsnRec = producer.records.find((x) => x.topic === TOPICS.deliverable)!;
  const dsn = decodeMessage(dsnRec.value);
  assert.match(dsn.raw.toString(), /Action: failed/);
  assert.match(dsn.raw.toString(), /Status: 4\.2\.2/);
  assert.match(dsn.raw.toString(), /452 4\.2\.2 mailbox full \(gave up after/);
  const events = producer.records.filter((x) => x.topic === TOPICS.events).map((x) => decodeEvent(x.value));
  const bounced = events.find((e) => e.type === 'bounced')!;
  assert.equal(bounced.details!['giveUp'], true);
  assert.equal(bounced.details!['dsn'], dsn.envelope.id);
  // The DSN re-enters the pipeline and is delivered to the sender's MX.
  const out2 = await short.stage(dsn, stageCtx());
  assert.deepEqual(out2.details, { delivered: 1, deferred: 0, bounced: 0 });
  const got = await mx4.waitFor((m) => m.rcptTo.includes('sender@senders.test'));
  assert.equal(got.mailFrom, '');
  assert.match(got.data.toString(), /multipart\/report; report-type=delivery-status/);
});

test('no DSN for a <> sender', async () => {
  mx2.setReply({ stage: 'rcpt', code: 550, rcpt: 'gone@mix.test' });
  const out = await c.stage(message({ from: '', to: ['gone@mix.test'] }), stageCtx());
  assert.equal(out.details!['bounced'], 1);
  assert.deepEqual(out.extraRecords, []);
  const bounced = out.events!.find((e) => e.type === 'bounced')!;
  assert.equal(bounced.details!['dsn'], null);
});

test('STARTTLS required against a server without it: deferred, never sent in clear', async () => {
  const msg = message({ from: 'a@src.test', to: ['x@secure.test'] });
  const out = await c.stage(msg, stageCtx());
  assert.equal(out.details!['deferred'], 1);
  assert.equal(mx2.messages.length, 0);
  const entry = await c.store.load(msg.envelope.id);
  assert.match(entry!.pending.get('x@secure.test')!, /^451 4\.7\.4 TLS required/);
  await c.scheduler.unschedule(msg.envelope.id);
  await c.store.remove(msg.envelope.id);
  // The same policy against a server that offers STARTTLS delivers over TLS; opportunistic uses it when offered.
  await c.stage(message({ from: 'a@src.test', to: ['x@secure-ok.test'] }), stageCtx());
  await c.stage(message({ from: 'a@src.test', to: ['y@tls.test'] }), stageCtx());
  const got = await tlsSink.waitFor(2);
  assert.deepEqual(
    got.map((m) => m.secure),
    [true, true],
  );
});

test('crash between the remote 250 and the offset commit: the redelivered record sends no second copy', async () => {
  const msg = message({ from: 'a@src.test', to: ['once@corp.test', 'twice@corp.test'] });
  hub.setReply({ stage: 'rcpt', code: 550, rcpt: 'twice@corp.test', times: 1 });
  const first = await c.stage(msg, stageCtx());
  assert.equal(first.details!['delivered'], 1);
  // The process "crashed" before committing: Kafka hands the same record over again.
  const again = await c.stage(msg, stageCtx());
  assert.equal(again.details!['delivered'], 2);
  const copies = hub.messages.filter((m) => m.rcptTo.includes('once@corp.test'));
  assert.equal(copies.length, 1, 'once@corp.test got a second copy');
  // Only the recipient not yet delivered was sent the second time; no new `delivered` event for the first.
  assert.deepEqual(
    hub.messages.map((m) => m.rcptTo),
    [['once@corp.test'], ['twice@corp.test']],
  );
  assert.deepEqual(
    again.events!.filter((e) => e.type === 'delivered').map((e) => e.rcptTo),
    [['twice@corp.test']],
  );
});

test('connections are reused for several messages to the same destination', async () => {
  const x = make({ limits: { connectionIdleMs: 2000, slotWaitMs: 3000, backoffAfterFailures: 1000 } });
  for (let i = 0; i < 3; i++) await x.stage(message({ from: 'a@src.test', to: [`r${i}@corp.test`] }), stageCtx());
  assert.equal(hub.messages.length, 3);
  assert.equal(hub.connections, 1);
});

test('per-destination connection cap holds across two delivery instances (Redis)', async () => {
  const over = {
    limits: { maxConnectionsPerDestination: 2, connectionIdleMs: 0, slotWaitMs: 10_000, backoffAfterFailures: 1000 },
  };
  const a = make(over, 'captest:');
  const b = make(over, 'captest:');
  let open = 0;
  let max = 0;
  const onConn = (sock: import('node:net').Socket) => {
    open++;
    max = Math.max(max, open);
    sock.once('close', () => open--);
  };
  mx3.server.server.on('connection', onConn);
  try {
    const sends = [];
    for (let i = 0; i < 12; i++) {
      const inst = i % 2 === 0 ? a : b;
      sends.push(inst.stage(message({ from: 'a@src.test', to: [`c${i}@cap.test`] }), stageCtx()));
    }
    const outs = await Promise.all(sends);
    assert.equal(
      outs.reduce((n, o) => n + Number(o.details!['delivered']), 0),
      12,
    );
    assert.ok(max <= 2, `saw ${max} concurrent connections`);
    assert.ok(max >= 1);
  } finally {
    mx3.server.server.off('connection', onConn);
  }
});

test('a destination failing repeatedly is backed off as a whole', async () => {
  const x = make({ limits: { backoffAfterFailures: 2, backoffMs: 60_000, connectionIdleMs: 0, slotWaitMs: 1000 } });
  mx3.setReply({ stage: 'connect', code: 421, message: 'too busy' });
  for (let i = 0; i < 2; i++) await x.stage(message({ from: 'a@src.test', to: [`b${i}@cap.test`] }), stageCtx());
  const before = mx3.connections;
  const msg = message({ from: 'a@src.test', to: ['b9@cap.test'] });
  const out = await x.stage(msg, stageCtx());
  assert.equal(out.details!['deferred'], 1);
  assert.equal(mx3.connections, before, 'connected to a backed-off destination');
  const ev = out.events!.find((e) => e.type === 'deferred') as TrackingEvent | undefined;
  assert.match(String(ev!.details!['reason']), /backed off/);
});

test('two replicas deliver the same message at the same time: one copy (Redis claim per message id)', async () => {
  // Two engines with their own Redis connections and pools, sharing the key prefix: two delivery replicas (say
  // one's retry worker and the other's stage with a redelivered duplicate record).
  const a = make({}, 'claimtest:');
  const b = make({}, 'claimtest:');
  const msg = message({ from: 'a@src.test', to: ['race@corp.test', 'race2@corp.test'] });
  const [ra, rb] = await Promise.all([
    a.engine.deliver(msg, msg.envelope.rcptTo),
    b.engine.deliver(msg, msg.envelope.rcptTo),
  ]);
  assert.equal(hub.messages.length, 1, `${hub.messages.length} copies at the sink`);
  assert.deepEqual(hub.messages[0]!.rcptTo, ['race@corp.test', 'race2@corp.test']);
  for (const r of [...ra, ...rb]) assert.equal(r.status, 'delivered');
  // Exactly one of the two sent; the other waited and found the markers.
  const skipped = [ra, rb].filter((rs) => rs.every((r) => r.alreadyDelivered));
  assert.equal(skipped.length, 1);
  assert.equal(await a.redis.exists(`delivery:claim:${msg.envelope.id}`), 0, 'claim released');
});

test('claim: a crashed holder blocks for its TTL only; release never removes a claim taken by another', async () => {
  const x = make({ claim: { ttlMs: 400, waitMs: 10_000, pollMs: 20 } }, 'claimcrash:');
  const msg = message({ from: 'a@src.test', to: ['late@corp.test'] });
  const key = `delivery:claim:${msg.envelope.id}`;
  // A replica took the claim and died: nobody extends or releases it.
  await x.redis.set(key, 'dead-replica', 'PX', 400);
  const t0 = Date.now();
  const out = await x.engine.deliver(msg, msg.envelope.rcptTo);
  assert.equal(out[0]!.status, 'delivered');
  assert.ok(Date.now() - t0 >= 300, 'did not wait for the stale claim');
  assert.equal(hub.messages.length, 1);

  // Compare-and-delete: a holder whose claim expired and was taken over does not release the new one.
  const claims = new MessageClaims(x.redis, { ttlMs: 200, waitMs: 5000, pollMs: 20 });
  await claims.withClaim('other-id', async () => {
    await x.redis.set('delivery:claim:other-id', 'someone-else', 'PX', 5000);
  });
  assert.equal(await x.redis.get('delivery:claim:other-id'), 'someone-else');

  // A claim held past waitMs: the attempt proceeds anyway (and re-checks markers: no second copy).
  await x.redis.set(key, 'stuck', 'PX', 60_000);
  const impatient = make({ claim: { ttlMs: 1000, waitMs: 150, pollMs: 20 } }, 'claimcrash:');
  const again = await impatient.engine.deliver(msg, msg.envelope.rcptTo);
  assert.equal(again[0]!.alreadyDelivered, true);
  assert.equal(hub.messages.length, 1);
});

test("one transaction that delivers: 3 Redis round trips, and the markers' write also resets the failure count and releases the claim", async () => {
  const x = make({ limits: { connectionIdleMs: 5000, slotWaitMs: 3000, backoffAfterFailures: 1000 } }, 'rtt:');
  // As for every message but the first: an open connection to reuse, the scripts known to Redis.
  await x.stage(message({ from: 'a@src.test', to: ['warm@corp.test'] }), stageCtx());
  const msg = message({ from: 'a@src.test', to: ['rt@corp.test'] });
  const dest = x.router.route('rt@corp.test').key;
  await x.redis.set(`delivery:fails:${dest}`, '2'); // two earlier destination-wide failures
  const sent: string[] = [];
  const send = x.redis.sendCommand.bind(x.redis);
  x.redis.sendCommand = (cmd, stream) => {
    sent.push(cmd.name);
    return send(cmd, stream);
  };
  let out;
  try {
    out = await x.stage(msg, stageCtx());
  } finally {
    x.redis.sendCommand = send;
  }
  assert.deepEqual(out.details, { delivered: 1, deferred: 0, bounced: 0 });
  // Claim + markers + pending marks + retry entry + backoff; the pending mark before DATA; the 250's record.
  assert.deepEqual(sent, ['evalsha', 'set', 'evalsha']);
  const state = await x.markers.state(msg.envelope.id, ['rt@corp.test']);
  assert.equal(state.done.get('rt@corp.test')?.reply.slice(0, 3), '250');
  assert.equal(state.pending.size, 0, 'pending mark removed');
  assert.equal(await x.redis.exists(`delivery:fails:${dest}`), 0, 'a success resets the failure count');
  assert.equal(await x.redis.exists(`delivery:claim:${msg.envelope.id}`), 0, 'claim released');
});

test('several destinations: the claim is held until the last transaction is recorded', async () => {
  const x = make({}, 'claimmulti:');
  const msg = message({ from: 'a@src.test', to: ['m1@corp.test', 'm2@mix.test'] });
  const claimKey = `delivery:claim:${msg.envelope.id}`;
  let heldAfterFirst: boolean | undefined;
  // corp.test's 250 waits until mix.test's transaction is recorded: its markers' write must not have released
  // the claim that still covers corp.test's send.
  hub.beforeDataReply(async (m) => {
    if (!m.rcptTo.includes('m1@corp.test')) return;
    await waitFor(async () => (await x.markers.state(msg.envelope.id, ['m2@mix.test'])).done.size === 1, {
      message: 'mix.test transaction recorded',
    });
    heldAfterFirst = (await x.redis.exists(claimKey)) === 1;
  });
  let out;
  try {
    out = await x.engine.deliver(msg, msg.envelope.rcptTo);
  } finally {
    hub.beforeDataReply(undefined);
  }
  assert.deepEqual(
    out.map((r) => r.status),
    ['delivered', 'delivered'],
  );
  assert.equal(heldAfterFirst, true, 'claim held while another transaction of the message was under way');
  assert.equal(await x.redis.exists(claimKey), 0, 'claim released at the end');
});

test('redelivered record whose deferred recipients the retry queue owns: left to it, job re-created, nothing resent', async () => {
  mx2.setReply({ stage: 'rcpt', code: 450, rcpt: 'q2@mix.test', message: '4.2.1 mailbox busy' });
  const msg = message({ from: 'sender@senders.test', to: ['q1@mix.test', 'q2@mix.test'] });
  const first = await c.stage(msg, stageCtx());
  assert.deepEqual(
    { ...first.details, nextAttemptAt: undefined },
    { delivered: 1, deferred: 1, bounced: 0, nextAttemptAt: undefined },
  );
  // The job got lost (say, a crash between storing and scheduling), and Kafka hands the record over again.
  assert.equal(await c.scheduler.unschedule(msg.envelope.id), true);
  const again = await c.stage(msg, stageCtx());
  assert.deepEqual(again.details, { delivered: 1, deferred: 0, bounced: 0, alreadyQueued: 1 });
  assert.deepEqual(
    mx2.messages.map((m) => m.rcptTo),
    [['q1@mix.test']],
    'q1 not resent, q2 not attempted outside the retry queue',
  );
  // Re-created and not yet run: delayed, or already waiting once its 100 ms backoff passed (a loaded machine).
  assert.match(String(await c.scheduler.state(msg.envelope.id)), /^(delayed|waiting)$/, 'retry job re-created');
  assert.deepEqual([...(await c.store.load(msg.envelope.id))!.pending.keys()], ['q2@mix.test']);
  await c.scheduler.unschedule(msg.envelope.id);
  await c.store.remove(msg.envelope.id);
});

test('waiters for a full destination: one asks Redis for a slot at a time; a connection given back goes to a waiter without Redis', async () => {
  const x = make({ limits: { maxConnectionsPerDestination: 2, backoffAfterFailures: 1000 } }, 'herd:');
  const pool = new ConnectionPool({
    limits: x.limits,
    ehloName: 'gw.test',
    timeouts: { connectMs: 2000, greetingMs: 2000, commandMs: 2000, dataMs: 5000 },
    maxMessagesPerConnection: 1000,
    idleMs: 5000,
    slotWaitMs: 30_000,
    slotTtlMs: 60_000,
    // No timed polls in this test: every slot request below is one the pool's own events caused.
    slotPollMs: 600_000,
  });
  const asked: (string | null)[] = [];
  const tryAcquire = x.limits.tryAcquire.bind(x.limits);
  x.limits.tryAcquire = async (dest) => {
    const token = await tryAcquire(dest);
    asked.push(token);
    return token;
  };
  const target = { host: 'hub.test', address: '127.0.0.7', port: hub.port };
  const policy = { tls: 'none' as const, tlsVerify: false };
  let served = 0;
  try {
    // 30 deliveries to one destination of 2 connections, each holding its connection for a moment.
    await Promise.all(
      Array.from({ length: 30 }, async () => {
        const lease = await pool.acquire('smarthost:herd', target, policy);
        await new Promise((r) => setImmediate(r));
        served++;
        pool.release(lease, true);
      }),
    );
  } finally {
    await pool.close();
  }
  assert.equal(served, 30);
  assert.equal(asked.filter((t) => t !== null).length, 2, 'two connections opened');
  // Two slots won, then one refusal; before, every connection given back had every waiter ask (refused): hundreds.
  assert.ok(asked.length <= 4, `${asked.length} slot requests`);
});
