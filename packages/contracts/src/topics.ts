/**
 * The Kafka topics, declared once. Which service reads and writes which (the stage graph) is declared in
 * services.ts (`SERVICES`, with `STAGE_GRAPH` and `PIPELINE_STAGES` derived from it).
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

/** Every topic the pipeline uses, for creating them up front. */
export const ALL_TOPICS: readonly TopicName[] = Object.values(TOPICS);
