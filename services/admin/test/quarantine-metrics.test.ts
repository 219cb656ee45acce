// Quarantine depth by reason class on /metrics: one message per class through the quarantine and dead-letter topics
// (kafka-lite, the shared Redis), then a delete and a re-quarantine for another reason move the counts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RECORD_HEADERS, TOPICS, type PipelineMessage, type StageVerdict } from '@mailgate/contracts';
import { waitFor } from '@mailgate/testkit';
import { QUARANTINE_CLASSES, quarantineClass } from '../src/quarantine-store.js';
import { quarantinedMessage, startAdminEnv } from './helpers.js';

/** A quarantined message whose last verdict is `stage`'s, with `details`. */
function heldBy(stage: StageVerdict['stage'], details: Record<string, unknown> = {}): PipelineMessage {
  const { msg } = quarantinedMessage({ from: 'x@metrics.test', to: 'ceo@example.test', stage });
  const verdicts = msg.envelope.verdicts.map((v, i, all) => (i === all.length - 1 ? { ...v, details } : v));
  return { ...msg, envelope: { ...msg.envelope, verdicts } };
}

test('quarantineClass: stage and kind to a fixed label set', () => {
  assert.equal(quarantineClass('quarantine', 'virus-scan'), 'virus');
  assert.equal(quarantineClass('reject', 'attachment-policy', { rule: 'executables' }), 'attachment');
  assert.equal(quarantineClass('quarantine', 'attachment-policy', { malformed: true }), 'malformed');
  assert.equal(quarantineClass('quarantine', 'dnsbl-check'), 'dnsbl');
  assert.equal(quarantineClass('reject', 'spam-check'), 'spam');
  assert.equal(quarantineClass('quarantine', 'ingress-smtp'), 'sender-auth');
  assert.equal(quarantineClass('dead-letter', 'virus-scan'), 'dead-letter');
  assert.equal(quarantineClass('undecodable', 'dnsbl-check'), 'dead-letter');
  assert.equal(quarantineClass('quarantine', 'delivery'), 'other');
});

test('/metrics: mailgate_quarantine_messages{reason} per class, zeros included; delete and re-quarantine move it', async (t) => {
  const env = await startAdminEnv(t);
  const metrics = async (): Promise<Record<string, number>> => {
    const text = await (await env.api('/metrics', { token: null })).text();
    const out: Record<string, number> = {};
    for (const m of text.matchAll(/^mailgate_quarantine_messages\{[^}]*reason="([^"]+)"[^}]*\} (\d+)/gm))
      out[m[1]!] = Number(m[2]);
    const total = /^mailgate_quarantine_depth(?:\{[^}]*\})? (\d+)/m.exec(text);
    if (total) out['$total'] = Number(total[1]);
    return out;
  };
  const expect = (counts: Partial<Record<(typeof QUARANTINE_CLASSES)[number], number>>) => {
    const want: Record<string, number> = {};
    let total = 0;
    for (const c of QUARANTINE_CLASSES) {
      want[c] = counts[c] ?? 0;
      total += want[c];
    }
    want['$total'] = total;
    return want;
  };
  const waitMetrics = async (want: Record<string, number>, message: string) => {
    let last: Record<string, number> = {};
    await waitFor(
      async () => {
        last = await metrics();
        return Object.entries(want).every(([k, v]) => last[k] === v);
      },
      { timeoutMs: 30_000, intervalMs: 200, message: `${message}: ${JSON.stringify(last)}` },
    );
  };

  await waitMetrics(expect({}), 'an empty quarantine exports every class as 0');

  const virus = heldBy('virus-scan', { signature: 'Eicar-Signature' });
  const attachment = heldBy('attachment-policy', { rule: 'executables' });
  const malformed = heldBy('attachment-policy', { malformed: true, error: 'too deep' });
  const dnsbl = heldBy('dnsbl-check');
  const spam = heldBy('spam-check', { score: 12.5 });
  const senderAuth = heldBy('ingress-smtp', { auth: { dmarc: 'fail' } });
  for (const [m, topic] of [
    [virus, TOPICS.dnsblChecked],
    [attachment, TOPICS.scanned],
    [malformed, TOPICS.scanned],
    [dnsbl, TOPICS.inbound],
    [spam, TOPICS.policyChecked],
    [senderAuth, TOPICS.inbound],
  ] as const)
    await env.quarantine(m, topic);
  await env.produce(TOPICS.deadLetter, [
    {
      key: 'DL0000000000000000000000MX',
      value: Buffer.from('no mailgate record'),
      headers: { [RECORD_HEADERS.sourceTopic]: TOPICS.inbound, [RECORD_HEADERS.error]: 'CodecError: too short' },
    },
  ]);
  await waitMetrics(
    expect({ virus: 1, attachment: 1, malformed: 1, dnsbl: 1, spam: 1, 'sender-auth': 1, 'dead-letter': 1 }),
    'one per class',
  );

  // Deleted: its class goes down. Released with recheck and held again by another stage: it moves class.
  assert.equal((await env.api(`/api/v1/quarantine/${dnsbl.envelope.id}`, { method: 'DELETE' })).status, 200);
  const again: PipelineMessage = {
    ...virus,
    envelope: {
      ...virus.envelope,
      verdicts: [
        ...virus.envelope.verdicts,
        {
          stage: 'spam-check',
          verdict: { kind: 'quarantine', reason: 'spam score 20' },
          at: new Date().toISOString(),
          durationMs: 5,
        },
      ],
    },
  };
  await env.quarantine(again, TOPICS.policyChecked);
  await waitMetrics(
    expect({ attachment: 1, malformed: 1, spam: 2, 'sender-auth': 1, 'dead-letter': 1 }),
    'after a delete and a re-quarantine',
  );
});
