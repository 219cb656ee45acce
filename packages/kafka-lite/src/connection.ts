// One file (~300 lines): one class, the per-connection state machine (framing, ordering, limits, timeouts); its
// parts share that state, so splitting would only pass it around.
// One client connection: incremental framing, the request header, dispatch to the API modules, in-order responses
// and the per-connection limits (frame size, decode budget, in-flight requests, idle and request-read timeouts).
import type net from 'node:net';
import { APIS, apiVersionsBody, type Api, type ConnInfo } from './apis/index.js';
import type { Broker } from './broker.js';
import { DecodeBudgetError, ErrorCode, ProtocolError, Reader, Writer } from './protocol.js';
import { decode, encode, isFlexible, isValidVersion } from './schema/codec.js';

interface Slot {
  done: boolean;
  chunks: Buffer[] | null;
}

const API_VERSIONS_KEY = 18;
/** Memory a held socket chunk costs beyond its data (Buffer object and backing store), measured ~0.5 KiB. */
const CHUNK_OVERHEAD = 1024;

export class Conn implements ConnInfo {
  private chunks: Buffer[] = [];
  /** Bytes received and not yet handled. */
  private buffered = 0;
  /**
   * What those bytes cost in memory, as counted in the broker's buffered total: the data plus a per-chunk overhead,
   * so a sender trickling one byte per TCP segment is charged for each Buffer it makes the broker hold.
   */
  held = 0;
  /** When the first byte of the pending (incomplete) frame arrived; 0 when nothing is pending. */
  frameStartedAt = 0;
  private lastActivity = Date.now();
  private queue: Slot[] = [];
  private paused = false;
  private pumping = false;
  closed = false;
  readonly parked = new Set<() => void>(); // cleanup callbacks for parked requests
  readonly clientHost: string;

  constructor(
    readonly broker: Broker,
    readonly socket: net.Socket,
    readonly id: number,
  ) {
    this.clientHost = `/${socket.remoteAddress ?? 'unknown'}`;
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (err) => broker.log.debug?.('kafka-lite: connection error', { conn: id, err: err.message }));
    socket.on('close', () => this.onClose());
    socket.on('drain', () => this.pump());
  }

  private onClose(): void {
    this.closed = true;
    this.dropBuffered();
    for (const c of [...this.parked]) c();
    this.parked.clear();
    this.queue = [];
    this.broker.coord.connectionClosed(this);
    this.broker.connectionClosed(this);
  }

  /** Closes this connection (only this one) with a rate-limited warning. */
  fail(reason: string, fields: Record<string, unknown> = {}): void {
    if (this.closed) return;
    this.broker.warn(reason, `kafka-lite: closing connection: ${reason}`, {
      conn: this.id,
      remote: this.clientHost,
      ...fields,
    });
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.dropBuffered(); // at once: the broker's buffered total must drop before 'close' fires
    this.socket.destroy();
  }

  private dropBuffered(): void {
    this.buffered = 0;
    this.chunks = [];
    this.account();
  }

  /** Called by the broker's sweeper: idle and request-read timeouts. */
  checkTimeouts(now: number): void {
    const { idleTimeoutMs, requestReadTimeoutMs } = this.broker.limits;
    if (this.frameStartedAt > 0 && now - this.frameStartedAt > requestReadTimeoutMs) {
      this.fail('request not received within requestReadTimeoutMs', { requestReadTimeoutMs, buffered: this.buffered });
    } else if (this.queue.length === 0 && this.buffered === 0 && now - this.lastActivity > idleTimeoutMs) {
      this.broker.log.debug?.('kafka-lite: closing idle connection', { conn: this.id, idleTimeoutMs });
      this.close();
    }
  }

  /** Re-computes `held` after the chunk list changed and applies the difference to the broker's total. */
  private account(): void {
    const held = this.buffered + this.chunks.length * CHUNK_OVERHEAD;
    this.broker.bufferedBytes += held - this.held;
    this.held = held;
    if (this.buffered === 0) this.frameStartedAt = 0;
  }

  private onData(d: Buffer): void {
    if (this.closed) return;
    this.lastActivity = Date.now();
    if (this.buffered === 0) this.frameStartedAt = this.lastActivity;
    this.chunks.push(d);
    this.buffered += d.length;
    this.account();
    if (this.broker.bufferedBytes > this.broker.limits.maxBufferedRequestBytes) this.broker.evictBuffered();
    this.pump();
  }

  /** Handles every complete buffered frame while the connection may take more requests; pauses reading otherwise. */
  private pump(): void {
    if (this.pumping) return; // re-entered from a synchronous response: the running loop goes on
    this.pumping = true;
    try {
      this.pumpFrames();
    } finally {
      this.pumping = false;
    }
  }

  private pumpFrames(): void {
    const s = this.socket;
    while (!this.closed && this.buffered >= 4) {
      if (this.queue.length >= this.broker.limits.maxInFlightRequests || s.writableNeedDrain) {
        if (!this.paused) s.pause();
        this.paused = true;
        return;
      }
      const size = this.peekInt32();
      if (size < 8 || size > this.broker.limits.maxRequestBytes) {
        this.fail(size < 8 ? 'invalid frame size' : 'request exceeds maxRequestBytes', { size });
        return;
      }
      if (this.buffered < size + 4) return;
      this.take(4);
      const frame = this.take(size);
      // Leftover bytes start the next frame now.
      if (this.buffered > 0) this.frameStartedAt = Date.now();
      this.handleFrame(frame);
    }
    if (
      this.paused &&
      !this.closed &&
      this.queue.length < this.broker.limits.maxInFlightRequests &&
      !s.writableNeedDrain
    ) {
      this.paused = false;
      s.resume();
    }
  }

  private peekInt32(): number {
    const first = this.chunks[0]!;
    if (first.length >= 4) return first.readInt32BE(0);
    return Buffer.concat(this.chunks, 4).readInt32BE(0);
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const c = this.chunks[0]!;
        const k = Math.min(c.length, n - off);
        c.copy(out, off, 0, k);
        off += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.buffered -= n;
    this.account();
    return out;
  }

  private handleFrame(frame: Buffer): void {
    const r = new Reader(frame, 0, { objects: this.broker.limits.maxRequestObjects });
    let apiKey: number;
    let version: number;
    let correlationId: number;
    let clientId: string;
    try {
      apiKey = r.int16();
      version = r.int16();
      correlationId = r.int32();
      clientId = r.nstring() ?? '';
    } catch {
      this.fail('malformed request header');
      return;
    }
    const api = this.broker.apis.get(apiKey);
    if (!api) {
      this.fail('unsupported api key', { apiKey, version });
      return;
    }
    const slot: Slot = { done: false, chunks: null };
    if (apiKey === API_VERSIONS_KEY && version > api.max) {
      // KIP-511: a newer ApiVersions than ours gets the v0 layout with UNSUPPORTED_VERSION and our ranges, so the
      // client retries with our highest version. Its body (and header tags) may not be parseable: not read.
      this.queue.push(slot);
      this.respond(slot, api, 0, correlationId, apiVersionsBody(APIS.values(), ErrorCode.UNSUPPORTED_VERSION));
      return;
    }
    if (!isValidVersion(api.request, version)) {
      // Newer than Kafka's own definitions we were generated from: no layout to read the request or answer it.
      this.fail('unknown api version', { apiKey, version, supported: [api.min, api.max] });
      return;
    }
    let req: Record<string, unknown>;
    try {
      if (isFlexible(api.request, version)) skipTaggedFields(r); // request header v2
      req = decode(api.request, r, version);
    } catch (err) {
      this.onHandlerError(err, apiKey, version);
      return;
    }
    this.queue.push(slot);
    if (version < api.min || version > api.max) {
      // Decodable but not served at this version: the API's own error response, as Kafka builds it.
      const body = api.errorResponse?.(req, ErrorCode.UNSUPPORTED_VERSION) ?? {
        errorCode: ErrorCode.UNSUPPORTED_VERSION,
      };
      this.broker.log.debug?.('kafka-lite: unsupported version', { apiKey, version, supported: [api.min, api.max] });
      this.respond(slot, api, version, correlationId, body);
      return;
    }
    let res: object | null | Promise<object | null>;
    try {
      res = api.handle(req, { broker: this.broker, conn: this, version, clientId });
    } catch (err) {
      this.onHandlerError(err, apiKey, version);
      return;
    }
    if (res instanceof Promise) {
      res.then(
        (body) => this.respond(slot, api, version, correlationId, body),
        (err: unknown) => this.onHandlerError(err, apiKey, version),
      );
    } else this.respond(slot, api, version, correlationId, res);
  }

  private onHandlerError(err: unknown, apiKey: number, version: number): void {
    if (err instanceof DecodeBudgetError)
      this.fail('request exceeds maxRequestObjects', {
        apiKey,
        version,
        maxRequestObjects: this.broker.limits.maxRequestObjects,
      });
    else if (err instanceof ProtocolError) this.fail(`malformed request: ${err.message}`, { apiKey, version });
    else {
      this.broker.log.error('kafka-lite: handler failed', {
        apiKey,
        version,
        err: err instanceof Error ? err.stack : String(err),
      });
      this.fail('internal error', { apiKey, version });
    }
  }

  /** Encodes the response (none for null: acks=0) and writes every completed response at the queue's head. */
  private respond(slot: Slot, api: Api, version: number, correlationId: number, body: object | null): void {
    if (this.closed) return;
    if (body) {
      const w = new Writer();
      w.int32(0).int32(correlationId); // size placeholder, response header
      // Response header v1 (tagged fields) for flexible versions — except ApiVersions, always header v0.
      if (api.key !== API_VERSIONS_KEY && isFlexible(api.response, version)) w.uvarint(0);
      try {
        encode(api.response, w, version, body);
      } catch (err) {
        this.onHandlerError(err, api.key, version);
        return;
      }
      const chunks = w.finish();
      chunks[0]!.writeInt32BE(w.length() - 4, 0);
      slot.chunks = chunks;
    }
    slot.done = true;
    if (this.queue[0] !== slot) return;
    const s = this.socket;
    s.cork();
    while (this.queue.length > 0 && this.queue[0]!.done) {
      const head = this.queue.shift()!;
      if (head.chunks) for (const c of head.chunks) s.write(c);
    }
    s.uncork();
    this.lastActivity = Date.now();
    this.pump();
  }
}

/** Skips a tagged-field section (flexible request header v2: none of its tags are used here). */
function skipTaggedFields(r: Reader): void {
  const n = r.tagCount();
  for (let i = 0; i < n; i++) {
    r.uvarint();
    r.skip(r.uvarint());
  }
}
