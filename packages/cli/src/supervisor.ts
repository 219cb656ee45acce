import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import type { Logger } from '@mailgate/runtime';

export interface SupervisorOptions {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly spawnOptions?: SpawnOptions;
  readonly log: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** First restart delay; doubled after each crash that follows a short run, up to maxBackoffMs. */
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** A run at least this long counts as healthy: the next crash restarts after initialBackoffMs again. */
  readonly resetAfterMs?: number;
}

/**
 * Keeps one service process running for `mailgate dev`: a process that exits on its own (crash, kill -9, a fatal
 * error) is restarted after a backoff (doubling while it keeps crashing quickly) and the restart is logged, so one
 * crash does not leave the local stack half-dead. stop() ends it for good (SIGTERM, SIGKILL after graceMs).
 */
export class Supervisor {
  private proc: ChildProcess | undefined;
  private stopping = false;
  private timer: NodeJS.Timeout | undefined;
  private backoff: number;
  private startedAt = 0;
  private restartCount = 0;
  private readonly listeners = new Set<(p: ChildProcess) => void>();

  constructor(private readonly options: SupervisorOptions) {
    this.backoff = options.initialBackoffMs ?? 500;
  }

  /** The current process (undefined while waiting to restart). */
  get child(): ChildProcess | undefined {
    return this.proc;
  }

  get restarts(): number {
    return this.restartCount;
  }

  /** Called with every new process (first start and each restart). */
  onStart(fn: (p: ChildProcess) => void): void {
    this.listeners.add(fn);
  }

  start(): ChildProcess {
    const p = spawn(this.options.command, [...this.options.args], this.options.spawnOptions ?? {});
    this.proc = p;
    this.startedAt = Date.now();
    p.once('exit', (code, signal) => this.exited(p, code, signal));
    p.once('error', (err) =>
      this.options.log.error({ service: this.options.name, err: err.message }, 'service failed to spawn'),
    );
    for (const l of this.listeners) l(p);
    return p;
  }

  private exited(p: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.proc === p) this.proc = undefined;
    if (this.stopping) return;
    const ran = Date.now() - this.startedAt;
    const initial = this.options.initialBackoffMs ?? 500;
    if (ran >= (this.options.resetAfterMs ?? 30_000)) this.backoff = initial;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.options.maxBackoffMs ?? 30_000);
    this.options.log.error(
      { service: this.options.name, code, signal, ranMs: ran, restartInMs: delay },
      'service exited: restarting',
    );
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.stopping) return;
      this.restartCount++;
      const np = this.start();
      this.options.log.warn(
        { service: this.options.name, pid: np.pid, restarts: this.restartCount },
        'service restarted',
      );
    }, delay);
  }

  async stop(graceMs = 20_000): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => p.kill('SIGKILL'), graceMs);
      p.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      p.kill('SIGTERM');
    });
  }
}
