// The service through the real StageRunner and kafka-lite: scanned → policy-checked (passed/stripped, on to spam-check) or quarantine.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAIL_HEADERS, TOPICS, type PipelineMessage } from '@mailgate/contracts';
import { startService } from '@mailgate/runtime';
import { observeTopics, producePipelineMessages, startKafka, testStageService, waitFor } from '@mailgate/testkit';
import { attachmentPolicySchema, setupAttachmentPolicy } from '../src/index.js';
import { EXE, log, message, PDF, pipelineMessage, zip } from './helpers.js';

/** The production definition, with fast group membership for tests. */
const service = testStageService({
  stage: 'attachment-policy',
  section: 'attachmentPolicy',
  schema: attachmentPolicySchema,
  setup: setupAttachmentPolicy,
});

test('pass unchanged, strip with header, reject and malformed to quarantine — via kafka-lite', async (t) => {
  const kafka = await startKafka();
  const s = await startService(service, {
    configDocument: {
      kafka: { brokers: [kafka.brokers], topics: { partitions: 1 } },
      attachmentPolicy: {
        rules: [
          { name: 'strip-exe', match: { trueType: ['exe'], inArchive: false }, action: 'strip' },
          { name: 'documents', match: { trueType: ['pdf'] }, action: 'allow' },
          { name: 'archives', match: { trueType: ['zip'] }, action: 'allow' },
        ],
      },
    },
    httpPort: 0,
    log,
  });

  const observer = await observeTopics(kafka.brokers, [TOPICS.policyChecked, TOPICS.quarantine]);
  // Stop in dependency order: clients and the service before the broker they talk to.
  t.after(async () => {
    await observer.stop();
    await s.stop();
    await kafka.close();
  });

  const clean = pipelineMessage(message([{ content: PDF, filename: 'a.pdf', type: 'application/pdf' }]));
  const strip = pipelineMessage(
    message([
      { content: PDF, filename: 'a.pdf' },
      { content: EXE, filename: 'b.exe' },
    ]),
  );
  const rejected = pipelineMessage(message([{ content: zip({ 'in.zip': zip({ 'x.exe': EXE }) }), filename: 'z.zip' }]));
  const malformed = pipelineMessage('MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\nbody\r\n');
  const all = [clean, strip, rejected, malformed];
  await producePipelineMessages(kafka.brokers, TOPICS.scanned, all);
  const of = (m: PipelineMessage) => observer.of(m.envelope.id);
  await waitFor(() => all.every((m) => of(m).length === 1), { timeoutMs: 30_000, message: 'all four decided' });

  const [c] = of(clean);
  assert.equal(c!.topic, TOPICS.policyChecked);
  assert.ok(c!.value.raw.equals(clean.raw), 'byte-identical');
  assert.equal(c!.value.envelope.verdicts.at(-1)?.stage, 'attachment-policy');

  const [st] = of(strip);
  assert.equal(st!.topic, TOPICS.policyChecked);
  assert.ok(st!.value.raw.toString('latin1').startsWith(`${MAIL_HEADERS.attachmentPolicy}: stripped=1;`));
  assert.equal(st!.value.envelope.size, st!.value.raw.length);
  assert.deepEqual(st!.value.envelope.verdicts.at(-1)?.details?.['removed'], [
    { part: '3', mode: 'strip', rule: 'strip-exe' },
  ]);

  const [r] = of(rejected);
  assert.equal(r!.topic, TOPICS.quarantine);
  const v = r!.value.envelope.verdicts.at(-1)!;
  assert.equal(v.verdict.kind, 'reject');
  assert.match((v.verdict as { reason: string }).reason, /z\.zip\/in\.zip\/x\.exe: type exe is not on the allow-list/);

  const [m] = of(malformed);
  assert.equal(m!.topic, TOPICS.quarantine);
  assert.deepEqual(m!.value.envelope.verdicts.at(-1)?.verdict, { kind: 'quarantine', reason: 'malformed' });
  assert.match(String(m!.value.envelope.verdicts.at(-1)?.details?.['error']), /without a boundary/);
});
