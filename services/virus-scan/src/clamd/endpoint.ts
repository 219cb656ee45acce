import net from 'node:net';
import { ClamdError } from './errors.js';

/** Where a clamd listens: TCP (`TCPSocket`/`TCPAddr`) or a Unix socket (`LocalSocket`). */
export type ClamdEndpoint = { readonly host: string; readonly port: number } | { readonly socket: string };

export function endpointName(e: ClamdEndpoint): string {
  return 'socket' in e ? `unix:${e.socket}` : `${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`;
}

export interface RequestOptions {
  /** Time to establish the connection. */
  readonly connectTimeoutMs: number;
  /** Longest silence on the socket once connected (sending, or waiting while clamd scans). */
  readonly readTimeoutMs: number;
  /** Abort (service shutdown): the socket is destroyed and the request rejects. */
  readonly signal?: AbortSignal | undefined;
}

/**
 * One request on a fresh connection: write `frames`, read until clamd's NUL-terminated reply (or until it
 * closes the connection), return the reply text. Every failure is a ClamdError saying what went wrong;
 * nothing here ever turns a failure into a reply.
 */
export function clamdRequest(endpoint: ClamdEndpoint, frames: readonly Buffer[], o: RequestOptions): Promise<string> {
  const name = endpointName(endpoint);
  return new Promise<string>((resolve, reject) => {
    if (o.signal?.aborted) return reject(new ClamdError('closed', name, 'aborted'));
    const sock =
      'socket' in endpoint
        ? net.connect({ path: endpoint.socket })
        : net.connect({ host: endpoint.host, port: endpoint.port });
    const chunks: Buffer[] = [];
    let connected = false;
    let settled = false;

    const replyText = (): string | null => {
      if (chunks.length === 0) return null;
      const text = Buffer.concat(chunks).toString('utf8');
      return text.replace(/\0+$/, '').trim() || null;
    };
    const finish = (err: ClamdError | null, text?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(connectTimer);
      o.signal?.removeEventListener('abort', onAbort);
      sock.destroy();
      if (err) reject(err);
      else resolve(text!);
    };
    const onAbort = () => finish(new ClamdError('closed', name, 'aborted'));
    o.signal?.addEventListener('abort', onAbort, { once: true });

    const connectTimer = setTimeout(
      () => finish(new ClamdError('connect', name, `no connection within ${o.connectTimeoutMs} ms`)),
      o.connectTimeoutMs,
    );

    sock.once('connect', () => {
      connected = true;
      clearTimeout(connectTimer);
      sock.setNoDelay(true);
      sock.setTimeout(o.readTimeoutMs, () =>
        finish(new ClamdError('timeout', name, `no reply within ${o.readTimeoutMs} ms of silence`)),
      );
      writeFrames();
    });
    // Write with backpressure and stop as soon as clamd answers: clamd replies "size limit exceeded" and closes
    // while we still send, and a blind bulk write then dies with EPIPE before the reply is read.
    let next = 0;
    const writeFrames = () => {
      // Corked: a length prefix and its chunk leave in one writev, not as a 4-byte packet each.
      sock.cork();
      try {
        while (next < frames.length && !settled && chunks.length === 0) {
          if (!sock.write(frames[next++]!)) {
            sock.once('drain', writeFrames);
            return;
          }
        }
      } finally {
        sock.uncork();
      }
    };
    sock.on('data', (d: Buffer) => {
      chunks.push(d);
      // z-commands end their reply with NUL: done, no need to wait for clamd to close.
      if (d.length > 0 && d[d.length - 1] === 0) finish(null, replyText()!);
    });
    sock.once('end', () => {
      const text = replyText();
      if (text !== null) finish(null, text);
      else finish(new ClamdError('closed', name, 'connection closed without a reply'));
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      // clamd answers "size limit exceeded" and closes while we are still writing: EPIPE/ECONNRESET after
      // the reply already arrived. The reply is what counts.
      const text = replyText();
      if (text !== null) return finish(null, text);
      finish(
        new ClamdError(connected ? 'closed' : 'connect', name, `${err.code ?? 'error'}: ${err.message}`, {
          cause: err,
          // EPIPE/ECONNRESET before any reply: crash, or a size-limit reply lost to the reset (see ClamdPool).
          resetBeforeReply: connected && (err.code === 'EPIPE' || err.code === 'ECONNRESET'),
        }),
      );
    });
    sock.once('close', () => {
      const text = replyText();
      if (text !== null) finish(null, text);
      else finish(new ClamdError('closed', name, 'connection closed without a reply'));
    });
  });
}
