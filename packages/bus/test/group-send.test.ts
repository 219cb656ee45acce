// GroupSend: the windows of one runner keep one produce request in flight; what they hand it meanwhile goes into the
// next request, and a failed request fails every caller in it (none of them may commit). The runner's use of it
// against the real broker is in in-flight.test.ts and runner.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { OutRecord } from '@mailgate/bus';
import { GroupSend } from '../src/group-send.js';

const rec = (v: string): OutRecord => ({ topic: 't', value: Buffer.from(v) });

/** A producer whose requests are settled by the test, recording what each carried. */
function heldProducer() {
  const requests: { values: string[]; settle: (err?: Error) => void }[] = [];
  let arrived: (() => void) | undefined;
  return {
    requests,
    nextRequest: () => new Promise<void>((r) => (arrived = r)),
    send: (records: OutRecord[]) =>
      new Promise<void>((resolve, reject) => {
        requests.push({ values: records.map((r) => r.value.toString()), settle: (e) => (e ? reject(e) : resolve()) });
        arrived?.();
      }),
  };
}

test('one request in flight: what arrives meanwhile goes into the next one, together', async () => {
  const p = heldProducer();
  const g = new GroupSend(p);
  let req = p.nextRequest();
  const a = g.send([rec('a')]);
  await req;
  const b = g.send([rec('b1'), rec('b2')]);
  const c = g.send([rec('c')]);
  assert.equal(p.requests.length, 1, 'b and c wait for a');
  req = p.nextRequest();
  p.requests[0]!.settle();
  await a;
  await req;
  assert.deepEqual(
    p.requests.map((r) => r.values),
    [['a'], ['b1', 'b2', 'c']],
  );
  p.requests[1]!.settle();
  await Promise.all([b, c]);
});

test('a failed request rejects every caller in it, and the next request still goes out', async () => {
  const p = heldProducer();
  const g = new GroupSend(p);
  let req = p.nextRequest();
  const a = g.send([rec('a')]);
  await req;
  const b = g.send([rec('b')]);
  const c = g.send([rec('c')]);
  req = p.nextRequest();
  p.requests[0]!.settle();
  await a;
  await req;
  p.requests[1]!.settle(new Error('broker down'));
  await assert.rejects(b, /broker down/);
  await assert.rejects(c, /broker down/);
  req = p.nextRequest();
  const d = g.send([rec('d')]);
  await req;
  p.requests[2]!.settle();
  await d;
  assert.deepEqual(p.requests[2]!.values, ['d']);
});
