import { MailgateError } from '@mailgate/runtime';

/**
 * The reply catalogue: every SMTP reply ingress writes itself, as (code, enhanced status code — RFC 3463, text), in
 * one place, grouped by the phase that sends it. Tests and docs quote these; the phase modules (src/phases/*) never
 * write a reply string inline. Replies whose text another package owns (the directory's 550 5.1.1, sender-auth's
 * configured SPF/DMARC replies, a DNSBL's TXT text) pass through the same `SmtpReply` shape.
 *
 * On the wire a reply is `<code> <enhanced> <text>`: smtp-guard.ts sends text that starts with an enhanced code as
 * it is, so `replyText()` (enhanced + text) is what smtp-server gets as the error message or the 250 text.
 */
export interface SmtpReply {
  readonly code: number;
  readonly enhanced: string;
  readonly text: string;
}

const reply = (code: number, enhanced: string, text: string): SmtpReply => ({ code, enhanced, text });

/** Values from DNS, lists and clients are kept to one printable line. */
export const printable = (s: string, max = 200): string => s.replace(/[^\x20-\x7e]/g, '?').slice(0, max);

/** What the DNSBL said about a listed client (packages/dnsbl via connect-filter.ts). */
export interface ListedFacts {
  readonly zone?: string | undefined;
  readonly text?: string | undefined;
}

export const REPLIES = {
  // ---- any command line (phases/command.ts, smtp-guard.ts, drain)
  /** `limits.sessionTimeoutMs` passed: at the next command, or at once when idle. */
  sessionExpired: reply(421, '4.4.2', 'Session time limit exceeded, closing connection'),
  /** `lineEndings: reject`: a command line ended by a bare LF or containing a bare CR (the session is closed). */
  bareLineEndingInCommand: reply(521, '5.5.2', 'Error: bare CR or LF received; SMTP requires CRLF line endings'),
  /** `lineEndings: normalize`: a bare LF ends a line like CRLF, but a bare CR inside one is still refused. */
  bareCrInCommand: reply(500, '5.5.2', 'Error: bare CR in command line'),
  /** RFC 5321 §4.5.3.1.4 / §4.2.4: a command line longer than the limit. The session stays usable. */
  lineTooLong: reply(500, '5.5.2', 'Line too long'),
  /** RFC 4954 §4: an AUTH line or SASL response over 12288 octets. The exchange is cancelled, the session kept. */
  authLineTooLong: reply(500, '5.5.6', 'Authentication Exchange line is too long'),
  /** A PROXY line from an address not in `proxy.trusted` (the session is closed). */
  proxyNotAccepted: reply(554, '5.7.1', 'PROXY protocol is not accepted from this address'),
  tooManyUnknownCommands: reply(421, '4.7.0', 'Too many unrecognized commands, closing connection'),
  /** SIGTERM: sessions waiting for a command. */
  shuttingDown: reply(421, '4.3.2', 'Service shutting down, try again later'),

  // ---- connect (phases/connect.ts, smtp-guard.ts)
  /** `limits.maxConnections` per listener (smtp-guard.ts; `name` is our host name). */
  tooManyClients: (name: string) => reply(421, '4.7.0', `${name} Too many connected clients, try again in a moment`),
  tooManyConnectionsFromIp: (ip: string) => reply(421, '4.7.0', `Too many connections from [${ip}], try again later`),
  /** The connect-time DNSBL check could not decide: fail closed, the client retries. */
  connectCheckFailed: reply(421, '4.7.0', 'Temporary failure checking the client address, try again later'),
  /** A DNSBL-listed client (at connect, or at RCPT when the filter has recipient exceptions). */
  listed: (ip: string, r: ListedFacts): SmtpReply => {
    // The DNSBL package renders a complete message (its atConnect.message template); use it as is.
    if (r.text && r.zone && r.text.includes(r.zone)) return reply(554, '5.7.1', printable(r.text, 300));
    const zone = r.zone ? ` using ${printable(r.zone, 300)}` : '';
    const text = r.text ? `: ${printable(r.text, 300)}` : '';
    return reply(554, '5.7.1', `Service unavailable; client [${ip}] blocked${zone}${text}`);
  },
  /** An ip-block entry of the live lists (list-phase.ts). */
  ipBlocked: (ip: string, reason?: string) =>
    reply(554, '5.7.1', `Client host [${ip}] blocked by local policy${reason ? `: ${printable(reason)}` : ''}`),

  // ---- EHLO / STARTTLS / AUTH (phases/helo.ts)
  /** submission: AUTH before STARTTLS (answered by the command gate; AUTH is not even advertised). */
  startTlsFirst: reply(538, '5.7.11', 'Encryption required: issue STARTTLS first'),
  encryptionRequired: reply(538, '5.7.11', 'Encryption required'),
  authRateExceeded: reply(454, '4.7.0', 'Too many failed authentication attempts, try again later'),
  /** The failed-AUTH counter (Redis) is unavailable and `limits.onRedisError: tempfail`. */
  authTemporaryFailure: reply(454, '4.7.0', 'Temporary authentication failure'),
  authInvalid: reply(535, '5.7.8', 'Authentication credentials invalid'),

  // ---- MAIL FROM (phases/mail.ts)
  sessionStateLost: reply(451, '4.3.0', 'Session state lost'),
  badSenderSyntax: (reason?: string) =>
    reply(501, '5.1.7', `Bad sender address syntax${reason !== undefined ? `: ${reason}` : ''}`),
  /** submission listener without AUTH. */
  authRequired: reply(530, '5.7.0', 'Authentication required'),
  /** A sender-block entry of the live lists. */
  senderBlocked: (sender: string) => reply(550, '5.7.1', `<${printable(sender)}>: sender blocked by local policy`),
  messageRateExceeded: (ip: string) => reply(450, '4.7.1', `Too many messages from [${ip}], try again later`),
  rateLimiterUnavailable: reply(451, '4.3.0', 'Temporary local problem (rate limiter unavailable), try again later'),

  // ---- RCPT TO (phases/rcpt.ts, relay.ts, recipient-phase.ts)
  needMail: reply(503, '5.5.1', 'Error: need MAIL command'),
  badRecipientSyntax: (reason?: string) =>
    reply(501, '5.1.3', `Bad recipient address syntax${reason !== undefined ? `: ${reason}` : ''}`),
  relayDenied: (address: string) => reply(550, '5.7.1', `<${address}>: relaying denied`),
  /** `acceptedDomains` with a recipients list, and the address is not on it. */
  userUnknown: (address: string) => reply(550, '5.1.1', `<${address}>: recipient address rejected: user unknown`),
  recipientCheckFailed: reply(451, '4.4.3', 'Recipient verification unavailable, try again later'),
  /** The directory-harvest budget of the client IP is spent (the session is closed). */
  tooManyUnknownRecipients: reply(421, '4.7.0', 'Too many unknown recipients, closing connection'),

  // ---- DATA (phases/data.ts)
  noTransaction: reply(503, '5.5.1', 'Error: no transaction'),
  messageTooBig: (max: number) =>
    reply(552, '5.3.4', `Message size exceeds fixed maximum message size of ${max} bytes`),
  bareLineEndingInData: reply(
    554,
    '5.6.0',
    'Message contains bare CR or LF characters (lines must end with CRLF); refused',
  ),
  /** A NUL octet in the message content (RFC 5322 forbids it; downstream parsers must never see one). */
  nulInData: reply(554, '5.6.0', 'Message contains NUL characters; refused'),
  /** The durable produce failed or missed `acceptTimeoutMs`: nothing is lost, the sender retries. */
  notQueued: reply(451, '4.3.0', 'Temporary failure: message not queued, try again later'),
  /** The only 250 that matters: the record is durable (acks=-1). */
  queued: (id: string) => reply(250, '2.0.0', `Ok: queued as ${id}`),
} as const;

/** The reply text as smtp-guard sends it: the enhanced code first, so it is not re-prefixed. */
export function replyText(r: SmtpReply): string {
  return `${r.enhanced} ${r.text}`;
}

/** The whole reply line as the client reads it (without CRLF): `550 5.7.1 <x@y>: relaying denied`. */
export function replyLine(r: SmtpReply): string {
  return `${r.code} ${replyText(r)}`;
}

/** A reply in the shape other packages hand over (sender-auth's `{ code, status, text }`). */
export function replyOf(r: { readonly code: number; readonly status: string; readonly text: string }): SmtpReply {
  return reply(r.code, r.status, r.text);
}

/**
 * A refusal as a typed error: `MailgateError` with its `.smtp` meaning, plus what smtp-server reads from an error
 * a callback returns (`responseCode`, and `message` = enhanced code + text).
 */
export class SmtpReplyError extends MailgateError {
  override readonly name = 'SmtpReplyError';
  constructor(
    readonly reply: SmtpReply,
    options?: { cause?: unknown },
  ) {
    super(replyText(reply), { code: reply.code, status: reply.enhanced }, reply.code < 500 ? 503 : 400, options);
  }
  /** smtp-server sends `responseCode` + `message`. */
  get responseCode(): number {
    return this.reply.code;
  }
}

export function smtpError(r: SmtpReply, options?: { cause?: unknown }): SmtpReplyError {
  return new SmtpReplyError(r, options);
}
