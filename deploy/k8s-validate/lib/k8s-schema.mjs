// Schema validation of rendered manifests: kubernetes-models (Kubernetes 1.27 OpenAPI schemas) for built-in kinds,
// @kubernetes-models/keda for KEDA, structural checks for the other CRDs the chart may render. These schemas do not
// reject unknown fields, so the tests assert the keys that matter on top.

const BUILTIN = new Set([
  'v1/ConfigMap',
  'v1/Secret',
  'v1/Service',
  'v1/ServiceAccount',
  'apps/v1/Deployment',
  'apps/v1/StatefulSet',
  'policy/v1/PodDisruptionBudget',
  'autoscaling/v2/HorizontalPodAutoscaler',
  'networking.k8s.io/v1/NetworkPolicy',
  'networking.k8s.io/v1/Ingress',
]);
const KEDA = new Set(['keda.sh/v1alpha1/ScaledObject', 'keda.sh/v1alpha1/TriggerAuthentication']);

/** CRDs without a model here: the spec keys each must carry. */
const CRD_REQUIRED = {
  'kafka.strimzi.io/v1beta2/Kafka': ['kafka'],
  'kafka.strimzi.io/v1beta2/KafkaNodePool': ['replicas', 'roles', 'storage'],
  'kafka.strimzi.io/v1beta2/KafkaTopic': ['topicName', 'partitions', 'replicas'],
  'cert-manager.io/v1/Certificate': ['secretName', 'dnsNames', 'issuerRef'],
  'monitoring.coreos.com/v1/ServiceMonitor': ['selector', 'endpoints'],
  'monitoring.coreos.com/v1/PrometheusRule': ['groups'],
};

const cache = new Map();
async function modelFor(apiVersion, kind) {
  const id = `${apiVersion}/${kind}`;
  if (!cache.has(id)) {
    const mod = KEDA.has(id)
      ? await import(`@kubernetes-models/keda/${apiVersion}/${kind}`)
      : await import(`kubernetes-models/${apiVersion}/${kind}`);
    cache.set(id, mod[kind]);
  }
  return cache.get(id);
}

const DNS1123 = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** Validate one manifest; returns a list of error strings (empty = valid). */
export async function validateManifest(doc) {
  const id = `${doc.apiVersion}/${doc.kind}`;
  const where = `${doc.kind}/${doc.metadata?.name}`;
  const errors = [];
  if (!doc.metadata?.name) errors.push(`${id}: metadata.name missing`);
  else if (doc.metadata.name.length > 253 || !DNS1123.test(doc.metadata.name))
    errors.push(`${where}: metadata.name is not a DNS-1123 name`);
  if (BUILTIN.has(id) || KEDA.has(id)) {
    const Model = await modelFor(doc.apiVersion, doc.kind);
    try {
      new Model(doc).validate();
    } catch (e) {
      errors.push(`${where}: ${e.message}`);
    }
  } else if (CRD_REQUIRED[id]) {
    for (const key of CRD_REQUIRED[id]) if (doc.spec?.[key] === undefined) errors.push(`${where}: spec.${key} missing`);
  } else {
    errors.push(`${where}: unexpected apiVersion/kind ${id} (add a model or a structural check)`);
  }
  return errors;
}
