import type { Logger, WindowCounter } from '@mailgate/runtime';
import type { Context } from '@opentelemetry/api';
import { commandArgument, parsePath } from '../address.js';
import type { IngressConfig, ListenerKind } from '../config.js';
import type { ListPhase } from '../list-phase.js';
import { REPLIES } from '../replies.js';
import type { MailFromAuth, SenderAuthPhase } from '../sender-auth-phase.js';
import { refusal, type Refusal } from './state.js';

/**
 * MAIL FROM (Haraka `mail`, Postfix `smtpd_sender_restrictions`): the sender parsed strictly from the raw command
 * line (address.ts, not the library's lenient parser); submission requires AUTH; the live sender-block list; the
 * DNSBL again when XCLIENT changed the client address since connect; the per-IP message rate (Redis, shared by
 * replicas); then, once the transaction exists, SPF (sender-auth-phase.ts).
 */

/** The sender of `MAIL FROM:<…>` ('' for the null sender), or the 501. */
export function parseSender(line: string): { readonly sender: string } | { readonly refuse: Refusal } {
  const arg = commandArgument(line, 'MAIL FROM');
  const p = arg === null ? null : parsePath(arg, { allowNull: true });
  if (!p) return { refuse: refusal(REPLIES.badSenderSyntax()) };
  if (!p.ok) return { refuse: refusal(REPLIES.badSenderSyntax(p.reason)) };
  return { sender: p.mailbox?.address ?? '' };
}

export interface MailFacts {
  readonly listener: ListenerKind;
  readonly ip: string;
  readonly sender: string;
  readonly authenticated: boolean;
  /** The IP is in `trustedNetworks`. */
  readonly trusted: boolean;
  /** The IP the connect-time DNSBL checked (undefined: not checked). */
  readonly dnsblCheckedIp?: string | undefined;
}

const mailTrack = (sender: string) => ({ phase: 'mail', mailFrom: sender }) as const;

/** Pure: AUTH required on submission, then the sender-block list (never for trusted or authenticated clients). */
export function senderPolicy(m: MailFacts, lists: Pick<ListPhase, 'atMailFrom'> | null | undefined): Refusal | null {
  if (m.listener === 'submission' && !m.authenticated) {
    return refusal(REPLIES.authRequired, 'auth-required', mailTrack(m.sender));
  }
  const block = m.trusted || m.authenticated ? null : lists?.atMailFrom(m.sender);
  if (!block) return null;
  const log = { msg: 'sender refused: sender-block list', fields: { ip: m.ip, from: m.sender } };
  return refusal(block, 'sender-blocked', mailTrack(m.sender), log);
}

/** Pure: the connect-time DNSBL must look at this client again (XCLIENT ADDR= replaced the address). */
export function needsDnsblRecheck(m: MailFacts): boolean {
  return m.listener === 'mx' && !m.trusted && m.dnsblCheckedIp !== m.ip;
}

/** Pure: the message rate limit applies to this client. */
export function rateLimited(m: MailFacts, limits: Pick<IngressConfig['limits'], 'rateLimitExemptTrusted'>): boolean {
  return !(limits.rateLimitExemptTrusted && (m.trusted || m.authenticated));
}

export interface MailDeps {
  readonly lists?: Pick<ListPhase, 'atMailFrom'> | null | undefined;
  /** Re-run the connect-time DNSBL check for the current address (null: no connect filter). */
  readonly dnsbl?: ((ip: string) => Promise<Refusal | null>) | null | undefined;
  /** Messages per client IP (null: no Redis, the limit is off). */
  readonly messageRate?: Pick<WindowCounter, 'enabled' | 'max' | 'hit'> | null | undefined;
  readonly limits: Pick<IngressConfig['limits'], 'rateLimitExemptTrusted' | 'onRedisError'>;
  readonly log: Logger;
}

/** Everything MAIL FROM checks before the transaction starts; null = go on. */
export async function mailPhase(m: MailFacts, deps: MailDeps): Promise<Refusal | null> {
  const policy = senderPolicy(m, deps.lists);
  if (policy) return policy;
  if (deps.dnsbl && needsDnsblRecheck(m)) {
    const r = await deps.dnsbl(m.ip);
    if (r) return r;
  }
  const rate = deps.messageRate;
  if (rate?.enabled && rateLimited(m, deps.limits)) {
    try {
      if ((await rate.hit(m.ip)) > rate.max) {
        return refusal(REPLIES.messageRateExceeded(m.ip), 'message-rate', mailTrack(m.sender));
      }
    } catch (err) {
      deps.log.warn({ err }, 'message rate counter unavailable');
      if (deps.limits.onRedisError === 'tempfail') return refusal(REPLIES.rateLimiterUnavailable);
    }
  }
  return null;
}

/** SPF inside the new transaction: its state is kept for end of DATA (DMARC alignment). */
export async function mailSenderAuth(
  phase: SenderAuthPhase,
  s: {
    readonly ip: string;
    readonly helo: string;
    readonly mailFrom: string;
    authenticated: boolean;
    trusted: boolean;
  },
  ctx: Context,
): Promise<{ readonly state: MailFromAuth; readonly refuse?: Refusal }> {
  const a = await phase.atMailFrom(s, ctx);
  if (!a.refuse) return { state: a.state };
  return { state: a.state, refuse: { error: a.refuse, reason: 'sender-auth', track: { phase: 'mail' } } };
}
