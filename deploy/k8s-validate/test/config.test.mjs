// The configuration documents we ship — the chart's ConfigMap for every CI values file and the compose stack's
// config — must pass the services' own validation (`mailgate config check`), or pods crash-loop on first start.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import { configCheck, configCheckAvailable } from '../lib/config-check.mjs';
import { CI_VALUES, find, REPO, template } from '../lib/helm.mjs';

/** Stand-ins for the values pods receive from Secrets as env overrides (same names). */
const SECRET_STANDINS = {
  MAILGATE__REDIS__URL: 'redis://redis.example:6379',
  MAILGATE__KAFKA__SASL__PASSWORD: '"not-a-real-password"',
};

test('mailgate config check can run here (root npm ci done)', () => {
  assert.ok(configCheckAvailable(), "run `npm ci` at the repository root first: the check runs the services' schemas");
});

for (const file of CI_VALUES) {
  test(`the chart's config for ci/${basename(file)} passes mailgate config check`, () => {
    const r = template([file]);
    assert.ok(r.ok, r.stderr);
    const doc = find(r.docs, 'ConfigMap', 'mg-mailgate-config').data['mailgate.yaml'];
    // Give the check exactly the env overrides the ingress pod gets from Secrets.
    const ingress = find(r.docs, 'Deployment', 'mg-mailgate-ingress-smtp');
    const env = {};
    for (const e of ingress.spec.template.spec.containers[0].env) {
      if (!e.name.startsWith('MAILGATE__')) continue;
      if (e.value !== undefined) {
        env[e.name] = e.value; // a literal the chart computes (e.g. the shutdown timeout)
        continue;
      }
      assert.ok(SECRET_STANDINS[e.name], `no stand-in for ${e.name}`);
      env[e.name] = SECRET_STANDINS[e.name];
    }
    const check = configCheck(doc, env);
    assert.ok(check.ok, check.output);
    assert.match(check.output, /ingress-smtp: checked/);
  });
}

test('the docker-compose config passes mailgate config check', () => {
  const text = readFileSync(join(REPO, 'deploy', 'compose', 'mailgate.yaml'), 'utf8');
  const check = configCheck(text);
  assert.ok(check.ok, check.output);
});

test('each Deployment forces its exit before Kubernetes would SIGKILL it (shutdown timeout < grace - preStop)', () => {
  const r = template([CI_VALUES[0]]);
  assert.ok(r.ok, r.stderr);
  const deployments = r.docs.filter((d) => d?.kind === 'Deployment' && d.metadata.name.startsWith('mg-mailgate-'));
  let checked = 0;
  for (const d of deployments) {
    const spec = d.spec.template.spec;
    const c = spec.containers[0];
    const env = (c.env ?? []).find((e) => e.name === 'MAILGATE__GATEWAY__SHUTDOWN_TIMEOUT_MS');
    if (!env) continue; // clamd etc.
    const preStop = Number(c.lifecycle?.preStop?.exec?.command?.[1] ?? 0);
    assert.ok(Number(env.value) / 1000 + preStop < spec.terminationGracePeriodSeconds, d.metadata.name);
    checked++;
  }
  assert.ok(checked >= 6, `checked ${checked} deployments`);
});
