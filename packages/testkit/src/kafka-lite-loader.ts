// Loads @mailgate/kafka-lite lazily, so this package compiles and its other helpers work without it.
import { fileURLToPath } from 'node:url';

/** Subset of kafka-lite's BrokerOptions (see packages/kafka-lite/src/broker.ts); other keys are passed through. */
export interface KafkaLiteBrokerOptions {
  host?: string;
  /** kafka-lite defaults to 9092; the testkit helpers default to 0 (a free port). */
  port?: number;
  /** Omit for in-memory storage. */
  dataDir?: string;
  fsync?: 'always' | 'interval' | 'never';
  fsyncIntervalMs?: number;
  /** Default true. */
  autoCreateTopics?: boolean;
  /** Default 6 in kafka-lite. */
  defaultPartitions?: number;
  /** The testkit helpers default to 'warn' (kafka-lite: 'info', JSON lines on stderr). */
  logLevel?: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  [option: string]: unknown;
}

export interface KafkaLiteBroker {
  host: string;
  port: number;
  /** 'host:port' for kafkajs `brokers: [broker.brokers]`. */
  brokers: string;
  close(): Promise<void>;
}

interface KafkaLiteModule {
  startBroker(opts?: KafkaLiteBrokerOptions): Promise<KafkaLiteBroker>;
}

const runningFromSource = import.meta.url.endsWith('.ts');

/** packages/testkit/src/ → repository root (also right from dist/). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export async function loadKafkaLite(): Promise<KafkaLiteModule> {
  const bare: string = '@mailgate/kafka-lite';
  let mod: Partial<KafkaLiteModule>;
  try {
    mod = (await import(bare)) as Partial<KafkaLiteModule>;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'ERR_PACKAGE_PATH_NOT_EXPORTED') throw err;
    // Workspace link missing (npm install not re-run yet): import the sibling package by path.
    const rel = runningFromSource ? '../../kafka-lite/src/index.ts' : '../../kafka-lite/dist/index.js';
    const url = new URL(rel, import.meta.url);
    try {
      mod = (await import(url.href)) as Partial<KafkaLiteModule>;
    } catch (err2) {
      throw new Error(
        `@mailgate/kafka-lite is not available (tried '${bare}' and ${fileURLToPath(url)}): ${(err2 as Error).message}`,
      );
    }
  }
  if (typeof mod.startBroker !== 'function') {
    throw new Error('@mailgate/kafka-lite does not export startBroker()');
  }
  return mod as KafkaLiteModule;
}

export function childEntry(): { execArgv: string[]; script: string } {
  const script = fileURLToPath(new URL(runningFromSource ? './kafka-child.ts' : './kafka-child.js', import.meta.url));
  return {
    execArgv: runningFromSource ? ['--import', 'tsx', '--conditions=mailgate-src'] : [],
    script,
  };
}
