import type { PipelineMessage } from '@mailgate/contracts';
import type { Logger } from '@mailgate/runtime';
import { loadSigningKeys, signMessage, type SenderAuthConfig, type SigningKeys } from '@mailgate/sender-auth';
import { trace, type Tracer } from '@opentelemetry/api';

/**
 * Outbound DKIM signing (issue 18). Delivery adds no header after this point (the SMTP client sends the bytes
 * as they are), so signing here is "after the last header change": every stage that edits the message
 * (dnsbl/virus headers, attachment stripping) ran before. Retries reuse the signed bytes (stored in the retry
 * store), so a message leaves with one stable signature however often it is tried.
 */
export interface OutboundSigner {
  readonly keys: SigningKeys;
  /** The message to send (signed, or unchanged when it is not ours to sign) and what was added. */
  sign(msg: PipelineMessage): Promise<{ msg: PipelineMessage; signatures: readonly string[]; skipped?: string }>;
}

/**
 * Mail we sign: relayed for our own users and servers (direction outbound: SMTP AUTH or a trusted network) and
 * the DSNs we generate. Inbound mail is never signed, even when its From claims one of our domains — that is
 * exactly the forgery DMARC is for.
 */
export function shouldSign(msg: PipelineMessage): boolean {
  return msg.envelope.origin === 'dsn' || msg.envelope.direction === 'outbound';
}

/** null when `senderAuth.signing.enabled` is false. Keys are read once, now (a bad key stops the start-up). */
export function createOutboundSigner(
  cfg: SenderAuthConfig,
  o: { log: Logger; tracer?: Tracer; readFile?: (f: string) => Buffer },
): OutboundSigner | null {
  if (!cfg.signing.enabled) return null;
  const keys = loadSigningKeys(cfg.signing, o.readFile ? { readFile: o.readFile } : {});
  for (const w of keys.warnings) o.log.warn(w);
  for (const k of keys.keys) {
    // The record to publish, logged at start-up so a rotation's next key can be put in DNS before it signs.
    o.log.info(
      { domain: k.domain, selector: k.selector, algorithm: k.algorithm, active: k.active },
      `DKIM key ${k.selector}._domainkey.${k.domain} TXT "${k.dnsRecord}"`,
    );
  }
  const tracer = o.tracer ?? trace.getTracer('delivery');
  return {
    keys,
    async sign(msg) {
      if (!shouldSign(msg)) return { msg, signatures: [], skipped: 'inbound' };
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
