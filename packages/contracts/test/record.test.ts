// Construction of records, forwarded messages and tracking events: the one place a new field is added.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodeMessage,
  ENVELOPE_SCHEMA,
  forward,
  newEnvelope,
  newRecord,
  RECORD_HEADERS,
  trackingEvent,
  type PipelineMessage,
  type StageVerdict,
} from '../src/index.js';

function message(): PipelineMessage {
  const raw = Buffer.from('Subject: hi\r\n\r\nbody\r\n', 'latin1');
  return {
    envelope: newEnvelope({
      mailFrom: 'a@sender.test',
      rcptTo: ['u@example.test', 'v@example.test'],
      size: raw.length,
      session: { clientIp: '192.0.2.7' },
      trace: {
        traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        traceId: '0af7651916cd43dd8448eb211c80319c',
      },
    }),
    raw,
  };
}

const verdict = (stage: StageVerdict['stage']): StageVerdict => ({
  stage,
  verdict: { kind: 'pass' },
  at: '2026-01-01T00:00:00.000Z',
  durationMs: 3,
  host: 'pod-1',
});

test('newRecord: keyed by id, value decodes to the message, id + schema + trace headers', () => {
  const m = message();
  const r = newRecord('mailgate.inbound', m);
  assert.equal(r.topic, 'mailgate.inbound');
  assert.equal(r.key, m.envelope.id);
  assert.deepEqual(decodeMessage(r.value), m);
  assert.deepEqual(r.headers, {
    [RECORD_HEADERS.traceparent]: m.envelope.trace.traceparent,
    [RECORD_HEADERS.messageId]: m.envelope.id,
    [RECORD_HEADERS.schema]: String(ENVELOPE_SCHEMA),
  });
});

test('newRecord: the producing span trace headers replace the envelope traceparent; extra headers are added', () => {
  const m = message();
  const trace = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01', tracestate: 'k=v' };
  const r = newRecord('mailgate.quarantine', m, { trace, headers: { [RECORD_HEADERS.sourceTopic]: 'x.in' } });
  assert.equal(r.headers[RECORD_HEADERS.traceparent], trace.traceparent);
  assert.equal(r.headers[RECORD_HEADERS.tracestate], 'k=v');
  assert.equal(r.headers[RECORD_HEADERS.sourceTopic], 'x.in');
  assert.equal(r.headers[RECORD_HEADERS.messageId], m.envelope.id);
});

test('forward: appends the verdict, leaves the input untouched, keeps bytes and size without new raw', () => {
  const m = message();
  const f = forward(m, verdict('dnsbl-check'));
  assert.deepEqual(
    f.envelope.verdicts.map((v) => v.stage),
    ['dnsbl-check'],
  );
  assert.equal(m.envelope.verdicts.length, 0);
  assert.equal(f.raw, m.raw);
  assert.equal(f.envelope.size, m.envelope.size);
  const g = forward(f, verdict('virus-scan'));
  assert.deepEqual(
    g.envelope.verdicts.map((v) => v.stage),
    ['dnsbl-check', 'virus-scan'],
  );
});

test('forward: rewritten bytes carry their own size', () => {
  const m = message();
  const raw = Buffer.concat([Buffer.from('X-Added: 1\r\n'), m.raw]);
  const f = forward(m, verdict('attachment-policy'), raw);
  assert.equal(f.raw, raw);
  assert.equal(f.envelope.size, raw.length);
});

test('trackingEvent: envelope facts repeated, extra fields set, details only when given', () => {
  const m = message();
  const e = trackingEvent('stage', m, {
    service: 'virus-scan',
    host: 'pod-2',
    at: '2026-01-01T00:00:01.000Z',
    details: { verdict: 'pass' },
  });
  assert.deepEqual(e, {
    type: 'stage',
    messageId: m.envelope.id,
    traceId: m.envelope.trace.traceId,
    at: '2026-01-01T00:00:01.000Z',
    service: 'virus-scan',
    host: 'pod-2',
    mailFrom: 'a@sender.test',
    rcptTo: ['u@example.test', 'v@example.test'],
    clientIp: '192.0.2.7',
    details: { verdict: 'pass' },
  });
  const bare = trackingEvent('deleted', m, { service: 'admin', host: 'pod-3' });
  assert.equal('details' in bare, false);
  assert.ok(!Number.isNaN(Date.parse(bare.at)));
});
