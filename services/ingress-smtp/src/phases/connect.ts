import type { Logger } from '@mailgate/runtime';
import type { IngressConfig, ListenerKind } from '../config.js';
import type { ConnectFilter, ConnectFilterResult } from '../connect-filter.js';
import type { ListPhase } from '../list-phase.js';
import { REPLIES } from '../replies.js';
import { refusal, type Refusal } from './state.js';

/**
 * Connect: before the greeting is useful (Haraka `connect`, Postfix `smtpd_client_restrictions` + postscreen).
 * Per-IP connection limit, the live ip-block / ip-allow lists, and — on the MX listener, for untrusted clients
 * that are not allow-listed — the greeting delay and the connect-time DNSBL check, which run in parallel.
 * Trusted networks skip the lists and the DNSBL; a listed client either leaves with 554 or, when the filter has
 * recipient exceptions (postmaster@, abuse@), stays with only those recipients reachable (phases/rcpt.ts).
 */

export interface ConnectFacts {
  readonly listener: ListenerKind;
  readonly ip: string;
  /** Open connections from this IP before this one (this instance). */
  readonly connectionsFromIp: number;
  /** The IP is in `trustedNetworks`. */
  readonly trusted: boolean;
}

export type ConnectDecision =
  /** `holdsSlot`: the connection counts toward the per-IP limit until it closes (refused after being counted). */
  | { readonly refuse: Refusal; readonly holdsSlot: boolean }
  | {
      readonly refuse?: undefined;
      readonly holdsSlot: true;
      /** ip-allow list: the dnsbl-check stage skips the message too. */
      readonly allowListed: boolean;
      /** Hold the greeting this long (ms; 0 = not at all). */
      readonly pregreetDelayMs: number;
      /** Run the connect-time DNSBL check (when a filter is configured). */
      readonly dnsbl: boolean;
    };

export function connectPhase(
  c: ConnectFacts,
  limits: Pick<IngressConfig['limits'], 'maxConnectionsPerIp' | 'pregreetDelayMs'>,
  lists: Pick<ListPhase, 'atConnect'> | null | undefined,
): ConnectDecision {
  if (c.connectionsFromIp >= limits.maxConnectionsPerIp) {
    return {
      refuse: refusal(REPLIES.tooManyConnectionsFromIp(c.ip), 'connections-per-ip', { phase: 'connect', helo: false }),
      holdsSlot: false,
    };
  }
  const l = !c.trusted ? lists?.atConnect(c.ip) : undefined;
  if (l?.refusal) {
    const log = { msg: 'client refused at connect: ip-block list', fields: { ip: c.ip } };
    return { refuse: refusal(l.refusal, 'ip-blocked', { phase: 'connect', helo: false }, log), holdsSlot: true };
  }
  const screened = c.listener === 'mx' && !c.trusted && !l?.skipDnsbl;
  return {
    holdsSlot: true,
    allowListed: !!l?.skipDnsbl,
    pregreetDelayMs: screened ? limits.pregreetDelayMs : 0,
    dnsbl: screened,
  };
}

/** The connect-time DNSBL answer, applied: `listed` = keep the session for exception recipients only. */
export interface DnsblDecision {
  readonly result: ConnectFilterResult | null;
  readonly listed: ConnectFilterResult | null;
  readonly refuse: Refusal | null;
}

/** Pure: what a DNSBL answer means for this session. */
export function dnsblDecision(ip: string, r: ConnectFilterResult, hasExceptions: boolean): DnsblDecision {
  if (r.action !== 'reject') return { result: r, listed: null, refuse: null };
  if (hasExceptions) return { result: r, listed: r, refuse: null };
  return {
    result: r,
    listed: r,
    refuse: refusal(REPLIES.listed(ip, r), 'dnsbl', { phase: 'connect', helo: false }),
  };
}

/**
 * Ask the connect filter about `ip`. A lookup that cannot decide never lets the client through unchecked: 421
 * (fail closed). Also run at MAIL FROM when XCLIENT replaced the client address since connect.
 */
export async function dnsblPhase(filter: ConnectFilter, ip: string, log: Logger): Promise<DnsblDecision> {
  let r: ConnectFilterResult;
  try {
    r = await filter.check(ip);
  } catch (err) {
    log.warn({ err, ip }, 'connect filter failed: refusing temporarily');
    return {
      result: null,
      listed: null,
      refuse: refusal(REPLIES.connectCheckFailed, 'filter-error', { phase: 'connect', helo: false }),
    };
  }
  const d = dnsblDecision(ip, r, hasExceptions(filter));
  if (d.refuse) log.info({ ip, zone: r.zone, score: r.score }, 'client refused at connect: listed');
  return d;
}

/** The filter lets listed clients reach some recipients (dnsbl.atConnect.exceptions). */
export function hasExceptions(filter: Pick<ConnectFilter, 'exceptions' | 'isException'> | null | undefined): boolean {
  return !!filter?.isException && (filter.exceptions?.length ?? 1) > 0;
}
