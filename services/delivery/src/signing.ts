import type { PipelineMessage } from '@mailgate/contracts';
import type { Logger } from '@mailgate/runtime';
import { arcSeal, loadSigningKeys, signMessage, type SenderAuthConfig, type SigningKeys } from '@mailgate/sender-auth';
import { trace, type Tracer } from '@opentelemetry/api';

/**
 * Outbound DKIM signing and ARC sealing (issue 18). Delivery adds no header after this point (the SMTP client
 * sends the bytes as they are), so signing here is "after the last header change": every stage that edits the
 * message (dnsbl/virus headers, attachment stripping) ran before. Retries reuse the signed bytes (stored in the
 * retry store), so a message leaves with one stable signature however often it is tried.
 */
export interface OutboundSigner {
  readonly keys: SigningKeys;
  /**
   * The message to send (signed/sealed, or unchanged when it is not ours to sign) and what was added:
   * `signatures` = DKIM d/s/a of outbound mail, `arcInstance` = the ARC set added to forwarded inbound mail.
   */
  sign(
    msg: PipelineMessage,
  ): Promise<{ msg: PipelineMessage; signatures: readonly string[]; arcInstance?: number; skipped?: string }>;
}

/**
 * Mail we sign: relayed for our own users and servers (direction outbound: SMTP AUTH or a trusted network) and
 * the DSNs we generate. Inbound mail is never signed, even when its From claims one of our domains — that is
 * exactly the forgery DMARC is for.
 */
export function shouldSign(msg: PipelineMessage): boolean {
  return msg.envelope.origin === 'dsn' || msg.envelope.direction === 'outbound';
}

/**
 * Mail we ARC-seal (when `signing.arcSeal.enabled`): inbound mail we forward to the next hop. The next hop
 * (Microsoft 365, Google Workspace, a mailbox server behind us) sees our IP, not the sender's, so its own SPF and
 * DMARC checks fail; the seal carries the results ingress recorded (our Authentication-Results) in a form it can
 * trust once it lists us as a trusted ARC sealer.
 */
export function shouldSeal(msg: PipelineMessage): boolean {
  return msg.envelope.direction === 'inbound' && msg.envelope.origin !== 'dsn';
}

/**
 * null when neither `senderAuth.signing.enabled` nor `signing.arcSeal.enabled` is set. Keys are read once, now
 * (a bad key stops the start-up). `authservId` is the id ingress wrote into Authentication-Results
 * (`senderAuth.authservId`, default `gateway.hostname`): the header sealed as ARC-Authentication-Results.
 */
export function createOutboundSigner(
  cfg: SenderAuthConfig,
  o: { log: Logger; tracer?: Tracer; readFile?: (f: string) => Buffer; authservId?: string },
): OutboundSigner | null {
  const sealing = cfg.signing.arcSeal.enabled;
  if (!cfg.signing.enabled && !sealing) return null;
  const keys = loadSigningKeys(cfg.signing, o.readFile ? { readFile: o.readFile } : {});
  for (const w of keys.warnings) o.log.warn(w);
  for (const k of keys.keys) {
    // The record to publish, logged at start-up so a rotation's next key can be put in DNS before it signs.
    o.log.info(
      { domain: k.domain, selector: k.selector, algorithm: k.algorithm, active: k.active },
      `DKIM key ${k.selector}._domainkey.${k.domain} TXT "${k.dnsRecord}"`,
    );
  }
  const authservId = cfg.authservId ?? o.authservId;
  if (sealing && !authservId) throw new Error('senderAuth.signing.arcSeal needs senderAuth.authservId');
  if (keys.arcKey) {
    o.log.info(
      { domain: keys.arcKey.domain, selector: keys.arcKey.selector, authservId },
      `ARC sealing forwarded inbound mail as ${keys.arcKey.selector}._domainkey.${keys.arcKey.domain}`,
    );
  }
  const tracer = o.tracer ?? trace.getTracer('delivery');

  const seal = (msg: PipelineMessage) =>
    tracer.startActiveSpan('arc seal', async (span) => {
      try {
        const r = await arcSeal(msg.raw, keys, { authservId: authservId! });
        span.setAttribute('mailgate.message_id', msg.envelope.id);
        if (r.arcInstance) span.setAttribute('mailgate.arc.instance', r.arcInstance);
        if (r.skipped) span.setAttribute('mailgate.arc.skipped', r.skipped);
        return r.arcInstance
          ? {
              msg: { ...msg, raw: r.raw, envelope: { ...msg.envelope, size: r.raw.length } },
              signatures: [],
              arcInstance: r.arcInstance,
            }
          : { msg, signatures: [], skipped: r.skipped ?? 'not sealed' };
      } finally {
        span.end();
      }
    });

  return {
    keys,
    async sign(msg) {
      if (!shouldSign(msg)) {
        if (sealing && shouldSeal(msg)) return seal(msg);
        return { msg, signatures: [], skipped: 'inbound' };
      }
      if (!cfg.signing.enabled) return { msg, signatures: [], skipped: 'signing disabled' };
      return tracer.startActiveSpan('dkim sign', async (span) => {
        try {
          const r = await signMessage(msg.raw, keys);
          const signatures = r.signatures.map((s) => `${s.domain}/${s.selector}/${s.algorithm}`);
          span.setAttributes({
            'mailgate.dkim.signatures': signatures.join(','),
            'mailgate.message_id': msg.envelope.id,
          });
          if (r.skipped) span.setAttribute('mailgate.dkim.skipped', r.skipped);
          const out = signatures.length
            ? { ...msg, raw: r.raw, envelope: { ...msg.envelope, size: r.raw.length } }
            : msg;
          return { msg: out, signatures, ...(r.skipped ? { skipped: r.skipped } : {}) };
        } finally {
          span.end();
        }
      });
    },
  };
}
