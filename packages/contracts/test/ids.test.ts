// newMessageId: ULID layout (time, then randomness drawn from a pooled CSPRNG buffer).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newMessageId } from '../src/index.js';

test('ids are 26 Crockford base32 chars, sort by time and do not repeat across pool refills', () => {
  const now = Date.UTC(2026, 11, 7, 4, 0, 0);
  const ids = Array.from({ length: 10_000 }, (_, i) => newMessageId(now + Math.floor(i / 100)));
  for (const id of ids) assert.match(id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.equal(new Set(ids).size, ids.length);
  // Same millisecond: same 10-char time prefix; later millisecond: sorts after.
  assert.equal(ids[0]!.slice(0, 10), ids[99]!.slice(0, 10));
  assert.ok(ids[100]!.slice(0, 10) > ids[99]!.slice(0, 10));
  // 16 random chars per id: 10,000 ids use every symbol of the alphabet in the random part.
  const symbols = new Set(ids.flatMap((id) => [...id.slice(10)]));
  assert.equal(symbols.size, 32);
});
