// The refusal recorder is best effort and isolated from the accept path: record() returns at once whatever the
// producer does, the buffer is bounded, and a failed produce drops (and counts) refusal events only.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeEvent, TOPICS } from '@mailgate/contracts';
import type { OutRecord } from '@mailgate/bus';
import { waitFor } from '@mailgate/testkit';
import pino from 'pino';
import { createRefusalRecorder } from '../src/refusals.js';

const log = pino({ level: 'silent' });
const facts = (n: number) => ({
  reason: 'relay-denied',
  listener: 'mx',
  clientIp: '192.0.2.1',
  reply: '550 5.7.1 <x@foreign.test>: relaying denied',
  phase: 'rcpt' as const,
  mailFrom: 'a@probe.test',
  rcptTo: [`x${n}@foreign.test`],
});

describe('refusal recorder', () => {
  it('a producer that never answers does not hold record(); the buffer is bounded and overflow is counted', async () => {
    let sends = 0;
    let drops = 0;
    const r = createRefusalRecorder({
      send: () => (sends++, new Promise<void>(() => undefined)),
      instance: 'i-0',
      log,
      maxPending: 10,
      flushIntervalMs: 1,
      onDrop: () => drops++,
    });
    r.record(facts(0));
    await waitFor(() => sends === 1, { timeoutMs: 2000, message: 'first flush' });
    for (let i = 1; i <= 25; i++) r.record(facts(i)); // returns synchronously every time
    assert.equal(drops, 15, 'ten wait behind the stuck produce, the rest are dropped');
    assert.equal(r.dropped, 15);
    assert.equal(sends, 1, 'one produce in flight at a time');
  });

  it('a failed produce drops those events and later ones go through; one id per transaction', async () => {
    const sent: OutRecord[][] = [];
    let fail = true;
    const r = createRefusalRecorder({
      send: async (records) => {
        if (fail) throw new Error('broker down');
        sent.push(records);
      },
      instance: 'i-0',
      log,
      flushIntervalMs: 1,
    });
    r.record(facts(0));
    await r.flush();
    assert.equal(r.dropped, 1);
    fail = false;
    const tx = {};
    r.record({ ...facts(1), group: tx });
    r.record({ ...facts(2), group: tx });
    r.record(facts(3));
    await r.flush();
    const evs = sent.flat().map((rec) => (assert.equal(rec.topic, TOPICS.events), decodeEvent(rec.value)));
    assert.equal(evs.length, 3);
    assert.equal(evs[0]!.messageId, evs[1]!.messageId);
    assert.notEqual(evs[0]!.messageId, evs[2]!.messageId);
    assert.equal(evs[0]!.type, 'refused');
    assert.deepEqual(evs[0]!.details, {
      reason: 'relay-denied',
      reply: '550 5.7.1 <x@foreign.test>: relaying denied',
      phase: 'rcpt',
      listener: 'mx',
    });
  });
});
