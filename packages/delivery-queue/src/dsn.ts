import { headerBlockBytes } from '@mailgate/mail';
import { createHash, randomBytes } from 'node:crypto';
import { newEnvelope, newRecord, TOPICS, type PipelineMessage } from '@mailgate/contracts';
import type { OutRecord } from '@mailgate/bus';

/** One recipient's line in a delivery status notification. */
export interface DsnRecipient {
  readonly rcpt: string;
  /** The remote server's exact reply (or our own, in reply form, when there was none). */
  readonly reply: string;
  readonly remoteHost?: string | undefined;
}

export interface DsnInput {
  readonly original: PipelineMessage;
  readonly kind: 'failed' | 'delayed';
  readonly recipients: readonly DsnRecipient[];
  /** Our host name (Reporting-MTA, From domain). */
  readonly reportingMta: string;
  readonly postmaster?: string | undefined;
  readonly instance: string;
  /** W3C traceparent to carry (the attempt that produced the DSN), so the DSN is one trace with the original. */
  readonly traceparent: string;
  readonly now?: Date;
}

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * A DSN's message id is derived from the original id and the bounced recipients, so the same bounce produced
 * twice (a crash between produce and commit) has the same id and the delivered markers send it only once.
 */
export function dsnMessageId(originalId: string, kind: string, rcpts: readonly string[]): string {
  const h = createHash('sha256')
    .update(
      `${originalId}|${kind}|${[...rcpts]
        .map((r) => r.toLowerCase())
        .sort()
        .join(',')}`,
    )
    .digest();
  let r = '';
  for (let i = 0; i < 16; i++) r += ALPHABET[h[i]! % 32];
  return originalId.slice(0, 10) + r;
}

/** Enhanced status code from a reply ("550 5.1.1 …" → 5.1.1), else derived from the basic code. */
export function statusOf(reply: string): string {
  const m = /^(\d)\d\d[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(reply);
  if (m) return m[2]!;
  const c = reply.charAt(0);
  return c === '5' ? '5.0.0' : '4.0.0';
}

/** The header block of the original message (everything before the first empty line). */
export const headerBlock = headerBlockBytes;

const crlf = (s: string) => s.replace(/\r?\n/g, '\r\n');

/**
 * A `multipart/report; report-type=delivery-status` message (RFC 3464) to the envelope sender, with each
 * recipient's remote reply and the original headers (text/rfc822-headers). Callers never build one for a
 * message whose sender is `<>` (no bounce of bounces).
 */
export function buildDsn(i: DsnInput): PipelineMessage {
  const now = i.now ?? new Date();
  const orig = i.original.envelope;
  const id = dsnMessageId(
    orig.id,
    i.kind,
    i.recipients.map((r) => r.rcpt),
  );
  const boundary = `mailgate-dsn-${randomBytes(8).toString('hex')}`;
  const from = i.postmaster ?? `MAILER-DAEMON@${i.reportingMta}`;
  const failed = i.kind === 'failed';
  const subject = failed ? 'Undelivered Mail Returned to Sender' : 'Delayed Mail (still being retried)';
  const human = failed
    ? 'This is the mail system at host ' +
      i.reportingMta +
      '.\n\nYour message could not be delivered to one or more recipients.\nThe remote server replies are below.\n'
    : 'This is the mail system at host ' +
      i.reportingMta +
      '.\n\nYour message has not been delivered yet to one or more recipients.\nThe mail system will keep trying; you do not need to resend it.\n';
  const lines = i.recipients
    .map((r) => `<${r.rcpt}>${r.remoteHost ? ` (host ${r.remoteHost})` : ''}: ${r.reply}`)
    .join('\n');
  const perMessage = [
    `Reporting-MTA: dns; ${i.reportingMta}`,
    `X-Mailgate-Queue-ID: ${orig.id}`,
    `Arrival-Date: ${new Date(orig.receivedAt).toUTCString()}`,
  ].join('\n');
  const perRcpt = i.recipients
    .map((r) =>
      [
        `Final-Recipient: rfc822; ${r.rcpt}`,
        `Original-Recipient: rfc822; ${r.rcpt}`,
        `Action: ${i.kind}`,
        `Status: ${failed ? statusOf(r.reply) : statusOf(r.reply).replace(/^5/, '4')}`,
        ...(r.remoteHost ? [`Remote-MTA: dns; ${r.remoteHost}`] : []),
        `Diagnostic-Code: smtp; ${r.reply}`,
        `Last-Attempt-Date: ${now.toUTCString()}`,
      ].join('\n'),
    )
    .join('\n\n');
  const head = [
    `From: Mail Delivery System <${from}>`,
    `To: <${orig.mailFrom}>`,
    `Subject: ${subject}`,
    `Date: ${now.toUTCString()}`,
    `Message-ID: <${id}@${i.reportingMta}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    'This is a MIME-encapsulated message.',
    '',
    `--${boundary}`,
    'Content-Description: Notification',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    human,
    lines,
    '',
    `--${boundary}`,
    'Content-Description: Delivery report',
    'Content-Type: message/delivery-status',
    '',
    perMessage,
    '',
    perRcpt,
    '',
    `--${boundary}`,
    'Content-Description: Undelivered Message Headers',
    'Content-Type: text/rfc822-headers',
    '',
    '',
  ].join('\n');
  const tail = `\r\n--${boundary}--\r\n`;
  const raw = Buffer.concat([Buffer.from(crlf(head), 'utf8'), headerBlock(i.original.raw), Buffer.from(tail)]);
  const traceId = i.traceparent.split('-')[1] ?? orig.trace.traceId;
  const envelope = newEnvelope({
    id,
    receivedAt: now.toISOString(),
    mailFrom: '',
    rcptTo: [orig.mailFrom],
    size: raw.length,
    // A bounce goes back where the original came from.
    direction: orig.direction === 'outbound' ? 'inbound' : 'outbound',
    // Generated here, not received: the gateway itself is the (trusted, local) client.
    session: {
      clientIp: '127.0.0.1',
      helo: i.reportingMta,
      trustedNetwork: true,
      listener: 'submission',
      ingressHost: i.instance,
    },
    trace: { traceparent: i.traceparent, traceId },
    origin: 'dsn',
  });
  return { envelope, raw };
}

/** The DSN as a record for TOPICS.deliverable (it is delivered by this same stage). */
export function dsnRecord(dsn: PipelineMessage): OutRecord {
  return newRecord(TOPICS.deliverable, dsn);
}
