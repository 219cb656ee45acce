import type { PipelineStage, ServiceName } from './services.js';
import type { Verdict } from './verdict.js';

/**
 * The message envelope: everything the pipeline knows about a message besides its RFC 5322 bytes.
 * It travels with the raw bytes in one Kafka record (see codec.ts). Bump ENVELOPE_SCHEMA on any
 * incompatible change; readers reject versions they do not know (the record is dead-lettered, not dropped).
 */
export const ENVELOPE_SCHEMA = 1;

/** Facts from the SMTP session that accepted the message. */
export interface SessionFacts {
  /** Client IP the checks use: the socket address, or the one given by a trusted PROXY/XCLIENT. */
  readonly clientIp: string;
  readonly clientPort?: number;
  /** Reverse DNS name of the client, when looked up. */
  readonly clientHostname?: string;
  /** HELO/EHLO argument as given. */
  readonly helo: string;
  readonly tls: { readonly enabled: boolean; readonly protocol?: string; readonly cipher?: string };
  /** Authenticated user (SMTP AUTH), if any. */
  readonly authUser?: string;
  /** The client matched a trusted network (CIDR) from config. */
  readonly trustedNetwork: boolean;
  /**
   * The client IP matched an ip-allow entry of the live lists (ingress.lists) at connect: it skipped the
   * connect-time DNSBL check, and the dnsbl-check stage passes its messages unchecked (reason `allow-listed`).
   * Absent = not allow-listed (optional, so records written before it existed still read the same).
   */
  readonly ipAllowListed?: boolean;
  /** Which listener took the message. */
  readonly listener: 'mx' | 'submission';
  /** Host name (pod) of the ingress instance that accepted it. */
  readonly ingressHost: string;
}

export interface TraceFacts {
  /** W3C traceparent of the message's root span (the SMTP transaction). */
  readonly traceparent: string;
  readonly tracestate?: string;
  /** The 32-hex trace id, repeated for humans and indexes. */
  readonly traceId: string;
}

/** One stage's recorded decision, appended as the message moves. */
export interface StageVerdict {
  readonly stage: PipelineStage | 'admin';
  readonly verdict: Verdict;
  /** ISO time the decision was made. */
  readonly at: string;
  readonly durationMs: number;
  /** Instance (pod) that decided. */
  readonly host?: string;
  /** Stage-specific facts: zone answers, signature names, matched attachment rules. JSON only. */
  readonly details?: Readonly<Record<string, unknown>>;
  /** True when the operator configured this check fail-open and it was skipped. */
  readonly failedOpen?: boolean;
}

export type Direction = 'inbound' | 'outbound';

export interface Envelope {
  readonly schema: typeof ENVELOPE_SCHEMA;
  /** Gateway message id (also the Kafka record key and the `queued as` id). */
  readonly id: string;
  /** ISO time ingress accepted the message (the moment of the 250). */
  readonly receivedAt: string;
  /** Envelope sender (MAIL FROM); '' for the null sender <>. */
  readonly mailFrom: string;
  /** Envelope recipients (RCPT TO), as accepted. */
  readonly rcptTo: readonly string[];
  /** Size of the raw message bytes. */
  readonly size: number;
  /** inbound = to an accepted domain; outbound = relayed for an authenticated/trusted client. */
  readonly direction: Direction;
  readonly session: SessionFacts;
  readonly trace: TraceFacts;
  readonly verdicts: readonly StageVerdict[];
  /** Set on generated messages (DSNs) so they are never bounced again. */
  readonly origin?: 'smtp' | 'dsn' | 'release';
  /** When released from quarantine: who released it and from which stage. */
  readonly release?: {
    readonly by: string;
    readonly at: string;
    readonly fromStage: string;
    readonly recheck: boolean;
  };
}

/** A message as the pipeline carries it: envelope plus the exact RFC 5322 bytes. */
export interface PipelineMessage {
  readonly envelope: Envelope;
  readonly raw: Buffer;
}

export function appendVerdict(env: Envelope, v: StageVerdict): Envelope {
  return { ...env, verdicts: [...env.verdicts, v] };
}

/** The latest verdict recorded by a given stage, if any. */
export function lastVerdictOf(env: Envelope, stage: StageVerdict['stage']): StageVerdict | undefined {
  for (let i = env.verdicts.length - 1; i >= 0; i--) if (env.verdicts[i]!.stage === stage) return env.verdicts[i];
  return undefined;
}

/** Which service produced something (for events). */
export type Producer = ServiceName;
