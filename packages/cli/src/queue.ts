import { createKafka, DurableProducer } from '@mailgate/bus';
import { deliverySchema, openDeliveryQueue, type DeferredMessage } from '@mailgate/delivery';
import { createLogger, loadConfig } from '@mailgate/runtime';
import { flagString, parseArgs } from './args.js';

export const QUEUE_USAGE = `Usage: mailgate queue <command> [--config FILE]
  list [--limit N] [--json]     deferred messages, soonest next attempt first
  show <id>                     one deferred message
  retry <id>                    attempt it now
  hold <id>                     no more attempts until released
  release <id>                  resume attempts
  delete <id> [--dsn]           remove it; --dsn sends a bounce (DSN) to the sender`;

function row(m: DeferredMessage): string {
  const next = m.held ? 'held' : (m.nextAttemptAt ?? '-');
  const rcpts = m.recipients.map((r) => r.rcpt).join(',');
  return `${m.id}  ${next.padEnd(24)}  ${String(m.attempts).padStart(3)}  ${(m.mailFrom || '<>').padEnd(28)}  ${rcpts}  ${m.lastError}`;
}

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
  const config = loadConfig({ file: flagString(args, 'config'), sections: { delivery: deliverySchema } });
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
        const { total, items } = await q.list({ limit: Number(flagString(args, 'limit') ?? 100) });
        if (args.flags['json']) out.write(JSON.stringify({ total, items }, null, 2) + '\n');
        else {
          out.write(`${total} deferred\n`);
          for (const m of items) out.write(row(m) + '\n');
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
