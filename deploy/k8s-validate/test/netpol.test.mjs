// The chart's NetworkPolicy set under networkPolicy.defaultDeny (helm/mailgate/ci/netpol-values.yaml), checked
// flow by flow with lib/netpol.mjs: the Internet reaches only SMTP, stages reach only Kafka/Redis/DNS/collector
// (virus-scan also clamd, spam-check rspamd's worker, admin rspamd's controller, delivery its next hops), admin only from the ingress controller and the operators'
// CIDR, and a foreign pod in the namespace gets nothing.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { httpPorts } from '../lib/contracts.mjs';
import { byKind, CHART, template } from '../lib/helm.mjs';
import { evaluate } from '../lib/netpol.mjs';

const NS = 'mail';
const VALUES = join(CHART, 'ci', 'netpol-values.yaml');
// component -> http port, from the SERVICES table (helm/mailgate/generated/services.yaml).
const HTTP = httpPorts();
const STAGES = Object.keys(HTTP);

/** Every workload the chart renders as a pod endpoint, plus the outside world. */
function world(docs) {
  let n = 10;
  const pods = {};
  for (const d of [...byKind(docs, 'Deployment'), ...byKind(docs, 'StatefulSet')]) {
    const labels = d.spec.template.metadata.labels;
    const name = labels['app.kubernetes.io/component'];
    pods[name] = { name, namespace: NS, labels, ip: `10.244.0.${n++}` };
  }
  const kafka = byKind(docs, 'Kafka')[0];
  if (kafka) {
    pods.kafka = {
      name: 'kafka',
      namespace: NS,
      labels: { 'strimzi.io/cluster': kafka.metadata.name, 'strimzi.io/kind': 'Kafka' },
      ip: '10.244.0.90',
    };
  }
  return {
    ...pods,
    other: { name: 'other', namespace: NS, labels: { app: 'something-else' }, ip: '10.244.0.99' },
    nginx: {
      name: 'nginx',
      namespace: 'ingress-nginx',
      labels: { 'app.kubernetes.io/name': 'ingress-nginx' },
      ip: '10.244.1.5',
    },
    prometheus: { name: 'prometheus', namespace: 'monitoring', labels: { app: 'prometheus' }, ip: '10.244.2.5' },
    dns: { name: 'kube-dns', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' }, ip: '10.96.0.10' },
    otel: { name: 'otel', namespace: 'observability', labels: { app: 'otel-collector' }, ip: '10.244.3.5' },
    internet: { name: 'internet', ip: '203.0.113.5' },
    internet6: { name: 'internet6', ip: '2001:db8::5' },
    operator: { name: 'operator', ip: '10.8.1.2' },
    nextHop: { name: 'next-hop', ip: '10.40.0.10' },
    elsewhere: { name: 'elsewhere', ip: '198.51.100.20' },
  };
}

/**
 * The ingress policy the Strimzi operator generates for a Kafka cluster (not rendered by helm): each listener's
 * port from its networkPolicyPeers, the control-plane and replication ports (9090, 9091) from the cluster's own pods.
 */
function strimziGenerated(kafka) {
  if (!kafka) return [];
  const own = { podSelector: { matchLabels: { 'strimzi.io/cluster': kafka.metadata.name } } };
  return [
    {
      kind: 'NetworkPolicy',
      metadata: { name: `${kafka.metadata.name}-network-policy-kafka` },
      spec: {
        podSelector: { matchLabels: { 'strimzi.io/cluster': kafka.metadata.name, 'strimzi.io/kind': 'Kafka' } },
        policyTypes: ['Ingress'],
        ingress: [
          { from: [own], ports: [{ port: 9090 }, { port: 9091 }] },
          ...kafka.spec.kafka.listeners.map((l) => ({
            ...(l.networkPolicyPeers ? { from: l.networkPolicyPeers } : {}),
            ports: [{ port: l.port }],
          })),
        ],
      },
    },
  ];
}

function flows(docs) {
  const w = world(docs);
  const policies = [...byKind(docs, 'NetworkPolicy'), ...strimziGenerated(byKind(docs, 'Kafka')[0])];
  const check = (from, to, port, protocol = 'TCP') =>
    evaluate(policies, { src: w[from], dst: w[to], port, protocol, ns: NS });
  return { w, policies, check };
}

describe('NetworkPolicy set with networkPolicy.defaultDeny', () => {
  const r = template([VALUES]);
  test('renders', () => assert.ok(r.ok, r.stderr));
  const { w, policies, check } = flows(r.docs);

  test('a namespace-wide default deny for ingress and egress is rendered', () => {
    const deny = policies.find((p) => p.metadata.name === 'mg-mailgate-default-deny');
    assert.ok(deny);
    assert.deepEqual(deny.spec.podSelector, {});
    assert.deepEqual([...deny.spec.policyTypes].sort(), ['Egress', 'Ingress']);
    assert.equal(deny.spec.ingress, undefined);
    assert.equal(deny.spec.egress, undefined);
    for (const s of [...STAGES, 'clamd', 'rspamd', 'redis', 'kafka']) assert.ok(w[s], `${s} pod in the rendered world`);
  });

  const allowed = [
    ['internet', 'ingress-smtp', 2525],
    ['internet6', 'ingress-smtp', 2525],
    ['internet', 'ingress-smtp', 2587],
    ['nginx', 'admin', 9106],
    ['operator', 'admin', 9106],
    ['virus-scan', 'clamd', 3310],
    ['delivery', 'nextHop', 25],
    ['clamd', 'elsewhere', 443], // freshclam
    ['spam-check', 'rspamd', 11333], // /checkv2
    ['admin', 'rspamd', 11334], // learn_ham / learn_spam, statistics
    ['rspamd', 'redis', 6379], // Bayes
    ['rspamd', 'dns', 53, 'UDP'],
    ['rspamd', 'elsewhere', 53, 'UDP'], // DNS lists
    ['rspamd', 'elsewhere', 443], // maps
    ['rspamd', 'elsewhere', 11335, 'UDP'], // fuzzy hashes
    ['kafka', 'kafka', 9091], // brokers/controllers among themselves
    ['kafka', 'dns', 53, 'UDP'],
    ...STAGES.flatMap((s) => [
      [s, 'kafka', 9092],
      [s, 'redis', 6379],
      [s, 'dns', 53, 'UDP'],
      [s, 'otel', 4318],
      ['prometheus', s, HTTP[s]],
    ]),
  ];
  const denied = [
    ['internet', 'admin', 9106],
    ['internet', 'dnsbl-check', 9102],
    ['internet', 'ingress-smtp', 9101],
    ['internet', 'redis', 6379],
    ['internet', 'clamd', 3310],
    ['internet', 'other', 8080],
    ['operator', 'dnsbl-check', 9102],
    ['nginx', 'ingress-smtp', 9101],
    ['delivery', 'clamd', 3310],
    ['ingress-smtp', 'clamd', 3310],
    ['admin', 'clamd', 3310],
    ['delivery', 'rspamd', 11333],
    ['ingress-smtp', 'rspamd', 11333],
    ['spam-check', 'rspamd', 11334], // the stage never learns: only admin reaches the controller
    ['admin', 'rspamd', 11333],
    ['internet', 'rspamd', 11334],
    ['other', 'rspamd', 11334],
    ['rspamd', 'kafka', 9092],
    ['rspamd', 'elsewhere', 25],
    ['ingress-smtp', 'elsewhere', 25], // only delivery sends mail out, and only to its next hops
    ['delivery', 'elsewhere', 25],
    ['dnsbl-check', 'elsewhere', 443],
    ['other', 'redis', 6379],
    ['other', 'ingress-smtp', 2525],
    ['other', 'elsewhere', 443],
    ['dnsbl-check', 'other', 8080],
    ['redis', 'elsewhere', 443],
    ['kafka', 'elsewhere', 9092],
  ];
  for (const [from, to, port, proto] of allowed) {
    test(`allowed: ${from} → ${to}:${port}${proto ? `/${proto}` : ''}`, () => {
      const v = check(from, to, port, proto);
      assert.ok(v.allowed, v.reason);
    });
  }
  for (const [from, to, port, proto] of denied) {
    test(`denied: ${from} → ${to}:${port}${proto ? `/${proto}` : ''}`, () => {
      assert.equal(check(from, to, port, proto).allowed, false);
    });
  }
});

describe('NetworkPolicy options', () => {
  test('without defaultDeny (the default) pods the chart does not manage stay open, ingress rules still apply', () => {
    const r = template([join(CHART, 'ci', 'strimzi-values.yaml')]);
    assert.ok(r.ok, r.stderr);
    const { policies, check } = flows(r.docs);
    assert.ok(!policies.some((p) => p.metadata.name === 'mg-mailgate-default-deny'));
    assert.ok(check('internet', 'other', 8080).allowed);
    assert.equal(check('internet', 'admin', 9106).allowed, false);
    assert.equal(check('delivery', 'clamd', 3310).allowed, false);
  });

  test('defaultDeny without networkPolicy.enabled is refused', () => {
    const r = template([VALUES], { 'networkPolicy.enabled': false });
    assert.equal(r.ok, false);
    assert.match(r.stderr, /defaultDeny\.enabled needs networkPolicy\.enabled/);
  });

  test('defaultDeny with an external Kafka but no Kafka egress peers is refused', () => {
    const r = template([VALUES], {
      'kafka.strimzi.enabled': false,
      'kafka.external.brokers': ['b-1.kafka.example:9092'],
    });
    assert.equal(r.ok, false);
    assert.match(r.stderr, /networkPolicy\.egress\.kafka\.to/);
  });

  test('adminCidrs must be CIDRs (values schema)', () => {
    const r = template([VALUES], { 'networkPolicy.adminCidrs': ['not-a-cidr'] });
    assert.equal(r.ok, false);
  });
});
