// Client side of the end-to-end tests: send mail from a chosen loopback source address (the gateway judges the
// client by its IP: trusted network, DNSBL listing), build test messages, read headers of what reached a sink,
// and poll the admin API.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import assert from 'node:assert/strict';
import nodemailer from 'nodemailer';
import { EICAR, type Sink, type SinkMessage } from '@mailgate/testkit';
import { ACCEPTED_DOMAIN, REMOTE_DOMAIN, TRUSTED_CLIENT, type Stack } from './stack.js';

export interface SendOptions {
  from: string;
  to: string | string[];
  /** Complete RFC 5322 message (CRLF line ends). */
  raw: string | Buffer;
  /** Source address of the connection (default 127.0.0.1). */
  localAddress?: string;
  timeoutMs?: number;
}

export interface SendResult {
  /** The final reply, e.g. `250 2.0.0 Ok: queued as 01J…`. */
  response: string;
  /** The message id from the reply (the `X-Mailgate-Id` the gateway adds). */
  id: string;
}

/** One message over one fresh SMTP connection (nodemailer, no pooling, no TLS). */
export async function send(stack: Stack, o: SendOptions): Promise<SendResult> {
  const timeout = o.timeoutMs ?? 30_000;
  const transport = nodemailer.createTransport({
    host: stack.smtp.host,
    port: stack.smtp.port,
    secure: false,
    ignoreTLS: true,
    name: 'client.test',
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
    ...(o.localAddress ? { localAddress: o.localAddress } : {}),
  } as nodemailer.TransportOptions);
  try {
    const info = (await transport.sendMail({
      envelope: { from: o.from, to: Array.isArray(o.to) ? o.to : [o.to] },
      raw: o.raw,
    })) as { response: string };
    const response = String(info.response);
    const id = /queued as (\S+)/.exec(response)?.[1] ?? '';
    return { response, id };
  } finally {
    transport.close();
  }
}

/** An SMTP error from nodemailer (responseCode/response), or a connection error. */
export interface SmtpFailure {
  responseCode?: number;
  response?: string;
  code?: string;
  message: string;
}

export async function sendExpectingFailure(stack: Stack, o: SendOptions): Promise<SmtpFailure> {
  try {
    const r = await send(stack, o);
    throw new Error(`expected the gateway to refuse, got: ${r.response}`);
  } catch (e) {
    const f = e as SmtpFailure;
    if (f.message.startsWith('expected the gateway to refuse')) throw e;
    return f;
  }
}

/**
 * A raw line-level session from a chosen source address: returns every reply (code + text) in order. Used where
 * the exact reply at a given step matters (connect-time refusal, RCPT refusal).
 */
export async function rawSession(
  stack: Stack,
  localAddress: string,
  lines: string[],
  timeoutMs = 20_000,
): Promise<{ code: number; text: string }[]> {
  const sock = net.connect({ host: stack.smtp.host, port: stack.smtp.port, localAddress });
  sock.setEncoding('utf8');
  let buf = '';
  const replies: { code: number; text: string }[] = [];
  let closed = false;
  let wake: (() => void) | undefined;
  sock.on('data', (d: string) => {
    buf += d;
    for (;;) {
      const m = /^(\d{3}) (.*)\r?\n/m.exec(buf);
      if (!m) break;
      // a complete reply ends at the first "DDD " line; earlier "DDD-" lines belong to it
      const end = (m.index ?? 0) + m[0].length;
      const block = buf.slice(0, end);
      buf = buf.slice(end);
      replies.push({ code: Number(m[1]), text: block.trim() });
    }
    wake?.();
  });
  sock.on('error', () => undefined);
  sock.on('close', () => {
    closed = true;
    wake?.();
  });
  const next = async (n: number): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (replies.length < n && !closed) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`rawSession: no reply #${n} within ${timeoutMs} ms; have ${JSON.stringify(replies)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        wake = () => {
          clearTimeout(t);
          wake = undefined;
          r();
        };
      });
    }
  };
  try {
    await next(1); // greeting (or the connect-time refusal)
    for (let i = 0; i < lines.length && !closed; i++) {
      if (replies.at(-1)!.code >= 400 && i === 0) break; // refused at connect: nothing more to say
      sock.write(`${lines[i]}\r\n`);
      await next(i + 2);
    }
    return replies;
  } finally {
    sock.destroy();
  }
}

export const uniq = (label = 'm'): string => `${label}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;

export interface BuildOptions {
  from: string;
  to: string;
  subject?: string;
  body?: string;
  messageId?: string;
  /** Extra header lines (without CRLF). */
  headers?: string[];
  attachments?: { filename: string; contentType: string; content: Buffer }[];
}

/** A small RFC 5322 message with CRLF line ends; multipart/mixed when attachments are given. */
export function buildMessage(o: BuildOptions): string {
  const messageId = o.messageId ?? `<${uniq()}@client.test>`;
  const head = [
    `From: <${o.from}>`,
    `To: <${o.to}>`,
    `Subject: ${o.subject ?? 'e2e test'}`,
    `Message-ID: ${messageId}`,
    `Date: ${new Date().toUTCString().replace('GMT', '+0000')}`,
    'MIME-Version: 1.0',
    ...(o.headers ?? []),
  ];
  const body = (o.body ?? 'Hello from the end-to-end test.\r\n').replace(/\r?\n/g, '\r\n');
  if (!o.attachments?.length) {
    return [...head, 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 7bit', '', body].join(
      '\r\n',
    );
  }
  const boundary = `b-${randomBytes(8).toString('hex')}`;
  const parts = [
    `--${boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n${body}`,
    ...o.attachments.map(
      (a) =>
        `--${boundary}\r\nContent-Type: ${a.contentType}; name="${a.filename}"\r\n` +
        `Content-Disposition: attachment; filename="${a.filename}"\r\nContent-Transfer-Encoding: base64\r\n\r\n` +
        `${(a.content.toString('base64').match(/.{1,76}/g) ?? []).join('\r\n')}\r\n`,
    ),
  ];
  return [...head, `Content-Type: multipart/mixed; boundary="${boundary}"`, '', ...parts, `--${boundary}--`, ''].join(
    '\r\n',
  );
}

/** Unfolded header fields of a message (name lower-cased), in order. */
export function headers(data: Buffer | string): { name: string; value: string }[] {
  const text = typeof data === 'string' ? data : data.toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  const block = end === -1 ? text : text.slice(0, end);
  const out: { name: string; value: string }[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && out.length) out[out.length - 1]!.value += ` ${line.trim()}`;
    else {
      const i = line.indexOf(':');
      if (i > 0) out.push({ name: line.slice(0, i).trim().toLowerCase(), value: line.slice(i + 1).trim() });
    }
  }
  return out;
}

export function header(data: Buffer | string, name: string): string | undefined {
  return headers(data).find((h) => h.name === name.toLowerCase())?.value;
}

export function bodyOf(data: Buffer | string): string {
  const text = typeof data === 'string' ? data : data.toString('latin1');
  const m = /\r?\n\r?\n/.exec(text);
  return m ? text.slice(m.index + m[0].length) : '';
}

export const mailgateId = (m: SinkMessage): string | undefined => header(m.data, 'x-mailgate-id');

/** Polls `fn` until it returns a non-undefined value (errors count as "not yet"). */
export async function eventually<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 60_000,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface TimelineEvent {
  type: string;
  service: string;
  traceId?: string;
  at: string;
  details?: Record<string, unknown>;
}

export interface MessageView {
  summary: { id: string; traceId: string; status: string; mailFrom: string; rcptTo: string[] };
  events: TimelineEvent[];
}

/** The admin API's view of a message once `done(view)` holds. */
export function timeline(
  stack: Stack,
  id: string,
  done: (v: MessageView) => boolean,
  timeoutMs = 60_000,
): Promise<MessageView> {
  let last: MessageView | undefined;
  return eventually(
    `the admin timeline of ${id} (last: ${JSON.stringify(last?.events.map((e) => `${e.type}/${e.service}`))})`,
    async () => {
      last = await stack.admin<MessageView>(`/api/v1/messages/${encodeURIComponent(id)}`);
      return done(last) ? last : undefined;
    },
    timeoutMs,
  );
}

export interface QuarantineView {
  id: string;
  reason: string;
  stage: string;
  kind: string;
  sourceTopic?: string;
}

export async function quarantineList(stack: Stack, limit = 1000): Promise<QuarantineView[]> {
  return (await stack.admin<{ results: QuarantineView[] }>(`/api/v1/quarantine?limit=${limit}`)).results;
}

/**
 * Sends bob@REMOTE_DOMAIN → alice@ACCEPTED_DOMAIN a message with the EICAR test file attached and waits until the
 * admin lists it in quarantine and its timeline has the `quarantined` event (what the EICAR tests of the split and
 * the chained pipeline assert on).
 */
export async function sendEicarUntilQuarantined(
  stack: Stack,
  subject: string,
): Promise<{ id: string; entry: QuarantineView; view: MessageView }> {
  const from = `bob@${REMOTE_DOMAIN}`;
  const to = `alice@${ACCEPTED_DOMAIN}`;
  const raw = buildMessage({
    from,
    to,
    subject,
    attachments: [{ filename: 'eicar.txt', contentType: 'text/plain', content: Buffer.from(EICAR) }],
  });
  const { id } = await send(stack, { from, to, raw });
  const entry = await eventually('the EICAR message in quarantine', async () =>
    (await quarantineList(stack)).find((e) => e.id === id),
  );
  const view = await timeline(stack, id, (v) => v.events.some((e) => e.type === 'quarantined'));
  return { id, entry, view };
}

export const byId = (sink: Sink, id: string, timeoutMs = 60_000): Promise<SinkMessage> =>
  sink.waitFor((m) => mailgateId(m) === id, timeoutMs);

/** Outbound mail from the trusted network to a fresh remote recipient whom both remote MXs refuse at RCPT. */
async function sendOutboundRefusedAtRcpt(stack: Stack, label: string, code: number, message: string, subject: string) {
  const from = `alice@${ACCEPTED_DOMAIN}`;
  const to = `${label}-${uniq()}@${REMOTE_DOMAIN}`;
  for (const s of [stack.mx1, stack.mx2]) s.setReply({ stage: 'rcpt', code, message, rcpt: to });
  const r = await send(stack, { from, to, raw: buildMessage({ from, to, subject }), localAddress: TRUSTED_CLIENT });
  return { from, to, r };
}

/**
 * Delivery's retry path, whichever process runs delivery: both remote MXs answer 451 to a fresh recipient, the
 * message is deferred (tracking says so), the MXs accept again, and the retry worker delivers it exactly once.
 */
export async function deferThenDeliver(stack: Stack): Promise<void> {
  const { to, r } = await sendOutboundRefusedAtRcpt(stack, 'slow', 451, '4.3.0 busy, try later', 'retry me');
  await timeline(stack, r.id, (v) => v.events.some((e) => e.type === 'deferred'));
  assert.ok(stack.mx1.rejections.some((x) => x.rcpt === to && x.code === 451));
  for (const s of [stack.mx1, stack.mx2]) s.clearReplies();
  const got = await byId(stack.mx1, r.id).catch(() => byId(stack.mx2, r.id, 1));
  assert.deepEqual(got.rcptTo, [to]);
  const view = await timeline(stack, r.id, (v) => v.events.some((e) => e.type === 'delivered'));
  const types = view.events.map((e) => e.type);
  assert.ok(types.indexOf('deferred') < types.indexOf('delivered'));
  const copies = [stack.mx1, stack.mx2].flatMap((s) => s.messages).filter((m) => mailgateId(m) === r.id);
  assert.equal(copies.length, 1, 'delivered exactly once');
}

/** A remote 5xx bounces: a DSN goes back to the sender through the pipeline and is itself delivered. */
export async function bounceWithDsn(stack: Stack): Promise<void> {
  const { from, to, r } = await sendOutboundRefusedAtRcpt(stack, 'nobody', 550, '5.1.1 no such user', 'will bounce');
  const dsn = await stack.internal.waitFor(
    (m) => m.mailFrom === '' && m.rcptTo.includes(from) && m.data.includes(to),
    60_000,
  );
  const text = dsn.data.toString('latin1');
  assert.match(header(dsn.data, 'content-type') ?? '', /multipart\/report.*delivery-status/i);
  assert.match(text, /Action: failed/i);
  assert.match(text, /Status: 5\.1\.1/i);
  assert.match(text, /550/);
  const view = await timeline(stack, r.id, (v) => v.events.some((e) => e.type === 'bounced'));
  assert.ok(view.events.some((e) => e.type === 'bounced' || e.type === 'dsn-generated'));
  for (const s of [stack.mx1, stack.mx2]) s.clearReplies();
}
