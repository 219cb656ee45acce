/** Kafka record header names carried by every pipeline record. */
export const RECORD_HEADERS = {
  traceparent: 'traceparent',
  tracestate: 'tracestate',
  messageId: 'mailgate-id',
  schema: 'mailgate-schema',
  /** Number of times the record was re-produced after a failure (dead-letter bookkeeping). */
  attempts: 'mailgate-attempts',
  /** On dead-letter and quarantine records: the topic the record came from. */
  sourceTopic: 'mailgate-source-topic',
  /** On dead-letter records: the error that exhausted the retries. */
  error: 'mailgate-error',
} as const;

/** Message headers the gateway adds to the RFC 5322 message itself. */
export const MAIL_HEADERS = {
  traceId: 'X-Mailgate-Trace-Id',
  messageId: 'X-Mailgate-Id',
  virusScanned: 'X-Mailgate-Virus-Scanned',
  dnsbl: 'X-Mailgate-DNSBL',
  attachmentPolicy: 'X-Mailgate-Attachment-Policy',
  /** spam-check (SpamAssassin-compatible names, so existing mail-client rules keep working). */
  spamStatus: 'X-Spam-Status',
  spamScore: 'X-Spam-Score',
  spamFlag: 'X-Spam-Flag',
  /** Exchange-style spam confidence level 0–9 (-1: trusted/authenticated, not checked). */
  spamScl: 'X-Mailgate-SCL',
  spamSymbols: 'X-Spam-Symbols',
} as const;
