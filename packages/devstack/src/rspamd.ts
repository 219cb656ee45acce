import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './net.js';
import { launchInTempDir, makeTempDir, ManagedProcess, removeTempDir, waitUntilReady } from './process.js';

const execFileP = promisify(execFile);

export const RSPAMD_BINARY = '/usr/bin/rspamd';
export const RSPAMC_BINARY = '/usr/bin/rspamc';
/** The GTUBE test string: rspamd answers `reject` for any message containing it. Split so this file is not GTUBE. */
export const GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*' + 'GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';

/** A plain-text message (CRLF) for rspamd to scan or learn, with the headers legitimate mail carries. */
export function textMessage(m: { from: string; to: string; subject: string; messageId: string; body: string }): string {
  return [
    `From: ${m.from}`,
    `To: ${m.to}`,
    `Subject: ${m.subject}`,
    `Message-ID: <${m.messageId}>`,
    `Date: ${new Date().toUTCString()}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    m.body,
    '',
  ].join('\r\n');
}

/**
 * Modules switched off in the test rspamd: everything that needs the Internet (DNS lists, SPF/DKIM/DMARC lookups,
 * rspamd.com fuzzy storage and map downloads, hfilter's HELO/hostname resolution) and everything stateful in Redis
 * except Bayes (greylist would answer "soft reject", ratelimit would count across tests).
 */
export const RSPAMD_DISABLED_MODULES = [
  'rbl',
  'surbl',
  'dkim',
  'spf',
  'dmarc',
  'arc',
  'asn',
  'dcc',
  'fuzzy_check',
  'phishing',
  'emails',
  'url_redirector',
  'neural',
  'ratelimit',
  'replies',
  'greylist',
  'mx_check',
  'reputation',
  'rspamd_update',
  'history_redis',
  'whitelist',
  'multimap',
  'external_services',
  'antivirus',
  'metadata_exporter',
  'clickhouse',
  'elastic',
  'p0f',
  'bimi',
  'hfilter',
] as const;

export interface StartRspamdOptions {
  /** Redis for Bayes (rspamd's own Redis backend). Without it Bayes is not configured. */
  redis?: { host: string; port: number; db?: number };
  /** Controller password (plain; rspamd warns but accepts it). Default 'test-password'. */
  password?: string;
  port?: number;
  controllerPort?: number;
  /**
   * Hyperscan cache shared by every test rspamd on this machine: the first start compiles the regexp database
   * (tens of seconds); later starts load it. Default /tmp/mailgate-rspamd-cache.
   */
  hsCacheDir?: string;
  /** Startup timeout, default 180 s (first start compiles hyperscan). */
  timeoutMs?: number;
  /** Extra files under local.d, e.g. { 'actions.conf': 'reject = 20;' }. */
  localD?: Record<string, string>;
  /** Bayes `min_learns` (default 1, so a few learned messages already classify). */
  minLearns?: number;
}

export interface RspamdHandle {
  readonly host: string;
  readonly port: number;
  readonly controllerPort: number;
  readonly password: string;
  readonly dir: string;
  readonly pid: number | undefined;
  /** Milliseconds from spawn to the first pong of the latest (re)start. */
  readonly startupMs: number;
  /** `rspamc -h host:controllerPort -P password ARGS` → stdout. */
  rspamc(args: string[]): Promise<string>;
  /** Stops and brings it back on the same ports (Bayes state is in Redis, kept). */
  restart(): Promise<void>;
  /** SIGTERM, wait, and leave it down (restart() brings it back). */
  halt(): Promise<void>;
  stop(): Promise<void>;
  output(): string;
}

const HOST = '127.0.0.1';

function rspamdUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  try {
    // Debian's package creates _rspamd; rspamd refuses to run its workers as root.
    const st = statSync('/var/lib/rspamd');
    return { uid: st.uid, gid: st.gid };
  } catch {
    return null;
  }
}

function chownTree(dir: string, u: { uid: number; gid: number }): void {
  chownSync(dir, u.uid, u.gid);
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) chownTree(p, u);
    else chownSync(p, u.uid, u.gid);
  }
}

async function httpPing(port: number): Promise<boolean> {
  const r = await fetch(`http://${HOST}:${port}/ping`, { signal: AbortSignal.timeout(1000) });
  return r.ok && (await r.text()).trim() === 'pong';
}

/**
 * Runs Debian's rspamd in the foreground with a generated config (Debian's rules and modules from /etc/rspamd,
 * our local.d): a normal worker and a controller on loopback ports, no network lookups, Bayes in the given Redis.
 */
export async function startRspamd(opts: StartRspamdOptions = {}): Promise<RspamdHandle> {
  if (!existsSync(RSPAMD_BINARY)) throw new Error('startRspamd: rspamd is not installed (npm run setup:system)');
  const dir = makeTempDir('rspamd');
  const localD = join(dir, 'local.d');
  const dbDir = join(dir, 'db');
  const runDir = join(dir, 'run');
  const hsCacheDir = opts.hsCacheDir ?? '/tmp/mailgate-rspamd-cache';
  const password = opts.password ?? 'test-password';
  const timeoutMs = opts.timeoutMs ?? 180_000;
  const user = rspamdUser();
  let proc: ManagedProcess | undefined;
  let stopped = false;
  let startupMs = 0;
  let controllerPort = opts.controllerPort ?? 0;

  for (const d of [localD, dbDir, runDir]) mkdirSync(d, { recursive: true });
  mkdirSync(hsCacheDir, { recursive: true });
  if (user) chownSync(hsCacheDir, user.uid, user.gid);

  const files: Record<string, string> = {
    'options.inc': [
      // Unreachable resolver with a short timeout: nothing may leave the machine, nothing may wait long.
      'dns { nameserver = ["127.0.0.1:1"]; timeout = 0.1s; retransmits = 1; }',
      `hs_cache_dir = "${hsCacheDir}/";`,
      'local_addrs = [];',
    ].join('\n'),
    ...Object.fromEntries(RSPAMD_DISABLED_MODULES.map((m) => [`${m}.conf`, 'enabled = false;'])),
    ...(opts.redis
      ? {
          'redis.conf': `servers = "${opts.redis.host}:${opts.redis.port}";\ndb = "${opts.redis.db ?? 0}";`,
          'classifier-bayes.conf': [
            'backend = "redis";',
            'autolearn = false;',
            `min_learns = ${opts.minLearns ?? 1};`,
          ].join('\n'),
        }
      : { 'classifier-bayes.conf': 'enabled = false;' }),
    ...(opts.localD ?? {}),
  };
  const writeConf = async (port: number, cport: number): Promise<void> => {
    for (const [name, text] of Object.entries(files)) await writeFile(join(localD, name), text + '\n');
    await writeFile(
      join(dir, 'rspamd.conf'),
      [
        '.include "$CONFDIR/common.conf"',
        'options {',
        '  pidfile = "$RUNDIR/rspamd.pid";',
        '  .include "$CONFDIR/options.inc"',
        '  .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"',
        '}',
        'logging { type = "console"; level = "notice"; }',
        `worker "normal" { bind_socket = "${HOST}:${port}"; mime = true; count = 1; task_timeout = 8s; }`,
        // secure_ip elsewhere: the controller must check the password even from loopback (as in production).
        `worker "controller" { bind_socket = "${HOST}:${cport}"; count = 1; password = "${password}"; ` +
          `enable_password = "${password}"; secure_ip = "192.0.2.255"; static_dir = "\${WWWDIR}"; }`,
        '',
      ].join('\n'),
    );
    if (user) chownTree(dir, user);
  };

  const launch = async (port: number): Promise<void> => {
    if (!controllerPort) controllerPort = await freePort(HOST);
    await writeConf(port, controllerPort);
    const t0 = Date.now();
    const args = [
      '-f',
      '-c',
      join(dir, 'rspamd.conf'),
      '--var',
      `LOCAL_CONFDIR=${dir}`,
      '--var',
      `DBDIR=${dbDir}`,
      '--var',
      `RUNDIR=${runDir}`,
      '--var',
      `LOGDIR=${dir}`,
      ...(user ? ['-u', '_rspamd', '-g', '_rspamd'] : []),
    ];
    const p = new ManagedProcess(`rspamd:${port}`, RSPAMD_BINARY, args, { cwd: dir });
    proc = p;
    await waitUntilReady(p, async () => (await httpPing(port)) && (await httpPing(controllerPort)), timeoutMs, 200);
    startupMs = Date.now() - t0;
  };

  const port = await launchInTempDir(dir, opts.port, () => freePort(HOST), launch);

  return {
    host: HOST,
    port,
    get controllerPort() {
      return controllerPort;
    },
    password,
    dir,
    get pid() {
      return proc?.pid;
    },
    get startupMs() {
      return startupMs;
    },
    async rspamc(args: string[]) {
      const { stdout } = await execFileP(RSPAMC_BINARY, ['-h', `${HOST}:${controllerPort}`, '-P', password, ...args], {
        timeout: 30_000,
      });
      return stdout;
    },
    async halt() {
      await proc?.stop('SIGTERM', 5000);
    },
    async restart() {
      if (stopped) throw new Error('startRspamd: restart() after stop()');
      await proc?.stop('SIGTERM', 5000);
      await launch(port);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await proc?.stop('SIGTERM', 5000);
      await removeTempDir(dir);
    },
    output() {
      return proc?.output() ?? '';
    },
  };
}
