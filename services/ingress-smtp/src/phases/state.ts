import type { Context, Span } from '@opentelemetry/api';
import type { ListenerKind } from '../config.js';
import type { ConnectFilterResult } from '../connect-filter.js';
import type { RefusalFacts } from '../refusals.js';
import { smtpError, type SmtpReply, type SmtpReplyError } from '../replies.js';
import type { MailFromAuth } from '../sender-auth-phase.js';

/**
 * What ingress remembers per connection and per transaction, and the shape every phase answers in. The phase
 * modules (connect, command, helo, mail, rcpt, data) read this state and return decisions; ingress.ts and
 * sessions.ts own the state, apply the decisions and count them.
 */

/** One SMTP transaction: MAIL FROM .. end of DATA (or RSET / the next MAIL). */
export interface TxState {
  readonly span: Span;
  readonly ctx: Context;
  readonly mailFrom: string;
  readonly rcpts: string[];
  /** Per recipient: local mail for an accepted domain (inbound) or relayed. */
  readonly inbound: boolean[];
  /** Lower-cased recipients already accepted (a repeated RCPT is accepted once). */
  readonly keys: Set<string>;
  auth?: MailFromAuth;
}

/** One SMTP connection. */
export interface ConnState {
  readonly id: string;
  readonly listener: ListenerKind;
  readonly span: Span;
  readonly ctx: Context;
  /** The client IP counted in the per-IP connection limit (released at close). */
  ipCounted?: string;
  /** `limits.sessionTimeoutMs` passed. */
  expired: boolean;
  timer?: NodeJS.Timeout;
  /** The IP the connect-time DNSBL last checked (XCLIENT ADDR= may change the client address later). */
  filteredIp?: string;
  /** DNSBL-listed but kept for the filter's exception recipients. */
  listed: ConnectFilterResult | null;
  /** The client matched an ip-allow list entry at connect: the dnsbl-check stage skips its message too. */
  allowListed?: boolean;
  /** The last command line (binary string, no CRLF): MAIL/RCPT are parsed from it strictly. */
  lastLine: string;
  /** Unrecognised commands so far. */
  unknown: number;
  /** Unknown recipients so far (harvest tarpit). */
  unknownRcpts: number;
  tx: TxState | null;
}

/** A `refused` tracking event to record for a refusal (phase, and facts that differ from the transaction's). */
export interface RefusalTrack {
  readonly phase: RefusalFacts['phase'];
  /** The sender of the refused command (MAIL FROM refusals happen before the transaction exists). */
  readonly mailFrom?: string;
  /** The refused recipient (RCPT refusals). */
  readonly rcptTo?: readonly string[];
  /** false: the event carries no HELO name (connect-time checks, the recipient directory). */
  readonly helo?: boolean;
}

/**
 * A phase's "no": what the client hears, the `mailgate_ingress_refused{reason}` label (absent = not counted, e.g.
 * syntax errors) and, when `track` is set, a `refused` tracking event.
 */
export interface Refusal {
  readonly error: SmtpReplyError;
  readonly reason?: string;
  readonly track?: RefusalTrack;
  /** An info log line for it (pure phases log through the decision). */
  readonly log?: { readonly msg: string; readonly fields: Readonly<Record<string, unknown>> };
}

export function refusal(reply: SmtpReply, reason?: string, track?: RefusalTrack, log?: Refusal['log']): Refusal {
  return {
    error: smtpError(reply),
    ...(reason !== undefined ? { reason } : {}),
    ...(track ? { track } : {}),
    ...(log ? { log } : {}),
  };
}
