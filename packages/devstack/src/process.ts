// Child-process and temp-dir bookkeeping shared by every helper.
// Every child we spawn is tracked and SIGKILLed when this process exits (normally, on an uncaught error or on
// SIGINT/SIGTERM/SIGHUP), and every temp dir we create is removed then too. Against a SIGKILL of the test process
// itself, children are started through `setpriv --pdeathsig SIGKILL` (util-linux) when it exists, so the kernel
// kills them; their temp dirs are then left behind in os.tmpdir() (mailgate-*).
// One file (~300 lines): the launchers' lifecycle helpers (start on a free port, wait until ready, clean up on
// failure) rely on that one registry of children and temp dirs.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const children = new Set<ChildProcess>();
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
const tempDirs = new Set<string>();
let hooksInstalled = false;

function cleanupSync(): void {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  children.clear();
  for (const d of tempDirs) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
  tempDirs.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', cleanupSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      cleanupSync();
      // Keep the default behaviour (terminate) unless somebody else handles the signal.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.once(sig, handler);
  }
}

/** mkdtemp under os.tmpdir(); removed on process exit if not removed earlier with removeTempDir(). */
export function makeTempDir(label: string): string {
  installHooks();
  const dir = mkdtempSync(join(tmpdir(), `mailgate-${label}-`));
  tempDirs.add(dir);
  return dir;
}

export async function removeTempDir(dir: string): Promise<void> {
  tempDirs.delete(dir);
  await rm(dir, { recursive: true, force: true });
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const OUTPUT_KEEP = 256 * 1024;

/** A tracked child process with its combined stdout+stderr kept in memory (last 256 KiB). */
export class ManagedProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<ExitInfo>;
  private text = '';
  private base = 0; // number of characters dropped from the front of `text`
  private running = true;
  private spawnError: Error | undefined;
  private waiters = new Set<() => void>();

  constructor(
    readonly name: string,
    readonly command: string,
    readonly args: string[],
    options: { cwd?: string; env?: NodeJS.ProcessEnv; stdinPipe?: boolean } = {},
  ) {
    installHooks();
    const [cmd, argv] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'SIGKILL', '--', command, ...args]] : [command, args];
    this.child = spawn(cmd, argv, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      // stdinPipe: the child can notice our death (EOF on stdin) even if we are SIGKILLed.
      stdio: [options.stdinPipe ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    children.add(this.child);
    // Don't let a server a test forgot to stop keep the test process alive forever: the 'exit' hook kills it.
    // stop()/kill() re-ref the child while waiting for it to exit.
    this.child.unref();
    (this.child.stdout as unknown as { unref?: () => void } | null)?.unref?.();
    (this.child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
    const onData = (chunk: Buffer): void => {
      this.text += chunk.toString('utf8');
      if (this.text.length > OUTPUT_KEEP * 2) {
        const drop = this.text.length - OUTPUT_KEEP;
        this.text = this.text.slice(drop);
        this.base += drop;
      }
      this.notify();
    };
    this.child.stdout?.on('data', onData);
    this.child.stderr?.on('data', onData);
    this.exited = new Promise<ExitInfo>((resolve) => {
      this.child.once('error', (err) => {
        this.spawnError = err;
        this.running = false;
        children.delete(this.child);
        this.notify();
        resolve({ code: null, signal: null });
      });
      this.child.once('exit', (code, signal) => {
        this.running = false;
        children.delete(this.child);
        this.notify();
        resolve({ code, signal });
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  isRunning(): boolean {
    return this.running;
  }

  /** Position in the output stream; pass to waitForOutput() to only look at output written after this point. */
  mark(): number {
    return this.base + this.text.length;
  }

  output(): string {
    return this.text;
  }

  tail(lines = 30): string {
    const all = this.text.trimEnd().split('\n');
    return all.slice(-lines).join('\n');
  }

  describeFailure(what: string): Error {
    const cmd = [this.command, ...this.args].join(' ');
    const why = this.spawnError ? ` (spawn error: ${this.spawnError.message})` : '';
    const tail = this.tail();
    return new Error(
      `${this.name}: ${what}${why}\n  command: ${cmd}\n  output tail:\n${tail ? tail.replace(/^/gm, '    ') : '    (no output)'}`,
    );
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves with the match once `re` appears in the output after `since`; rejects if the process exits or on timeout. */
  waitForOutput(re: RegExp, opts: { since?: number; timeoutMs?: number } = {}): Promise<RegExpMatchArray> {
    const since = opts.since ?? 0;
    const timeoutMs = opts.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const start = Math.max(0, since - this.base);
        const m = this.text.slice(start).match(re);
        if (m) {
          done();
          resolve(m);
          return true;
        }
        if (!this.running) {
          done();
          reject(this.describeFailure(`exited before printing ${re}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        reject(this.describeFailure(`did not print ${re} within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (): void => void check();
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
      check();
    });
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) this.child.kill(sig);
  }

  /** Sends `sig` (default SIGTERM), escalates to SIGKILL after graceMs. Idempotent. */
  async stop(sig: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<ExitInfo> {
    if (this.running) {
      this.child.ref();
      this.child.kill(sig);
      const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
      try {
        return await this.exited;
      } finally {
        clearTimeout(timer);
      }
    }
    return this.exited;
  }

  kill(): Promise<ExitInfo> {
    return this.stop('SIGKILL', 0);
  }
}

/**
 * Polls `ready()` until it returns true. Throws (after killing the process) with the output tail if the process
 * exits first or the timeout passes.
 */
export async function waitUntilReady(
  proc: ManagedProcess,
  ready: () => Promise<boolean>,
  timeoutMs: number,
  intervalMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!proc.isRunning()) throw proc.describeFailure('exited before it was ready');
    let ok = false;
    try {
      ok = await ready();
    } catch {
      ok = false;
    }
    if (ok) return;
    if (!proc.isRunning()) throw proc.describeFailure('exited before it was ready');
    if (Date.now() > deadline) {
      await proc.kill();
      throw proc.describeFailure(`did not come up within ${timeoutMs} ms`);
    }
    await sleep(intervalMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Runs `attempt(port)`; when no port was requested and the attempt fails (typically: the port picked by freePort()
 * was grabbed by a parallel test between probe and bind), retries with a fresh port.
 */
export async function withPortRetry<T>(
  requested: number | undefined,
  pick: () => Promise<number>,
  attempt: (port: number) => Promise<T>,
  tries = 3,
): Promise<T> {
  if (requested !== undefined) return attempt(requested);
  let last: unknown;
  for (let i = 0; i < tries; i++) {
    try {
      return await attempt(await pick());
    } catch (err) {
      last = err;
      const msg = err instanceof Error ? err.message : String(err);
      if (!/in use|EADDRINUSE|bind|Bound|listen/i.test(msg)) throw err;
    }
  }
  throw last;
}

/** `withPortRetry` for launchers that just start a server on a port: returns the port it came up on. */
export function launchOnPort(
  requested: number | undefined,
  pick: () => Promise<number>,
  launch: (port: number) => Promise<void>,
): Promise<number> {
  return withPortRetry(requested, pick, async (p) => {
    await launch(p);
    return p;
  });
}

/** Runs a launcher's `start`; when it fails, removes the launcher's temporary `dir` before passing the error on. */
export async function removeDirOnFailure<T>(dir: string, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    await removeTempDir(dir);
    throw err;
  }
}

/** `launchOnPort` for a launcher that keeps its files in `dir`: the directory is removed when no start succeeds. */
export function launchInTempDir(
  dir: string,
  requested: number | undefined,
  pick: () => Promise<number>,
  launch: (port: number) => Promise<void>,
): Promise<number> {
  return removeDirOnFailure(dir, () => launchOnPort(requested, pick, launch));
}
