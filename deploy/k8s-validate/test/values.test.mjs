// Bad values never reach a cluster: values.schema.json (enforced by helm itself) rejects unknown keys and wrong
// types, and the chart's `fail` checks reject combinations that would lose mail, hide the client IP or scale past
// the partitions. Each case must fail with a message that names the offending key.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { CHART, find, REPO, template } from '../lib/helm.mjs';

const BASE = [join(CHART, 'ci', 'external-values.yaml')];

/** [description, --set-json overrides, pattern the error must match] */
const REJECTED = [
  ['an unknown top-level key', { replicaCount: 3 }, /Additional property replicaCount is not allowed/],
  [
    'a typo in a stage key',
    { 'stages.virusScan.replica': 2 },
    /stages\.virusScan: Additional property replica is not allowed/,
  ],
  ['an unknown stage', { 'stages.spamFilter': { enabled: true } }, /stages: Additional property spamFilter/],
  ['replicas as a string', { 'stages.dnsblCheck.replicas': '2' }, /stages\.dnsblCheck\.replicas: Invalid type/],
  [
    'lagThreshold as a number (KEDA wants a string)',
    { 'stages.delivery.autoscaling.lagThreshold': 50 },
    /stages\.delivery\.autoscaling\.lagThreshold: Invalid type/,
  ],
  ['a negative port', { 'stages.ingressSmtp.service.ports.smtp': -25 }, /stages\.ingressSmtp\.service\.ports\.smtp/],
  [
    'a privileged container port',
    { 'stages.ingressSmtp.containerPorts.smtp': 25 },
    /stages\.ingressSmtp\.containerPorts\.smtp: Must be greater than or equal to 1024/,
  ],
  [
    'an unknown traffic policy',
    { 'stages.ingressSmtp.service.externalTrafficPolicy': 'Nearest' },
    /stages\.ingressSmtp\.service\.externalTrafficPolicy/,
  ],
  [
    'PROXY protocol without trusted CIDRs',
    { 'stages.ingressSmtp.proxyProtocol.enabled': true },
    /stages\.ingressSmtp\.proxyProtocol\.trustedCidrs/,
  ],
  [
    'externalTrafficPolicy Cluster without PROXY (client IP lost)',
    { 'stages.ingressSmtp.service.externalTrafficPolicy': 'Cluster' },
    /externalTrafficPolicy=Cluster hides the client IP/,
  ],
  [
    'a stage max above the topic partitions',
    { 'stages.virusScan.autoscaling.maxReplicaCount': 30 },
    /stages\.virusScan\.autoscaling\.maxReplicaCount \(30\) exceeds kafka\.topics\.partitions \(24\)/,
  ],
  [
    'a grace period shorter than the SMTP drain',
    { 'stages.ingressSmtp.terminationGracePeriodSeconds': 30 },
    /terminationGracePeriodSeconds \(30\) must cover/,
  ],
  [
    'Kafka brokers set inside config (owned by kafka.*)',
    { 'config.kafka.brokers': ['x:9092'] },
    /config\.kafka\.brokers: False always fails/,
  ],
  [
    'an http port set inside config (owned by the chart)',
    { 'config.delivery.http': { port: 8080 } },
    /config\.delivery\.http\.port: False always fails/,
  ],
  ['an unknown config section', { 'config.antispam': {} }, /config: Additional property antispam is not allowed/],
  [
    'SMTP listeners set inside config (owned by the chart)',
    { 'config.ingress.listeners': {} },
    /config\.ingress\.listeners: False always fails/,
  ],
  [
    'SMTP AUTH without TLS',
    { 'stages.ingressSmtp.tls.enabled': false },
    /stages\.ingressSmtp\.auth needs the submission listener/,
  ],
  [
    'an AUTH user with a clear-text password instead of a hash',
    { 'stages.ingressSmtp.auth.users': { bob: 'hunter2' } },
    /stages\.ingressSmtp\.auth\.users\.bob: Does not match pattern/,
  ],
  [
    'a broker without a port',
    { 'kafka.external.brokers': ['kafka.example'] },
    /kafka\.external\.brokers\.0: Does not match pattern/,
  ],
  ['SASL without a username', { 'kafka.sasl.username': '' }, /kafka\.sasl\.username: String length/],
  ['an unknown SASL mechanism', { 'kafka.sasl.mechanism': 'gssapi' }, /kafka\.sasl\.mechanism/],
  ['admin Ingress without host', { 'stages.admin.ingress.enabled': true }, /stages\.admin\.ingress\.host/],
  ['a wrong image digest', { 'image.digest': 'latest' }, /image\.digest: Does not match pattern/],
  ['an admin token without value or Secret', { 'stages.admin.tokens': [{ name: 'ops' }] }, /stages\.admin\.tokens\.0/],
  ['a short admin token', { 'stages.admin.tokens': [{ name: 'ops', value: 'short' }] }, /stages\.admin\.tokens\.0/],
  ['admin tokens inside config (owned by the chart)', { 'config.admin.tokens': [] }, /config\.admin\.tokens: False/],
  [
    'an LDAP URL that is not ldap:// or ldaps://',
    { 'stages.ingressSmtp.recipients.ldap.urls': ['https://dc1.corp.example.com'] },
    /stages\.ingressSmtp\.recipients\.ldap\.urls\.0/,
  ],
  [
    'LDAP enabled without URLs',
    { 'stages.ingressSmtp.recipients.ldap.urls': [] },
    /stages\.ingressSmtp\.recipients\.ldap\.urls: Array must have at least 1 items/,
  ],
  [
    'an LDAP bind DN without a password Secret',
    { 'stages.ingressSmtp.recipients.ldap.existingSecret': '' },
    /recipients\.ldap: bindDn needs existingSecret/,
  ],
  ['LDAP egress without directory peers', { 'networkPolicy.egress.ldap.to': [] }, /networkPolicy\.egress\.ldap\.to/],
];

describe('values the chart refuses', () => {
  test('the base values render', () => {
    const r = template(BASE);
    assert.ok(r.ok, r.stderr);
  });

  for (const [what, set, pattern] of REJECTED) {
    test(`rejects ${what}`, () => {
      const r = template(BASE, set);
      assert.equal(r.ok, false, `rendered although ${what}`);
      assert.match(r.stderr, pattern);
    });
  }

  test('the default values alone fail with a clear message (Kafka and Redis must be chosen)', () => {
    const r = template([]);
    assert.equal(r.ok, false);
    assert.match(r.stderr, /kafka\.external\.brokers/);
  });
});

describe('values the chart accepts', () => {
  test('service config sections are free-form and reach the ConfigMap as written', () => {
    const r = template(BASE, {
      'config.ingress': { acceptedDomains: ['example.com'], maxMessageBytes: 52428800 },
      'config.dnsbl': { zones: [{ zone: 'zen.spamhaus.org', action: 'reject' }] },
    });
    assert.ok(r.ok, r.stderr);
    const cfg = parse(find(r.docs, 'ConfigMap', 'mg-mailgate-config').data['mailgate.yaml']);
    assert.deepEqual(cfg.ingress.acceptedDomains, ['example.com']);
    assert.equal(cfg.ingress.maxMessageBytes, 52428800);
    assert.equal(cfg.ingress.http.port, 9101);
    assert.equal(cfg.dnsbl.zones[0].zone, 'zen.spamhaus.org');
  });

  test('PROXY v1 with trusted CIDRs and Cluster policy renders and configures ingress', () => {
    const r = template(BASE, {
      'stages.ingressSmtp.service.externalTrafficPolicy': 'Cluster',
      'stages.ingressSmtp.proxyProtocol': { enabled: true, trustedCidrs: ['192.0.2.0/24'] },
    });
    assert.ok(r.ok, r.stderr);
    const cfg = parse(find(r.docs, 'ConfigMap', 'mg-mailgate-config').data['mailgate.yaml']);
    assert.deepEqual(cfg.ingress.proxy.trusted, ['192.0.2.0/24']);
  });

  test('a PDB can switch from maxUnavailable to minAvailable', () => {
    const r = template(BASE, { 'defaults.pdb.minAvailable': '50%' });
    assert.ok(r.ok, r.stderr);
    const pdb = find(r.docs, 'PodDisruptionBudget', 'mg-mailgate-delivery');
    assert.equal(pdb.spec.minAvailable, '50%');
    assert.equal(pdb.spec.maxUnavailable, undefined);
  });

  test('values.schema.json is generated from gen-schema.mjs and up to date', () => {
    execFileSync(process.execPath, [join(REPO, 'deploy', 'k8s-validate', 'gen-schema.mjs'), '--check'], {
      stdio: 'pipe',
    });
  });
});
