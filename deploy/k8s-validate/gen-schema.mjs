#!/usr/bin/env node
// Generates helm/mailgate/values.schema.json (JSON Schema draft-07, enforced by `helm install/template/lint`).
// Written as code because draft-07 has no `unevaluatedProperties`: every object of the chart's own structure must
// list its keys with `additionalProperties: false`, and shared shapes (a stage, a probe) are easier to keep right
// once here than copied by hand. The mailgate config sections (`config.*`) stay free-form: the services validate
// them at start-up with their own strict schemas.
//
//   node deploy/k8s-validate/gen-schema.mjs          # rewrite the schema
//   node deploy/k8s-validate/gen-schema.mjs --check  # exit 1 if the committed file is stale (CI)
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const OUT = fileURLToPath(new URL('../../helm/mailgate/values.schema.json', import.meta.url));
/** The chart's service catalog, written by `npm run gen` from the SERVICES table of packages/contracts. */
const CATALOG = parse(
  readFileSync(fileURLToPath(new URL('../../helm/mailgate/generated/services.yaml', import.meta.url)), 'utf8'),
);

/** A closed object: unknown keys are rejected. */
const obj = (properties, extra = {}) => ({ type: 'object', additionalProperties: false, properties, ...extra });
/** A free-form mapping (labels, annotations, nodeSelector, passthrough Kubernetes structures). */
const map = (description) => ({ type: 'object', ...(description ? { description } : {}) });
const strMap = { type: 'object', additionalProperties: { type: 'string' } };
const str = (extra = {}) => ({ type: 'string', ...extra });
const bool = { type: 'boolean' };
const int = (minimum = 0, extra = {}) => ({ type: 'integer', minimum, ...extra });
const arr = (items, extra = {}) => ({ type: 'array', items, ...extra });
const port = int(1, { maximum: 65535 });
const k8sName = str({ pattern: '^$|^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$', maxLength: 253 });
const quantity = { type: ['string', 'number'], pattern: '^[0-9.]+([eE][-+]?[0-9]+|[a-zA-Z]+)?$' };
const resources = obj({
  requests: obj({ cpu: quantity, memory: quantity, 'ephemeral-storage': quantity }),
  limits: obj({ cpu: quantity, memory: quantity, 'ephemeral-storage': quantity }),
});
const intOrPercent = { type: ['integer', 'string', 'null'], pattern: '^[0-9]+%$', minimum: 0 };
const pdb = {
  ...obj({ enabled: bool, minAvailable: intOrPercent, maxUnavailable: intOrPercent }),
  description: 'PodDisruptionBudget: minAvailable wins when set, else maxUnavailable (default 1).',
};
const probe = obj({
  initialDelaySeconds: int(0),
  periodSeconds: int(1),
  timeoutSeconds: int(1),
  failureThreshold: int(1),
  successThreshold: int(1),
});
const probes = obj({ startup: probe, liveness: probe, readiness: probe });
const topologySpread = arr(
  obj(
    {
      topologyKey: str({ minLength: 1 }),
      maxSkew: int(1),
      whenUnsatisfiable: { enum: ['DoNotSchedule', 'ScheduleAnyway'] },
      minDomains: int(1),
    },
    { required: ['topologyKey', 'maxSkew', 'whenUnsatisfiable'] },
  ),
);
const envList = arr(
  {
    type: 'object',
    required: ['name'],
    properties: { name: str({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }) },
  },
  { description: 'Extra container env entries (Kubernetes EnvVar objects).' },
);
// A numeric string: KEDA's kafka trigger metadata values are strings.
const numericString = str({ pattern: '^[0-9]+$' });
const imageRef = obj(
  { repository: str({ minLength: 1 }), tag: str({ minLength: 1 }) },
  { required: ['repository', 'tag'] },
);
const peers = arr(map('NetworkPolicyPeer (ipBlock / namespaceSelector / podSelector)'));
const portList = arr(port);

/** Keys every service entry accepts (the generic per-stage template reads them). */
const stageCommon = {
  enabled: bool,
  replicas: int(0),
  resources,
  terminationGracePeriodSeconds: int(1),
  pdb,
  probes,
  topologySpread,
  env: envList,
  podAnnotations: strMap,
  podLabels: strMap,
  nodeSelector: strMap,
  tolerations: arr(map()),
  affinity: map(),
};

const hpa = {
  ...obj({
    enabled: bool,
    minReplicas: int(1),
    maxReplicas: int(1),
    targetCPUUtilizationPercentage: int(1, { maximum: 100 }),
  }),
  description: 'HorizontalPodAutoscaler on CPU (ingress-smtp has no consumer lag to scale on).',
};
const keda = {
  ...obj({
    enabled: bool,
    minReplicaCount: int(0),
    maxReplicaCount: int(1),
    lagThreshold: numericString,
    activationLagThreshold: numericString,
    pollingInterval: int(1),
    cooldownPeriod: int(0),
  }),
  description: 'KEDA ScaledObject on the consumer-group lag of the stage input topic.',
};

const consumerStage = obj({ ...stageCommon, autoscaling: keda });

// Outbound DKIM signing (senderAuth.signing): keys are files of one Secret mounted at /etc/mailgate/dkim.
const dkimSigning = {
  ...obj({
    enabled: bool,
    existingSecret: k8sName,
    domains: arr(
      obj(
        {
          domain: str({ minLength: 1 }),
          subdomains: bool,
          keys: arr(
            obj(
              {
                selector: str({ pattern: '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$' }),
                secretKey: str({ pattern: '^[-._a-zA-Z0-9]+$' }),
                active: bool,
              },
              { required: ['selector', 'secretKey'] },
            ),
            { minItems: 1 },
          ),
        },
        { required: ['domain', 'keys'] },
      ),
    ),
  }),
  description: 'Outbound DKIM signing keys from a Secret (one file per key), mounted in the delivery pods.',
  if: { properties: { enabled: { const: true } }, required: ['enabled'] },
  then: { properties: { existingSecret: { minLength: 1 }, domains: { minItems: 1 } } },
};
const deliveryStage = obj({ ...stageCommon, autoscaling: keda, dkimSigning });

// LDAP / Active Directory recipient source (ingress.recipients): bind password and CA are files from a Secret or
// ConfigMap mounted in ingress-smtp (packages/recipients/src/config.ts ldapSource).
const recipientsLdap = {
  ...obj({
    enabled: bool,
    sourceName: str({ pattern: '^[A-Za-z0-9_-]{1,40}$' }),
    urls: arr(str({ pattern: '^ldaps?://[^\\s,]+$' })),
    startTls: bool,
    bindDn: str(),
    existingSecret: k8sName,
    passwordKey: str({ pattern: '^[-._a-zA-Z0-9]+$' }),
    bindPassword: str(),
    baseDn: str(),
    scope: { enum: ['base', 'one', 'sub'] },
    filter: str({ pattern: '^$|^\\(.*\\)$' }),
    ca: obj({ existingConfigMap: k8sName, existingSecret: k8sName, key: str({ pattern: '^[-._a-zA-Z0-9]+$' }) }),
    timeoutMs: int(1),
    connectTimeoutMs: int(1),
    poolSize: int(1, { maximum: 32 }),
    domains: arr(str({ minLength: 1 })),
  }),
  description: 'Recipient validation against LDAP/AD: one ldap source rendered into ingress.recipients.',
  if: { properties: { enabled: { const: true } }, required: ['enabled'] },
  then: { properties: { urls: { minItems: 1 }, baseDn: { minLength: 1 } } },
};

const ingressSmtp = {
  ...obj({
    ...stageCommon,
    autoscaling: hpa,
    drain: obj({ preStopSleepSeconds: int(0), closeTimeoutSeconds: int(0) }),
    containerPorts: obj({ smtp: int(1024, { maximum: 65535 }), submission: int(1024, { maximum: 65535 }) }),
    service: obj({
      type: { enum: ['LoadBalancer', 'NodePort', 'ClusterIP'] },
      externalTrafficPolicy: { enum: ['Local', 'Cluster'] },
      ports: obj({ smtp: port, submission: port }),
      annotations: strMap,
      loadBalancerClass: str(),
      loadBalancerSourceRanges: arr(str()),
    }),
    proxyProtocol: {
      ...obj({
        enabled: bool,
        trustedCidrs: arr(str({ pattern: '^[0-9a-fA-F.:]+/[0-9]{1,3}$' })),
      }),
      // PROXY without a trusted list would let anyone forge the client IP.
      if: { properties: { enabled: { const: true } }, required: ['enabled'] },
      then: { properties: { trustedCidrs: { minItems: 1 } }, required: ['trustedCidrs'] },
    },
    tls: {
      ...obj({
        enabled: bool,
        existingSecret: k8sName,
        certManager: obj({
          enabled: bool,
          issuerRef: obj({ name: str(), kind: { enum: ['Issuer', 'ClusterIssuer'] }, group: str() }),
          dnsNames: arr(str({ minLength: 1 })),
        }),
      }),
    },
    submission: obj({ enabled: bool }),
    recipients: obj({ ldap: recipientsLdap }),
    auth: obj({
      enabled: bool,
      existingSecret: k8sName,
      secretKey: str({ pattern: '^[-._a-zA-Z0-9]+$' }),
      users: {
        type: 'object',
        description: 'username -> scrypt hash (mailgate hash-password)',
        propertyNames: { pattern: '^[^:\\s]+$' },
        // services/ingress-smtp/src/password.ts HASH_RE
        additionalProperties: {
          type: 'string',
          pattern: '^\\$scrypt\\$ln=[0-9]{1,2},r=[0-9]{1,2},p=[0-9]{1,2}\\$[A-Za-z0-9+/=]+\\$[A-Za-z0-9+/=]+$',
        },
      },
    }),
  }),
};

const adminStage = obj({
  ...stageCommon,
  // admin.tokens entries, each a tokenFile mounted from a Secret (services/admin/src/config.ts).
  tokens: arr(
    obj(
      {
        name: str({ pattern: '^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$', maxLength: 63 }),
        role: { enum: ['read', 'admin'] },
        value: str({ minLength: 16 }),
        existingSecret: k8sName,
        secretKey: str({ pattern: '^[-._a-zA-Z0-9]+$' }),
      },
      {
        required: ['name'],
        oneOf: [
          { required: ['value'], not: { required: ['existingSecret'] } },
          { required: ['existingSecret', 'secretKey'], not: { required: ['value'] } },
        ],
      },
    ),
  ),
  ingress: {
    ...obj({
      enabled: bool,
      className: str(),
      host: str(),
      annotations: strMap,
      tls: obj({ enabled: bool, secretName: k8sName }),
    }),
    if: { properties: { enabled: { const: true } }, required: ['enabled'] },
    then: { properties: { host: { minLength: 1 } } },
  },
});

// Keys of the config document the chart owns: reject them in `config` so there is one place to set each.
// `false` schemas: helm reports "<path>.<key>: False always fails validation", naming the key.
const forbid = (...keys) => ({ properties: Object.fromEntries(keys.map((k) => [k, false])) });
const section = (description, ...owned) => ({
  type: 'object',
  description,
  ...(owned.length ? forbid(...owned) : {}),
});
const withHttpOwned = (description) => ({
  type: 'object',
  description: `${description} (http.port is fixed by the chart)`,
  properties: { http: { type: 'object', ...forbid('port') } },
});

const schema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'mailgate Helm chart values',
  ...obj({
    nameOverride: str(),
    fullnameOverride: str(),
    image: obj({
      repository: str({ minLength: 1 }),
      tag: str(),
      digest: str({ pattern: '^$|^sha256:[0-9a-f]{64}$' }),
      pullPolicy: { enum: ['Always', 'IfNotPresent', 'Never'] },
    }),
    imagePullSecrets: arr(obj({ name: str({ minLength: 1 }) }, { required: ['name'] })),
    serviceAccount: obj({ create: bool, name: str(), annotations: strMap }),
    commonLabels: strMap,
    podSecurityContext: map(),
    containerSecurityContext: map(),
    config: obj({
      gateway: section('Gateway identity (name, hostname, postmaster).'),
      kafka: section(
        'Kafka client options; brokers, sasl, ssl and topics come from `kafka.*`.',
        'brokers',
        'sasl',
        'ssl',
        'topics',
      ),
      redis: section('Redis options; the URL comes from `redis.*`.', 'url'),
      logging: section('Logging.'),
      telemetry: section('Tracing (otlpEndpoint, sampleRatio).'),
      bus: section('Stage runner defaults.'),
      ingress: {
        ...withHttpOwned('ingress-smtp section'),
        ...forbid('listeners', 'drainTimeoutMs'),
        properties: {
          ...withHttpOwned('').properties,
          listeners: false,
          drainTimeoutMs: false,
          auth: { type: 'object', ...forbid('usersFile') },
        },
      },
      dnsbl: withHttpOwned('dnsbl-check section'),
      senderAuth: section(
        'Sender authentication (packages/sender-auth); signing.domains come from stages.delivery.dkimSigning when enabled.',
      ),
      virusScan: withHttpOwned('virus-scan section'),
      attachmentPolicy: withHttpOwned('attachment-policy section'),
      spamCheck: {
        ...withHttpOwned('spam-check section; rspamd.worker/controller come from `rspamd.*`'),
        properties: {
          ...withHttpOwned('').properties,
          rspamd: { type: 'object', ...forbid('worker', 'controller') },
        },
      },
      delivery: withHttpOwned('delivery section'),
      admin: {
        ...withHttpOwned('admin section'),
        properties: {
          ...withHttpOwned('').properties,
          tokens: false,
          rspamd: { type: 'object', ...forbid('controllerUrl', 'passwordFile') },
        },
      },
    }),
    kafka: obj({
      external: obj({ brokers: arr(str({ pattern: '^[^\\s:]+:[0-9]{1,5}$|^\\[[0-9a-fA-F:.]+\\]:[0-9]{1,5}$' })) }),
      topics: obj({ partitions: int(1), replicationFactor: int(1), create: bool }),
      tls: obj({
        enabled: bool,
        existingSecret: k8sName,
        caKey: str(),
        certKey: str(),
        keyKey: str(),
      }),
      sasl: {
        ...obj({
          enabled: bool,
          mechanism: { enum: ['plain', 'scram-sha-256', 'scram-sha-512'] },
          username: str(),
          password: str(),
          existingSecret: k8sName,
          passwordKey: str({ minLength: 1 }),
        }),
        if: { properties: { enabled: { const: true } }, required: ['enabled'] },
        then: { properties: { username: { minLength: 1 } }, required: ['username'] },
      },
      strimzi: obj({
        enabled: bool,
        version: str({ pattern: '^[0-9]+\\.[0-9]+\\.[0-9]+$' }),
        replicas: int(1),
        kedaNamespace: k8sName,
        storage: obj({ size: quantity, storageClass: str() }),
        resources,
        config: map('Extra Kafka broker config'),
        topicConfig: map('Extra config for every KafkaTopic'),
      }),
    }),
    redis: obj({
      external: obj({
        url: str({ pattern: '^$|^rediss?://' }),
        existingSecret: k8sName,
        urlKey: str({ minLength: 1 }),
      }),
      internal: obj({
        enabled: bool,
        image: imageRef,
        maxmemory: str({ pattern: '^[0-9]+(b|kb|mb|gb)?$' }),
        storage: obj({ size: quantity, storageClass: str() }),
        resources,
      }),
    }),
    clamd: obj({
      enabled: bool,
      image: imageRef,
      replicas: int(1),
      resources,
      startupSeconds: int(60),
      securityContext: obj({ runAsUser: int(1), runAsGroup: int(1) }),
      config: { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] } },
      pdb,
      nodeSelector: strMap,
      tolerations: arr(map()),
      affinity: map(),
    }),
    rspamd: obj({
      enabled: bool,
      image: imageRef,
      replicas: int(1),
      autoscaling: hpa,
      resources,
      startupSeconds: int(30),
      securityContext: obj({ runAsUser: int(1), runAsGroup: int(1) }),
      controllerPassword: obj({
        value: str(),
        existingSecret: k8sName,
        passwordKey: str({ pattern: '^[-._a-zA-Z0-9]+$' }),
      }),
      redis: obj({
        servers: str({ pattern: '^$|^[^\\s,]+(:[0-9]{1,5})?(,[^\\s,]+(:[0-9]{1,5})?)*$' }),
        db: int(0, { maximum: 15 }),
        existingSecret: k8sName,
        passwordKey: str({ pattern: '^[-._a-zA-Z0-9]+$' }),
      }),
      learning: obj({ enabled: bool }),
      localConfig: {
        type: 'object',
        description: 'Extra or replacement rspamd local.d files: file name -> content.',
        propertyNames: { pattern: '^[A-Za-z0-9][-._A-Za-z0-9]*\\.(conf|inc)$' },
        additionalProperties: { type: 'string' },
      },
      external: obj({ host: str(), workerPort: port, controllerPort: port }),
      pdb,
      podAnnotations: strMap,
      nodeSelector: strMap,
      tolerations: arr(map()),
      affinity: map(),
    }),
    defaults: obj({
      pdb,
      topologySpread,
      probes,
      env: envList,
      podAnnotations: strMap,
      nodeSelector: strMap,
      tolerations: arr(map()),
      affinity: map(),
    }),
    // One entry per service of the SERVICES table (the generated catalog, in its order): a pipeline stage that
    // consumes Kafka gets the generic consumer shape unless it has options of its own.
    // Plus the opt-in stage chain (a consumer: the same shape).
    stages: obj(
      Object.fromEntries([
        ...Object.entries(CATALOG.services).map(([key, c]) => {
          const own = { ingressSmtp, delivery: deliveryStage, admin: adminStage }[key];
          if (!own && c.kind !== 'consumer') throw new Error(`gen-schema: no values shape for service ${key}`);
          return [key, own ?? consumerStage];
        }),
        [
          'stageChain',
          obj(
            { ...consumerStage.properties, includeDelivery: bool },
            {
              description:
                'The opt-in stage chain: one Deployment runs the check stages (and delivery, with includeDelivery).',
            },
          ),
        ],
      ]),
    ),
    networkPolicy: obj({
      enabled: bool,
      smtpClients: peers,
      metricsFrom: peers,
      adminFrom: peers,
      adminCidrs: arr(str({ pattern: '^[0-9a-fA-F:.]+/[0-9]{1,3}$' })),
      defaultDeny: obj({ enabled: bool }),
      egress: obj({
        enabled: bool,
        kafka: obj({ to: peers, ports: portList }),
        redis: obj({ to: peers, ports: portList }),
        telemetry: obj({ to: peers, ports: portList }),
        dns: obj({ to: peers }),
        ldap: obj({ to: peers, ports: portList }),
        rspamd: obj({ to: peers, ports: portList }),
        rspamdLookups: obj({ to: peers, ports: portList }),
        smtpDestinations: obj({ to: peers, ports: portList }),
      }),
    }),
    metrics: obj({
      serviceMonitor: obj({ enabled: bool, interval: str({ pattern: '^[0-9]+(ms|s|m|h)$' }), labels: strMap }),
      prometheusRule: obj({ enabled: bool, labels: strMap }),
    }),
  }),
};

// Formatted as the repository's prettier formats JSON (npm run lint checks it), so the file never drifts.
const prettier = await import('prettier');
const options = (await prettier.resolveConfig(OUT)) ?? {};
const text = await prettier.format(JSON.stringify(schema), { ...options, parser: 'json', filepath: OUT });
if (process.argv.includes('--check')) {
  const current = readFileSync(OUT, 'utf8');
  if (current !== text) {
    console.error(`${OUT} is stale: run node deploy/k8s-validate/gen-schema.mjs`);
    process.exit(1);
  }
  console.log('values.schema.json is up to date');
} else {
  writeFileSync(OUT, text);
  console.log(`wrote ${OUT}`);
}
