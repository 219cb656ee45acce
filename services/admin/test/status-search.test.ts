// Search by message status and time range: the status index follows each message (received → quarantined →
// released; a two-recipient message partially delivered, then delivered), in the API and `mailgate track --status`.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newMessageId, type TrackingEvent } from '@mailgate/contracts';
import { waitFor } from '@mailgate/testkit';
import { runTrack } from '../../../packages/cli/src/track.js';
import { READ_TOKEN, startAdminEnv } from './helpers.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

test('status search: current status per message, combined with sender and time range; CLI --status', async (t) => {
  const env = await startAdminEnv(t);
  const t0 = Date.now() - 600_000;
  const at = (s: number) => new Date(t0 + s * 1000).toISOString();
  const [multi, held, fresh] = [newMessageId(), newMessageId(), newMessageId()];
  const base = (id: string, rcptTo: string[]) => ({
    messageId: id,
    mailFrom: 'status@status.test',
    rcptTo,
    clientIp: '192.0.2.77',
    host: 'x-0',
  });
  const ev = (id: string, rcptTo: string[], e: Partial<TrackingEvent>): TrackingEvent =>
    ({ ...base(id, rcptTo), service: 'delivery', ...e }) as TrackingEvent;
  await env.events([
    ev(multi, ['a@st.test', 'b@st.test'], { type: 'received', at: at(0), service: 'ingress-smtp' }),
    ev(multi, ['b@st.test'], { type: 'delivered', at: at(1), details: { reply: '250 ok' } }),
    ev(multi, ['a@st.test'], { type: 'deferred', at: at(1), details: { reason: '451 later' } }),
    ev(held, ['c@st.test'], { type: 'received', at: at(10), service: 'ingress-smtp' }),
    ev(held, ['c@st.test'], {
      type: 'quarantined',
      at: at(11),
      service: 'virus-scan',
      details: { reason: 'virus found: Eicar' },
    }),
    ev(fresh, ['d@st.test'], { type: 'received', at: at(20), service: 'ingress-smtp' }),
  ]);
  const search = async (q: string): Promise<string[]> => {
    const r = await env.api(`/api/v1/messages?from=status@status.test&${q}`);
    assert.equal(r.status, 200, `${q}: ${await r.clone().text()}`);
    return ((await r.json()) as Json)['results'].map((m: Json) => m['id']);
  };
  const until = async (q: string, want: string[]) => {
    let got: string[] = [];
    await waitFor(
      async () => {
        got = await search(q);
        return JSON.stringify(got) === JSON.stringify(want);
      },
      { timeoutMs: 30_000, intervalMs: 200, message: `${q}: want ${JSON.stringify(want)}, got ${JSON.stringify(got)}` },
    );
  };
  await until('status=partially-delivered', [multi]);
  await until('status=quarantined', [held]);
  await until('status=in-pipeline', [fresh]);
  // Time range: first-seen between since and until.
  assert.deepEqual(await search(`status=in-pipeline&until=${t0 + 15_000}`), []);
  assert.deepEqual(await search(`status=quarantined&since=${t0 + 5_000}&until=${t0 + 15_000}`), [held]);

  // The index follows the message: released from quarantine, the last recipient delivered.
  await env.events([
    ev(held, ['c@st.test'], { type: 'released', at: at(30), service: 'admin', details: { by: 'alice' } }),
    ev(multi, ['a@st.test'], { type: 'delivered', at: at(31), details: { reply: '250 ok' } }),
  ]);
  await until('status=released', [held]);
  await until('status=delivered', [multi]);
  assert.deepEqual(await search('status=quarantined'), []);
  assert.deepEqual(await search('status=partially-delivered'), []);

  const bad = await env.api('/api/v1/messages?status=lost');
  assert.equal(bad.status, 400);
  assert.match(((await bad.json()) as Json)['message'], /one of in-pipeline, held/);

  let out = '';
  const code = await runTrack(
    ['track', '--from', 'status@status.test', '--status', 'delivered', '--url', env.url, '--token', READ_TOKEN],
    { write: (s: string) => (out += s) },
    { write: () => undefined },
  );
  assert.equal(code, 0);
  assert.match(out, new RegExp(`^${multi} .* delivered$`, 'm'));
  assert.doesNotMatch(out, new RegExp(held));
});
