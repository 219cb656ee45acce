// Pipeline lag with a stage chain: a stage run inside a chain (`mailgate chain …`) is reported with the offsets of
// the group that consumes it now (the one furthest ahead), not the stale group of the split stage it replaced.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { TOPICS } from '@mailgate/contracts';
import { startBroker } from '@mailgate/kafka-lite';
import { chainStagesOf, PipelineStats } from '../src/stats.js';

let b: Awaited<ReturnType<typeof startBroker>>;
let kafka: Kafka;
before(async () => {
  b = await startBroker({ port: 0, logLevel: 'error' } as Parameters<typeof startBroker>[0]);
  kafka = new Kafka({ brokers: [b.brokers], logLevel: logLevel.NOTHING });
});
after(async () => {
  await b.close();
});

test('chainStagesOf: only well-formed chain groups of consecutive stages', () => {
  assert.deepEqual(chainStagesOf('mailgate.chain.dnsbl-check..spam-check'), [
    'dnsbl-check',
    'virus-scan',
    'attachment-policy',
    'spam-check',
  ]);
  assert.deepEqual(chainStagesOf('mailgate.chain.virus-scan..attachment-policy'), ['virus-scan', 'attachment-policy']);
  assert.equal(chainStagesOf('mailgate.chain.spam-check..dnsbl-check'), undefined);
  assert.equal(chainStagesOf('mailgate.chain.dnsbl-check..nope'), undefined);
  assert.equal(chainStagesOf('mailgate.dnsbl-check'), undefined);
});

test('a stage inside a chain: the lag is the chain group’s when it is ahead, the stage group’s otherwise', async () => {
  const admin = kafka.admin();
  await admin.connect();
  const producer = kafka.producer();
  await producer.connect();
  try {
    await admin.createTopics({ topics: [{ topic: TOPICS.inbound, numPartitions: 1 }] });
    await producer.send({
      topic: TOPICS.inbound,
      messages: Array.from({ length: 10 }, (_, i) => ({ value: `m${i}` })),
    });
    const commit = (groupId: string, offset: number) =>
      admin.setOffsets({ groupId, topic: TOPICS.inbound, partitions: [{ partition: 0, offset: String(offset) }] });
    // The split stage stopped at 4; nothing else consumes: its own group.
    await commit('mailgate.dnsbl-check', 4);
    const stage = async () =>
      (await new PipelineStats(admin, 0).sample()).find(
        (s) => s.stage === 'dnsbl-check' && s.topic === TOPICS.inbound,
      )!;
    let s = await stage();
    assert.equal(s.group, 'mailgate.dnsbl-check');
    assert.equal(s.lag, 6);
    // The chain took over at 4 and is at 9 now: its group is the one consuming the topic.
    await commit('mailgate.chain.dnsbl-check..spam-check', 9);
    s = await stage();
    assert.equal(s.group, 'mailgate.chain.dnsbl-check..spam-check');
    assert.equal(s.lag, 1);
    assert.equal(s.committed, 9);
    // Back to split stages (their group reset to the end): the split group again.
    await commit('mailgate.dnsbl-check', 10);
    s = await stage();
    assert.equal(s.group, 'mailgate.dnsbl-check');
    assert.equal(s.lag, 0);
  } finally {
    await producer.disconnect();
    await admin.disconnect();
  }
});
