// docker-compose.yml (and its overlays) parsed and checked without a Docker engine: every service has what it
// depends on (healthy, not just started), images are pinned, the files it mounts exist, the ports and config agree.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { httpPorts } from '../lib/contracts.mjs';
import { REPO } from '../lib/helm.mjs';

// Compose-specific YAML tags used by overlays (!override, !reset): accept them as plain values.
const customTags = ['!override', '!reset'].flatMap((tag) => [
  { tag, collection: 'seq', resolve: (v) => v },
  { tag, collection: 'map', resolve: (v) => v },
  { tag, resolve: (v) => v },
]);
const load = (file) => parse(readFileSync(join(REPO, file), 'utf8'), { merge: true, customTags });

const compose = load('docker-compose.yml');
const services = compose.services;
// component -> http port, from the SERVICES table (helm/mailgate/generated/services.yaml).
const HTTP_PORTS = httpPorts();
const MAILGATE = Object.keys(HTTP_PORTS);
// Observability side-cars nothing waits on: no usable shell/health endpoint in their images.
const NO_HEALTHCHECK_OK = new Set(['jaeger', 'kafka-exporter']);
const SIXTY_FOUR_MIB = 64 * 1024 * 1024;

const dependsOn = (svc) =>
  Array.isArray(svc.depends_on)
    ? Object.fromEntries(svc.depends_on.map((d) => [d, { condition: 'service_started' }]))
    : (svc.depends_on ?? {});
// Every mailgate service keeps Kafka and Redis among its dependencies (also when it adds its own).
const needsDeps = (name) => {
  for (const dep of ['kafka', 'redis'])
    assert.equal(dependsOn(services[name])[dep]?.condition, 'service_healthy', `${name} must wait for ${dep}`);
};
const mib = (s) => {
  const m = /^(\d+)([KMG]?)$/i.exec(String(s));
  return Number(m[1]) * { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2].toUpperCase()];
};

describe('docker-compose.yml', () => {
  test('every mailgate service runs the one image with its own subcommand and the shared config', () => {
    for (const name of MAILGATE) {
      const svc = services[name];
      assert.ok(svc, `service ${name} missing`);
      assert.equal(svc.image, 'mailgate:dev');
      assert.equal(svc.build?.context, '.', `${name} builds from the repository root`);
      assert.deepEqual(svc.command, [name, '--config', '/etc/mailgate/mailgate.yaml']);
      assert.ok(svc.volumes.includes('./deploy/compose/mailgate.yaml:/etc/mailgate/mailgate.yaml:ro'));
      assert.equal(svc.init, true, `${name}: an init reaps children and forwards SIGTERM`);
      assert.ok(svc.stop_grace_period, `${name}: a grace period for the drain`);
      // The healthcheck probes /readyz on the service's own http port.
      const probe = svc.healthcheck.test.join(' ');
      assert.match(probe, new RegExp(`127\\.0\\.0\\.1:${HTTP_PORTS[name]}/readyz`), `${name} healthcheck port`);
    }
  });

  test('every dependency exists and is waited for until healthy', () => {
    for (const [name, svc] of Object.entries(services)) {
      for (const [dep, { condition }] of Object.entries(dependsOn(svc))) {
        assert.ok(services[dep], `${name} depends on unknown service ${dep}`);
        if (condition === 'service_healthy') assert.ok(services[dep].healthcheck, `${dep} has no healthcheck`);
        else assert.ok(NO_HEALTHCHECK_OK.has(dep), `${name} → ${dep} must wait for service_healthy, not ${condition}`);
      }
      if (!NO_HEALTHCHECK_OK.has(name)) assert.ok(svc.healthcheck?.test, `${name} has no healthcheck`);
    }
    const needs = (name, dep) =>
      assert.equal(dependsOn(services[name])[dep]?.condition, 'service_healthy', `${name} must wait for ${dep}`);
    for (const name of MAILGATE) {
      needs(name, 'kafka');
      needs(name, 'redis');
    }
    needs('virus-scan', 'clamav');
    needs('delivery', 'mailpit');
    needs('grafana', 'prometheus');
  });

  test('third-party images are pinned to a version, never latest', () => {
    for (const [name, svc] of Object.entries(services)) {
      if (svc.build) continue;
      const m = /^[^:@]+(?::([^@]+))?(?:@sha256:[0-9a-f]{64})?$/.exec(svc.image);
      assert.ok(m, `${name}: bad image reference ${svc.image}`);
      assert.ok(m[1] && m[1] !== 'latest' && /\d/.test(m[1]), `${name}: image ${svc.image} is not pinned`);
    }
  });

  test('Kafka: KRaft, 64 MiB records; Redis: AOF and noeviction', () => {
    const env = services.kafka.environment;
    assert.match(env.KAFKA_PROCESS_ROLES, /controller/);
    assert.ok(!Object.keys(env).some((k) => k.includes('ZOOKEEPER')));
    for (const k of ['KAFKA_MESSAGE_MAX_BYTES', 'KAFKA_REPLICA_FETCH_MAX_BYTES'])
      assert.ok(Number(env[k]) >= SIXTY_FOUR_MIB, k);
    const redis = services.redis.command.join(' ');
    assert.match(redis, /--maxmemory-policy noeviction/);
    assert.match(redis, /--appendonly yes/);
  });

  test('SMTP on the host port 25 reaches the unprivileged container port', () => {
    assert.ok(services['ingress-smtp'].ports.some((p) => /^\$\{MAILGATE_SMTP_PORT:-25\}:2525$/.test(p)));
  });

  test('every bind-mounted file exists', () => {
    for (const [name, svc] of Object.entries(services)) {
      for (const v of svc.volumes ?? []) {
        const src = String(v).split(':')[0];
        if (src.startsWith('./')) assert.ok(existsSync(join(REPO, src)), `${name}: ${src} missing`);
      }
    }
  });

  test('the stack config points at the compose services', () => {
    const cfg = load('deploy/compose/mailgate.yaml');
    assert.deepEqual(cfg.kafka.brokers, ['kafka:9092']);
    assert.match(cfg.redis.url, /^redis:\/\/redis:6379/);
    assert.equal(new URL(cfg.telemetry.tracing.otlpEndpoint).hostname, 'jaeger');
    assert.deepEqual(cfg.virusScan.clamd.endpoints, [{ host: 'clamav', port: 3310 }]);
    assert.ok(
      cfg.delivery.routes.some((r) => r.hosts.includes('mailpit:1025')),
      'delivery reaches the mailbox',
    );
    assert.ok(cfg.ingress.acceptedDomains.includes('example.test'), 'the documented swaks test is accepted');
    // clamd must accept what virus-scan sends, and the largest message (50 MiB).
    const conf = readFileSync(join(REPO, 'deploy', 'compose', 'clamd.conf'), 'utf8');
    const clamdMax = mib(/^StreamMaxLength\s+(\S+)/m.exec(conf)[1]);
    assert.ok(clamdMax >= mib(cfg.virusScan.clamd.streamMaxLength));
    assert.ok(clamdMax >= 50 * 1024 * 1024);
  });

  test('recipients: ingress-smtp checks the seeded OpenLDAP directory with its read-only account', () => {
    const cfg = load('deploy/compose/mailgate.yaml');
    const ldap = services.openldap;
    const env = ldap.environment;
    const suffix = env.LDAP_DOMAIN.split('.')
      .map((p) => `dc=${p}`)
      .join(',');
    const src = cfg.ingress.recipients.sources.directory;
    assert.equal(src.type, 'ldap');
    assert.equal(new URL(src.url).hostname, 'openldap');
    assert.equal(src.bindDn, `cn=${env.LDAP_READONLY_USER_USERNAME},${suffix}`);
    assert.equal(src.bindPassword, env.LDAP_READONLY_USER_PASSWORD);
    assert.ok(src.baseDn.endsWith(suffix));
    assert.deepEqual(cfg.ingress.recipients.domains, [{ domain: 'example.test', sources: ['directory'] }]);
    assert.equal(dependsOn(services['ingress-smtp']).openldap?.condition, 'service_healthy');
    for (const name of MAILGATE) needsDeps(name);
    // The seed: entries under the base DN, and the address of the documented swaks test is in it.
    const mount = ldap.volumes.find((v) => v.includes('seed.ldif'));
    const seed = readFileSync(join(REPO, mount.split(':')[0]), 'utf8');
    const dns = [...seed.matchAll(/^dn: (.+)$/gm)].map((m) => m[1]);
    for (const dn of dns) assert.ok(dn.endsWith(`,${suffix}`), dn);
    assert.ok(dns.includes(src.baseDn), 'the search base is seeded');
    const mails = [...seed.matchAll(/^mail: (.+)$/gm)].map((m) => m[1]);
    for (const m of ['user@example.test', 'postmaster@example.test']) assert.ok(mails.includes(m), m);
    assert.ok(ldap.healthcheck.test.join(' ').includes(src.bindDn), 'healthy = the service account can search');
  });

  test('Prometheus scrapes every mailgate service; Grafana provisions the dashboard and its datasources', () => {
    const prom = load('deploy/prometheus/prometheus.yml');
    const mg = prom.scrape_configs.find((s) => s.job_name === 'mailgate');
    const scraped = Object.fromEntries(mg.dns_sd_configs.map((d) => [d.names[0], d.port]));
    assert.deepEqual(scraped, HTTP_PORTS);
    const ds = load('deploy/grafana/provisioning/datasources/mailgate.yml').datasources;
    const uids = new Set(ds.map((d) => d.uid));
    for (const d of ds) assert.ok(services[new URL(d.url).hostname], `datasource ${d.name} → unknown service`);
    const dir = join(REPO, 'deploy', 'grafana', 'dashboards');
    const dashboards = readdirSync(dir).filter((f) => f.endsWith('.json'));
    assert.ok(dashboards.length >= 1);
    for (const f of dashboards) {
      const dash = JSON.parse(readFileSync(join(dir, f), 'utf8'));
      assert.ok(dash.uid && dash.title);
      for (const p of dash.panels) {
        if (p.datasource) assert.ok(uids.has(p.datasource.uid), `${f}: panel ${p.title} → unknown datasource`);
        for (const t of p.targets ?? []) assert.ok(t.expr, `${f}: panel ${p.title} has an empty query`);
      }
    }
    const provider = load('deploy/grafana/provisioning/dashboards/mailgate.yml').providers[0];
    assert.ok(
      services.grafana.volumes.includes(`./deploy/grafana/dashboards:${provider.options.path}:ro`),
      'the dashboards folder is mounted where the provider reads it',
    );
  });
});

describe('compose overlays (deploy/compose/*.yml)', () => {
  const overlays = readdirSync(join(REPO, 'deploy', 'compose')).filter((f) => f.endsWith('.yml'));
  test('there are overlays', () => assert.ok(overlays.length >= 1));
  for (const f of overlays) {
    test(`${f} only refines services of the base file, with pinned images`, () => {
      const o = load(join('deploy', 'compose', f));
      for (const [name, svc] of Object.entries(o.services)) {
        assert.ok(services[name], `${f}: ${name} is not in docker-compose.yml`);
        if (svc.image && !svc.build) assert.match(svc.image, /:[^@]*\d/, `${f}: ${name} image not pinned`);
        for (const dep of Object.keys(dependsOn(svc))) assert.ok(services[dep], `${f}: ${name} → ${dep}`);
      }
    });
  }
});
