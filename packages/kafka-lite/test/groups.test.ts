import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Consumer } from 'kafkajs';
import { broker, connected, defer, fastConsumer, fixtureProcess, kafkaFor, waitFor } from './helpers.js';

function track(consumer: Consumer, topic: string): { parts: number[]; gen: number } {
  const state = { parts: [] as number[], gen: -1 };
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    state.parts = [...(e.payload.memberAssignment[topic] ?? [])].sort((a, b) => a - b);
    state.gen = e.payload.groupId ? state.gen + 1 : state.gen;
  });
  return state;
}

test(
  'group of 2 then 3 members: partitions re-spread, nothing consumed twice or skipped',
  { timeout: 60_000 },
  async (t) => {
    const b = await broker(t);
    const kafka = kafkaFor(b);
    const admin = await connected(t, kafka.admin());
    await admin.createTopics({ topics: [{ topic: 'grp', numPartitions: 6 }] });
    const producer = await connected(t, kafka.producer());
    const seen = new Map<string, number>();
    const who = new Map<string, number>();
    const consumers: Consumer[] = [];
    const states: { parts: number[] }[] = [];
    const start = async (): Promise<void> => {
      const idx = consumers.length;
      const c = kafka.consumer({ groupId: 'grp-g', ...fastConsumer });
      consumers.push(c);
      states.push(track(c, 'grp'));
      defer(t, () => c.disconnect());
      await c.connect();
      await c.subscribe({ topic: 'grp', fromBeginning: true });
      await c.run({
        eachMessage: async ({ message }) => {
          const v = message.value!.toString();
          seen.set(v, (seen.get(v) ?? 0) + 1);
          who.set(v, idx);
        },
      });
    };
    const spread = (n: number): boolean => {
      const all = states.flatMap((s) => s.parts).sort((a, b) => a - b);
      return states.length === n && states.every((s) => s.parts.length === 6 / n) && all.join() === '0,1,2,3,4,5';
    };
    const committedAll = async (): Promise<boolean> => {
      const high = await admin.fetchTopicOffsets('grp');
      const off = await admin.fetchOffsets({ groupId: 'grp-g', topics: ['grp'] });
      return off[0]!.partitions.every((p) => p.offset === high.find((h) => h.partition === p.partition)!.high);
    };
    const send = (tag: string): Promise<unknown> =>
      producer.send({
        topic: 'grp',
        messages: Array.from({ length: 60 }, (_, i) => ({ partition: i % 6, value: `${tag}-${i}` })),
      });

    await start();
    await start();
    await waitFor(() => spread(2), 20_000, 'two members with 3 partitions each');
    await send('b1');
    await waitFor(() => seen.size === 60, 20_000, 'batch 1');
    await waitFor(committedAll, 20_000, 'batch 1 committed');
    await start();
    await waitFor(() => spread(3), 25_000, 'three members with 2 partitions each');
    const d = await admin.describeGroups(['grp-g']);
    assert.equal(d.groups[0]!.members.length, 3);
    await send('b2');
    await waitFor(() => seen.size === 120, 20_000, 'batch 2');
    await waitFor(committedAll, 20_000, 'batch 2 committed');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(seen.size, 120, 'nothing skipped');
    assert.deepEqual(
      [...seen.values()].filter((n) => n !== 1),
      [],
      'nothing consumed twice',
    );
    assert.ok(
      [...who.entries()].some(([v, i]) => v.startsWith('b2') && i === 2),
      'third member consumed',
    );
  },
);

test(
  'a killed member is expired, its partitions reassigned, uncommitted records redelivered',
  { timeout: 60_000 },
  async (t) => {
    const b = await broker(t);
    const kafka = kafkaFor(b);
    const admin = await connected(t, kafka.admin());
    await admin.createTopics({ topics: [{ topic: 'kill', numPartitions: 2 }] });

    const child = fixtureProcess('consumer-child.ts', [b.brokers, 'kill', 'kill-g']);
    defer(t, () => child.kill('SIGKILL'));
    const lines: string[] = [];
    let partial = '';
    child.stdout.on('data', (d: Buffer) => {
      const parts = (partial + d.toString()).split('\n');
      partial = parts.pop()!;
      lines.push(...parts);
    });
    await waitFor(() => lines.includes('JOIN 0,1'), 30_000, 'child joined');

    const c1 = kafka.consumer({ groupId: 'kill-g', ...fastConsumer });
    const st = track(c1, 'kill');
    defer(t, () => c1.disconnect());
    const got: string[] = [];
    await c1.connect();
    await c1.subscribe({ topic: 'kill', fromBeginning: true });
    await c1.run({ eachMessage: async ({ message }) => void got.push(message.value!.toString()) });
    await waitFor(
      () =>
        st.parts.length === 1 &&
        lines
          .filter((l) => l.startsWith('JOIN'))
          .at(-1)
          ?.split(' ')[1]?.length === 1,
      25_000,
      'split 1/1',
    );
    const childPart = Number(
      lines
        .filter((l) => l.startsWith('JOIN'))
        .at(-1)!
        .split(' ')[1],
    );

    const producer = await connected(t, kafka.producer());
    await producer.send({
      topic: 'kill',
      messages: Array.from({ length: 20 }, (_, i) => ({ partition: i % 2, value: `m${i}` })),
    });
    await waitFor(
      () => lines.filter((l) => l.startsWith(`MSG ${childPart} `)).length >= 10,
      20_000,
      'child consumed its partition',
    );
    await waitFor(() => got.length >= 10, 20_000, 'c1 consumed its partition');
    child.kill('SIGKILL');
    // The broker must expire the dead member (session 6 s) and give c1 both partitions; since the child
    // never committed, its records are delivered again (at-least-once).
    await waitFor(() => st.parts.length === 2, 30_000, 'reassignment after session expiry');
    await waitFor(() => got.length >= 20, 20_000, 'redelivery');
    assert.deepEqual([...new Set(got)].sort(), Array.from({ length: 20 }, (_, i) => `m${i}`).sort());
    const d = await admin.describeGroups(['kill-g']);
    assert.equal(d.groups[0]!.members.length, 1);
  },
);

test('committed offsets survive a consumer restart', { timeout: 60_000 }, async (t) => {
  const b = await broker(t);
  const kafka = kafkaFor(b);
  const producer = await connected(t, kafka.producer());
  await producer.send({
    topic: 'cr',
    messages: Array.from({ length: 5 }, (_, i) => ({ partition: 0, value: `a${i}` })),
  });
  const run = async (expect: number): Promise<string[]> => {
    const c = kafka.consumer({ groupId: 'cr-g', ...fastConsumer });
    await c.connect();
    await c.subscribe({ topic: 'cr', fromBeginning: true });
    const got: string[] = [];
    await c.run({ eachMessage: async ({ message }) => void got.push(message.value!.toString()) });
    await waitFor(() => got.length >= expect, 20_000, `${expect} messages`);
    await new Promise((r) => setTimeout(r, 400));
    await c.disconnect();
    return got;
  };
  assert.deepEqual(await run(5), ['a0', 'a1', 'a2', 'a3', 'a4']);
  await producer.send({
    topic: 'cr',
    messages: Array.from({ length: 3 }, (_, i) => ({ partition: 0, value: `b${i}` })),
  });
  assert.deepEqual(await run(3), ['b0', 'b1', 'b2']);
});
