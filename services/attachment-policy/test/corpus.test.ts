// The MimeKit corpus (messages and mbox files): every message goes through without a crash, with the same
// verdict and details on a second run.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createPolicyStage } from '../src/index.js';
import { cfg, pipelineMessage, splitMbox, stageContext } from './helpers.js';

// Vendored with its licence in packages/testkit/corpus/mimekit (so a plain clone runs it).
const CORPUS = join(import.meta.dirname, '../../../packages/testkit/corpus/mimekit');

function corpus(): { name: string; raw: Buffer }[] {
  const out: { name: string; raw: Buffer }[] = [];
  for (const f of readdirSync(join(CORPUS, 'messages')).sort()) {
    out.push({ name: `messages/${f}`, raw: readFileSync(join(CORPUS, 'messages', f)) });
  }
  for (const f of readdirSync(join(CORPUS, 'mbox')).sort()) {
    splitMbox(readFileSync(join(CORPUS, 'mbox', f))).forEach((raw, i) => out.push({ name: `mbox/${f}#${i + 1}`, raw }));
  }
  return out;
}

test('MimeKit corpus: no crash, a deterministic verdict for every message', async () => {
  const all = corpus();
  assert.ok(all.length > 40, `corpus found (${all.length} messages)`);
  for (const policy of [
    cfg(),
    cfg({ mode: 'block-list', rules: [{ name: 'strip-images', match: { trueType: ['image/*'] }, action: 'strip' }] }),
  ]) {
    const stage = createPolicyStage(policy);
    const kinds: Record<string, number> = {};
    for (const { name, raw } of all) {
      const a = await stage(pipelineMessage(raw), stageContext());
      const b = await stage(pipelineMessage(raw), stageContext());
      assert.deepEqual(b.verdict, a.verdict, name);
      assert.deepEqual(b.details, a.details, name);
      assert.equal(Buffer.compare(b.raw ?? raw, a.raw ?? raw), 0, name);
      kinds[a.verdict.kind] = (kinds[a.verdict.kind] ?? 0) + 1;
      if (a.raw) {
        // A rewritten message is judged again without a crash, and nothing is left to strip.
        const again = await stage(pipelineMessage(a.raw), stageContext());
        assert.equal(again.raw, undefined, `${name}: second pass strips nothing`);
      }
    }
    assert.ok((kinds['pass'] ?? 0) > 0, JSON.stringify(kinds));
  }
});
