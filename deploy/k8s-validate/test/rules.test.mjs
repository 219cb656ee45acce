// The alert rules and the dashboard: one set of rules (deploy/prometheus/rules, and the chart's PrometheusRule from
// its copy), every metric they and the dashboard query is one the services export (docs/observability.md).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { byKind, CI_VALUES, REPO, template } from '../lib/helm.mjs';
import { validateManifest } from '../lib/k8s-schema.mjs';

const read = (p) => readFileSync(join(REPO, p), 'utf8');
const RULES = 'deploy/prometheus/rules/mailgate.yml';

describe('alert rules and dashboard', () => {
  test('the chart ships the same rules as a PrometheusRule when metrics.prometheusRule.enabled', async () => {
    assert.equal(read('helm/mailgate/files/prometheus-rules.yml'), read(RULES), 'files/prometheus-rules.yml is a copy');
    const off = template([CI_VALUES[0]]);
    assert.ok(off.ok, off.stderr);
    assert.equal(byKind(off.docs, 'PrometheusRule').length, 0, 'off by default');
    const on = template([CI_VALUES[0]], { 'metrics.prometheusRule.enabled': true });
    assert.ok(on.ok, on.stderr);
    const [rule] = byKind(on.docs, 'PrometheusRule');
    assert.ok(rule);
    assert.deepEqual(await validateManifest(rule), []);
    assert.deepEqual(rule.spec, parse(read(RULES)));
    const names = rule.spec.groups.flatMap((g) => g.rules.map((r) => r.alert));
    for (const a of [
      'MailgateStageLagGrowing',
      'MailgateDeferredQueueAging',
      'MailgateClamdDown',
      'MailgateQuarantineSpike',
    ])
      assert.ok(names.includes(a), a);
  });

  test('every mailgate_/process_/nodejs_ metric in the rules and the dashboard is documented', () => {
    const doc = read('docs/observability.md');
    const dashboard = read('deploy/grafana/dashboards/mailgate.json');
    const used = new Set(
      [...`${read(RULES)}\n${dashboard}`.matchAll(/\b((?:mailgate|process|nodejs)_[a-z0-9_]+)/g)].map((m) =>
        m[1].replace(/_(bucket|sum|count)$/, ''),
      ),
    );
    for (const m of used) assert.ok(doc.includes(m.replace(/_total$/, '')), `${m} is not in docs/observability.md`);
    const all = JSON.parse(dashboard).panels;
    const panels = all.map((p) => p.title);
    for (const row of ['Sender authentication', 'Spam', 'Processes'])
      assert.ok(
        all.some((p) => p.type === 'row' && p.title === row),
        `row ${row}`,
      );
    // The Spam row shows decisions by action, the score histogram and rspamd's unavailability (held / fail-open).
    const spamExprs = JSON.stringify(all.filter((p) => /spam|rspamd/i.test(p.title)).map((p) => p.targets));
    for (const m of ['mailgate_spam_actions_total', 'mailgate_spam_score_bucket', 'mailgate_rspamd_errors_total'])
      assert.ok(spamExprs.includes(m), `spam panels query ${m}`);
    assert.match(spamExprs, /mailgate_stage_retries_total\{stage=\\"spam-check\\"/);
    for (const t of [
      'Delivery outcomes',
      'Deferred queue',
      'Ingress: accepted and refused',
      'Quarantine depth',
      'Virus detections',
      'Process CPU',
      'Sender authentication results',
      'Spam decisions',
      'rspamd score distribution',
      'rspamd unavailable',
    ])
      assert.ok(
        panels.some((p) => p.startsWith(t)),
        `panel ${t}`,
      );
  });
});
