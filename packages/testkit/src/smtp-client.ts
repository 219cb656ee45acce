import net from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import nodemailer from 'nodemailer';

export interface SendMailOptions {
  host: string;
  port: number;
  from: string;
  to: string | string[];
  /** A complete RFC 5322 message, sent as-is (nodemailer `raw`). Takes precedence over subject/text. */
  raw?: string | Buffer;
  subject?: string;
  text?: string;
  /** Extra headers for the generated message. */
  headers?: Record<string, string>;
  /** Attachments for the generated message (nodemailer format). */
  attachments?: Array<{ filename: string; content: string | Buffer; contentType?: string }>;
  /** Implicit TLS (port-465 style). Default false. */
  secure?: boolean;
  auth?: { user: string; pass: string };
  /**
   * TLS options for STARTTLS/implicit TLS; default `{ rejectUnauthorized: false }`. `false` = never STARTTLS.
   * STARTTLS is used opportunistically when the server offers it.
   */
  tls?: ConnectionOptions | false;
  /** Fail if STARTTLS is not available. */
  requireTLS?: boolean;
  /** EHLO name, default 'client.test'. */
  name?: string;
  /** Socket/greeting timeouts in ms, default 10 s. */
  timeoutMs?: number;
}

/**
 * Sends one message with nodemailer's SMTP transport (no pooling) and returns the server's final reply, e.g.
 * `250 Message queued as …`. SMTP errors reject with nodemailer's error (`responseCode`, `response`, `command`).
 */
export async function sendMail(opts: SendMailOptions): Promise<string> {
  const to = Array.isArray(opts.to) ? opts.to : [opts.to];
  const timeout = opts.timeoutMs ?? 10_000;
  const transport = nodemailer.createTransport({
    host: opts.host,
    port: opts.port,
    secure: opts.secure ?? false,
    ignoreTLS: opts.tls === false,
    requireTLS: opts.requireTLS ?? false,
    tls: opts.tls === false ? undefined : (opts.tls ?? { rejectUnauthorized: false }),
    name: opts.name ?? 'client.test',
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
    ...(opts.auth ? { auth: opts.auth } : {}),
  });
  try {
    const envelope = { from: opts.from, to };
    const info = await transport.sendMail(
      opts.raw !== undefined
        ? { envelope, raw: opts.raw }
        : {
            envelope,
            from: opts.from,
            to,
            subject: opts.subject ?? 'test',
            text: opts.text ?? 'test message\n',
            ...(opts.headers ? { headers: opts.headers } : {}),
            ...(opts.attachments ? { attachments: opts.attachments } : {}),
          },
    );
    return String(info.response);
  } finally {
    transport.close();
  }
}

export interface SmtpReply {
  code: number;
  /** Text of every line, without the code and separator. */
  lines: string[];
  /** The raw reply, lines joined with CRLF. */
  raw: string;
}

export interface RawSmtpClient {
  /** Reads the next reply and asserts its code (number, or a prefix such as '4' / '25'). */
  expect(code: number | string, timeoutMs?: number): Promise<SmtpReply>;
  /** Writes `line` + CRLF. */
  send(line: string): void;
  /** Writes raw bytes (no CRLF added). */
  write(bytes: Buffer | string): void;
  /** Reads the next (possibly multi-line) reply. Rejects on timeout or if the server closed first. */
  readReply(timeoutMs?: number): Promise<SmtpReply>;
  /** Resolves once the server closed the connection. */
  readonly closed: Promise<void>;
  readonly isClosed: boolean;
  /** Ends and destroys the socket. Idempotent. */
  close(): Promise<void>;
  socket: net.Socket;
}

/**
 * Split the complete SMTP replies off the front of `buffer` (a reply ends with a line "DDD<space>…" or exactly
 * "DDD"; "DDD-…" lines continue it). Returns each reply's raw lines (CR stripped) and the unparsed rest.
 */
export function takeSmtpReplies(buffer: string): { replies: string[][]; rest: string } {
  const replies: string[][] = [];
  let start = 0;
  for (;;) {
    const lines: string[] = [];
    let pos = start;
    let done = false;
    for (;;) {
      const nl = buffer.indexOf('\n', pos);
      if (nl === -1) break;
      const line = buffer.slice(pos, nl).replace(/\r$/, '');
      pos = nl + 1;
      lines.push(line);
      if (!/^\d{3}-/.test(line)) {
        done = true;
        break;
      }
    }
    if (!done) return { replies, rest: buffer.slice(start) };
    replies.push(lines);
    start = pos;
  }
}

/**
 * A tiny line-level SMTP client for malformed-input tests. Connects; read the greeting with `expect(220)`.
 * `localAddress` picks the source address (all of 127.0.0.0/8 is loopback: one "client IP" per test case).
 */
export async function rawSmtp(
  host: string,
  port: number,
  connectTimeoutMs = 5000,
  localAddress?: string,
): Promise<RawSmtpClient> {
  const socket = net.connect({ host, port, ...(localAddress ? { localAddress } : {}) });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`rawSmtp: connect to ${host}:${port} timed out`));
    }, connectTimeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', reject);
      resolve();
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });

  let buffer = '';
  const replies: SmtpReply[] = [];
  let wake: (() => void) | undefined;
  let isClosed = false;
  let error: Error | undefined;

  const parse = (): void => {
    const r = takeSmtpReplies(buffer);
    buffer = r.rest;
    for (const lines of r.replies) {
      replies.push({
        code: Number(lines[lines.length - 1]!.slice(0, 3)),
        lines: lines.map((l) => l.slice(4)),
        raw: lines.join('\r\n'),
      });
    }
  };

  socket.setEncoding('utf8');
  socket.on('data', (d: string) => {
    buffer += d;
    parse();
    wake?.();
  });
  socket.on('error', (e) => {
    error = e;
  });
  const closed = new Promise<void>((resolve) =>
    socket.on('close', () => {
      isClosed = true;
      wake?.();
      resolve();
    }),
  );

  const readReply = async (timeoutMs = 5000): Promise<SmtpReply> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = replies.shift();
      if (r) return r;
      if (isClosed) {
        throw new Error(
          `rawSmtp: connection closed before a reply${error ? ` (${error.message})` : ''}` +
            (buffer ? `; partial data: ${JSON.stringify(buffer)}` : ''),
        );
      }
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `rawSmtp: no reply within ${timeoutMs} ms${buffer ? `; partial: ${JSON.stringify(buffer)}` : ''}`,
        );
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(t);
          wake = undefined;
          resolve();
        };
      });
    }
  };

  return {
    socket,
    closed,
    get isClosed() {
      return isClosed;
    },
    readReply,
    async expect(code, timeoutMs) {
      const r = await readReply(timeoutMs);
      if (!String(r.code).startsWith(String(code))) {
        throw new Error(`rawSmtp: expected ${code}, got: ${r.raw}`);
      }
      return r;
    },
    send(line) {
      socket.write(`${line}\r\n`);
    },
    write(bytes) {
      socket.write(bytes);
    },
    async close() {
      if (!isClosed) {
        socket.end();
        socket.destroy();
      }
      await closed;
    },
  };
}
