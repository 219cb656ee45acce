import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeMessage, lastVerdictOf, TOPICS } from '@mailgate/contracts';
import { startService } from '@mailgate/runtime';
import {
  isolatedRedisPrefix,
  producePipelineMessages,
  readTopic,
  startKafka,
  startRbldnsd,
  startRedis,
} from '@mailgate/testkit';
import { dnsblCheckService } from '../src/index.js';
import { log, message, ZONES, zonesConfig } from './helpers.js';

test('service: inbound → dnsbl-checked (pass) or quarantine (listed), verdict + header, readiness', async (t) => {
  const kafka = await startKafka();
  const dns = await startRbldnsd(ZONES);
  const redis = await startRedis();
  const running: { stop?: () => Promise<void> } = {};
  // One hook, in order: the service stops before the servers it talks to.
  t.after(async () => {
    await running.stop?.();
    await kafka.close();
    await dns.stop();
    await redis.stop();
  });

  const s = await startService(dnsblCheckService({ runner: { sessionTimeoutMs: 6000, heartbeatIntervalMs: 500 } }), {
    configDocument: {
      kafka: { brokers: [kafka.brokers], topics: { partitions: 1 } },
      redis: { url: redis.url, keyPrefix: isolatedRedisPrefix() },
      dnsbl: { resolvers: [dns.server], timeoutMs: 1000, zones: zonesConfig() },
    },
    httpPort: 0,
    log,
  });
  running.stop = () => s.stop();

  const clean = message();
  const listed = message({ session: { clientIp: '198.51.100.7' } });
  // The same listed IP, allow-listed by ingress at connect (ip-allow entry): passes unchecked.
  const allowed = message({ session: { clientIp: '198.51.100.7', ipAllowListed: true } });
  await producePipelineMessages(kafka.brokers, TOPICS.inbound, [clean, listed, allowed]);

  const passed = await readTopic(kafka.brokers, TOPICS.dnsblChecked, 2);
  const byId = new Map(passed.map((m) => decodeMessage(m.value)).map((m) => [m.envelope.id, m]));
  const p = byId.get(clean.envelope.id)!;
  const pv = lastVerdictOf(p.envelope, 'dnsbl-check')!;
  assert.equal(pv.verdict.kind, 'pass');
  assert.equal((pv.details as { score: number }).score, 0);
  assert.ok(p.raw.toString().startsWith('X-Mailgate-DNSBL: score=0 (pass)\r\n'));
  const a = byId.get(allowed.envelope.id)!;
  const av = lastVerdictOf(a.envelope, 'dnsbl-check')!;
  assert.equal(av.verdict.kind, 'pass');
  assert.deepEqual(av.details, { result: 'skipped', reason: 'allow-listed', clientIp: '198.51.100.7' });
  assert.equal(a.envelope.session.ipAllowListed, true, 'the mark travels with the envelope');
  assert.ok(a.raw.toString().startsWith('X-Mailgate-DNSBL: skipped (allow-listed)\r\n'));

  const [held] = await readTopic(kafka.brokers, TOPICS.quarantine, 1);
  const q = decodeMessage(held!.value);
  assert.equal(q.envelope.id, listed.envelope.id);
  const qv = lastVerdictOf(q.envelope, 'dnsbl-check')!;
  assert.equal(qv.verdict.kind, 'reject');
  const zones = (qv.details as { zones: { zone: string; status: string }[] }).zones;
  assert.deepEqual(zones.find((z) => z.zone === 'bl.test')!.status, 'listed');

  const ready = (await (await fetch(`http://127.0.0.1:${s.http.port}/readyz`)).json()) as {
    checks: Record<string, boolean>;
  };
  assert.equal(ready.checks['dnsbl'], true);
});
