// End to end with a stage chain that ends in delivery: ingress-smtp → `mailgate chain dnsbl-check,virus-scan,
// attachment-policy,spam-check,delivery` (one process, in-memory hand-over, delivery's retry worker inside) → the
// sinks, with the same infrastructure as pipeline.test.ts. A clean message is delivered with every stage in its
// timeline; EICAR is quarantined by the virus-scan step with the input topic of virus-scan as its source (release
// with recheck re-enters there); a remote 4xx is retried by the chain's retry worker; a 5xx bounce's DSN re-enters
// the chain at its delivery step. (The chain of the four check stages alone, beside a delivery process, runs in
// packages/cli/test/cli.test.ts through `mailgate dev --chain`.)
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { EICAR, type Sink } from '@mailgate/testkit';
import { TOPICS } from '@mailgate/contracts';
import {
  bodyOf,
  bounceWithDsn,
  buildMessage,
  deferThenDeliver,
  header,
  mailgateId,
  send,
  sendEicarUntilQuarantined,
  timeline,
  type MessageView,
} from '../harness/mail.js';
import { ACCEPTED_DOMAIN, REMOTE_DOMAIN, startStack, type Stack } from '../harness/stack.js';

const CHECKS = ['dnsbl-check', 'virus-scan', 'attachment-policy', 'spam-check'] as const;
const STAGES = [...CHECKS, 'delivery'] as const;

let stack: Stack;

before(async () => {
  stack = await startStack({ chain: STAGES });
});

after(async () => {
  if (process.env['MAILGATE_E2E_LOGDIR']) console.log(`logs: ${await stack?.dumpLogs()}`);
  await stack?.stop();
});

function assertOneTrace(view: MessageView, traceId: string): void {
  assert.match(traceId, /^[0-9a-f]{32}$/);
  assert.equal(view.summary.traceId, traceId);
  for (const e of view.events) assert.equal(e.traceId, traceId, `event ${e.type}/${e.service} has another trace id`);
}

const allSinks = (): Sink[] => [stack.internal, stack.mx1, stack.mx2];

describe('end to end with a stage chain', { timeout: 280_000 }, () => {
  test('the check stages run as one process: no process of their own, the chain ready with every check', async () => {
    const labels = stack.processes().map((p) => p.label);
    assert.ok(labels.includes('chain#0'), labels.join(', '));
    for (const s of STAGES) assert.ok(!labels.includes(`${s}#0`), `${s} has no process of its own`);
    assert.equal(stack.proc('spam-check'), stack.proc('dnsbl-check'));
    assert.equal(stack.proc('delivery'), stack.proc('dnsbl-check'));
    const r = await fetch(`http://127.0.0.1:${stack.proc('dnsbl-check').httpPort}/readyz`);
    const body = (await r.json()) as { service: string; checks: Record<string, unknown> };
    assert.equal(r.status, 200);
    assert.equal(body.service, 'chain');
    for (const c of [
      'consumer',
      'kafka',
      'dnsbl-check.dnsbl',
      'virus-scan.clamd',
      'spam-check.rspamd',
      'delivery.redis',
    ]) {
      assert.ok(c in body.checks, `readiness check ${c}: ${Object.keys(body.checks).join(', ')}`);
    }
  });

  test('clean mail is delivered with every stage in its timeline, in order, in one trace', async () => {
    const from = `bob@${REMOTE_DOMAIN}`;
    const to = `alice@${ACCEPTED_DOMAIN}`;
    const raw = buildMessage({ from, to, subject: 'clean through the chain', body: 'Hello.\r\n' });
    const r = await send(stack, { from, to, raw });
    assert.match(r.response, /^250 /);
    const got = await stack.internal.waitFor((m) => mailgateId(m) === r.id, 60_000);
    assert.equal(bodyOf(got.data), bodyOf(Buffer.from(raw)));
    assert.match(header(got.data, 'x-mailgate-virus-scanned') ?? '', /^clean/);
    assert.match(header(got.data, 'x-mailgate-dnsbl') ?? '', /score=0/);
    assert.match(header(got.data, 'x-spam-status') ?? '', /^No, score=/);
    const view = await timeline(stack, r.id, (v) => v.events.some((e) => e.type === 'delivered'));
    const seq = view.events.map((e) => (e.type === 'stage' ? e.service : e.type));
    assert.equal(seq[0], 'received');
    const at = CHECKS.map((s) => seq.indexOf(s));
    assert.ok(
      at.every((i, k) => i > 0 && (k === 0 || i > at[k - 1]!)),
      `every stage once, in order: ${seq.join(' → ')}`,
    );
    assert.ok(seq.indexOf('delivered') > at[3]!);
    for (const e of view.events.filter((x) => x.type === 'stage')) {
      assert.equal((e.details?.['verdict'] as { kind: string }).kind, 'pass', `${e.service} passed it`);
    }
    assertOneTrace(view, header(got.data, 'x-mailgate-trace-id') ?? '');
    assert.equal(view.summary.status, 'delivered');
  });

  test('a remote 4xx is retried by the retry worker in the chain process, then delivered once', async () => {
    await deferThenDeliver(stack);
  });

  test('a remote 5xx bounces: the DSN re-enters the chain at its delivery step and is delivered', async () => {
    await bounceWithDsn(stack);
  });

  test('EICAR is quarantined by the virus-scan step (source: its input topic), never delivered', async () => {
    const { entry: q, view } = await sendEicarUntilQuarantined(stack, 'eicar through the chain');
    assert.equal(q.stage, 'virus-scan');
    assert.match(q.reason, /Eicar/i);
    assert.equal(q.sourceTopic, TOPICS.dnsblChecked);
    assert.equal(view.summary.status, 'quarantined');
    assertOneTrace(view, view.summary.traceId);
    const seq = view.events.map((e) => `${e.type}/${e.service}`);
    assert.ok(seq.includes('stage/dnsbl-check') && seq.includes('stage/virus-scan'), seq.join(' → '));
    assert.ok(seq.includes('quarantined/virus-scan'), seq.join(' → '));
    assert.ok(!view.events.some((e) => e.service === 'attachment-policy' || e.service === 'spam-check'));
    for (const s of allSinks()) assert.ok(!s.messages.some((m) => m.data.includes(EICAR)), 'no sink got EICAR');
  });
});
