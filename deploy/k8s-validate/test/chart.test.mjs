// The Helm chart, rendered by the real helm for every helm/mailgate/ci/*-values.yaml: lint, Kubernetes schemas,
// and the properties the gateway's promises rest on (client IP kept, no stage without PDB/probes, KEDA on the right
// group and topic, no HPA fighting a ScaledObject).
import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { readServiceCatalog, readStageGraph } from '../lib/contracts.mjs';
import { byKind, CI_VALUES, find, lint, template } from '../lib/helm.mjs';
import { validateManifest } from '../lib/k8s-schema.mjs';

// The services as the SERVICES table declares them (helm/mailgate/generated/services.yaml, written by npm run gen).
const CATALOG = Object.values(readServiceCatalog().services);
const STAGES = CATALOG.map((s) => s.component);
const CONSUMERS = CATALOG.filter((s) => s.kind === 'consumer').map((s) => s.component);
const SECTIONS = Object.fromEntries(CATALOG.map((s) => [s.component, s.section]));
// packages/runtime/src/config.ts: COMMON_SECTIONS + SERVICE_SECTIONS (the loader rejects any other top-level key).
const KNOWN_SECTIONS = new Set([
  'gateway',
  'kafka',
  'redis',
  'logging',
  'telemetry',
  'bus',
  'ingress',
  'dnsbl',
  'senderAuth',
  'virusScan',
  'attachmentPolicy',
  'spamCheck',
  'delivery',
  'admin',
  'dev',
]);
const SIXTY_FOUR_MIB = 64 * 1024 * 1024;

const component = (d) => d.metadata?.labels?.['app.kubernetes.io/component'];
const podLabels = (deploy) => deploy.spec.template.metadata.labels;
const matches = (selector, labels) => Object.entries(selector).every(([k, v]) => labels[k] === v);
const mailgateDeployments = (docs) => byKind(docs, 'Deployment').filter((d) => STAGES.includes(component(d)));
const configOf = (docs) => parse(find(docs, 'ConfigMap', 'mg-mailgate-config').data['mailgate.yaml']);

const renders = new Map();
function rendered(file) {
  if (!renders.has(file)) {
    const r = template([file]);
    assert.ok(r.ok, `helm template -f ${basename(file)} failed:\n${r.stderr}`);
    renders.set(file, r.docs);
  }
  return renders.get(file);
}

test('there are CI values files to validate', () => {
  assert.ok(CI_VALUES.length >= 3, `found ${CI_VALUES.map((f) => basename(f))}`);
});

for (const file of CI_VALUES) {
  const name = basename(file);
  describe(`chart with ci/${name}`, () => {
    test('helm lint --strict passes', () => {
      const r = lint([file]);
      assert.ok(r.ok, r.output);
    });

    test('every rendered manifest matches its Kubernetes/KEDA schema', async () => {
      const docs = rendered(file);
      assert.ok(docs.length > 10);
      const errors = (await Promise.all(docs.map(validateManifest))).flat();
      assert.deepEqual(errors, []);
      const ids = docs.map((d) => `${d.kind}/${d.metadata.name}`);
      assert.equal(new Set(ids).size, ids.length, 'two objects share kind and name');
    });

    test('the config document is valid YAML with only known sections and the http ports the pods expose', () => {
      const docs = rendered(file);
      const config = configOf(docs);
      for (const key of Object.keys(config)) assert.ok(KNOWN_SECTIONS.has(key), `unknown config section ${key}`);
      assert.ok(config.kafka.brokers.length >= 1);
      for (const d of mailgateDeployments(docs)) {
        const c = d.spec.template.spec.containers[0];
        const http = c.ports.find((p) => p.name === 'http');
        assert.equal(config[SECTIONS[component(d)]].http.port, http.containerPort, `${component(d)} http port`);
      }
      // Secrets never land in the ConfigMap: they come from Secrets as env overrides.
      assert.equal(config.kafka.sasl?.password, undefined);
      assert.ok(!(config.redis?.url ?? '').includes('@'), 'no credentials in redis.url');
    });

    test('every stage: probes on /healthz and /readyz, resources, non-root, PDB and topology spread', () => {
      const docs = rendered(file);
      const deployments = mailgateDeployments(docs);
      assert.ok(deployments.length >= 5);
      const pdbs = byKind(docs, 'PodDisruptionBudget');
      for (const d of deployments) {
        const who = component(d);
        const spec = d.spec.template.spec;
        const c = spec.containers[0];
        assert.deepEqual(c.args.slice(0, 3), [who, '--config', '/etc/mailgate/mailgate.yaml'], `${who} args`);
        assert.equal(c.livenessProbe.httpGet.path, '/healthz', `${who} liveness`);
        assert.equal(c.startupProbe.httpGet.path, '/healthz', `${who} startup`);
        assert.equal(c.readinessProbe.httpGet.path, '/readyz', `${who} readiness`);
        for (const p of [c.livenessProbe, c.readinessProbe, c.startupProbe]) assert.equal(p.httpGet.port, 'http');
        assert.ok(c.resources?.requests?.memory && c.resources?.limits?.memory, `${who} memory request+limit`);
        assert.equal(spec.securityContext.runAsNonRoot, true, `${who} non-root`);
        assert.equal(c.securityContext.allowPrivilegeEscalation, false);
        assert.ok(c.env.some((e) => e.name === 'POD_NAME' && e.valueFrom.fieldRef.fieldPath === 'metadata.name'));
        assert.equal(d.spec.strategy.rollingUpdate.maxUnavailable, 0, `${who} rolls without losing capacity`);
        const pdb = pdbs.find((p) => matches(p.spec.selector.matchLabels, podLabels(d)));
        assert.ok(pdb, `${who} has no PodDisruptionBudget`);
        assert.ok(spec.topologySpreadConstraints?.length >= 1, `${who} topology spread`);
        for (const t of spec.topologySpreadConstraints)
          assert.ok(matches(t.labelSelector.matchLabels, podLabels(d)), `${who} spread selector matches its pods`);
        assert.ok(d.spec.template.metadata.annotations['checksum/config'], `${who} restarts on config change`);
      }
    });

    test('each Deployment has at most one autoscaler, which owns its replica count', () => {
      const docs = rendered(file);
      const hpas = byKind(docs, 'HorizontalPodAutoscaler');
      const scaled = byKind(docs, 'ScaledObject');
      const targets = [...hpas, ...scaled].map((o) => o.spec.scaleTargetRef.name);
      assert.equal(new Set(targets).size, targets.length, `an HPA duplicates a ScaledObject: ${targets}`);
      for (const t of targets) assert.ok(find(docs, 'Deployment', t), `autoscaler targets missing Deployment ${t}`);
      for (const d of byKind(docs, 'Deployment')) {
        if (targets.includes(d.metadata.name)) assert.equal(d.spec.replicas, undefined, `${d.metadata.name} replicas`);
        else assert.ok(Number.isInteger(d.spec.replicas), `${d.metadata.name} fixed replicas`);
      }
      // ingress-smtp has no lag: only CPU (HPA), as rspamd (it serves spam-check). Pipeline stages: only lag (KEDA).
      for (const h of hpas) assert.ok(['ingress-smtp', 'rspamd'].includes(component(h)), `${component(h)} HPA`);
      for (const s of scaled) assert.ok(CONSUMERS.includes(component(s)), `${component(s)} scaled by KEDA`);
    });

    test('KEDA ScaledObjects read the stage consumer group on its input topic, within the partitions', () => {
      const docs = rendered(file);
      const { graph } = readStageGraph();
      const config = configOf(docs);
      for (const so of byKind(docs, 'ScaledObject')) {
        const stage = component(so);
        const [trigger, ...rest] = so.spec.triggers;
        assert.equal(rest.length, 0);
        assert.equal(trigger.type, 'kafka');
        assert.equal(trigger.metadata.consumerGroup, graph[stage].group, `${stage} consumer group`);
        assert.equal(trigger.metadata.topic, graph[stage].consumes, `${stage} topic`);
        assert.equal(trigger.metadata.bootstrapServers, config.kafka.brokers.join(','));
        assert.match(trigger.metadata.lagThreshold, /^[0-9]+$/);
        assert.ok(so.spec.maxReplicaCount <= config.kafka.topics.partitions, `${stage} max > partitions`);
        assert.ok(so.spec.minReplicaCount <= so.spec.maxReplicaCount);
        if (config.kafka.sasl || config.kafka.ssl) {
          const auth = find(docs, 'TriggerAuthentication', trigger.authenticationRef?.name);
          assert.ok(auth, `${stage}: KEDA needs credentials for a SASL/TLS Kafka`);
        }
      }
    });

    test('Services select pods that expose the target ports', () => {
      const docs = rendered(file);
      for (const svc of byKind(docs, 'Service')) {
        const pods = [...byKind(docs, 'Deployment'), ...byKind(docs, 'StatefulSet')].filter((w) =>
          matches(svc.spec.selector, podLabels(w)),
        );
        assert.equal(pods.length, 1, `Service ${svc.metadata.name} selects ${pods.length} workloads`);
        const names = pods[0].spec.template.spec.containers.flatMap((c) => c.ports.map((p) => p.name));
        for (const p of svc.spec.ports)
          assert.ok(names.includes(p.targetPort), `${svc.metadata.name} → ${p.targetPort}`);
      }
    });

    test('the SMTP LoadBalancer publishes 25 and 587 and keeps the client IP', () => {
      const docs = rendered(file);
      const svc = find(docs, 'Service', 'mg-mailgate-smtp');
      assert.ok(svc);
      const port = (n) => svc.spec.ports.find((p) => p.name === n);
      const config = configOf(docs);
      const { listeners } = config.ingress;
      assert.equal(port('smtp').port, 25);
      // 587 only where the submission listener runs (it needs STARTTLS: AUTH is never offered in clear).
      assert.equal(Boolean(port('submission')), listeners.submission.enabled);
      if (listeners.submission.enabled) {
        assert.equal(port('submission').port, 587);
        assert.ok(config.ingress.tls?.certFile, 'submission without TLS');
      }
      const ingress = find(docs, 'Deployment', 'mg-mailgate-ingress-smtp');
      const cports = ingress.spec.template.spec.containers[0].ports;
      const cport = (n) => cports.find((p) => p.name === n)?.containerPort;
      assert.equal(cport('smtp'), listeners.mx.port, 'Service → container → listener port agree');
      if (listeners.submission.enabled) assert.equal(cport('submission'), listeners.submission.port);
      for (const p of cports) if (p.name !== 'http') assert.ok(p.containerPort >= 1024, 'unprivileged container ports');
      const proxy = config.ingress.proxy;
      if (svc.spec.type === 'LoadBalancer' && svc.spec.externalTrafficPolicy !== 'Local') {
        // Only acceptable when PROXY v1 carries the IP, from listed proxies (never "trust everyone").
        assert.ok(proxy?.trusted?.length >= 1, 'Cluster traffic policy without PROXY loses the client IP');
        for (const cidr of proxy.trusted) assert.notEqual(cidr, '0.0.0.0/0');
      } else {
        assert.equal(svc.spec.externalTrafficPolicy, 'Local');
      }
      // The grace period covers preStop + SMTP drain + Kafka flush.
      const spec = ingress.spec.template.spec;
      const preStop = Number(spec.containers[0].lifecycle?.preStop?.exec?.command?.[1] ?? 0);
      assert.ok(spec.terminationGracePeriodSeconds >= preStop + 30, 'grace period covers the drain');
    });

    test('clamd: own Deployment + Service, long startup probe, GiBs of memory, large streams', () => {
      const docs = rendered(file);
      const clamd = find(docs, 'Deployment', 'mg-mailgate-clamd');
      if (!clamd) {
        assert.ok(configOf(docs).virusScan.clamd, 'without in-chart clamd, virusScan.clamd must be configured');
        return;
      }
      const c = clamd.spec.template.spec.containers[0];
      assert.ok(
        c.startupProbe.periodSeconds * c.startupProbe.failureThreshold >= 300,
        'startup allows signature download',
      );
      assert.match(c.resources.limits.memory, /^[3-9]Gi$/);
      // Hardened like the mailgate pods: non-root, read-only root filesystem, no capabilities, RuntimeDefault.
      const pod = clamd.spec.template.spec;
      assert.equal(pod.securityContext?.runAsNonRoot, true);
      assert.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault');
      const sc = c.securityContext ?? {};
      assert.equal(sc.runAsNonRoot, true);
      assert.ok(sc.runAsUser > 0, 'a non-zero uid');
      assert.equal(sc.readOnlyRootFilesystem, true);
      assert.equal(sc.allowPrivilegeEscalation, false);
      assert.deepEqual(sc.capabilities?.drop, ['ALL']);
      assert.equal(sc.capabilities?.add, undefined);
      assert.equal(sc.seccompProfile?.type, 'RuntimeDefault');
      // The image's root init chowns and edits /etc/clamav; the unprivileged one only writes to the mounts below.
      assert.deepEqual(c.command, ['/init-unprivileged']);
      const emptyDirs = new Set(pod.volumes.filter((v) => v.emptyDir).map((v) => v.name));
      for (const path of ['/var/lib/clamav', '/tmp', '/var/log/clamav', '/run/clamav']) {
        const m = c.volumeMounts.find((vm) => vm.mountPath === path);
        assert.ok(m && emptyDirs.has(m.name) && !m.readOnly, `${path} is a writable emptyDir`);
      }
      assert.ok(find(docs, 'Service', 'mg-mailgate-clamd'));
      const conf = find(docs, 'ConfigMap', 'mg-mailgate-clamd').data['clamd.conf'];
      assert.match(conf, /^StreamMaxLength (6[4-9]|[7-9][0-9]|[1-9][0-9]{2,})M$/m);
      assert.match(conf, /^TCPSocket 3310$/m);
      const ep = configOf(docs).virusScan.clamd.endpoints[0];
      assert.deepEqual(ep, { host: 'mg-mailgate-clamd', port: 3310 });
    });

    test('NetworkPolicies: every stage covered, clamd reachable only from virus-scan', () => {
      const docs = rendered(file);
      const nps = byKind(docs, 'NetworkPolicy');
      if (nps.length === 0) return; // networkPolicy.enabled=false
      for (const d of mailgateDeployments(docs)) {
        assert.ok(
          nps.some((np) => matches(np.spec.podSelector.matchLabels, podLabels(d))),
          `${component(d)} has no policy`,
        );
      }
      // Strimzi's listener peers must select the mailgate pods by labels their pod templates really carry.
      const kafka = byKind(docs, 'Kafka')[0];
      for (const l of kafka?.spec.kafka.listeners ?? []) {
        const podPeers = (l.networkPolicyPeers ?? []).filter((p) => p.podSelector && !p.namespaceSelector);
        for (const d of mailgateDeployments(docs)) {
          assert.ok(
            podPeers.some((p) => matches(p.podSelector.matchLabels, podLabels(d))),
            `${component(d)} cannot reach Kafka listener ${l.name}`,
          );
        }
      }
      const clamdNp = find(docs, 'NetworkPolicy', 'mg-mailgate-clamd');
      if (clamdNp) {
        const from = clamdNp.spec.ingress.flatMap((r) => r.from);
        assert.deepEqual(
          from.map((f) => f.podSelector?.matchLabels?.['app.kubernetes.io/component']),
          ['virus-scan'],
        );
      }
      const smtpNp = find(docs, 'NetworkPolicy', 'mg-mailgate-ingress-smtp');
      const smtpRule = smtpNp.spec.ingress.find((r) => r.ports.some((p) => p.port === 2525));
      assert.ok(smtpRule, 'SMTP clients may reach the SMTP ports');
      // (A default deny has no egress rules at all.)
      for (const np of nps.filter((n) => n.spec.policyTypes.includes('Egress'))) {
        for (const rule of np.spec.egress ?? [])
          assert.ok(rule.ports?.length, `${np.metadata.name}: egress rule without ports`);
      }
    });

    test('admin tokens are files mounted from Secrets, one per admin.tokens entry', () => {
      const docs = rendered(file);
      const admin = find(docs, 'Deployment', 'mg-mailgate-admin');
      if (!admin) return;
      const tokens = configOf(docs).admin.tokens ?? [];
      const vol = admin.spec.template.spec.volumes.find((v) => v.name === 'admin-tokens');
      const paths = vol ? vol.projected.sources.flatMap((src) => src.secret.items.map((i) => i.path)) : [];
      assert.deepEqual(
        tokens.map((t) => t.tokenFile),
        paths.map((p) => `/etc/mailgate/admin-tokens/${p}`),
      );
      for (const t of tokens) assert.equal(t.token, undefined, 'no token value in the ConfigMap');
    });

    test('DKIM signing keys: the Secret is mounted in delivery only, keyFile paths point into it', () => {
      const docs = rendered(file);
      const signing = configOf(docs).senderAuth?.signing;
      const mounted = (name) =>
        find(docs, 'Deployment', name)?.spec.template.spec.volumes.find((v) => v.name === 'dkim-keys');
      for (const d of mailgateDeployments(docs).filter((x) => component(x) !== 'delivery'))
        assert.equal(mounted(d.metadata.name), undefined, `${component(d)} must not see the signing keys`);
      if (!signing?.enabled) return assert.equal(mounted('mg-mailgate-delivery'), undefined);
      const vol = mounted('mg-mailgate-delivery');
      assert.ok(vol.secret.secretName);
      assert.equal(vol.secret.defaultMode, 0o400);
      for (const d of signing.domains)
        for (const k of d.keys) assert.match(k.keyFile, /^\/etc\/mailgate\/dkim\/[-._a-zA-Z0-9]+$/);
      assert.ok(
        signing.domains.flatMap((d) => d.keys).some((k) => k.active === false),
        'rotation key stays inactive',
      );
    });

    test('LDAP recipients: password and CA are files mounted in ingress-smtp only, never in the ConfigMap', () => {
      const docs = rendered(file);
      const ing = configOf(docs).ingress;
      const vols = (name) => find(docs, 'Deployment', name)?.spec.template.spec.volumes ?? [];
      for (const d of mailgateDeployments(docs).filter((x) => component(x) !== 'ingress-smtp'))
        for (const v of ['ldap-bind', 'ldap-ca'])
          assert.equal(
            vols(d.metadata.name).find((x) => x.name === v),
            undefined,
            `${component(d)}: ${v}`,
          );
      const ldap = Object.entries(ing.recipients?.sources ?? {}).filter(([, s]) => s.type === 'ldap');
      const smtp = find(docs, 'Deployment', 'mg-mailgate-ingress-smtp');
      if (!ldap.length)
        return assert.equal(
          vols(smtp.metadata.name).find((x) => x.name === 'ldap-bind'),
          undefined,
        );
      const mounts = smtp.spec.template.spec.containers[0].volumeMounts;
      for (const [name, src] of ldap) {
        assert.equal(src.bindPassword, undefined, `${name}: no password in the ConfigMap`);
        assert.match(src.url, /^ldaps?:\/\/[^,]+(,ldaps?:\/\/[^,]+)*$/);
        if (src.bindDn) {
          assert.equal(src.bindPasswordFile, '/etc/mailgate/ldap-bind/password');
          const vol = vols(smtp.metadata.name).find((x) => x.name === 'ldap-bind');
          assert.equal(vol.secret.defaultMode, 0o400);
          assert.deepEqual(
            vol.secret.items.map((i) => i.path),
            ['password'],
          );
          const secret = find(docs, 'Secret', vol.secret.secretName);
          // chart-managed: the Secret is rendered and holds the key; existingSecret: the operator's, not rendered
          if (secret) assert.ok(secret.data[vol.secret.items[0].key]);
          assert.ok(mounts.some((m) => m.name === 'ldap-bind' && m.mountPath === '/etc/mailgate/ldap-bind'));
        }
        if (src.caFile) {
          const vol = vols(smtp.metadata.name).find((x) => x.name === 'ldap-ca');
          const items = (vol.configMap ?? vol.secret).items;
          assert.equal(src.caFile, `/etc/mailgate/ldap-ca/${items[0].path}`);
          assert.ok(mounts.some((m) => m.name === 'ldap-ca' && m.mountPath === '/etc/mailgate/ldap-ca'));
        }
        const domains = (ing.recipients.domains ?? []).filter((d) => d.sources.includes(name));
        assert.ok(domains.length, `${name} is used by a domain`);
        const accepted = (ing.acceptedDomains ?? []).map((d) => (typeof d === 'string' ? d : d.domain));
        for (const d of domains) assert.ok(accepted.includes(d.domain), `${d.domain} is an accepted domain`);
      }
      const np = find(docs, 'NetworkPolicy', 'mg-mailgate-ingress-smtp');
      if (np?.spec.policyTypes.includes('Egress')) {
        const ports = np.spec.egress.flatMap((r) => r.ports.map((p) => p.port));
        assert.ok(
          ports.some((p) => p === 389 || p === 636),
          'ingress-smtp may reach the directory',
        );
        if (Object.values(ing.recipients.sources).some((s) => s.type === 'callout'))
          assert.ok(ports.includes(25), 'ingress-smtp may reach the callout target');
        const delivery = find(docs, 'NetworkPolicy', 'mg-mailgate-delivery');
        assert.ok(!delivery.spec.egress.some((r) => r.ports.some((p) => p.port === 636)), 'only ingress reaches LDAP');
      }
    });

    test('chart-managed secrets: env-override values stay strings, the AUTH users file is username:hash lines', () => {
      const docs = rendered(file);
      for (const s of byKind(docs, 'Secret')) {
        for (const [key, b64] of Object.entries(s.data ?? {})) {
          const raw = Buffer.from(b64, 'base64').toString('utf8');
          if (key.endsWith('-yaml')) assert.equal(typeof parse(raw), 'string', `${s.metadata.name}/${key}`);
          if (s.metadata.name.endsWith('-smtp-auth'))
            for (const line of raw.trim().split('\n')) assert.match(line, /^[^:\s]+:\$scrypt\$/, 'usersFile line');
        }
      }
    });
  });
}

describe('in-chart Kafka (Strimzi)', () => {
  const file = CI_VALUES.find((f) => f.endsWith('strimzi-values.yaml'));
  test('one KafkaTopic per contract topic, partitions >= every stage max, 64 MiB records', () => {
    const docs = rendered(file);
    const { topics } = readStageGraph();
    const kts = byKind(docs, 'KafkaTopic');
    assert.deepEqual(kts.map((t) => t.spec.topicName).sort(), Object.values(topics).sort());
    const maxReplicas = Math.max(...byKind(docs, 'ScaledObject').map((s) => s.spec.maxReplicaCount));
    const cluster = find(docs, 'Kafka', 'mg-mailgate-kafka');
    assert.ok(cluster);
    for (const t of kts) {
      assert.ok(t.spec.partitions >= maxReplicas, `${t.spec.topicName} partitions`);
      assert.ok(t.spec.config['max.message.bytes'] >= SIXTY_FOUR_MIB);
      assert.equal(t.metadata.labels['strimzi.io/cluster'], cluster.metadata.name);
    }
    const cfg = cluster.spec.kafka.config;
    for (const k of ['message.max.bytes', 'replica.fetch.max.bytes']) assert.ok(cfg[k] >= SIXTY_FOUR_MIB, k);
    assert.equal(cfg['auto.create.topics.enable'], false);
    assert.equal(cluster.metadata.annotations['strimzi.io/kraft'], 'enabled');
    const config = configOf(docs);
    assert.deepEqual(config.kafka.brokers, ['mg-mailgate-kafka-kafka-bootstrap:9092']);
    assert.equal(config.kafka.topics.create, false, 'Strimzi owns the topics');
  });

  test('in-chart Redis runs with AOF and noeviction', () => {
    const docs = rendered(file);
    const redis = find(docs, 'StatefulSet', 'mg-mailgate-redis');
    const args = redis.spec.template.spec.containers[0].args.join(' ');
    assert.match(args, /--appendonly yes/);
    assert.match(args, /--maxmemory-policy noeviction/);
    assert.equal(configOf(docs).redis.url, 'redis://mg-mailgate-redis:6379');
  });
});
