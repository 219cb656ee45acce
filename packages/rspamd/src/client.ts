// One file (~370 lines): the client of one protocol (check, learn, stat) and the parsers of its replies.
import http from 'node:http';
import net from 'node:net';
import { RspamdNotLearnedError, RspamdRequestError, RspamdUnavailableError, type RspamdErrorKind } from './errors.js';

/**
 * A small HTTP client for rspamd's own protocol (https://rspamd.com/doc/developers/protocol.html):
 *   - POST /checkv2 on the normal worker: the raw message as the body, the SMTP envelope as request headers
 *     (`From`, one `Rcpt` per recipient, `IP`, `Helo`, `Hostname`, `User`, `Queue-Id`), JSON reply with score,
 *     action and symbols;
 *   - POST /learnspam, /learnham and GET /stat on the controller, with its `Password` header.
 * One connection per request, a hard deadline per request, typed errors.
 *
 * No keep-alive: rspamd cannot keep a client's connection open. Its HTTP server writes `Connection: close` into
 * every reply whatever the request asked (src/libserver/http/http_connection.c, rspamd_http_message_write_header,
 * server branch — in 3.4 and still on its main branch), and the normal worker ends the task's session, closing
 * the socket, once the reply is written (src/worker.c, rspamd_worker_finish_handler). The proxy worker's
 * `keepalive` option is for the proxy's own connections to its upstream workers, not for its clients
 * (src/rspamd_proxy.c). So a request goes out on a connection of its own, with no http.Agent: an agent's pool
 * bookkeeping (addRequest, free/remove socket) bought nothing here but cost ~2 % of a stage chain's CPU.
 */

export interface RspamdEndpoint {
  readonly host: string;
  readonly port: number;
}

export interface RspamdClientOptions {
  /** Normal worker (scanning), default port 11333. */
  readonly worker: RspamdEndpoint;
  /** Controller (learning, stat), default port 11334. Optional: a scan-only client needs none. */
  readonly controller?: RspamdEndpoint;
  /** Controller password (`password` or `enable_password` of the controller worker). */
  readonly password?: string;
  /** Deadline for a whole /checkv2 exchange (connect + upload + scan + reply). */
  readonly timeoutMs?: number;
  readonly connectTimeoutMs?: number;
  /** Deadline for learn/stat requests (learning writes to Redis; slower than a scan). */
  readonly learnTimeoutMs?: number;
  /** Connections open at once (requests beyond wait, first come first served, within their deadline). */
  readonly maxSockets?: number;
}

/** The SMTP envelope of the message being checked. rspamd uses it for SPF, RBLs, Received checks, user settings. */
export interface CheckEnvelope {
  /** MAIL FROM ('' for the null sender: sent as `<>`). */
  readonly from: string;
  readonly rcpt: readonly string[];
  readonly ip?: string;
  readonly helo?: string;
  /** Reverse DNS of the client, if known (without it rspamd looks it up itself). */
  readonly hostname?: string;
  /** Authenticated user (SMTP AUTH): rspamd then treats the message as outbound from that user. */
  readonly user?: string;
  /** Our message id, so rspamd's log lines carry it. */
  readonly queueId?: string;
  /** rspamd settings id (`Settings-ID`), e.g. to pick a profile per accepted domain. */
  readonly settingsId?: string;
}

export interface RspamdSymbol {
  readonly name: string;
  readonly score: number;
  readonly description?: string;
  readonly options?: readonly string[];
}

export interface CheckResult {
  readonly score: number;
  /** rspamd's own threshold for its reject action (informational: mailgate applies its own thresholds). */
  readonly requiredScore: number;
  /** rspamd's own action ('no action', 'add header', 'rewrite subject', 'greylist', 'soft reject', 'reject'). */
  readonly action: string;
  /** True when rspamd stopped early (GTUBE, a pre-filter): the score is final. */
  readonly skipped: boolean;
  readonly symbols: readonly RspamdSymbol[];
  readonly messageId?: string;
  /** rspamd's own time for the scan, in ms. */
  readonly scanMs?: number;
  /** `messages.smtp_message` etc. */
  readonly messages?: Readonly<Record<string, string>>;
  /** Which worker answered (host:port). */
  readonly endpoint: string;
}

export interface LearnResult {
  /** rspamd learned it now. */
  readonly learned: boolean;
  /** rspamd had already learned this message in this class (HTTP 208): nothing changed, not an error. */
  readonly alreadyLearned: boolean;
  readonly endpoint: string;
}

export interface BayesStat {
  /** Statfile symbol: BAYES_SPAM / BAYES_HAM. */
  readonly symbol: string;
  /** Messages learned into it (rspamd's `revision`). */
  readonly learned: number;
  readonly users?: number;
}

export interface RspamdStat {
  readonly learned: number;
  readonly scanned: number;
  readonly statfiles: readonly BayesStat[];
  readonly raw: Record<string, unknown>;
}

interface RawReply {
  readonly status: number;
  /** The reason phrase: rspamd puts its explanation there (and, for a 204, nowhere a client can read otherwise). */
  readonly statusMessage: string;
  readonly body: Buffer;
}

const ep = (e: RspamdEndpoint) => `${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`;

/**
 * Header values must be one line; envelope addresses can carry UTF-8 (SMTPUTF8). Node writes header strings as
 * latin1 and refuses characters above U+00FF, so the value goes as its UTF-8 bytes (what rspamd reads).
 */
function headerValue(s: string): string {
  return Buffer.from(s.replace(/[\r\n\0]/g, ' '), 'utf8').toString('latin1');
}

export class RspamdClient {
  private readonly maxSockets: number;
  /** Requests with a connection now. */
  private active = 0;
  /** Requests waiting for one (started in order as connections finish). */
  private readonly queue: (() => void)[] = [];
  /** Requests under way, so close() can end them. */
  private readonly requests = new Set<http.ClientRequest>();
  private closed = false;
  private readonly timeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly learnTimeoutMs: number;

  constructor(readonly options: RspamdClientOptions) {
    this.maxSockets = options.maxSockets ?? 16;
    this.timeoutMs = options.timeoutMs ?? 15_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 2000;
    this.learnTimeoutMs = options.learnTimeoutMs ?? 30_000;
  }

  get workerEndpoint(): string {
    return ep(this.options.worker);
  }

  /** Scan one message. Throws RspamdUnavailableError when no usable answer came within the deadline. */
  async check(raw: Buffer, env: CheckEnvelope, signal?: AbortSignal): Promise<CheckResult> {
    const headers: http.OutgoingHttpHeaders = {
      'Content-Length': raw.length,
      From: headerValue(env.from === '' ? '<>' : env.from),
      // rspamd reads every Rcpt header; node sends an array as repeated header lines.
      Rcpt: env.rcpt.map(headerValue),
    };
    if (env.ip) headers['IP'] = env.ip;
    if (env.helo) headers['Helo'] = headerValue(env.helo);
    if (env.hostname) headers['Hostname'] = headerValue(env.hostname);
    if (env.user) headers['User'] = headerValue(env.user);
    if (env.queueId) headers['Queue-Id'] = headerValue(env.queueId);
    if (env.settingsId) headers['Settings-ID'] = headerValue(env.settingsId);
    const endpoint = ep(this.options.worker);
    const reply = await this.request(this.options.worker, 'POST', '/checkv2', headers, raw, this.timeoutMs, signal);
    if (reply.status !== 200) {
      throw new RspamdUnavailableError(endpoint, 'http', `HTTP ${reply.status}: ${snippet(reply.body)}`, reply.status);
    }
    return parseCheck(reply.body, endpoint);
  }

  /** Train Bayes: this message is spam. */
  learnSpam(raw: Buffer, signal?: AbortSignal): Promise<LearnResult> {
    return this.learn('/learnspam', raw, signal);
  }

  /** Train Bayes: this message is ham (a false positive released by an administrator). */
  learnHam(raw: Buffer, signal?: AbortSignal): Promise<LearnResult> {
    return this.learn('/learnham', raw, signal);
  }

  /** Controller statistics (`rspamc stat`): learned counts per Bayes statfile. */
  async stat(signal?: AbortSignal): Promise<RspamdStat> {
    const c = this.controller();
    const reply = await this.request(c, 'GET', '/stat', this.authHeaders(), undefined, this.learnTimeoutMs, signal);
    const endpoint = ep(c);
    if (reply.status === 401 || reply.status === 403)
      throw new RspamdRequestError(endpoint, reply.status, 'controller refused the password');
    if (reply.status !== 200)
      throw new RspamdUnavailableError(endpoint, 'http', `HTTP ${reply.status}: ${snippet(reply.body)}`, reply.status);
    const j = parseJson(reply.body, endpoint);
    const statfiles = Array.isArray(j['statfiles']) ? (j['statfiles'] as Record<string, unknown>[]) : [];
    return {
      learned: num(j['learned']),
      scanned: num(j['scanned']),
      statfiles: statfiles.map((s) => ({
        symbol: String(s['symbol'] ?? ''),
        learned: num(s['revision']),
        ...(s['users'] !== undefined ? { users: num(s['users']) } : {}),
      })),
      raw: j,
    };
  }

  /** GET /ping on the worker: readiness. */
  async ping(signal?: AbortSignal): Promise<boolean> {
    try {
      const r = await this.request(this.options.worker, 'GET', '/ping', {}, undefined, this.connectTimeoutMs, signal);
      return r.status === 200 && r.body.toString('latin1').trim() === 'pong';
    } catch {
      return false;
    }
  }

  /** Ends every request under way and every waiting one (they reject); no request starts after. */
  close(): void {
    this.closed = true;
    for (const req of [...this.requests]) req.destroy(new Error('client closed'));
    for (const start of this.queue.splice(0)) {
      this.active++;
      start();
    }
  }

  private controller(): RspamdEndpoint {
    if (!this.options.controller) throw new Error('RspamdClient: no controller endpoint configured');
    return this.options.controller;
  }

  private authHeaders(): http.OutgoingHttpHeaders {
    return this.options.password ? { Password: this.options.password } : {};
  }

  private async learn(path: string, raw: Buffer, signal?: AbortSignal): Promise<LearnResult> {
    const c = this.controller();
    const endpoint = ep(c);
    const headers = { ...this.authHeaders(), 'Content-Length': raw.length };
    const reply = await this.request(c, 'POST', path, headers, raw, this.learnTimeoutMs, signal);
    if (reply.status === 200) return { learned: true, alreadyLearned: false, endpoint };
    // rspamd answers 208 "<id> has been already learned as <class>, ignore it".
    if (reply.status === 208) return { learned: false, alreadyLearned: true, endpoint };
    // rspamd answers 204 when it declines to learn: "<id> contains less tokens than required for bayes classifier:
    // 3 < 11", "all learn conditions denied learning spam in default classifier" (Bayes already sure).
    if (reply.status === 204) {
      throw new RspamdNotLearnedError(endpoint, reply.statusMessage.trim() || 'declined (HTTP 204)');
    }
    if (reply.status === 401 || reply.status === 403)
      throw new RspamdRequestError(endpoint, reply.status, 'controller refused the password');
    if (reply.status >= 400 && reply.status < 500) {
      throw new RspamdRequestError(endpoint, reply.status, errorText(reply.body));
    }
    throw new RspamdUnavailableError(endpoint, 'http', `HTTP ${reply.status}: ${snippet(reply.body)}`, reply.status);
  }

  private request(
    target: RspamdEndpoint,
    method: 'GET' | 'POST',
    path: string,
    headers: http.OutgoingHttpHeaders,
    body: Buffer | undefined,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<RawReply> {
    const endpoint = ep(target);
    return new Promise<RawReply>((resolve, reject) => {
      let settled = false;
      /** This request holds one of the maxSockets slots (it started): until its socket has closed. */
      let holding = false;
      let released = false;
      const releaseSlot = () => {
        if (released) return;
        released = true;
        this.release();
      };
      let socket: net.Socket | undefined;
      let req: http.ClientRequest | undefined;
      let connectTimer: NodeJS.Timeout | undefined;
      const finish = () => {
        settled = true;
        clearTimeout(deadline);
        clearTimeout(connectTimer);
        signal?.removeEventListener('abort', onAbort);
        if (req) this.requests.delete(req);
        // A socket gives its slot back when it has closed (rspamd hangs up after the reply): so maxSockets bounds
        // the connections really open, closing ones included.
        if (holding) return socket ? undefined : releaseSlot();
        // Still waiting for a connection slot: leave the queue.
        const i = this.queue.indexOf(start);
        if (i >= 0) this.queue.splice(i, 1);
      };
      const fail = (kind: RspamdErrorKind, msg: string, cause?: unknown) => {
        if (settled) return;
        finish();
        req?.destroy();
        reject(new RspamdUnavailableError(endpoint, kind, msg, undefined, { cause }));
      };
      const succeed = (reply: RawReply) => {
        if (settled) return;
        finish();
        resolve(reply);
      };
      // The deadline covers the wait for a connection slot too.
      const deadline = setTimeout(() => fail('timeout', `no answer within ${timeoutMs} ms`), timeoutMs);
      const onAbort = () => fail('closed', 'aborted (shutting down)');
      signal?.addEventListener('abort', onAbort, { once: true });

      const start = () => {
        holding = true;
        if (settled) return releaseSlot();
        if (this.closed) return fail('closed', 'client closed');
        let r: http.ClientRequest;
        try {
          r = http.request({
            method,
            path,
            // Host as a client sends it (http.request would otherwise derive it from host/port).
            headers: { Host: endpoint, ...headers },
            // A connection of our own, no agent (see the class comment); node then sends `Connection: close`.
            createConnection: () => {
              socket = net.connect({ host: target.host, port: target.port });
              socket.once('close', releaseSlot);
              return socket;
            },
          });
        } catch (err) {
          // A header node refuses (a character it does not send): the request is wrong, not rspamd.
          if (settled) return;
          finish();
          return reject(err as Error);
        }
        req = r;
        this.requests.add(r);
        connectTimer = setTimeout(
          () => fail('connect', `connect timed out after ${this.connectTimeoutMs} ms`),
          this.connectTimeoutMs,
        );
        r.on('socket', (s) => s.once('connect', () => clearTimeout(connectTimer)));
        r.on('error', (err: NodeJS.ErrnoException) => {
          const kind: RspamdErrorKind =
            err.code === 'ECONNREFUSED' || err.code === 'EHOSTUNREACH' || err.code === 'ENOTFOUND'
              ? 'connect'
              : 'closed';
          fail(kind, err.message, err);
        });
        r.on('response', (res) => {
          if (res.statusCode === 204) {
            // rspamd 3.4 sends a JSON body with its 204 (declined to learn). HTTP says a 204 has no body, so Node's
            // parser reports those bytes as an error ("Data after Connection: close") right after this event: take
            // the status and its reason phrase now, and drop the connection.
            succeed({ status: 204, statusMessage: res.statusMessage ?? '', body: Buffer.alloc(0) });
            res.socket?.destroy();
            return;
          }
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (err) => fail('closed', err.message, err));
          res.on('end', () =>
            succeed({
              status: res.statusCode ?? 0,
              statusMessage: res.statusMessage ?? '',
              body: Buffer.concat(chunks),
            }),
          );
        });
        r.end(body);
      };
      if (signal?.aborted) return onAbort();
      if (this.active < this.maxSockets) {
        this.active++;
        start();
      } else {
        this.queue.push(start);
      }
    });
  }

  /** A request is done with its connection: the longest-waiting one (if any) takes its place. */
  private release(): void {
    const next = this.queue.shift();
    if (next) next();
    else this.active--;
  }
}

function snippet(b: Buffer): string {
  return b.toString('utf8', 0, Math.min(b.length, 200)).replace(/\s+/g, ' ').trim();
}

function errorText(b: Buffer): string {
  try {
    const j = JSON.parse(b.toString('utf8')) as { error?: unknown };
    if (typeof j.error === 'string') return j.error;
  } catch {
    /* not JSON */
  }
  return snippet(b);
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

function parseJson(body: Buffer, endpoint: string): Record<string, unknown> {
  try {
    const j: unknown = JSON.parse(body.toString('utf8'));
    if (j && typeof j === 'object' && !Array.isArray(j)) return j as Record<string, unknown>;
  } catch {
    /* below */
  }
  throw new RspamdUnavailableError(endpoint, 'protocol', `not a JSON object: ${snippet(body)}`);
}

/** Parses a /checkv2 reply. Exported for tests of odd replies. */
export function parseCheck(body: Buffer, endpoint: string): CheckResult {
  const j = parseJson(body, endpoint);
  if (typeof j['score'] !== 'number' || typeof j['action'] !== 'string') {
    throw new RspamdUnavailableError(endpoint, 'protocol', `reply without score/action: ${snippet(body)}`);
  }
  const syms = (j['symbols'] && typeof j['symbols'] === 'object' ? j['symbols'] : {}) as Record<
    string,
    Record<string, unknown>
  >;
  const symbols: RspamdSymbol[] = Object.entries(syms).map(([name, s]) => ({
    name,
    score: num(s['score']),
    ...(typeof s['description'] === 'string' ? { description: s['description'] } : {}),
    ...(Array.isArray(s['options']) ? { options: (s['options'] as unknown[]).map(String) } : {}),
  }));
  const messages = j['messages'] && typeof j['messages'] === 'object' ? j['messages'] : undefined;
  return {
    score: j['score'],
    requiredScore: num(j['required_score']),
    action: j['action'],
    skipped: j['is_skipped'] === true,
    symbols,
    ...(typeof j['message-id'] === 'string' ? { messageId: j['message-id'] } : {}),
    ...(typeof j['time_real'] === 'number' ? { scanMs: Math.round(j['time_real'] * 1000 * 10) / 10 } : {}),
    ...(messages ? { messages: messages as Record<string, string> } : {}),
    endpoint,
  };
}

/** The symbols that contributed most (by absolute score), for reasons and tracking. */
export function topSymbols(r: Pick<CheckResult, 'symbols' | 'skipped'>, n = 5): RspamdSymbol[] {
  // A skipped scan (GTUBE, a pre-filter) has a zero-score symbol that explains the verdict: keep it.
  return [...r.symbols]
    .filter((s) => s.score !== 0 || r.skipped)
    .sort((a, b) => Math.abs(b.score) - Math.abs(a.score) || a.name.localeCompare(b.name))
    .slice(0, n);
}
