import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { freePort, tcpRequest } from './net.js';
import { launchInTempDir, makeTempDir, ManagedProcess, removeTempDir, waitUntilReady } from './process.js';

/**
 * The 68-byte EICAR anti-virus test string, assembled from two halves so this source file is not itself flagged.
 */
export const EICAR: string = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$' + 'EICAR-STANDARD-ANTIVIRUS-' + 'TEST-FILE!$H+H*';

/** Name of the EICAR body signature written into the generated database. */
export const EICAR_SIGNATURE = 'Eicar-Test-Signature';
/** What clamd reports for it: custom (non-official) `.ndb` names get a `.UNOFFICIAL` suffix. */
export const EICAR_FOUND_NAME = 'Eicar-Test-Signature.UNOFFICIAL';

export interface ClamdSignature {
  /** Signature name (no ':'); clamd reports it as `<name>.UNOFFICIAL`. */
  name: string;
  /** ndb body pattern: hex bytes, ndb wildcards (`??`, `*`, `{n-m}`) allowed. Matches anywhere in any file type. */
  hex: string;
}

export interface StartClamdOptions {
  extraSignatures?: ClamdSignature[];
  /** clamd `StreamMaxLength` (INSTREAM limit), e.g. '10M'. Default '25M' (clamd's default). */
  streamMaxLength?: string;
  port?: number;
  /** Startup timeout (database load + bind), default 60 s. */
  timeoutMs?: number;
  /** Extra clamd.conf lines, e.g. ['MaxFileSize 1M']. */
  extraConfig?: string[];
}

export interface ClamdHandle {
  host: string;
  port: number;
  /** Unix socket clamd also listens on (`LocalSocket`). */
  socketPath: string;
  /** Directory holding the generated `mailgate-test.ndb`. */
  databaseDir: string;
  /** Temp dir with clamd.conf, clamd.log, the socket and the database. */
  dir: string;
  readonly pid: number | undefined;
  /** Milliseconds from spawn to the first PONG of the latest (re)start. */
  readonly startupMs: number;
  /** SIGTERM, wait for exit, remove the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL (crash simulation); restart() brings it back on the same port/socket. */
  kill(): Promise<void>;
  restart(): Promise<void>;
  output(): string;
}

const HOST = '127.0.0.1';
export const CLAMD_BINARY = '/usr/sbin/clamd';

function toHex(s: string): string {
  return Buffer.from(s, 'latin1').toString('hex');
}

function ndbLine(sig: ClamdSignature): string {
  if (!/^[A-Za-z0-9._-]+$/.test(sig.name))
    throw new Error(`startClamd: bad signature name ${JSON.stringify(sig.name)}`);
  if (!/^[0-9a-fA-F?*{}()|![\]\-,]+$/.test(sig.hex)) throw new Error(`startClamd: bad ndb pattern for ${sig.name}`);
  // Name:TargetType:Offset:HexSignature  — TargetType 0 = any file, Offset * = anywhere.
  return `${sig.name}:0:*:${sig.hex.toLowerCase()}`;
}

/** Sends a clamd command (`z`-prefixed, NUL-terminated) over TCP, returns the reply without the trailing NUL. */
export async function clamdCommand(
  host: string,
  port: number,
  command: 'PING' | 'VERSION' | 'STATS' | 'RELOAD',
  timeoutMs = 2000,
): Promise<string> {
  const reply = await tcpRequest(host, port, `z${command}\0`, timeoutMs);
  return reply.toString('utf8').replace(/\0+$/, '').trim();
}

/**
 * INSTREAM scan of `data` (TCP port or unix socket path). Returns clamd's reply, e.g. `stream: OK`,
 * `stream: Eicar-Test-Signature.UNOFFICIAL FOUND`, `INSTREAM size limit exceeded. ERROR`.
 */
export function clamdScan(
  target: { host: string; port: number } | { socketPath: string },
  data: Buffer | string,
  timeoutMs = 10_000,
): Promise<string> {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  return new Promise((resolve, reject) => {
    const sock = 'socketPath' in target ? net.connect(target.socketPath) : net.connect(target.port, target.host);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`clamdScan timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('connect', () => {
      sock.write('zINSTREAM\0');
      const CHUNK = 64 * 1024;
      for (let off = 0; off < buf.length; off += CHUNK) {
        const part = buf.subarray(off, off + CHUNK);
        const len = Buffer.alloc(4);
        len.writeUInt32BE(part.length);
        sock.write(len);
        sock.write(part);
      }
      sock.write(Buffer.alloc(4)); // zero-length chunk ends the stream
    });
    sock.on('data', (d: Buffer) => chunks.push(d));
    // clamd may close early (size limit): our writes then fail with EPIPE/ECONNRESET, but its reply can still be
    // in the receive buffer and arrive before 'close' — so decide on 'close', not on the write error.
    let failure: Error | undefined;
    sock.on('error', (err) => {
      failure ??= err;
    });
    sock.on('close', () => {
      clearTimeout(timer);
      const reply = Buffer.concat(chunks).toString('utf8').replace(/\0+$/, '').trim();
      if (reply || !failure) resolve(reply);
      else reject(failure);
    });
  });
}

/**
 * Runs Debian's clamd in the foreground with a generated config and a generated signature database
 * (EICAR + extraSignatures) in a temp dir; no freshclam, no Internet. Resolves once clamd answers PING.
 */
export async function startClamd(opts: StartClamdOptions = {}): Promise<ClamdHandle> {
  const dir = makeTempDir('clamd');
  const databaseDir = join(dir, 'db');
  const socketPath = join(dir, 'clamd.sock');
  const confPath = join(dir, 'clamd.conf');
  const timeoutMs = opts.timeoutMs ?? 60_000;
  let proc: ManagedProcess | undefined;
  let stopped = false;
  let startupMs = 0;

  const sigs: ClamdSignature[] = [{ name: EICAR_SIGNATURE, hex: toHex(EICAR) }, ...(opts.extraSignatures ?? [])];
  try {
    await mkdir(databaseDir);
    await writeFile(join(databaseDir, 'mailgate-test.ndb'), sigs.map(ndbLine).join('\n') + '\n');
  } catch (err) {
    await removeTempDir(dir);
    throw err;
  }

  const writeConf = (port: number): Promise<void> =>
    writeFile(
      confPath,
      [
        'Foreground yes',
        `TCPSocket ${port}`,
        `TCPAddr ${HOST}`,
        `LocalSocket ${socketPath}`,
        'LocalSocketMode 666',
        'FixStaleSocket yes',
        `DatabaseDirectory ${databaseDir}`,
        `TemporaryDirectory ${dir}`,
        `LogFile ${join(dir, 'clamd.log')}`,
        'LogTime yes',
        `PidFile ${join(dir, 'clamd.pid')}`,
        `StreamMaxLength ${opts.streamMaxLength ?? '25M'}`,
        'ScanArchive yes',
        'ScanMail yes',
        'ScanPE yes',
        'ScanOLE2 yes',
        'ScanPDF yes',
        'ScanHTML yes',
        'MaxThreads 4',
        'MaxQueue 50',
        'ReadTimeout 30',
        'CommandReadTimeout 30',
        'IdleTimeout 30',
        'SelfCheck 3600',
        ...(opts.extraConfig ?? []),
        '',
      ].join('\n'),
    );

  const launch = async (port: number): Promise<void> => {
    await writeConf(port);
    const t0 = Date.now();
    const p = new ManagedProcess(`clamd:${port}`, CLAMD_BINARY, ['-c', confPath], { cwd: dir });
    proc = p;
    await waitUntilReady(p, async () => (await clamdCommand(HOST, port, 'PING', 1000)) === 'PONG', timeoutMs, 100);
    startupMs = Date.now() - t0;
  };

  const port = await launchInTempDir(dir, opts.port, () => freePort(HOST), launch);

  return {
    host: HOST,
    port,
    socketPath,
    databaseDir,
    dir,
    get pid() {
      return proc?.pid;
    },
    get startupMs() {
      return startupMs;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await proc?.stop('SIGTERM', 5000);
      await removeTempDir(dir);
    },
    async kill() {
      await proc?.kill();
    },
    async restart() {
      if (stopped) throw new Error('startClamd: restart() after stop()');
      await proc?.stop('SIGTERM', 5000);
      await launch(port);
    },
    output() {
      return proc?.output() ?? '';
    },
  };
}
