import type { ServiceName } from './services.js';

/**
 * Tracking events: the per-message timeline an administrator reads ("where is the mail from bob@ sent at 10:02?").
 * Every service emits them to TOPICS.events; the admin service indexes them. They are JSON, one per record,
 * keyed by message id.
 */
export type TrackingEventType =
  | 'received' // ingress accepted (250)
  | 'refused' // ingress refused a transaction (no message id was issued to the client, but we log it)
  | 'stage' // a checking stage decided (verdict in details)
  | 'quarantined'
  | 'delivered' // a remote server answered 250 for some recipients
  | 'deferred' // temporary failure, will retry
  | 'bounced' // permanent failure, DSN generated (or not, for <>)
  | 'dsn-generated'
  | 'dead-lettered'
  | 'released'
  | 'deleted';

export interface TrackingEvent {
  readonly type: TrackingEventType;
  readonly messageId: string;
  readonly traceId?: string;
  /** ISO time. */
  readonly at: string;
  readonly service: ServiceName;
  /** Instance (pod) name. */
  readonly host: string;
  /** Envelope facts, repeated so each event is searchable alone. */
  readonly mailFrom?: string;
  readonly rcptTo?: readonly string[];
  readonly clientIp?: string;
  readonly details?: Readonly<Record<string, unknown>>;
}

export function encodeEvent(e: TrackingEvent): Buffer {
  return Buffer.from(JSON.stringify(e), 'utf8');
}

export function decodeEvent(value: Buffer | null | undefined): TrackingEvent {
  if (!value) throw new Error('empty event record');
  return JSON.parse(value.toString('utf8')) as TrackingEvent;
}
