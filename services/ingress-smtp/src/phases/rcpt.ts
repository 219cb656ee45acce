import type { Logger } from '@mailgate/runtime';
import { commandArgument } from '../address.js';
import type { ConnectFilter, ConnectFilterResult } from '../connect-filter.js';
import type { RecipientPhase } from '../recipient-phase.js';
import { REPLIES } from '../replies.js';
import { decideRecipient, parseRecipient, type RelayPolicy } from '../relay.js';
import { refusal, type Refusal } from './state.js';

/**
 * RCPT TO (Haraka `rcpt`, Postfix `smtpd_recipient_restrictions`): the recipient parsed strictly from the raw
 * line; a DNSBL-listed client kept for exception recipients reaches only those; relay control (relay.ts: accepted
 * domain, or an authenticated / trusted client); then, for inbound recipients, the directory check with its
 * harvest tarpit (recipient-phase.ts).
 */

export interface RcptFacts {
  /** The raw RCPT command line. */
  readonly line: string;
  readonly ip: string;
  readonly authenticated: boolean;
  readonly trusted: boolean;
  /** The client is DNSBL-listed but kept for the filter's exception recipients. */
  readonly listed: ConnectFilterResult | null;
}

export type RcptDecision =
  { readonly refuse: Refusal } | { readonly refuse?: undefined; readonly address: string; readonly inbound: boolean };

/** Pure: parse, DNSBL exceptions, relay control. */
export function rcptPhase(
  r: RcptFacts,
  policy: RelayPolicy,
  filter: Pick<ConnectFilter, 'isException'> | null | undefined,
): RcptDecision {
  const arg = commandArgument(r.line, 'RCPT TO');
  const parsed = arg === null ? null : parseRecipient(arg, policy);
  if (!parsed) return { refuse: refusal(REPLIES.badRecipientSyntax()) };
  if (!parsed.ok) return { refuse: refusal(parsed.reply) };
  const address = parsed.mailbox.address;
  const track = { phase: 'rcpt', rcptTo: [address] } as const;
  if (r.listed && !filter?.isException?.(address)) {
    return { refuse: refusal(REPLIES.listed(r.ip, r.listed), 'dnsbl', track) };
  }
  const d = decideRecipient(parsed.mailbox, { authenticated: r.authenticated, trusted: r.trusted }, policy);
  if (d.accept) return { address: d.address, inbound: d.inbound };
  const reason = d.reply.enhanced === '5.7.1' ? 'relay-denied' : 'recipient-unknown';
  const log = { msg: 'recipient refused', fields: { ip: r.ip, rcpt: address, reason: d.reply.text } };
  return { refuse: refusal(d.reply, reason, track, log) };
}

/**
 * The directory check for an inbound recipient. `unknown`: count it for the session's harvest budget. A directory
 * that cannot answer is 451 4.4.3 (the sender retries), never "accept unchecked".
 */
export async function verifyRecipient(
  phase: RecipientPhase,
  address: string,
  ip: string,
  unknownSoFar: number,
  log: Logger,
): Promise<{ readonly refuse: Refusal | null; readonly unknown: boolean }> {
  let r: Awaited<ReturnType<RecipientPhase['check']>>;
  try {
    r = await phase.check(address, ip, unknownSoFar);
  } catch (err) {
    log.warn({ err, rcpt: address }, 'recipient check failed: 451');
    return { refuse: refusal(REPLIES.recipientCheckFailed), unknown: false };
  }
  if (!r.refusal) return { refuse: null, unknown: r.unknown };
  const track = { phase: 'rcpt', rcptTo: [address], helo: false } as const;
  return { refuse: refusal(r.refusal.reply, r.refusal.reason, track), unknown: r.unknown };
}
