/**
 * Every service of mailgate, declared once: what it reads and writes (topics from topics.ts), its Kafka consumer
 * groups, its configuration section, its HTTP port (health, readiness and /metrics) and how it scales.
 *
 * Everything else is derived from this table: the stage graph below (`STAGE_GRAPH`, `PIPELINE_STAGES`), the
 * services' `http.port` defaults, the runtime's configuration sections, the CLI's service list and dev launcher,
 * and — through `npm run gen` (scripts/gen.mjs) — the Helm chart's service catalog
 * (helm/mailgate/generated/services.yaml) and the Prometheus scrape configuration (deploy/prometheus/prometheus.yml).
 * Adding a stage or changing a port is one edit here plus `npm run gen` (docs/conventions.md).
 */
import { TOPICS, type TopicName } from './topics.js';

/** How a service's replicas are scaled in Kubernetes (the chart's defaults; values can override the numbers). */
export type ScalingHint =
  /** No consumer lag to scale on (SMTP): a HorizontalPodAutoscaler on CPU. */
  | {
      readonly on: 'cpu';
      readonly minReplicas: number;
      readonly maxReplicas: number;
      readonly targetCpuPercent: number;
    }
  /** A pipeline stage: KEDA on the consumer group's lag on its input topic (never more replicas than partitions). */
  | {
      readonly on: 'lag';
      readonly minReplicas: number;
      readonly maxReplicas: number;
      /** Lag per replica KEDA aims for. */
      readonly lagThreshold: number;
    }
  /** A fixed number of replicas (`stages.<key>.replicas`). */
  | { readonly on: 'none' };

export interface ServiceSpec {
  /** npm package whose entry exports `service` (what `mailgate <name>` runs). */
  readonly package: string;
  /** Top-level key of the configuration document the service reads (mailgate.yaml). */
  readonly section: string;
  /** Key of the service under `stages` in the Helm values. */
  readonly helmKey: string;
  /** `smtp`: listens for SMTP (ingress); `consumer`: a pipeline stage reading `consumes`; `http`: an API beside. */
  readonly kind: 'smtp' | 'consumer' | 'http';
  /** A stage of the pipeline (in the order of this table), as opposed to a service beside it. */
  readonly pipeline: boolean;
  /** Topic the stage consumes (null: ingress reads SMTP). */
  readonly consumes: TopicName | null;
  /** Topic a `pass` verdict is produced to (null: delivery writes SMTP). */
  readonly produces: TopicName | null;
  /** Consumer group of the stage (all replicas share it). */
  readonly group: string | null;
  /** Consumers beside the pipeline (admin's ingest): name → topic and consumer group. */
  readonly sideConsumers?: Readonly<Record<string, { readonly topic: TopicName; readonly group: string }>>;
  /** Default port of the HTTP server: /healthz, /readyz and /metrics (Prometheus scrapes this port). */
  readonly httpPort: number;
  readonly scaling: ScalingHint;
}

/** The services, pipeline stages first and in pipeline order. */
export const SERVICES = {
  'ingress-smtp': {
    package: '@mailgate/ingress-smtp',
    section: 'ingress',
    helmKey: 'ingressSmtp',
    kind: 'smtp',
    pipeline: true,
    consumes: null,
    produces: TOPICS.inbound,
    group: null,
    httpPort: 9101,
    scaling: { on: 'cpu', minReplicas: 2, maxReplicas: 10, targetCpuPercent: 60 },
  },
  'dnsbl-check': {
    package: '@mailgate/dnsbl-check',
    section: 'dnsbl',
    helmKey: 'dnsblCheck',
    kind: 'consumer',
    pipeline: true,
    consumes: TOPICS.inbound,
    produces: TOPICS.dnsblChecked,
    group: 'mailgate.dnsbl-check',
    httpPort: 9102,
    scaling: { on: 'lag', minReplicas: 2, maxReplicas: 12, lagThreshold: 50 },
  },
  'virus-scan': {
    package: '@mailgate/virus-scan',
    section: 'virusScan',
    helmKey: 'virusScan',
    kind: 'consumer',
    pipeline: true,
    consumes: TOPICS.dnsblChecked,
    produces: TOPICS.scanned,
    group: 'mailgate.virus-scan',
    httpPort: 9103,
    scaling: { on: 'lag', minReplicas: 2, maxReplicas: 12, lagThreshold: 20 },
  },
  'attachment-policy': {
    package: '@mailgate/attachment-policy',
    section: 'attachmentPolicy',
    helmKey: 'attachmentPolicy',
    kind: 'consumer',
    pipeline: true,
    consumes: TOPICS.scanned,
    produces: TOPICS.policyChecked,
    group: 'mailgate.attachment-policy',
    httpPort: 9104,
    scaling: { on: 'lag', minReplicas: 2, maxReplicas: 12, lagThreshold: 20 },
  },
  // Last check before delivery: rspamd only sees mail that is virus-free and within the attachment policy, so
  // its CPU goes to mail that could be delivered, and a quarantined virus is never also learned as spam.
  'spam-check': {
    package: '@mailgate/spam-check',
    section: 'spamCheck',
    helmKey: 'spamCheck',
    kind: 'consumer',
    pipeline: true,
    consumes: TOPICS.policyChecked,
    produces: TOPICS.deliverable,
    group: 'mailgate.spam-check',
    httpPort: 9107,
    scaling: { on: 'lag', minReplicas: 2, maxReplicas: 12, lagThreshold: 20 },
  },
  delivery: {
    package: '@mailgate/delivery',
    section: 'delivery',
    helmKey: 'delivery',
    kind: 'consumer',
    pipeline: true,
    consumes: TOPICS.deliverable,
    produces: null,
    group: 'mailgate.delivery',
    httpPort: 9105,
    scaling: { on: 'lag', minReplicas: 2, maxReplicas: 12, lagThreshold: 20 },
  },
  admin: {
    package: '@mailgate/admin',
    section: 'admin',
    helmKey: 'admin',
    kind: 'http',
    pipeline: false,
    consumes: null,
    produces: null,
    group: null,
    sideConsumers: {
      adminEvents: { topic: TOPICS.events, group: 'mailgate.admin.events' },
      adminQuarantine: { topic: TOPICS.quarantine, group: 'mailgate.admin.quarantine' },
    },
    httpPort: 9106,
    scaling: { on: 'none' },
  },
} as const satisfies Readonly<Record<string, ServiceSpec>>;

type Table = typeof SERVICES;
export type ServiceName = keyof Table;
/** The services that make up the pipeline, in order. */
export type PipelineStage = { [K in ServiceName]: Table[K]['pipeline'] extends true ? K : never }[ServiceName];
/** The configuration sections that belong to a service. */
export type ServiceConfigSection = Table[ServiceName]['section'];

/** Every service name, in table order. */
export const SERVICE_NAMES = Object.keys(SERVICES) as ServiceName[];

/** The service's entry (typed as the general shape, for code that iterates). */
export function serviceSpec(name: ServiceName): ServiceSpec {
  return SERVICES[name];
}

export function isServiceName(s: string): s is ServiceName {
  return Object.hasOwn(SERVICES, s);
}

/** The services that make up the pipeline, in order. */
export const PIPELINE_STAGES: readonly PipelineStage[] = SERVICE_NAMES.filter(
  (n): n is PipelineStage => SERVICES[n].pipeline,
);

/** Services that are not pipeline stages but run beside them. */
export const AUX_SERVICES: readonly Exclude<ServiceName, PipelineStage>[] = SERVICE_NAMES.filter(
  (n): n is Exclude<ServiceName, PipelineStage> => !SERVICES[n].pipeline,
);

/** Configuration sections owned by services, in table order. */
export const SERVICE_CONFIG_SECTIONS: readonly ServiceConfigSection[] = SERVICE_NAMES.map((n) => SERVICES[n].section);

export interface StageEdge {
  /** Topic the stage consumes (null for ingress: it reads SMTP). */
  readonly consumes: TopicName | null;
  /** Topic a `pass` verdict is produced to (null for delivery: it writes SMTP). */
  readonly produces: TopicName | null;
  /** Kafka consumer group of the stage (all replicas of a stage share it). */
  readonly group: string | null;
}

/** The stage graph: which stage reads which topic and writes which (a view of SERVICES). */
export const STAGE_GRAPH: Readonly<Record<PipelineStage, StageEdge>> = Object.fromEntries(
  PIPELINE_STAGES.map((s) => {
    const { consumes, produces, group } = serviceSpec(s);
    return [s, { consumes, produces, group }];
  }),
) as Record<PipelineStage, StageEdge>;

/** Consumer groups of the auxiliary consumers. */
export const AUX_GROUPS = {
  adminEvents: SERVICES.admin.sideConsumers.adminEvents.group,
  adminQuarantine: SERVICES.admin.sideConsumers.adminQuarantine.group,
} as const;

export function isPipelineStage(s: string): s is PipelineStage {
  return (PIPELINE_STAGES as readonly string[]).includes(s);
}

/** The stage that runs after `stage` (where a message released from `stage`'s quarantine re-enters). */
export function nextStage(stage: PipelineStage): PipelineStage | null {
  const i = PIPELINE_STAGES.indexOf(stage);
  return PIPELINE_STAGES[i + 1] ?? null;
}

/** The topic a message must be produced to so that `stage` processes it next. */
export function inputTopicOf(stage: PipelineStage): TopicName {
  const t = STAGE_GRAPH[stage].consumes;
  if (!t) throw new Error(`stage ${stage} has no input topic`);
  return t;
}

/** Default HTTP port (health, readiness, /metrics) of a service. */
export function httpPortOf(name: ServiceName): number {
  return SERVICES[name].httpPort;
}

/**
 * The stages a stage chain (`mailgate chain …`, one process running consecutive stages in memory) may contain: the
 * check stages and delivery (its retry worker and reconciler then run in the chain process too). Ingress reads SMTP,
 * not a topic, so it stays a process of its own.
 */
export const CHAINABLE_STAGES = [
  'dnsbl-check',
  'virus-scan',
  'attachment-policy',
  'spam-check',
  'delivery',
] as const satisfies readonly PipelineStage[];
/** The chain `mailgate chain` / `mailgate dev --chain` / the Helm chart's stageChain run by default: the check stages. */
export const CHECK_STAGES = [
  'dnsbl-check',
  'virus-scan',
  'attachment-policy',
  'spam-check',
] as const satisfies readonly ChainableStage[];
export type ChainableStage = (typeof CHAINABLE_STAGES)[number];

export function isChainableStage(s: string): s is ChainableStage {
  return (CHAINABLE_STAGES as readonly string[]).includes(s);
}

/**
 * Why `stages` cannot run as one chain of consecutive stages (each step's `produces` is the next step's
 * `consumes`), or null when they can. Any consumer stage may be a step here; which stages the CLI accepts is
 * CHAINABLE_STAGES.
 */
export function chainProblem(stages: readonly PipelineStage[]): string | null {
  if (stages.length === 0) return 'a stage chain needs at least one stage';
  if (new Set(stages).size !== stages.length) return `a stage appears twice in the chain ${stages.join(',')}`;
  for (const s of stages) {
    if (!STAGE_GRAPH[s].consumes) return `${s} consumes no topic: it cannot be a step of a stage chain`;
  }
  for (let k = 0; k + 1 < stages.length; k++) {
    const a = stages[k]!;
    const b = stages[k + 1]!;
    if (STAGE_GRAPH[a].produces !== STAGE_GRAPH[b].consumes) {
      return (
        `stage chain ${stages.join(',')}: ${b} does not follow ${a} (${a} produces ` +
        `${STAGE_GRAPH[a].produces ?? 'nothing'}, ${b} consumes ${STAGE_GRAPH[b].consumes ?? 'nothing'}); ` +
        `the steps must be consecutive stages in pipeline order (${PIPELINE_STAGES.join(' → ')})`
      );
    }
  }
  return null;
}

/**
 * Consumer group of a stage chain: its own, named after its first and last step
 * (`mailgate.chain.dnsbl-check..spam-check`); a chain of one stage is that stage and uses its group.
 */
export function chainGroup(stages: readonly PipelineStage[]): string {
  const first = stages[0];
  if (!first) throw new Error('a stage chain needs at least one stage');
  if (stages.length === 1) return STAGE_GRAPH[first].group ?? `mailgate.${first}`;
  return `mailgate.chain.${first}..${stages[stages.length - 1]!}`;
}
