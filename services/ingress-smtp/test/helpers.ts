import net from 'node:net';
import tls from 'node:tls';
import { decodeEvent, decodeMessage, TOPICS, type PipelineMessage, type TrackingEvent } from '@mailgate/contracts';
import { Kafka, logLevel, type Consumer } from 'kafkajs';
import { takeSmtpReplies } from '@mailgate/testkit';

/**
 * A line-level SMTP client for tests: choose the local (source) address — 127.0.0.0/8 is all loopback, so
 * 127.0.0.2 can be "a trusted network" and 127.0.0.1 "the internet" — and upgrade to TLS after STARTTLS.
 */
export interface Reply {
  code: number;
  lines: string[];
  text: string;
}

export class SmtpClient {
  private buf = '';
  private replies: Reply[] = [];
  private waiters: (() => void)[] = [];
  private sock: net.Socket | tls.TLSSocket;
  closed = false;
  readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;

  private constructor(sock: net.Socket) {
    this.sock = sock;
    this.closedPromise = new Promise((r) => (this.resolveClosed = r));
    this.attach(sock);
  }

  static async connect(port: number, localAddress = '127.0.0.1'): Promise<SmtpClient> {
    const sock = net.connect({ host: '127.0.0.1', port, localAddress });
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    return new SmtpClient(sock);
  }

  private attach(sock: net.Socket | tls.TLSSocket): void {
    sock.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      this.parse();
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      if (sock !== this.sock) return;
      this.closed = true;
      this.resolveClosed();
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private parse(): void {
    const r = takeSmtpReplies(this.buf);
    this.buf = r.rest;
    for (const lines of r.replies) {
      const last = lines[lines.length - 1]!;
      this.replies.push({
        code: Number(last.slice(0, 3)),
        lines: lines.map((l) => l.slice(4)),
        text: lines.join('\n'),
      });
    }
    if (r.replies.length > 0) this.wake();
  }

  async reply(timeoutMs = 5000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = this.replies.shift();
      if (r) return r;
      if (this.closed) throw new Error(`connection closed before a reply (buffer ${JSON.stringify(this.buf)})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async expect(code: number | string, timeoutMs?: number): Promise<Reply> {
    const r = await this.reply(timeoutMs);
    if (!String(r.code).startsWith(String(code))) throw new Error(`expected ${code}, got: ${r.text}`);
    return r;
  }

  /** Send a command and return its reply. */
  async cmd(line: string, timeoutMs?: number): Promise<Reply> {
    this.send(line);
    return this.reply(timeoutMs);
  }

  send(line: string): void {
    this.sock.write(`${line}\r\n`);
  }

  write(bytes: string | Buffer): void {
    this.sock.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  /** After a 220 to STARTTLS: handshake on the same socket. */
  async startTls(): Promise<void> {
    const raw = this.sock as net.Socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    const t = tls.connect({ socket: raw, rejectUnauthorized: false, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => {
      t.once('secureConnect', resolve);
      t.once('error', reject);
    });
    this.sock = t;
    this.buf = '';
    this.attach(t);
  }

  async close(): Promise<void> {
    if (!this.closed) this.sock.destroy();
    await Promise.race([this.closedPromise, new Promise((r) => setTimeout(r, 500))]);
  }
}

/** Send one message over a fresh session; returns the final reply. */
export async function deliver(
  port: number,
  opts: { from: string; to: string[]; body: string | Buffer; localAddress?: string; helo?: string },
): Promise<Reply> {
  const c = await SmtpClient.connect(port, opts.localAddress);
  try {
    await c.expect(220);
    return await sendOn(c, opts);
  } finally {
    await c.close();
  }
}

/** EHLO + MAIL + RCPT + DATA on an open session (greeting already read). */
export async function sendOn(
  c: SmtpClient,
  opts: { from: string; to: string[]; body: string | Buffer; helo?: string },
  ehlo = true,
): Promise<Reply> {
  if (ehlo) {
    const e = await c.cmd(`EHLO ${opts.helo ?? 'client.test'}`);
    if (e.code !== 250) return e;
  }
  const m = await c.cmd(`MAIL FROM:<${opts.from}>`);
  if (m.code !== 250) return m;
  for (const r of opts.to) {
    const rr = await c.cmd(`RCPT TO:<${r}>`);
    if (rr.code !== 250) return rr;
  }
  const d = await c.cmd('DATA');
  if (d.code !== 354) return d;
  const body = typeof opts.body === 'string' ? Buffer.from(opts.body, 'latin1') : opts.body;
  c.write(Buffer.concat([dotStuff(body), Buffer.from('.\r\n')]));
  return c.reply(10_000);
}

/** Dot-stuff a CRLF message and make sure it ends with CRLF. */
export function dotStuff(body: Buffer): Buffer {
  let s = body.toString('latin1').replace(/(^|\r\n)\./g, '$1..');
  if (!s.endsWith('\r\n')) s += '\r\n';
  return Buffer.from(s, 'latin1');
}

export const queuedId = (r: Reply): string => {
  const m = /^250 2\.0\.0 Ok: queued as ([0-9A-Z]{26})$/.exec(r.text);
  if (!m) throw new Error(`not a queued reply: ${r.text}`);
  return m[1]!;
};

/** Reads the inbound and events topics from the beginning into memory. */
export class TopicReader {
  readonly messages = new Map<string, { msg: PipelineMessage; headers: Record<string, string> }>();
  readonly events: TrackingEvent[] = [];
  /** Records ingress held itself (sender authentication: DMARC p=quarantine). */
  readonly quarantined = new Map<string, { msg: PipelineMessage; headers: Record<string, string> }>();
  /** Records on the inbound topic that did not decode (there must never be any). */
  readonly undecodable: string[] = [];
  private consumer: Consumer;

  private constructor(consumer: Consumer) {
    this.consumer = consumer;
  }

  static async start(brokers: string): Promise<TopicReader> {
    const kafka = new Kafka({ brokers: [brokers], clientId: 'ingress-test', logLevel: logLevel.NOTHING });
    const consumer = kafka.consumer({
      groupId: `ingress-test-${process.pid}-${Math.random().toString(36).slice(2)}`,
      sessionTimeout: 6000,
      heartbeatInterval: 500,
      maxWaitTimeInMs: 100,
    });
    const r = new TopicReader(consumer);
    await consumer.connect();
    await consumer.subscribe({ topics: [TOPICS.inbound, TOPICS.events, TOPICS.quarantine], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ topic, message }) => {
        if (topic === TOPICS.inbound || topic === TOPICS.quarantine) {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
          try {
            const msg = decodeMessage(message.value);
            (topic === TOPICS.inbound ? r.messages : r.quarantined).set(msg.envelope.id, { msg, headers });
          } catch (e) {
            r.undecodable.push((e as Error).message);
          }
        } else {
          r.events.push(decodeEvent(message.value));
        }
      },
    });
    return r;
  }

  async stop(): Promise<void> {
    await this.consumer.disconnect();
  }
}
