import dgram from 'node:dgram';
import net from 'node:net';
import { sleep } from './process.js';

/** A TCP port that was free on `host` a moment ago (bind to 0, read the port, close). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ host, port: 0, exclusive: true }, () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('freePort: no address'));
        return;
      }
      srv.close(() => resolve(addr.port));
    });
  });
}

/** A port free for both UDP and TCP on `host` (DNS servers). */
export async function freeUdpPort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
      sock.once('error', reject);
      sock.bind(0, host, () => {
        const p = sock.address().port;
        sock.close(() => resolve(p));
      });
    });
    const tcpFree = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
    });
    if (tcpFree) return port;
  }
  throw new Error('freeUdpPort: could not find a port free for UDP and TCP');
}

export interface WaitForOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Included in the timeout error. */
  message?: string;
}

/**
 * Polls `fn` until it returns a truthy value (which is returned). A throwing `fn` counts as "not yet"; on timeout
 * the error names the last thrown error or the last falsy value.
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  { timeoutMs = 5000, intervalMs = 50, message }: WaitForOptions = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  let lastWasError = false;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
      last = v;
      lastWasError = false;
    } catch (err) {
      last = err;
      lastWasError = true;
    }
    if (Date.now() >= deadline) {
      const detail = lastWasError
        ? `last error: ${last instanceof Error ? last.message : String(last)}`
        : `last value: ${String(last)}`;
      const err = new Error(`waitFor timed out after ${timeoutMs} ms${message ? ` (${message})` : ''}; ${detail}`);
      if (lastWasError) (err as Error & { cause?: unknown }).cause = last;
      throw err;
    }
    await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
  }
}

/** Connects, writes `payload`, collects everything until the server closes (or `timeoutMs`). */
export function tcpRequest(host: string, port: number, payload: Buffer | string, timeoutMs = 2000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = net.connect({ host, port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`tcpRequest ${host}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(payload));
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}
