import { childEntry, loadKafkaLite, REPO_ROOT, type KafkaLiteBrokerOptions } from './kafka-lite-loader.js';
import { freePort, ManagedProcess, launchOnPort } from '@mailgate/devstack';

export type StartKafkaOptions = KafkaLiteBrokerOptions;

export interface KafkaHandle {
  host: string;
  port: number;
  /** 'host:port', e.g. `new Kafka({ brokers: [k.brokers] })`. */
  brokers: string;
  close(): Promise<void>;
  /** Alias of close(). */
  stop(): Promise<void>;
}

/** In-process kafka-lite broker (`startBroker` from @mailgate/kafka-lite, imported lazily). close() is idempotent. */
export async function startKafka(opts: StartKafkaOptions = {}): Promise<KafkaHandle> {
  const { startBroker } = await loadKafkaLite();
  const broker = await startBroker({ host: '127.0.0.1', logLevel: 'warn', ...opts, port: opts.port ?? 0 });
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => (closing ??= broker.close());
  return { host: broker.host, port: broker.port, brokers: broker.brokers, close, stop: close };
}

export interface StartKafkaProcessOptions extends KafkaLiteBrokerOptions {
  /** Required: the broker's log dir, kept across kill()/restart() (and never deleted by the helper). */
  dataDir: string;
  /** Startup timeout, default 20 s. */
  timeoutMs?: number;
}

export interface KafkaProcessHandle {
  host: string;
  port: number;
  brokers: string;
  readonly pid: number | undefined;
  /** SIGTERM (broker closes cleanly), SIGKILL after 5 s. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL: crash simulation. */
  kill(): Promise<void>;
  /** Starts again (after kill/stop or while running) on the same port and dataDir. */
  restart(): Promise<void>;
  output(): string;
}

/**
 * Runs a kafka-lite broker in a child process (`node --import tsx --conditions=mailgate-src
 * packages/testkit/src/kafka-child.ts`, which calls startBroker) so tests can kill -9 and restart it.
 */
export async function startKafkaProcess(opts: StartKafkaProcessOptions): Promise<KafkaProcessHandle> {
  const host = opts.host ?? '127.0.0.1';
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const { execArgv, script } = childEntry();
  let proc: ManagedProcess | undefined;

  const launch = async (port: number): Promise<void> => {
    const { timeoutMs: _t, ...brokerOpts } = opts;
    const childOpts: KafkaLiteBrokerOptions = { logLevel: 'warn', ...brokerOpts, host, port };
    const p = new ManagedProcess(`kafka-lite:${port}`, process.execPath, [...execArgv, script], {
      cwd: REPO_ROOT,
      env: { ...process.env, MAILGATE_KAFKA_CHILD_OPTS: JSON.stringify(childOpts) },
      stdinPipe: true,
    });
    proc = p;
    await p.waitForOutput(/KAFKA_LITE_READY /, { timeoutMs }).catch(async (err: unknown) => {
      await p.kill();
      throw err;
    });
  };

  const port = await launchOnPort(opts.port, () => freePort(host), launch);

  return {
    host,
    port,
    brokers: `${host}:${port}`,
    get pid() {
      return proc?.pid;
    },
    async stop() {
      await proc?.stop('SIGTERM', 5000);
    },
    async kill() {
      await proc?.kill();
    },
    async restart() {
      await proc?.stop('SIGTERM', 5000);
      await launch(port);
    },
    output() {
      return proc?.output() ?? '';
    },
  };
}
