// The spam-check stage and the rspamd it asks, as the chart renders them for every CI values file: the stage wired to
// rspamd's worker, admin to its controller with the password as a file from a Secret (never in a ConfigMap), rspamd
// hardened like the other pods with the local.d overrides of deploy/compose/rspamd, and the values that cannot work
// refused with a message naming the key.
import assert from 'node:assert/strict';
import { basename, join } from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { byKind, CHART, CI_VALUES, find, template } from '../lib/helm.mjs';

const component = (d) => d.metadata?.labels?.['app.kubernetes.io/component'];
const configOf = (docs) => parse(find(docs, 'ConfigMap', 'mg-mailgate-config').data['mailgate.yaml']);
const matches = (selector, labels) => Object.entries(selector).every(([k, v]) => labels[k] === v);

function render(files, set = {}) {
  const r = template(files, set);
  assert.ok(r.ok, r.stderr);
  return r.docs;
}

function assertHardened(who, sc) {
  assert.equal(sc.runAsNonRoot, true, `${who} non-root`);
  assert.ok(sc.runAsUser > 0, `${who} uid`);
  assert.equal(sc.readOnlyRootFilesystem, true, `${who} read-only root`);
  assert.equal(sc.allowPrivilegeEscalation, false, `${who} no escalation`);
  assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${who} drops capabilities`);
  assert.equal(sc.capabilities?.add, undefined);
  assert.equal(sc.seccompProfile?.type, 'RuntimeDefault');
}

for (const file of CI_VALUES) {
  describe(`spam-check and rspamd with ci/${basename(file)}`, () => {
    const docs = render([file]);
    const config = configOf(docs);
    const rspamd = find(docs, 'Deployment', 'mg-mailgate-rspamd');

    test('spam-check runs as a pipeline stage and asks the rspamd the chart knows', () => {
      const stage = find(docs, 'Deployment', 'mg-mailgate-spam-check');
      assert.ok(stage);
      const c = stage.spec.template.spec.containers[0];
      assert.deepEqual(c.args, ['spam-check', '--config', '/etc/mailgate/mailgate.yaml']);
      assert.equal(c.ports.find((p) => p.name === 'http').containerPort, 9107);
      assert.equal(config.spamCheck.http.port, 9107);
      const so = find(docs, 'ScaledObject', 'mg-mailgate-spam-check');
      if (so) {
        assert.equal(so.spec.triggers[0].metadata.topic, 'mailgate.policy-checked');
        assert.equal(so.spec.triggers[0].metadata.consumerGroup, 'mailgate.spam-check');
      }
      const { worker, controller } = config.spamCheck.rspamd;
      if (rspamd) {
        assert.deepEqual(worker, { host: 'mg-mailgate-rspamd', port: 11333 });
        assert.deepEqual(controller, { host: 'mg-mailgate-rspamd', port: 11334 });
        const svc = find(docs, 'Service', 'mg-mailgate-rspamd');
        assert.ok(matches(svc.spec.selector, rspamd.spec.template.metadata.labels));
        assert.deepEqual(
          svc.spec.ports.map((p) => [p.name, p.port]),
          [
            ['worker', 11333],
            ['controller', 11334],
          ],
        );
      } else {
        assert.ok(worker.host && worker.host !== 'mg-mailgate-rspamd', 'an external rspamd');
      }
      assert.equal(config.spamCheck.rspamd.password, undefined, 'no password in the ConfigMap');
    });

    test('admin learns through the controller with the password as a file from the Secret', () => {
      const admin = find(docs, 'Deployment', 'mg-mailgate-admin');
      const learn = config.admin?.rspamd;
      if (!admin || !learn) return;
      assert.equal(learn.password, undefined, 'no password in the ConfigMap');
      assert.equal(learn.passwordFile, '/etc/mailgate/rspamd/password');
      const { host, port } = config.spamCheck.rspamd.controller;
      assert.equal(learn.controllerUrl, `http://${host}:${port}`);
      const pod = admin.spec.template.spec;
      const vol = pod.volumes.find((v) => v.name === 'rspamd-password');
      assert.equal(vol.secret.defaultMode, 0o400);
      assert.deepEqual(
        vol.secret.items.map((i) => i.path),
        ['password'],
      );
      assert.ok(
        pod.containers[0].volumeMounts.some(
          (m) => m.name === 'rspamd-password' && m.mountPath === '/etc/mailgate/rspamd',
        ),
      );
      // rspamd hashes the very same Secret key into its controller config.
      if (rspamd) {
        const env = rspamd.spec.template.spec.initContainers[0].env.find((e) => e.name === 'CONTROLLER_PASSWORD');
        assert.deepEqual(env.valueFrom.secretKeyRef, { name: vol.secret.secretName, key: vol.secret.items[0].key });
      }
      const secret = find(docs, 'Secret', vol.secret.secretName);
      if (secret) assert.ok(Buffer.from(secret.data[vol.secret.items[0].key], 'base64').length >= 16);
      // Only admin sees the controller password.
      for (const d of byKind(docs, 'Deployment').filter((x) => component(x) !== 'admin'))
        assert.ok(!d.spec.template.spec.volumes?.some((v) => v.name === 'rspamd-password'), component(d));
    });

    test('rspamd: hardened pod, probes, PDB, HPA, local.d overrides mounted, writable paths are emptyDirs', () => {
      if (!rspamd) return;
      const pod = rspamd.spec.template.spec;
      assert.equal(pod.automountServiceAccountToken, false);
      assert.equal(pod.securityContext.runAsNonRoot, true);
      assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
      const c = pod.containers[0];
      for (const x of [...pod.initContainers, c]) assertHardened(x.name, x.securityContext);
      assert.ok(!c.command.includes('-u'), 'never started as root to drop privileges itself');
      for (const p of ['startupProbe', 'livenessProbe', 'readinessProbe']) assert.equal(c[p].httpGet.path, '/ping');
      assert.ok(c.startupProbe.periodSeconds * c.startupProbe.failureThreshold >= 120, 'time to compile regexps');
      assert.ok(c.resources.requests.cpu && c.resources.limits.memory);
      assert.ok(rspamd.spec.template.metadata.annotations['checksum/config']);
      const labels = rspamd.spec.template.metadata.labels;
      assert.ok(byKind(docs, 'PodDisruptionBudget').some((p) => matches(p.spec.selector.matchLabels, labels)));
      const hpa = find(docs, 'HorizontalPodAutoscaler', 'mg-mailgate-rspamd');
      if (hpa) assert.equal(rspamd.spec.replicas, undefined, 'the HPA owns the replica count');

      const cm = find(docs, 'ConfigMap', 'mg-mailgate-rspamd').data;
      for (const f of Object.keys(cm)) {
        const m = c.volumeMounts.find((vm) => vm.mountPath === `/etc/rspamd/local.d/${f}`);
        assert.ok(m && m.subPath === f && m.readOnly, `${f} mounted into local.d`);
      }
      assert.match(cm['classifier-bayes.conf'], /^backend = "redis";$/m);
      assert.match(cm['classifier-bayes.conf'], /^autolearn = false;$/m);
      assert.match(cm['worker-normal.inc'], /^bind_socket = "\*:11333";$/m);
      assert.match(cm['worker-controller.inc'], /^bind_socket = "\*:11334";$/m);
      assert.match(cm['worker-controller.inc'], /^\.include "\/run\/rspamd-secrets\/controller-password\.inc"$/m);
      for (const [f, text] of Object.entries(cm)) assert.doesNotMatch(text, /password\s*=/, `${f}: no password`);
      const servers = cm['redis.conf'].match(/^servers = "([^"]+)";$/m)?.[1];
      if (find(docs, 'StatefulSet', 'mg-mailgate-redis') && !servers.includes('example'))
        assert.equal(servers, 'mg-mailgate-redis:6379', "Bayes in the chart's Redis");
      assert.match(cm['redis.conf'], /^db = "[0-9]+";$/m);

      const emptyDirs = new Set(pod.volumes.filter((v) => v.emptyDir).map((v) => v.name));
      for (const m of c.volumeMounts.filter((vm) => !vm.readOnly))
        assert.ok(emptyDirs.has(m.name), `${m.mountPath} is an emptyDir`);
      assert.ok(c.volumeMounts.some((m) => m.mountPath === '/var/lib/rspamd' && !m.readOnly));
      const secrets = pod.volumes.find((v) => v.name === 'secrets');
      assert.equal(secrets.emptyDir.medium, 'Memory', 'the password hash stays off disk');
    });
  });
}

describe('rspamd values', () => {
  const STRIMZI = [join(CHART, 'ci', 'strimzi-values.yaml')];
  const EXTERNAL = [join(CHART, 'ci', 'external-values.yaml')];

  test('localConfig adds or replaces local.d files', () => {
    const docs = render(STRIMZI, {
      'rspamd.localConfig': {
        'options.inc': 'dns { timeout = 2s; }',
        'logging.inc': 'type = "console";\nlevel = "info";',
      },
    });
    const cm = find(docs, 'ConfigMap', 'mg-mailgate-rspamd').data;
    assert.match(cm['options.inc'], /timeout = 2s/);
    assert.match(cm['logging.inc'], /level = "info"/);
  });

  test('a chart-managed controller password is generated when none is given', () => {
    const docs = render(STRIMZI, { 'rspamd.controllerPassword.value': '' });
    const pw = Buffer.from(find(docs, 'Secret', 'mg-mailgate-rspamd').data.password, 'base64').toString();
    assert.match(pw, /^[A-Za-z0-9]{32}$/);
  });

  test('rspamd.enabled=false with an external rspamd: no rspamd objects, the stage and admin point at it', () => {
    const docs = render(STRIMZI, {
      'rspamd.enabled': false,
      'rspamd.external.host': 'rspamd.antispam.svc',
      'rspamd.controllerPassword.existingSecret': 'antispam-rspamd',
    });
    assert.equal(docs.filter((d) => component(d) === 'rspamd').length, 0, 'no in-chart rspamd objects');
    const config = configOf(docs);
    assert.deepEqual(config.spamCheck.rspamd.worker, { host: 'rspamd.antispam.svc', port: 11333 });
    assert.equal(config.admin.rspamd.controllerUrl, 'http://rspamd.antispam.svc:11334');
    const admin = find(docs, 'Deployment', 'mg-mailgate-admin');
    assert.equal(
      admin.spec.template.spec.volumes.find((v) => v.name === 'rspamd-password').secret.secretName,
      'antispam-rspamd',
    );
  });

  test('learning off: no admin.rspamd, no password mounted in admin', () => {
    const docs = render(STRIMZI, { 'rspamd.learning.enabled': false });
    assert.equal(configOf(docs).admin.rspamd, undefined);
    const admin = find(docs, 'Deployment', 'mg-mailgate-admin');
    assert.ok(!admin.spec.template.spec.volumes.some((v) => v.name === 'rspamd-password'));
  });

  test('spam-check disabled: no rspamd, no spamCheck wiring', () => {
    const docs = render(STRIMZI, { 'stages.spamCheck.enabled': false });
    assert.equal(find(docs, 'Deployment', 'mg-mailgate-rspamd'), undefined);
    assert.equal(find(docs, 'Deployment', 'mg-mailgate-spam-check'), undefined);
    assert.equal(configOf(docs).admin.rspamd, undefined);
  });

  test('an external Redis password reaches rspamd from a Secret, never the ConfigMap', () => {
    const docs = render(EXTERNAL);
    const init = find(docs, 'Deployment', 'mg-mailgate-rspamd').spec.template.spec.initContainers[0];
    const env = init.env.find((e) => e.name === 'REDIS_PASSWORD');
    assert.deepEqual(env.valueFrom.secretKeyRef, { name: 'mailgate-rspamd-redis', key: 'password' });
    const cm = find(docs, 'ConfigMap', 'mg-mailgate-rspamd').data['redis.conf'];
    assert.match(cm, /^servers = "redis\.example\.internal:6379";$/m);
    assert.match(cm, /^db = "7";$/m);
    assert.match(cm, /redis-password\.inc/);
  });

  test('an inline redis.external.url without credentials gives rspamd its host', () => {
    const docs = render([join(CHART, 'ci', 'minimal-values.yaml')], {
      'rspamd.enabled': true,
      'rspamd.autoscaling.enabled': false,
      'rspamd.replicas': 1,
    });
    assert.match(find(docs, 'ConfigMap', 'mg-mailgate-rspamd').data['redis.conf'], /^servers = "redis:6379";$/m);
  });

  const REJECTED = [
    [
      'spam-check without any rspamd',
      STRIMZI,
      { 'rspamd.enabled': false },
      /rspamd\.enabled=true or set rspamd\.external\.host/,
    ],
    [
      'learning against an external rspamd without its password',
      STRIMZI,
      { 'rspamd.enabled': false, 'rspamd.external.host': 'rspamd.x', 'rspamd.controllerPassword.value': '' },
      /rspamd\.controllerPassword/,
    ],
    ['Bayes without a Redis the chart can name', EXTERNAL, { 'rspamd.redis.servers': '' }, /rspamd\.redis\.servers/],
    [
      'a Redis URL with credentials as rspamd servers',
      [join(CHART, 'ci', 'minimal-values.yaml')],
      { 'rspamd.enabled': true, 'redis.external.url': 'redis://:secret@redis:6379/0' },
      /rspamd\.redis\.servers/,
    ],
    [
      'the worker set in config (the chart owns it)',
      STRIMZI,
      { 'config.spamCheck.rspamd.worker': { host: 'x' } },
      /worker/,
    ],
    ['admin.rspamd.passwordFile in config', STRIMZI, { 'config.admin.rspamd.passwordFile': '/x' }, /passwordFile/],
    ['a local.d file that is not .conf/.inc', STRIMZI, { 'rspamd.localConfig': { '../x': 'a' } }, /localConfig/],
    ['an unknown rspamd key', STRIMZI, { 'rspamd.replica': 2 }, /rspamd: Additional property replica/],
    [
      'external rspamd under egress rules without its peers',
      [join(CHART, 'ci', 'netpol-values.yaml')],
      {
        'rspamd.enabled': false,
        'rspamd.external.host': 'rspamd.x',
        'rspamd.controllerPassword.value': 'x'.repeat(20),
      },
      /networkPolicy\.egress\.rspamd\.to/,
    ],
  ];
  for (const [what, files, set, pattern] of REJECTED) {
    test(`rejects ${what}`, () => {
      const r = template(files, set);
      assert.equal(r.ok, false, `rendered although ${what}`);
      assert.match(r.stderr, pattern);
    });
  }
});
