import type { Direction } from '@mailgate/contracts';
import { normalizeDomain, parsePath, type Mailbox } from './address.js';
import { REPLIES, type SmtpReply } from './replies.js';

/**
 * Relay control — the rule that keeps the gateway from being an open relay, as pure functions:
 *
 *   A recipient is accepted when its domain is an accepted domain (inbound mail), or when the client is
 *   authenticated or connects from a trusted network, in which case any recipient may be relayed (outbound).
 *   Everything else: 550 5.7.1 relaying denied.
 *
 * "Its domain is accepted" is decided on the strictly parsed mailbox (address.ts): a local part that carries
 * another destination (`%`, `!`, `@` — the percent hack, bang paths, quoted addresses) or an address literal is
 * never local mail, whatever domain follows it.
 */

export interface AcceptedDomainConfig {
  readonly domain: string;
  /** When given, only these recipients exist in the domain (local parts or full addresses, case-insensitive). */
  readonly recipients?: readonly string[] | undefined;
}

export interface RelayPolicy {
  /** Exact domains (lower-case ASCII) → allowed local parts (lower-case), or null for "any". */
  readonly exact: ReadonlyMap<string, ReadonlySet<string> | null>;
  /** `*.example.test` entries: suffixes (with the leading dot) → allowed local parts or null. */
  readonly wildcard: ReadonlyArray<readonly [string, ReadonlySet<string> | null]>;
  /** Domain used for the bare `RCPT TO:<postmaster>` (RFC 5321 §4.1.1.3); the first accepted domain. */
  readonly postmasterDomain: string | null;
}

export interface ClientFacts {
  /** SMTP AUTH succeeded (or a trusted XCLIENT LOGIN). */
  readonly authenticated: boolean;
  /** The client IP is in `trustedNetworks`. */
  readonly trusted: boolean;
}

export type RcptDecision =
  | { readonly accept: true; readonly address: string; readonly inbound: boolean }
  | { readonly accept: false; readonly reply: SmtpReply };

export function buildRelayPolicy(domains: ReadonlyArray<string | AcceptedDomainConfig>): RelayPolicy {
  const exact = new Map<string, Set<string> | null>();
  const wildcard: [string, Set<string> | null][] = [];
  let postmasterDomain: string | null = null;
  for (const d of domains) {
    const cfg = typeof d === 'string' ? { domain: d } : d;
    const isWild = cfg.domain.startsWith('*.');
    const name = normalizeDomain(isWild ? cfg.domain.slice(2) : cfg.domain);
    if (!name) throw new Error(`invalid accepted domain ${JSON.stringify(cfg.domain)}`);
    let locals: Set<string> | null = null;
    if (cfg.recipients) {
      locals = new Set();
      for (const r of cfg.recipients) {
        const at = r.lastIndexOf('@');
        if (at >= 0 && normalizeDomain(r.slice(at + 1)) !== name && !isWild) {
          throw new Error(`recipient ${JSON.stringify(r)} is not in domain ${name}`);
        }
        locals.add((at >= 0 ? r.slice(0, at) : r).toLowerCase());
      }
    }
    if (isWild) wildcard.push([`.${name}`, locals]);
    else {
      exact.set(name, locals);
      postmasterDomain ??= name;
    }
  }
  return { exact, wildcard, postmasterDomain };
}

/** The recipient list of an accepted domain (null = any recipient), or undefined when the domain is not accepted. */
function lookupDomain(policy: RelayPolicy, domain: string): ReadonlySet<string> | null | undefined {
  if (policy.exact.has(domain)) return policy.exact.get(domain)!;
  for (const [suffix, locals] of policy.wildcard) if (domain.endsWith(suffix)) return locals;
  return undefined;
}

/** True when the mailbox is local mail for an accepted domain (not routed, not a literal). */
export function isAcceptedDomainMailbox(mb: Mailbox, policy: RelayPolicy): boolean {
  return !mb.literal && !mb.routed && lookupDomain(policy, mb.domain) !== undefined;
}

/** Decide one recipient. */
export function decideRecipient(mb: Mailbox, client: ClientFacts, policy: RelayPolicy): RcptDecision {
  const mayRelay = client.authenticated || client.trusted;
  const locals = mb.literal || mb.routed ? undefined : lookupDomain(policy, mb.domain);
  if (locals !== undefined) {
    if (locals !== null && !locals.has(mb.localUnquoted.toLowerCase())) {
      return { accept: false, reply: REPLIES.userUnknown(mb.address) };
    }
    return { accept: true, address: mb.address, inbound: true };
  }
  // Foreign domain, address literal, or a local part that routes elsewhere: relaying.
  if (!mayRelay) return { accept: false, reply: REPLIES.relayDenied(mb.address) };
  return { accept: true, address: mb.address, inbound: false };
}

export type RcptParse =
  | { readonly ok: true; readonly mailbox: Mailbox; readonly sourceRoute: boolean }
  | { readonly ok: false; readonly reply: SmtpReply };

/** Parse the RCPT TO argument; the bare `<postmaster>` maps to postmaster@<first accepted domain>. */
export function parseRecipient(arg: string, policy: RelayPolicy): RcptParse {
  if (/^\s*<postmaster>/i.test(arg) && policy.postmasterDomain) {
    arg = arg.replace(/<postmaster>/i, `<postmaster@${policy.postmasterDomain}>`);
  }
  const p = parsePath(arg, { allowNull: false });
  if (!p.ok) return { ok: false, reply: REPLIES.badRecipientSyntax(p.reason) };
  return { ok: true, mailbox: p.mailbox!, sourceRoute: p.sourceRoute };
}

/** One-call relay check for tests and tools: parse + decide. */
export function checkRecipient(arg: string, client: ClientFacts, policy: RelayPolicy): RcptDecision {
  const p = parseRecipient(arg, policy);
  if (!p.ok) return { accept: false, reply: p.reply };
  return decideRecipient(p.mailbox, client, policy);
}

/** Envelope direction: inbound when every recipient is local mail for an accepted domain. */
export function directionOf(inboundFlags: readonly boolean[]): Direction {
  return inboundFlags.length > 0 && inboundFlags.every(Boolean) ? 'inbound' : 'outbound';
}
