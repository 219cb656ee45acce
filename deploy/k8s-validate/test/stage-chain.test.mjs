// The opt-in stage chain (stages.stageChain.enabled): one Deployment runs the check stages (`mailgate chain …`)
// instead of one each. Rendered over ci/netpol-values.yaml (default deny, in-chart Kafka and Redis), so its
// autoscaler, probes and every network path the four stages had are checked on the one chain pod.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { readServiceCatalog } from '../lib/contracts.mjs';
import { byKind, CHART, find, lint, REPO, template } from '../lib/helm.mjs';
import { validateManifest } from '../lib/k8s-schema.mjs';
import { evaluate } from '../lib/netpol.mjs';

const NS = 'mail';
const VALUES = [join(CHART, 'ci', 'netpol-values.yaml')];
const SET = { 'stages.stageChain.enabled': true };
const { services, stageChain: CHAIN } = readServiceCatalog();
const component = (d) => d.metadata?.labels?.['app.kubernetes.io/component'];

/**
 * The rendered pods (by component, one address each), cluster DNS, Prometheus, the SMTP next hop of
 * ci/netpol-values.yaml (networkPolicy.egress.smtpDestinations.to = 10.40.0.10/32, ports [25]) and an address
 * elsewhere; `check(from, to, port)` says whether the chart's NetworkPolicies let `from` reach `to` there.
 */
function network(docs) {
  let n = 10;
  const w = {};
  for (const d of [...byKind(docs, 'Deployment'), ...byKind(docs, 'StatefulSet')]) {
    const labels = d.spec.template.metadata.labels;
    w[labels['app.kubernetes.io/component']] = { name: component(d), namespace: NS, labels, ip: `10.244.0.${n++}` };
  }
  w.dns = { name: 'kube-dns', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' }, ip: '10.96.0.10' };
  w.prometheus = { name: 'prometheus', namespace: 'monitoring', labels: { app: 'prometheus' }, ip: '10.244.2.5' };
  w.nextHop = { name: 'next-hop', ip: '10.40.0.10' };
  w.elsewhere = { name: 'elsewhere', ip: '198.51.100.20' };
  const namespaces = { monitoring: { 'kubernetes.io/metadata.name': 'monitoring' } };
  const policies = byKind(docs, 'NetworkPolicy');
  return {
    check: (from, to, port, protocol = 'TCP') =>
      evaluate(policies, { src: w[from], dst: w[to], port, protocol, ns: NS, namespaces }).allowed,
  };
}

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
    const { check } = network(r.docs);
    assert.ok(find(r.docs, 'NetworkPolicy', 'mg-mailgate-stage-chain'), 'the chain pod has its own policy');
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

// The chain that ends in delivery (stages.stageChain.includeDelivery): delivery and its retry worker run in the chain
// pods; delivery's own objects are not rendered, what delivery needs is (config, Redis, DKIM keys, SMTP egress).
describe('stage chain ending in delivery (stages.stageChain.includeDelivery)', () => {
  const DELIVERY_SET = { ...SET, 'stages.stageChain.includeDelivery': true };
  const { stageChainWithDelivery: WITH } = readServiceCatalog();
  const r = template(VALUES, DELIVERY_SET);
  const DKIM = {
    ...DELIVERY_SET,
    'stages.delivery.dkimSigning': {
      enabled: true,
      existingSecret: 'mailgate-dkim',
      domains: [{ domain: 'example.net', keys: [{ selector: 'mg2026', secretKey: 'mg2026.pem' }] }],
    },
  };

  test('renders, lints and matches the Kubernetes/KEDA schemas (with DKIM signing too)', async () => {
    assert.ok(r.ok, r.stderr);
    for (const set of [DELIVERY_SET, DKIM]) {
      const l = lint(VALUES, set);
      assert.ok(l.ok, l.output);
    }
    assert.deepEqual((await Promise.all(r.docs.map(validateManifest))).flat(), []);
  });

  test('no delivery Deployment, Service, PDB, ScaledObject or NetworkPolicy; the chain and the rest are there', () => {
    assert.deepEqual(WITH.replaces, [...CHAIN.replaces, 'delivery']);
    for (const kind of [
      'Deployment',
      'Service',
      'PodDisruptionBudget',
      'ScaledObject',
      'NetworkPolicy',
      'HorizontalPodAutoscaler',
    ])
      assert.deepEqual(
        r.docs.filter((d) => d.kind === kind && component(d) === 'delivery').map((d) => d.metadata.name),
        [],
        `no ${kind} of delivery`,
      );
    const deployments = byKind(r.docs, 'Deployment').map(component).sort();
    assert.deepEqual(deployments, ['admin', 'clamd', 'ingress-smtp', 'rspamd', 'stage-chain']);
    // Delivery's retry store.
    assert.ok(byKind(r.docs, 'StatefulSet').some((s) => component(s) === 'redis'));
    // The topic delivery's step consumes (and DSNs go to) is still created.
    assert.ok(find(r.docs, 'KafkaTopic', 'mg-mailgate-deliverable'));
  });

  test('the chain pod: `mailgate chain <checks>,delivery`, KEDA on the chain group, delivery’s grace period', () => {
    const d = find(r.docs, 'Deployment', 'mg-mailgate-stage-chain');
    const c = d.spec.template.spec.containers[0];
    assert.deepEqual(c.args, [
      'chain',
      'dnsbl-check,virus-scan,attachment-policy,spam-check,delivery',
      '--config',
      '/etc/mailgate/mailgate.yaml',
    ]);
    assert.equal(c.args[1], WITH.args[0]);
    const config = parse(find(r.docs, 'ConfigMap', 'mg-mailgate-config').data['mailgate.yaml']);
    assert.equal(c.ports.find((p) => p.name === 'http').containerPort, config[WITH.section].http.port);
    // Health and metrics of every step, delivery's included, on the chain's Service.
    const svc = find(r.docs, 'Service', 'mg-mailgate-stage-chain');
    assert.deepEqual(
      svc.spec.ports.map((p) => [p.name, p.port]),
      [['http', WITH.httpPort]],
    );
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    const t = find(r.docs, 'ScaledObject', 'mg-mailgate-stage-chain').spec.triggers[0].metadata;
    assert.equal(t.consumerGroup, 'mailgate.chain.dnsbl-check..delivery');
    assert.equal(t.consumerGroup, WITH.consumerGroup);
    assert.equal(t.topic, 'mailgate.inbound');
    // A remote SMTP transaction may take minutes: the chain gets delivery's longer grace period, and the process's
    // own shutdown limit follows it.
    const values = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8'));
    const grace = Math.max(
      values.stages.stageChain.terminationGracePeriodSeconds,
      values.stages.delivery.terminationGracePeriodSeconds,
    );
    assert.equal(d.spec.template.spec.terminationGracePeriodSeconds, grace);
    assert.equal(
      c.env.find((e) => e.name === 'MAILGATE__GATEWAY__SHUTDOWN_TIMEOUT_MS').value,
      String((grace - 5) * 1000),
    );
    // Delivery's configuration and Redis are in the document the chain reads.
    assert.ok(config.delivery, 'the delivery section');
    assert.match(config.redis.url, /^redis:\/\/mg-mailgate-redis:6379$/);
  });

  test("the container's command line is one the real CLI takes: `mailgate chain` loads every step, delivery included", () => {
    const c = find(r.docs, 'Deployment', 'mg-mailgate-stage-chain').spec.template.spec.containers[0];
    assert.equal(c.args[0], 'chain');
    // What `mailgate chain <list>` does before it starts: parse the list and load each step's service (no start).
    const code =
      "import { loadChainService } from './packages/cli/src/chain.ts';" +
      'const d = await loadChainService(process.argv[1]);' +
      'console.log(JSON.stringify(Object.keys(d.sections)));';
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', '--conditions=mailgate-src', '--input-type=module', '-e', code, c.args[1]],
      { cwd: REPO, encoding: 'utf8' },
    );
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout.trim().split('\n').at(-1)), [
      'dnsbl',
      'virusScan',
      'attachmentPolicy',
      'spamCheck',
      'delivery',
    ]);
  });

  test('DKIM signing keys are mounted in the chain pods (delivery has none)', () => {
    const k = template(VALUES, DKIM);
    assert.ok(k.ok, k.stderr);
    const spec = find(k.docs, 'Deployment', 'mg-mailgate-stage-chain').spec.template.spec;
    assert.deepEqual(spec.volumes.find((v) => v.name === 'dkim-keys')?.secret, {
      secretName: 'mailgate-dkim',
      defaultMode: 256,
    });
    assert.equal(spec.containers[0].volumeMounts.find((m) => m.name === 'dkim-keys')?.mountPath, '/etc/mailgate/dkim');
    const config = parse(find(k.docs, 'ConfigMap', 'mg-mailgate-config').data['mailgate.yaml']);
    assert.equal(config.senderAuth.signing.domains[0].keys[0].keyFile, '/etc/mailgate/dkim/mg2026.pem');
    // Without includeDelivery the keys stay with delivery, not the check-stage chain.
    const split = template(VALUES, { ...DKIM, 'stages.stageChain.includeDelivery': false });
    assert.ok(split.ok, split.stderr);
    const volumes = (name) => find(split.docs, 'Deployment', name).spec.template.spec.volumes.map((v) => v.name);
    assert.ok(volumes('mg-mailgate-delivery').includes('dkim-keys'));
    assert.ok(!volumes('mg-mailgate-stage-chain').includes('dkim-keys'));
  });

  test('network: the chain pod reaches the next hops on port 25 as delivery did, and its checks’ peers', () => {
    const { check } = network(r.docs);
    for (const [from, to, port, proto] of [
      ['stage-chain', 'nextHop', 25],
      ['stage-chain', 'clamd', 3310],
      ['stage-chain', 'rspamd', 11333],
      ['stage-chain', 'redis', 6379],
      ['stage-chain', 'dns', 53, 'UDP'],
      ['prometheus', 'stage-chain', WITH.httpPort],
    ])
      assert.ok(check(from, to, port, proto), `${from} → ${to}:${port} should be allowed`);
    for (const [from, to, port] of [
      ['stage-chain', 'nextHop', 587],
      ['stage-chain', 'elsewhere', 25],
      ['stage-chain', 'rspamd', 11334],
      ['ingress-smtp', 'nextHop', 25],
      ['admin', 'nextHop', 25],
    ])
      assert.ok(!check(from, to, port), `${from} → ${to}:${port} should be denied`);
    // The check-stage chain (default) has no way out on port 25.
    const plain = template(VALUES, SET);
    assert.ok(
      !network(plain.docs).check('stage-chain', 'nextHop', 25),
      'without includeDelivery the chain does not send mail',
    );
  });

  test('refused: includeDelivery without the chain, or with delivery disabled', () => {
    const noChain = template(VALUES, { 'stages.stageChain.includeDelivery': true });
    assert.equal(noChain.ok, false);
    assert.match(noChain.stderr, /stages\.stageChain\.includeDelivery .*needs stages\.stageChain\.enabled=true/);
    const noDelivery = template(VALUES, { ...DELIVERY_SET, 'stages.delivery.enabled': false });
    assert.equal(noDelivery.ok, false);
    assert.match(noDelivery.stderr, /stages\.stageChain\.includeDelivery: stages\.delivery\.enabled is false/);
  });
});
