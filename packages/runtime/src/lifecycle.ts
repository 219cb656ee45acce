import type { Logger } from 'pino';

/**
 * Graceful shutdown in one place. Services register hooks in phases; on SIGTERM/SIGINT (or `shutdown()`)
 * phases run in this order, each hook awaited, with a forced-exit timer over the whole sequence:
 *
 *   readiness-off → stop-intake → drain → flush → close
 *
 * readiness-off: /readyz answers 503 so the load balancer / Kubernetes stops sending work.
 * stop-intake:   SMTP server closes its listener, stage consumers stop fetching.
 * drain:         in-flight SMTP transactions and stage records finish (and their offsets are committed).
 * flush:         producers flush, events are written.
 * close:         clients (Kafka, Redis, clamd) and the HTTP server close.
 */
export const PHASES = ['readiness-off', 'stop-intake', 'drain', 'flush', 'close'] as const;
export type Phase = (typeof PHASES)[number];

export interface Lifecycle {
  on(phase: Phase, name: string, fn: () => unknown | Promise<unknown>): void;
  readonly shuttingDown: boolean;
  shutdown(reason: string): Promise<void>;
  /** Install SIGTERM/SIGINT handlers that run `shutdown` and then exit the process. */
  installSignalHandlers(opts?: { exit?: boolean }): void;
  /**
   * A part of the service died and cannot recover by itself (a consumer kafkajs will not restart). Shut down
   * gracefully and, when this lifecycle owns the process (signal handlers installed), exit 1 so the orchestrator
   * restarts it: a pod that looks alive but consumes nothing would stall the pipeline silently.
   */
  fatal(reason: string): void;
}

export function createLifecycle(log: Logger, opts: { forceExitMs?: number } = {}): Lifecycle {
  const hooks = new Map<Phase, { name: string; fn: () => unknown }[]>(PHASES.map((p) => [p, []]));
  let running: Promise<void> | null = null;
  let ownsProcess = false;
  const forceExitMs = opts.forceExitMs ?? 30_000;
  const lc: Lifecycle = {
    on(phase, name, fn) {
      hooks.get(phase)!.push({ name, fn });
    },
    get shuttingDown() {
      return running !== null;
    },
    shutdown(reason) {
      if (running) return running;
      running = (async () => {
        log.info({ reason }, 'shutdown started');
        for (const phase of PHASES) {
          for (const h of hooks.get(phase)!) {
            try {
              await h.fn();
            } catch (err) {
              log.error({ err, phase, hook: h.name }, 'shutdown hook failed');
            }
          }
        }
        log.info('shutdown complete');
      })();
      return running;
    },
    fatal(reason) {
      log.error({ reason }, 'fatal: shutting down');
      const timer = setTimeout(() => process.exit(1), forceExitMs);
      timer.unref();
      void lc.shutdown(`fatal: ${reason}`).then(() => {
        if (ownsProcess) process.exit(1);
      });
    },
    installSignalHandlers({ exit = true } = {}) {
      ownsProcess = exit;
      const handler = (sig: NodeJS.Signals) => {
        if (running) {
          log.warn({ signal: sig }, 'second signal: exiting now');
          process.exit(1);
        }
        const timer = setTimeout(() => {
          log.error({ forceExitMs }, 'shutdown took too long: forcing exit');
          process.exit(1);
        }, forceExitMs);
        timer.unref();
        void lc.shutdown(sig).then(() => {
          if (exit) process.exit(0);
        });
      };
      process.once('SIGTERM', handler);
      process.once('SIGINT', handler);
    },
  };
  return lc;
}
