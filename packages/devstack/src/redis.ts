import { randomBytes } from 'node:crypto';
import { freePort, tcpRequest } from './net.js';
import { ManagedProcess, makeTempDir, removeTempDir, waitUntilReady, launchOnPort } from './process.js';

export interface StartRedisOptions {
  /** `--appendonly yes --appendfsync always` (every write is fsynced; survives kill()). Default false. */
  appendonly?: boolean;
  /** Data dir. Default: a fresh mkdtemp dir, removed by stop(). A dir you pass is never removed. */
  dir?: string;
  /** Default: a free port. */
  port?: number;
  /** Startup timeout, default 15 s. */
  timeoutMs?: number;
  /** Extra `redis-server` arguments, e.g. ['--maxmemory', '10mb']. */
  extraArgs?: string[];
}

export interface RedisHandle {
  host: string;
  port: number;
  /** redis://127.0.0.1:PORT */
  url: string;
  dir: string;
  readonly pid: number | undefined;
  /** SIGTERM (SIGKILL after 5 s), waits for exit, removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** Stops (if running) and starts again on the same port and dir; AOF data (appendonly) is kept. */
  restart(): Promise<void>;
  /** SIGKILL, no cleanup: simulate a crash. restart() brings it back; stop() still cleans up. */
  kill(): Promise<void>;
  /** Combined stdout/stderr of the current process. */
  output(): string;
}

const HOST = '127.0.0.1';

async function redisPing(port: number): Promise<boolean> {
  const reply = await tcpRequest(HOST, port, 'PING\r\nQUIT\r\n', 1000);
  return reply.toString().startsWith('+PONG');
}

/** Runs `redis-server` (from PATH) in the foreground on a free loopback port with `--save ''`. */
export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisHandle> {
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? makeTempDir('redis');
  const timeoutMs = opts.timeoutMs ?? 15_000;
  let proc: ManagedProcess | undefined;
  let stopped = false;

  const launch = async (port: number): Promise<void> => {
    const args = [
      '--port',
      String(port),
      '--bind',
      HOST,
      '--save',
      '',
      '--dir',
      dir,
      '--daemonize',
      'no',
      '--protected-mode',
      'no',
      '--maxmemory-policy',
      'noeviction',
      '--logfile',
      '',
      ...(opts.appendonly ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
      ...(opts.extraArgs ?? []),
    ];
    const p = new ManagedProcess(`redis-server:${port}`, 'redis-server', args, { cwd: dir });
    proc = p;
    await waitUntilReady(p, () => redisPing(port), timeoutMs);
  };

  let port = 0;
  try {
    port = await launchOnPort(opts.port, () => freePort(HOST), launch);
  } catch (err) {
    if (ownDir) await removeTempDir(dir);
    throw err;
  }

  const handle: RedisHandle = {
    host: HOST,
    port,
    url: `redis://${HOST}:${port}`,
    dir,
    get pid() {
      return proc?.pid;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await proc?.stop('SIGTERM', 5000);
      if (ownDir) await removeTempDir(dir);
    },
    async restart() {
      if (stopped) throw new Error('startRedis: restart() after stop()');
      await proc?.stop('SIGTERM', 5000);
      await launch(port);
    },
    async kill() {
      await proc?.kill();
    },
    output() {
      return proc?.output() ?? '';
    },
  };
  return handle;
}

/**
 * A unique key prefix (`mgtest:<pid>:<random>:`) for tests that share the machine's Redis on 127.0.0.1:6379
 * instead of starting their own. Delete your keys afterwards (e.g. SCAN MATCH `${prefix}*` + UNLINK).
 */
export function isolatedRedisPrefix(label = 'mgtest'): string {
  return `${label}:${process.pid}:${randomBytes(4).toString('hex')}:`;
}
