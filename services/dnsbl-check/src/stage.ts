import type { StageFn, StageOutcome } from '@mailgate/bus';
import { MAIL_HEADERS, pass, quarantine, reject, tempfail, type PipelineMessage } from '@mailgate/contracts';
import {
  addressDomain,
  CidrList,
  isRecipientException,
  type CheckResult,
  type CheckTarget,
  type DnsblChecker,
  type DnsblConfig,
  type ZoneResult,
} from '@mailgate/dnsbl';
import { headerValues, prependHeader } from '@mailgate/mail';
import { findOrigin, type Origin } from './received.js';
import { bodyTexts, urlHosts } from './urls.js';

/** What the stage looks up for one message, and why some checks were skipped. */
export interface Plan {
  readonly targets: CheckTarget[];
  /** Why IP checks were skipped (authenticated / outbound / trusted network), if they were. */
  readonly ipSkipped?: string;
  readonly origin?: Origin;
  readonly uriScan?: string;
}

/**
 * Pure part: the facts to look up. Client IP (or, behind a trusted relay, the origin from its Received line);
 * HELO and envelope-sender domains; URL hosts from the body. Authenticated, outbound and trusted-network mail
 * skips the IP checks — unless the trusted client is a configured relay, whose Received line names the origin.
 */
export async function planChecks(
  msg: PipelineMessage,
  cfg: DnsblConfig,
  trustedRelays: CidrList,
  withUris: boolean,
): Promise<Plan> {
  const { envelope: env, raw } = msg;
  const s = env.session;
  const targets: CheckTarget[] = [];
  const relayCase = cfg.receivedHeaders.enabled && trustedRelays.has(s.clientIp);
  const ipSkipped = s.authUser
    ? 'authenticated'
    : env.direction === 'outbound'
      ? 'outbound'
      : s.trustedNetwork && !relayCase
        ? 'trusted-network'
        : !cfg.checks.clientIp
          ? 'disabled'
          : undefined;
  let origin: Origin | undefined;
  if (!ipSkipped) {
    origin = relayCase
      ? findOrigin(s.clientIp, headerValues(raw, 'received'), trustedRelays, cfg.receivedHeaders.maxHops)
      : { ip: s.clientIp, source: 'client', via: [] };
    if (origin.ip) targets.push({ kind: 'ip', value: origin.ip, source: origin.source });
  }
  if (cfg.checks.helo && s.helo) targets.push({ kind: 'domain', value: s.helo, source: 'helo' });
  const from = cfg.checks.senderDomain ? addressDomain(env.mailFrom) : null;
  if (from) targets.push({ kind: 'domain', value: from, source: 'mail-from' });
  let uriScan: string | undefined;
  if (withUris && cfg.checks.uris && cfg.checks.maxUriHosts > 0) {
    if (raw.length > cfg.checks.maxBodyBytes) uriScan = `skipped: message larger than ${cfg.checks.maxBodyBytes} bytes`;
    else {
      try {
        const hosts = urlHosts(await bodyTexts(raw), cfg.checks.maxUriHosts, cfg.checks.uriSkipDomains);
        for (const h of hosts) targets.push({ kind: 'uri', value: h, source: 'body-url' });
      } catch (err) {
        // Fewer checks, not a failure: the other stages judge a body that cannot be parsed.
        uriScan = `failed: ${(err as Error).message}`;
      }
    }
  }
  return {
    targets,
    ...(ipSkipped ? { ipSkipped } : {}),
    ...(origin ? { origin } : {}),
    ...(uriScan ? { uriScan } : {}),
  };
}

function listedSummary(zones: readonly ZoneResult[]): string {
  return zones
    .filter((z) => z.status === 'listed')
    .map((z) => `${z.zone}${z.informational ? '(info)' : ''}[${z.hits!.map((h) => h.target).join(' ')}]`)
    .join(', ');
}

/** `score=3 (reject); listed=bl.test[198.51.100.7], dbl.test[spam.example]` — one line, bounded. */
export function headerValue(r: CheckResult, decision: string): string {
  const listed = listedSummary(r.zones);
  const v = `score=${r.score} (${decision})${listed ? `; listed=${listed}` : ''}`;
  return v.length > 900 ? v.slice(0, 897) + '...' : v;
}

/** Details for the envelope verdict and tracking event: every zone's answer. */
function details(
  plan: Plan,
  r: CheckResult,
  cfg: DnsblConfig,
  extra: Record<string, unknown>,
): Record<string, unknown> {
  return {
    score: r.score,
    decision: r.decision,
    thresholds: cfg.thresholds,
    targets: plan.targets.map((t) => ({ kind: t.kind, value: t.value, source: t.source })),
    ...(plan.ipSkipped ? { ipChecksSkipped: plan.ipSkipped } : {}),
    ...(plan.origin && plan.origin.source === 'received' ? { origin: plan.origin } : {}),
    ...(plan.uriScan ? { uriScan: plan.uriScan } : {}),
    zones: r.zones.filter((z) => z.status !== 'skipped'),
    cache: { questions: r.stats.questions, hits: r.stats.cacheHits },
    ...extra,
  };
}

export interface DnsblStageDeps {
  readonly checker: DnsblChecker;
  readonly cfg: DnsblConfig;
}

/**
 * The dnsbl-check stage: look the message's facts up, score, and answer pass / quarantine / reject, or tempfail
 * when a zone with `onTimeout: tempfail` did not answer and could change the outcome. A reject is never a
 * bounce (the runner quarantines it as a policy rejection). Messages whose every recipient is an
 * `atConnect.exceptions` address (postmaster@, abuse@) pass, with the listings recorded. Messages from a client IP
 * on the live allow list (envelope.session.ipAllowListed) pass unchecked, reason `allow-listed`.
 */
export function createDnsblStage({ checker, cfg }: DnsblStageDeps): StageFn {
  const trustedRelays = new CidrList(cfg.receivedHeaders.trustedRelays);
  const withUris = checker.hasZoneType('uri');
  return async (msg, ctx): Promise<StageOutcome> => {
    if (msg.envelope.session.ipAllowListed) {
      // An operator vouched for this client (an ip-allow entry, matched by ingress at connect): no lookups at all,
      // like the connect-time check it also skipped. Recorded, so tracking shows why nothing was looked up.
      ctx.span.setAttribute('mailgate.dnsbl.skipped', 'allow-listed');
      return {
        verdict: pass(),
        details: { result: 'skipped', reason: 'allow-listed', clientIp: msg.envelope.session.clientIp },
        ...(cfg.addHeader ? { raw: prependHeader(msg.raw, MAIL_HEADERS.dnsbl, 'skipped (allow-listed)') } : {}),
      };
    }
    const plan = await planChecks(msg, cfg, trustedRelays, withUris);
    const r = await checker.check(plan.targets);
    ctx.span.setAttribute('mailgate.dnsbl.score', r.score);
    const listed = listedSummary(r.zones);
    const rcpts = msg.envelope.rcptTo;
    const exception =
      (r.decision === 'reject' || r.decision === 'quarantine') &&
      rcpts.length > 0 &&
      rcpts.every((a) => isRecipientException(cfg.atConnect.exceptions, a));

    if (r.decision === 'tempfail') {
      const silent = r.zones.filter((z) => z.undecided).map((z) => z.zone);
      return {
        verdict: tempfail(`DNS block list(s) did not answer: ${silent.join(', ')}`),
        details: details(plan, r, cfg, {}),
      };
    }
    const decision = exception ? 'pass' : r.decision;
    const verdict =
      decision === 'reject'
        ? reject(`DNSBL score ${r.score} >= ${cfg.thresholds.reject}: listed in ${listed}`)
        : decision === 'quarantine'
          ? quarantine(`DNSBL score ${r.score} >= ${cfg.thresholds.quarantine}: listed in ${listed}`)
          : pass();
    const out: StageOutcome = {
      verdict,
      details: details(plan, r, cfg, exception ? { exception: 'every recipient is an atConnect exception' } : {}),
      ...(cfg.addHeader ? { raw: prependHeader(msg.raw, MAIL_HEADERS.dnsbl, headerValue(r, decision)) } : {}),
    };
    return out;
  };
}
