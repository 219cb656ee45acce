// The RFC 7208 test suite as a floor: mailgate's SPF path (mailauth 4.13 on node:dns) passes 190 of 203 cases
// (npm run spf-suite lists the 13 others: names c-ares cannot query, exp= syntax and a few macro corner cases
// mailauth does not implement). Loopback DNS with "never answers" timeouts: the count is deterministic.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runSpfSuite } from './spf-suite.js';

const FLOOR = 190;

test(`RFC 7208 test suite: at least ${FLOOR} cases pass`, async () => {
  const outcomes = await runSpfSuite({ timeoutMs: 1000 });
  assert.equal(outcomes.length, 203, 'every case of the vendored suite ran');
  const failed = outcomes.filter((o) => !o.ok);
  assert.ok(
    outcomes.length - failed.length >= FLOOR,
    `${outcomes.length - failed.length}/${outcomes.length} pass; failing: ${failed.map((f) => `${f.name} (want ${f.expected.join('|')}, got ${f.got})`).join('; ')}`,
  );
});
