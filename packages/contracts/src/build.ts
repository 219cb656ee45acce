import { ENVELOPE_SCHEMA, type Envelope, type SessionFacts, type TraceFacts } from './envelope.js';
import { newMessageId } from './ids.js';

export interface NewEnvelopeInput {
  readonly mailFrom: string;
  readonly rcptTo: readonly string[];
  readonly size: number;
  readonly id?: string;
  readonly receivedAt?: string;
  readonly direction?: Envelope['direction'];
  readonly session?: Partial<SessionFacts>;
  readonly trace?: TraceFacts;
  readonly origin?: Envelope['origin'];
}

const ZERO_TRACE: TraceFacts = {
  traceparent: '00-00000000000000000000000000000000-0000000000000000-00',
  traceId: '00000000000000000000000000000000',
};

/**
 * A complete envelope with explicit defaults for what the caller does not know. Used where a message is
 * created inside the gateway (DSNs, tests); ingress fills every field from the SMTP session.
 */
export function newEnvelope(input: NewEnvelopeInput): Envelope {
  return {
    schema: ENVELOPE_SCHEMA,
    id: input.id ?? newMessageId(),
    receivedAt: input.receivedAt ?? new Date().toISOString(),
    mailFrom: input.mailFrom,
    rcptTo: [...input.rcptTo],
    size: input.size,
    direction: input.direction ?? 'inbound',
    session: {
      clientIp: '127.0.0.1',
      helo: 'localhost',
      tls: { enabled: false },
      trustedNetwork: false,
      listener: 'mx',
      ingressHost: 'local',
      ...input.session,
    },
    trace: input.trace ?? ZERO_TRACE,
    verdicts: [],
    ...(input.origin ? { origin: input.origin } : {}),
  };
}
