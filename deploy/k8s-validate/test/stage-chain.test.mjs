// The opt-in stage chain (stages.stageChain.enabled): one Deployment runs the check stages (`mailgate chain …`)
// instead of one each. Rendered over ci/netpol-values.yaml (default deny, in-chart Kafka and Redis), so its
// autoscaler, probes and every network path the four stages had are checked on the one chain pod.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { readServiceCatalog } from '../lib/contracts.mjs';
import { byKind, CHART, find, lint, template } from '../lib/helm.mjs';
import { validateManifest } from '../lib/k8s-schema.mjs';
import { evaluate } from '../lib/netpol.mjs';

const NS = 'mail';
const VALUES = [join(CHART, 'ci', 'netpol-values.yaml')];
const SET = { 'stages.stageChain.enabled': true };
const { services, stageChain: CHAIN } = readServiceCatalog();
const component = (d) => d.metadata?.labels?.['app.kubernetes.io/component'];

describe('stage chain (stages.stageChain.enabled)', () => {
  const r = template(VALUES, SET);
  test('renders, lints and matches the Kubernetes/KEDA schemas', async () => {
    assert.ok(r.ok, r.stderr);
    const l = lint(VALUES, SET);
    assert.ok(l.ok, l.output);
    assert.deepEqual((await Promise.all(r.docs.map(validateManifest))).flat(), []);
  });

  test('one chain Deployment replaces the stages it runs; the others are unchanged', () => {
    const deployments = byKind(r.docs, 'Deployment').map(component);
    for (const key of CHAIN.replaces) {
      const c = services[key].component;
      assert.ok(!deployments.includes(c), `${c} still has a Deployment`);
      assert.equal(find(r.docs, 'ScaledObject', `mg-mailgate-${c}`), undefined, `${c} still has a ScaledObject`);
      assert.equal(find(r.docs, 'NetworkPolicy', `mg-mailgate-${c}`), undefined, `${c} still has a NetworkPolicy`);
    }
    for (const c of ['ingress-smtp', 'delivery', 'admin', 'stage-chain']) assert.ok(deployments.includes(c), c);
  });

  test('the chain pod: `mailgate chain <stages>`, the first stage http port, probes, PDB, KEDA on its own group', () => {
    const d = find(r.docs, 'Deployment', 'mg-mailgate-stage-chain');
    const c = d.spec.template.spec.containers[0];
    assert.deepEqual(c.args, [
      'chain',
      'dnsbl-check,virus-scan,attachment-policy,spam-check',
      '--config',
      '/etc/mailgate/mailgate.yaml',
    ]);
    const config = parse(find(r.docs, 'ConfigMap', 'mg-mailgate-config').data['mailgate.yaml']);
    const http = c.ports.find((p) => p.name === 'http').containerPort;
    assert.equal(http, config[CHAIN.section].http.port);
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    assert.equal(c.livenessProbe.httpGet.path, '/healthz');
    assert.equal(d.spec.replicas, undefined, 'KEDA owns the replica count');
    assert.ok(find(r.docs, 'PodDisruptionBudget', 'mg-mailgate-stage-chain'));
    const so = find(r.docs, 'ScaledObject', 'mg-mailgate-stage-chain');
    const t = so.spec.triggers[0].metadata;
    assert.equal(t.consumerGroup, 'mailgate.chain.dnsbl-check..spam-check');
    assert.equal(t.topic, 'mailgate.inbound');
    assert.ok(so.spec.maxReplicaCount <= config.kafka.topics.partitions);
    // The chain's steps still read their own sections: the wiring of clamd and rspamd is in the document.
    assert.ok(config.virusScan.clamd.endpoints.length >= 1);
    assert.ok(config.spamCheck.rspamd.worker.host);
  });

  test('network: the chain pod reaches what its stages did (clamd, rspamd worker, DNS, Redis), nothing more', () => {
    let n = 10;
    const w = {};
    for (const d of [...byKind(r.docs, 'Deployment'), ...byKind(r.docs, 'StatefulSet')]) {
      const labels = d.spec.template.metadata.labels;
      w[labels['app.kubernetes.io/component']] = { name: component(d), namespace: NS, labels, ip: `10.244.0.${n++}` };
    }
    w.dns = { name: 'kube-dns', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' }, ip: '10.96.0.10' };
    w.prometheus = { name: 'prometheus', namespace: 'monitoring', labels: { app: 'prometheus' }, ip: '10.244.2.5' };
    w.elsewhere = { name: 'elsewhere', ip: '198.51.100.20' };
    const namespaces = { monitoring: { 'kubernetes.io/metadata.name': 'monitoring' } };
    const policies = byKind(r.docs, 'NetworkPolicy');
    assert.ok(find(r.docs, 'NetworkPolicy', 'mg-mailgate-stage-chain'), 'the chain pod has its own policy');
    const check = (from, to, port, protocol = 'TCP') =>
      evaluate(policies, { src: w[from], dst: w[to], port, protocol, ns: NS, namespaces }).allowed;
    for (const [from, to, port, proto] of [
      ['stage-chain', 'clamd', 3310],
      ['stage-chain', 'rspamd', 11333],
      ['stage-chain', 'redis', 6379],
      ['stage-chain', 'dns', 53, 'UDP'],
      ['prometheus', 'stage-chain', CHAIN.httpPort],
    ])
      assert.ok(check(from, to, port, proto), `${from} → ${to}:${port} should be allowed`);
    for (const [from, to, port] of [
      ['stage-chain', 'rspamd', 11334],
      ['stage-chain', 'elsewhere', 25],
      ['stage-chain', 'elsewhere', 443],
      ['delivery', 'clamd', 3310],
    ])
      assert.ok(!check(from, to, port), `${from} → ${to}:${port} should be denied`);
  });
});
