import { MAIL_HEADERS } from '@mailgate/contracts';
import { removeHeaders } from '@mailgate/mail';

/** Headers ingress writes into the message, and removal of forged gateway headers. */

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n: number) => String(n).padStart(2, '0');

/** RFC 5322 date-time in UTC, e.g. `Thu, 27 Nov 2025 02:20:00 +0000`. */
export function rfc5322Date(d: Date): string {
  return (
    `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ` +
    `${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())} +0000`
  );
}

/** Values from the client end up in a header: keep them on one line and out of comment syntax. */
function clean(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f()\\]/g, '?').slice(0, 255);
}

export interface ReceivedFacts {
  readonly helo: string;
  readonly clientHostname?: string | undefined;
  readonly clientIp: string;
  readonly byHost: string;
  /** smtp-server's transmission type (ESMTP, ESMTPS, ESMTPSA…). */
  readonly protocol: string;
  readonly id: string;
  readonly tls?: { readonly protocol?: string | undefined; readonly cipher?: string | undefined } | undefined;
  /** Single recipient only (RFC 5321 §4.4: "for" with several recipients leaks the list). */
  readonly rcptTo: readonly string[];
  readonly date: Date;
  readonly product?: string;
}

/** The Received: trace field (RFC 5321 §4.4), folded, CRLF-terminated. */
export function receivedHeader(f: ReceivedFacts): string {
  const ip = f.clientIp.includes(':') ? `IPv6:${f.clientIp}` : f.clientIp;
  const host = f.clientHostname && !f.clientHostname.startsWith('[') ? `${clean(f.clientHostname)} ` : '';
  // The HELO is one word, as Postfix writes it: with spaces it could pose as "from 10.0.0.5 by x", and a
  // downstream parser would read the sender's word where the connecting address belongs.
  const helo = clean(f.helo || 'unknown').replace(/ /g, '?');
  let h = `Received: from ${helo} (${host}[${ip}])\r\n`;
  h += `\tby ${clean(f.byHost)} (${f.product ?? 'mailgate'}) with ${clean(f.protocol)} id ${f.id}`;
  if (f.tls?.protocol || f.tls?.cipher) {
    h += `\r\n\t(using ${clean(f.tls.protocol ?? 'TLS')} with cipher ${clean(f.tls.cipher ?? 'unknown')})`;
  }
  if (f.rcptTo.length === 1) h += `\r\n\tfor <${clean(f.rcptTo[0]!)}>`;
  h += `;\r\n\t${rfc5322Date(f.date)}\r\n`;
  return h;
}

/** The headers ingress prepends: Received, then the gateway's trace and message ids. */
export function ingressHeaders(f: ReceivedFacts & { readonly traceId: string }): Buffer {
  return Buffer.from(
    receivedHeader(f) + `${MAIL_HEADERS.traceId}: ${f.traceId}\r\n${MAIL_HEADERS.messageId}: ${f.id}\r\n`,
    'latin1',
  );
}

/**
 * Remove header fields whose name starts with `prefix` (case-insensitive) from the header section, with their
 * folded continuation lines. Mail from outside must not arrive carrying forged gateway verdict headers
 * (X-Mailgate-Virus-Scanned: clean…). Returns the input unchanged (same Buffer) when there is nothing to remove.
 */
export function stripHeaders(raw: Buffer, prefix = 'x-mailgate-'): Buffer {
  const lower = prefix.toLowerCase();
  return removeHeaders(raw, (name) => name.startsWith(lower));
}
