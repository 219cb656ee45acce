import type { Redis } from 'ioredis';
import net from 'node:net';
import type { CalloutSourceConfig } from './config.js';
import { SourceUnavailableError, type LookupResult, type RecipientQuery, type RecipientSource } from './source.js';

/**
 * SMTP callout (Postfix reject_unverified_recipient): ask the internal server with a probe transaction —
 * EHLO, MAIL FROM:<> (the null sender, so nothing can ever bounce to anyone), RCPT TO:<address>, QUIT — and never
 * send DATA. RCPT 2xx → found, 5xx → unknown, anything else (4xx, timeout, refused connection, 5xx before RCPT)
 * → the source cannot decide.
 */

interface Reply {
  code: number;
  text: string;
}

/** A minimal SMTP reply reader over a socket: resolves one (possibly multi-line) reply per `next()`. */
class ReplyReader {
  private buf = '';
  private lines: string[] = [];
  private waiting: { resolve: (r: Reply) => void; reject: (e: Error) => void } | null = null;
  private failed: Error | null = null;

  constructor(socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.buf += d;
      if (this.buf.length > 64 * 1024) this.fail(new Error('reply too long'));
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        this.lines.push(this.buf.slice(0, i).replace(/\r$/, ''));
        this.buf = this.buf.slice(i + 1);
      }
      this.pump();
    });
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  private fail(e: Error): void {
    this.failed ??= e;
    const w = this.waiting;
    this.waiting = null;
    w?.reject(e);
  }

  private pump(): void {
    if (!this.waiting) return;
    const end = this.lines.findIndex((l) => !/^\d{3}-/.test(l));
    if (end < 0) return;
    const got = this.lines.splice(0, end + 1);
    const last = got[got.length - 1]!;
    const code = Number(last.slice(0, 3));
    const w = this.waiting;
    this.waiting = null;
    if (!Number.isInteger(code) || code < 200 || code > 599)
      return w.reject(new Error(`bad reply ${last.slice(0, 80)}`));
    w.resolve({ code, text: got.map((l) => l.slice(4)).join(' ') });
  }

  next(): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.pump();
      if (this.waiting && this.failed) this.fail(this.failed);
    });
  }
}

/** Spaces probes to one destination to at most `perSecond`, FIFO; a probe that would wait past its deadline fails. */
class Pacer {
  private nextSlot = 0;
  constructor(private readonly perSecond: number) {}

  /** Resolves when the caller may go; rejects if that is later than `deadline` (epoch ms). */
  async take(deadline: number): Promise<void> {
    const now = Date.now();
    const at = Math.max(now, this.nextSlot);
    if (at > deadline) throw new Error('rate limit: too many probes queued for this destination');
    this.nextSlot = at + 1000 / this.perSecond;
    if (at > now) await new Promise((r) => setTimeout(r, at - now));
  }
}

/**
 * The same slot schedule kept in Redis, so `maxPerSecond` holds for the destination across every ingress replica
 * (an autoscaled fleet would otherwise multiply it). Redis' own clock decides, so replicas' clock skew does not
 * matter. Returns the wait in ms, or -1 when the slot is later than maxWait.
 */
const TAKE_SLOT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local at = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
local wait = at - now
if wait > tonumber(ARGV[2]) then return -1 end
redis.call('SET', KEYS[1], tostring(at + tonumber(ARGV[1])), 'PX', math.ceil(wait + tonumber(ARGV[1]) + 1000))
return wait`;

class SharedPacer {
  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    private readonly perSecond: number,
    /** Used while Redis cannot answer: the limit degrades to per replica instead of failing the probe. */
    private readonly local: Pacer,
  ) {}

  async take(deadline: number): Promise<void> {
    let wait: number;
    try {
      const r = await this.redis.eval(
        TAKE_SLOT,
        1,
        this.key,
        String(1000 / this.perSecond),
        String(deadline - Date.now()),
      );
      wait = Number(r);
    } catch {
      return this.local.take(deadline);
    }
    if (wait < 0) throw new Error('rate limit: too many probes queued for this destination (all replicas)');
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}

export class CalloutSource implements RecipientSource {
  readonly type = 'callout' as const;
  readonly cacheable = true;
  private readonly pacer: Pacer | SharedPacer;
  private readonly sockets = new Set<net.Socket>();

  constructor(
    readonly name: string,
    private readonly cfg: CalloutSourceConfig,
    private readonly defaultHelo: string,
    redis?: Redis | null,
  ) {
    const local = new Pacer(cfg.maxPerSecond);
    this.pacer = redis
      ? new SharedPacer(redis, `rcpt:callout-rate:${cfg.host}:${cfg.port}`, cfg.maxPerSecond, local)
      : local;
  }

  async lookup(q: RecipientQuery): Promise<LookupResult> {
    // Waiting for a turn and the probe itself each get timeoutMs.
    try {
      await this.pacer.take(Date.now() + this.cfg.timeoutMs);
    } catch (err) {
      throw new SourceUnavailableError(this.name, (err as Error).message);
    }
    const deadline = Date.now() + this.cfg.timeoutMs;
    const socket = net.connect({ host: this.cfg.host, port: this.cfg.port });
    this.sockets.add(socket);
    const timer = setTimeout(
      () => socket.destroy(new Error(`no answer within ${this.cfg.timeoutMs} ms`)),
      Math.max(1, deadline - Date.now()),
    );
    const reader = new ReplyReader(socket);
    const cmd = async (line: string | null): Promise<Reply> => {
      if (line !== null) socket.write(`${line}\r\n`);
      return reader.next();
    };
    const unavailable = (what: string, r: Reply) =>
      new SourceUnavailableError(this.name, `${what} answered ${r.code} ${r.text.slice(0, 200)}`);
    try {
      const greet = await cmd(null);
      if (greet.code !== 220) throw unavailable('greeting', greet);
      const helo = this.cfg.helo ?? this.defaultHelo;
      let r = await cmd(`EHLO ${helo}`);
      if (r.code >= 500) r = await cmd(`HELO ${helo}`);
      if (r.code !== 250) throw unavailable('EHLO', r);
      r = await cmd('MAIL FROM:<>');
      if (r.code !== 250) throw unavailable('MAIL FROM:<>', r);
      r = await cmd(`RCPT TO:<${q.address}>`);
      socket.write('QUIT\r\n');
      socket.end();
      if (r.code >= 200 && r.code < 300) return 'found';
      if (r.code >= 500) return 'unknown';
      throw unavailable('RCPT', r);
    } catch (err) {
      if (err instanceof SourceUnavailableError) throw err;
      throw new SourceUnavailableError(
        this.name,
        `callout to ${this.cfg.host}:${this.cfg.port}: ${(err as Error).message}`,
      );
    } finally {
      clearTimeout(timer);
      this.sockets.delete(socket);
      socket.on('error', () => undefined);
      if (!socket.writableEnded) socket.destroy();
      else setTimeout(() => socket.destroy(), 1000).unref();
    }
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
}
