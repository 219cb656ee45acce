/**
 * The pipeline, declared once. Every service imports its input/output topics from here, so the stage graph
 * a newcomer reads in this file is the one that runs.
 */

/** Kafka topic names. Keep them stable: renaming a topic strands messages in the old one. */
export const TOPICS = {
  /** ingress-smtp → dnsbl-check: every message accepted with a 250. */
  inbound: 'mailgate.inbound',
  /** dnsbl-check → virus-scan. */
  dnsblChecked: 'mailgate.dnsbl-checked',
  /** virus-scan → attachment-policy. */
  scanned: 'mailgate.scanned',
  /** attachment-policy → spam-check: mail that passed the virus scan and the attachment policy. */
  policyChecked: 'mailgate.policy-checked',
  /** spam-check → delivery (also where generated DSNs and "release as is" re-enter). */
  deliverable: 'mailgate.deliverable',
  /** Messages held by a stage (quarantine / reject verdicts, unscannable, malformed). Consumed by admin. */
  quarantine: 'mailgate.quarantine',
  /** Tracking events from every service (received, stage verdicts, delivery attempts). Consumed by admin. */
  events: 'mailgate.events',
  /** Records a stage failed to process after all retries (a bug or poison input), with the error. */
  deadLetter: 'mailgate.dead-letter',
} as const;

export type TopicKey = keyof typeof TOPICS;
export type TopicName = (typeof TOPICS)[TopicKey];

/** The services that make up the pipeline, in order. */
export const PIPELINE_STAGES = [
  'ingress-smtp',
  'dnsbl-check',
  'virus-scan',
  'attachment-policy',
  'spam-check',
  'delivery',
] as const;
export type PipelineStage = (typeof PIPELINE_STAGES)[number];

/** Services that are not pipeline stages but run beside them. */
export const AUX_SERVICES = ['admin'] as const;
export type ServiceName = PipelineStage | (typeof AUX_SERVICES)[number];

export interface StageEdge {
  /** Topic the stage consumes (null for ingress: it reads SMTP). */
  readonly consumes: TopicName | null;
  /** Topic a `pass` verdict is produced to (null for delivery: it writes SMTP). */
  readonly produces: TopicName | null;
  /** Kafka consumer group of the stage (all replicas of a stage share it). */
  readonly group: string | null;
}

/** The stage graph: which stage reads which topic and writes which. */
export const STAGE_GRAPH: Readonly<Record<PipelineStage, StageEdge>> = {
  'ingress-smtp': { consumes: null, produces: TOPICS.inbound, group: null },
  'dnsbl-check': { consumes: TOPICS.inbound, produces: TOPICS.dnsblChecked, group: 'mailgate.dnsbl-check' },
  'virus-scan': { consumes: TOPICS.dnsblChecked, produces: TOPICS.scanned, group: 'mailgate.virus-scan' },
  'attachment-policy': {
    consumes: TOPICS.scanned,
    produces: TOPICS.policyChecked,
    group: 'mailgate.attachment-policy',
  },
  // Last check before delivery: rspamd only sees mail that is virus-free and within the attachment policy, so
  // its CPU goes to mail that could be delivered, and a quarantined virus is never also learned as spam.
  'spam-check': { consumes: TOPICS.policyChecked, produces: TOPICS.deliverable, group: 'mailgate.spam-check' },
  delivery: { consumes: TOPICS.deliverable, produces: null, group: 'mailgate.delivery' },
};

/** Consumer groups of the auxiliary consumers. */
export const AUX_GROUPS = {
  adminEvents: 'mailgate.admin.events',
  adminQuarantine: 'mailgate.admin.quarantine',
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

/** Every topic the pipeline uses, for creating them up front. */
export const ALL_TOPICS: readonly TopicName[] = Object.values(TOPICS);
