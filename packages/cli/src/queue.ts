import { createKafka, DurableProducer } from '@mailgate/bus';
import { deliverySchema } from '@mailgate/delivery';
import { openDeliveryQueue, type DeferredMessage } from '@mailgate/delivery-queue';
import { createLogger, loadConfig } from '@mailgate/runtime';
import { flagString, parseArgs } from './args.js';
import { configFileFor, DEFAULT_CONFIG_FILE } from './connection.js';
import { table } from './track.js';

export const QUEUE_USAGE = `Usage: mailgate queue <command> [--config FILE]
  list [--limit N] [--offset N] [--json]   deferred messages, soonest next attempt first (pages of --limit, default 100)
  show <id>                     one deferred message
  retry <id>                    attempt it now
  hold <id>                     no more attempts until released
  release <id>                  resume attempts
  delete <id> [--dsn]           remove it; --dsn sends a bounce (DSN) to the sender
The queue is read from Redis (redis.url, redis.keyPrefix) as the configuration says: --config FILE, else
$MAILGATE_CONFIG, else ${DEFAULT_CONFIG_FILE} if present; MAILGATE__REDIS__KEY_PREFIX etc. override it.`;

function row(m: DeferredMessage): string[] {
  const next = m.held ? 'held' : (m.nextAttemptAt ?? '-');
  return [m.id, next, String(m.attempts), m.mailFrom || '<>', m.recipients.map((r) => r.rcpt).join(','), m.lastError];
}

const positiveInt = (v: string | undefined, name: string, dflt: number, min = 1): number | string => {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v) || Number(v) < min) return `--${name}: not a ${min ? 'positive' : 'non-negative'} number: ${v}`;
  return Number(v);
};

/**
 * `mailgate queue …`: the delivery stage's deferred queue, straight from its Redis store (works whether or not the
 * admin service runs). Exit codes: 0 done, 1 not found, 64 usage.
 */
/** Where output goes (stdout by default; tests pass a buffer). */
export interface Out {
  write(s: string): unknown;
}

export async function runQueue(argv: string[], out: Out = process.stdout, err: Out = process.stderr): Promise<number> {
  const args = parseArgs(argv);
  const [, cmd, id] = args.positional;
  if (!cmd || args.flags['help']) {
    out.write(QUEUE_USAGE + '\n');
    return cmd || args.flags['help'] ? 0 : 64;
  }
  if (cmd !== 'list' && !id) {
    err.write(`queue ${cmd} needs a message id\n`);
    return 64;
  }
  const file = configFileFor(args);
  const config = loadConfig({ file, sections: { delivery: deliverySchema } });
  if (!file && !Object.keys(process.env).some((k) => k.startsWith('MAILGATE__REDIS__')))
    // Without a config the defaults name a Redis and key prefix that may not be the gateway's: say which were read,
    // rather than answer "0 deferred" for someone else's queue.
    err.write(
      `no configuration (--config FILE or $MAILGATE_CONFIG): reading ${config.redis.url} with the default key prefix ` +
        `'${config.redis.keyPrefix}'\n`,
    );
  let producer: DurableProducer | undefined;
  if (cmd === 'delete' && args.flags['dsn']) {
    producer = new DurableProducer(createKafka(config.kafka, 'cli'), config.kafka, createLogger('cli', 'warn'));
    await producer.connect();
  }
  const q = openDeliveryQueue({
    delivery: config.delivery,
    redis: config.redis,
    gateway: config.gateway,
    ...(producer ? { producer } : {}),
  });
  try {
    switch (cmd) {
      case 'list': {
        const limit = positiveInt(flagString(args, 'limit'), 'limit', 100);
        const offset = positiveInt(flagString(args, 'offset'), 'offset', 0, 0);
        if (typeof limit === 'string' || typeof offset === 'string') {
          err.write(`${typeof limit === 'string' ? limit : offset}\n`);
          return 64;
        }
        const { total, items } = await q.list({ limit, offset });
        const next = offset + items.length < total ? offset + items.length : undefined;
        if (args.flags['json'])
          out.write(JSON.stringify({ total, offset, items, ...(next ? { nextOffset: next } : {}) }, null, 2) + '\n');
        else {
          out.write(`${total} deferred\n`);
          if (items.length)
            out.write(table(['ID', 'NEXT ATTEMPT', 'TRIES', 'FROM', 'TO', 'LAST ERROR'], items.map(row)));
          if (next) err.write(`showing ${offset + 1}-${next} of ${total}: --offset ${next} for the next page\n`);
        }
        return 0;
      }
      case 'show': {
        const m = await q.get(id!);
        if (!m) {
          err.write(`no deferred message ${id}\n`);
          return 1;
        }
        out.write(JSON.stringify(m, null, 2) + '\n');
        return 0;
      }
      case 'retry':
        out.write(`${id}: ${await q.retryNow(id!)}\n`);
        return 0;
      case 'hold':
        await q.hold(id!);
        out.write(`${id}: held\n`);
        return 0;
      case 'release':
        await q.release(id!);
        out.write(`${id}: released\n`);
        return 0;
      case 'delete': {
        const r = await q.delete(id!, { dsn: Boolean(args.flags['dsn']), by: 'cli' });
        out.write(`${id}: deleted${r.dsnId ? `, DSN ${r.dsnId} queued to the sender` : ''}\n`);
        return 0;
      }
      default:
        err.write(`unknown queue command: ${cmd}\n${QUEUE_USAGE}\n`);
        return 64;
    }
  } catch (e) {
    const m = e as Error & { name?: string };
    if (m.name === 'NotQueuedError') {
      err.write(`${m.message}\n`);
      return 1;
    }
    throw e;
  } finally {
    await q.close();
    await producer?.disconnect();
  }
}
