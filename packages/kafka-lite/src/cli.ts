// `mailgate broker ...` / `kafka-lite ...`
import { startBroker, type BrokerHandle, type BrokerOptions } from './broker.js';
import type { Limits } from './limits.js';
import type { LogLevel } from './logger.js';
import type { FsyncPolicy } from './store.js';

const USAGE = `Usage: mailgate broker [options]

Single-node Kafka-wire-compatible broker (kafka-lite) for local runs and tests.

Options:
  --host <addr>             interface to bind (default 127.0.0.1)
  --port <n>                TCP port (default 9092, 0 = any free port)
  --advertised-host <h>     host advertised to clients (default: --host)
  --advertised-port <n>     port advertised to clients (default: bound port)
  --data-dir <dir>          persist logs and group offsets here (default: in memory)
  --fsync <policy>          always | interval | never (default interval)
  --fsync-interval-ms <n>   period for --fsync interval (default 1000)
  --partitions <n>          default partition count for new topics (default 6)
  --no-auto-create          do not create unknown topics on first use
  --retention-bytes <n>     per-partition size retention (default 1073741824, -1 = unlimited)
  --retention-ms <n>        age retention (default 604800000, -1 = unlimited)
  --segment-bytes <n>       segment file size (default 67108864)
  --max-batch-bytes <n>     largest record batch (default 67108864)
Limits (what one client may cost the broker; see docs/kafka-lite.md):
  --max-request-bytes <n>          largest request frame (default 104857600)
  --max-buffered-request-bytes <n> request bytes pending over all connections (default 268435456)
  --max-request-objects <n>        decoded structs/array elements per request (default 100000)
  --max-connections <n>            open client connections (default 1000)
  --idle-timeout-ms <n>            close connections idle this long (default 600000)
  --request-read-timeout-ms <n>    a request must arrive within this time of its first byte (default 30000)
  --max-in-flight-requests <n>     unanswered requests per connection before reading pauses (default 100)
  --max-fetch-bytes <n>            largest Fetch response (default 57671680)
  --max-partitions <n>             partitions over all topics (default 10000)
  --log-level <lvl>         debug | info | warn | error | silent (default info)
  -h, --help                show this help
`;

const LIMIT_FLAGS: Record<string, keyof Limits> = {
  '--max-request-bytes': 'maxRequestBytes',
  '--max-buffered-request-bytes': 'maxBufferedRequestBytes',
  '--max-request-objects': 'maxRequestObjects',
  '--max-connections': 'maxConnections',
  '--idle-timeout-ms': 'idleTimeoutMs',
  '--request-read-timeout-ms': 'requestReadTimeoutMs',
  '--max-in-flight-requests': 'maxInFlightRequests',
  '--max-fetch-bytes': 'maxFetchBytes',
  '--max-partitions': 'maxPartitions',
};

function num(name: string, v: string | undefined): number {
  const n = Number(v);
  if (v === undefined || v === '' || !Number.isFinite(n)) throw new Error(`${name} expects a number`);
  return n;
}

export function parseBrokerArgs(argv: string[]): BrokerOptions | 'help' {
  const args = argv[0] === 'broker' ? argv.slice(1) : [...argv];
  const o: BrokerOptions = {};
  for (let i = 0; i < args.length; i++) {
    let a = args[i]!;
    let val: string | undefined;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {
      val = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    const next = (): string => {
      if (val !== undefined) return val;
      const v = args[++i];
      if (v === undefined) throw new Error(`${a} expects a value`);
      return v;
    };
    switch (a) {
      case '-h':
      case '--help':
        return 'help';
      case '--host':
        o.host = next();
        break;
      case '--port':
        o.port = num(a, next());
        break;
      case '--advertised-host':
        o.advertisedHost = next();
        break;
      case '--advertised-port':
        o.advertisedPort = num(a, next());
        break;
      case '--data-dir':
        o.dataDir = next();
        break;
      case '--fsync': {
        const v = next();
        if (v !== 'always' && v !== 'interval' && v !== 'never')
          throw new Error('--fsync expects always|interval|never');
        o.fsync = v as FsyncPolicy;
        break;
      }
      case '--fsync-interval-ms':
        o.fsyncIntervalMs = num(a, next());
        break;
      case '--partitions':
        o.defaultPartitions = num(a, next());
        break;
      case '--no-auto-create':
        o.autoCreateTopics = false;
        break;
      case '--retention-bytes':
        o.retentionBytes = num(a, next());
        break;
      case '--retention-ms':
        o.retentionMs = num(a, next());
        break;
      case '--segment-bytes':
        o.segmentBytes = num(a, next());
        break;
      case '--max-batch-bytes':
        o.maxBatchBytes = num(a, next());
        break;
      case '--log-level':
        o.logLevel = next() as LogLevel;
        break;
      default: {
        const limit = LIMIT_FLAGS[a];
        if (!limit) throw new Error(`unknown option ${a}\n\n${USAGE}`);
        o[limit] = num(a, next());
      }
    }
  }
  return o;
}

/**
 * Runs the broker until SIGINT/SIGTERM. Accepts argv with or without a leading "broker".
 * Resolves with the running broker handle.
 */
export async function runBrokerCli(argv: string[]): Promise<BrokerHandle | undefined> {
  const opts = parseBrokerArgs(argv);
  if (opts === 'help') {
    process.stdout.write(USAGE);
    return undefined;
  }
  const broker = await startBroker(opts);
  const stop = (sig: string): void => {
    process.stderr.write(`kafka-lite: ${sig}, shutting down\n`);
    broker.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  return broker;
}
