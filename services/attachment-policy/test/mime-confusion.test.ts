// The MIME-confusion table (packages/testkit) at the stage level: every shape carries invoice.exe; whatever the
// policy, the executable never comes out — rejected, quarantined, or stripped from every reading.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { carriesPayload, MIME_CONFUSION_SHAPES } from '@mailgate/testkit';
import { walkMime } from '@mailgate/mail';
import { createPolicyStage, policyConfig } from '../src/index.js';
import { pipelineMessage, stageContext } from './helpers.js';

const POLICIES = {
  // The built-in allow-list.
  default: policyConfig(),
  // Blocks by true type only: the walk itself must find and decode the executable (the name does not help).
  'block-list, reject exe by true type': policyConfig({
    mode: 'block-list',
    rules: [{ name: 'no-exe', match: { trueType: ['exe'] }, action: 'reject' }],
  }),
  // Strips executables (the e2e policy): stripping must not leave the exe in another reading.
  'block-list, strip exe': policyConfig({
    mode: 'block-list',
    rules: [{ name: 'strip-exe', match: { trueType: ['exe'] }, action: 'strip' }],
  }),
};

for (const [policyName, cfg] of Object.entries(POLICIES)) {
  describe(`MIME confusion, ${policyName}`, () => {
    const stage = createPolicyStage(cfg);
    for (const shape of MIME_CONFUSION_SHAPES) {
      test(`${shape.name}: ${shape.what}`, async () => {
        const out = await stage(pipelineMessage(shape.raw), stageContext());
        if (out.verdict.kind === 'pass') {
          assert.ok(out.raw, `passed unchanged: ${JSON.stringify(out.details)}`);
          assert.ok(!carriesPayload(out.raw, shape), 'the executable is gone from the delivered bytes');
          // The rewritten message is judged clean by the same stage, and is well-formed enough to walk.
          const again = await stage(pipelineMessage(out.raw), stageContext());
          assert.equal(again.verdict.kind, 'pass');
          assert.equal(again.raw, undefined);
          walkMime(out.raw);
        } else {
          assert.ok(['reject', 'quarantine'].includes(out.verdict.kind), out.verdict.kind);
        }
      });
    }
  });
}

test('ambiguous shapes with a part to strip are quarantined with the reason', async () => {
  const stage = createPolicyStage(POLICIES['block-list, strip exe']);
  const shape = MIME_CONFUSION_SHAPES.find((s) => s.name === 'ct-junk')!;
  const out = await stage(pipelineMessage(shape.raw), stageContext());
  assert.equal(out.verdict.kind, 'quarantine');
  assert.match(
    (out.verdict as { reason: string }).reason,
    /malformed: ambiguous MIME .*multipart\/mixed junk.*strip-exe/,
  );
  assert.ok(Array.isArray(out.details!['anomalies']));
});
