// The documented example policy is valid config; mistakes name the key.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigErrors, loadConfig } from '@mailgate/runtime';
import { attachmentPolicySchema, DEFAULT_RULES, evaluateMessage } from '../src/index.js';
import { EXE, message } from './helpers.js';

const sections = { attachmentPolicy: attachmentPolicySchema };

test('deploy/attachment-policy.example.yaml loads, and its policy works', async () => {
  const file = join(import.meta.dirname, '../../../deploy/attachment-policy.example.yaml');
  const c = loadConfig({ file, env: {}, sections });
  assert.equal(c.attachmentPolicy.mode, 'allow-list');
  assert.equal(c.attachmentPolicy.http.port, 9104);
  assert.ok(c.attachmentPolicy.rules.some((r) => r.dryRun));
  const r = await evaluateMessage(c.attachmentPolicy, message([{ content: EXE, filename: 'a.pdf.exe' }]));
  assert.equal(r.verdict.kind, 'reject');
});

test('defaults: allow-list with the built-in rules; bad keys are named', () => {
  const d = loadConfig({ env: {}, sections }).attachmentPolicy;
  assert.equal(d.mode, 'allow-list');
  assert.equal(d.unlisted.action, 'reject');
  assert.equal(d.rules.length, DEFAULT_RULES.length);
  assert.deepEqual(d.malformed, { outcome: 'quarantine', reason: 'malformed' });
  const bad = (attachmentPolicy: unknown) => {
    try {
      loadConfig({ document: { attachmentPolicy }, env: {}, sections });
    } catch (e) {
      assert.ok(e instanceof ConfigErrors);
      return e.errors.map((x) => x.key);
    }
    return [];
  };
  assert.deepEqual(bad({ rules: [{ name: 'x', match: { trueType: ['exe'] }, action: 'quarantine' }] }), [
    'attachmentPolicy.rules[0].action',
  ]);
  assert.deepEqual(bad({ rules: [{ name: 'x', match: {}, action: 'reject' }] }), ['attachmentPolicy.rules[0].match']);
  assert.deepEqual(bad({ archives: { maxDepht: 2 } }), ['attachmentPolicy.archives.maxDepht']);
});
