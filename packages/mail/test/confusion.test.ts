// The MIME-confusion table at the walk level: for every shape, some reading of some leaf is the executable
// (or the walk refuses the message as malformed) — the exe is never invisible.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MIME_CONFUSION_SHAPES, PE_INVOICE_EXE } from '@mailgate/testkit';
import { bodyReadings, leaves, MalformedMimeError, scanTargets, walkMime } from '../src/index.js';

const isExe = (b: Buffer) =>
  b.length >= PE_INVOICE_EXE.length && b.subarray(0, 64).equals(PE_INVOICE_EXE.subarray(0, 64));

for (const shape of MIME_CONFUSION_SHAPES) {
  test(`walk: ${shape.name} — ${shape.what}`, () => {
    let parsed;
    try {
      parsed = walkMime(shape.raw);
    } catch (err) {
      assert.ok(err instanceof MalformedMimeError, String(err));
      return; // refused: the stage applies its malformed action
    }
    const found = leaves(parsed.root).some((l) => bodyReadings(l).some((r) => isExe(r.content)));
    assert.ok(found, `the exe is one of the readings (${JSON.stringify(parsed.anomalies)})`);
    assert.ok(
      scanTargets(parsed).some((t) => isExe(t.content)),
      'and one of the scan targets',
    );
  });
}
