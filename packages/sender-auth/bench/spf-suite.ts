// Reference run of the RFC 7208 test suite (openspf.org, vendored from pyspf) through mailgate's SPF path.
// npm run spf-suite [-- --verbose]   prints the pass count and every failing case.
import { runSpfSuite } from '../test/spf-suite.js';

const verbose = process.argv.includes('--verbose');
const t0 = performance.now();
const outcomes = await runSpfSuite({ timeoutMs: 300 });
const passed = outcomes.filter((o) => o.ok).length;
const byScenario = new Map<string, { pass: number; total: number }>();
for (const o of outcomes) {
  const s = byScenario.get(o.scenario) ?? { pass: 0, total: 0 };
  s.total++;
  if (o.ok) s.pass++;
  byScenario.set(o.scenario, s);
}
console.log(
  `RFC 7208 test suite: ${passed}/${outcomes.length} cases pass (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
);
for (const [name, s] of byScenario) console.log(`  ${String(s.pass).padStart(3)}/${String(s.total).padEnd(3)} ${name}`);
const failed = outcomes.filter((o) => !o.ok);
if (failed.length) {
  console.log(`\nfailing cases${verbose ? '' : ' (first 40; --verbose for all)'}:`);
  for (const o of verbose ? failed : failed.slice(0, 40)) {
    console.log(`  ${o.name} [${o.spec ?? '-'}]: expected ${o.expected.join('|')}, got ${o.got}`);
  }
}
