import type { Consumer, Kafka, KafkaMessage } from 'kafkajs';
import type { Logger } from '@mailgate/runtime';

/**
 * A plain consumer for the admin's side topics (events, quarantine, dead-letter). The handler writes to Redis and
 * is idempotent; kafkajs commits an offset only after the handler resolved, so a crash re-reads, never skips.
 */
export class TopicIngest {
  private readonly consumer: Consumer;
  private joined = false;
  private crashed = false;

  constructor(
    kafka: Kafka,
    private readonly opts: {
      groupId: string;
      topics: string[];
      handle: (topic: string, m: KafkaMessage) => Promise<void>;
      log: Logger;
      sessionTimeoutMs?: number;
    },
  ) {
    this.consumer = kafka.consumer({
      groupId: opts.groupId,
      sessionTimeout: opts.sessionTimeoutMs ?? 30000,
      heartbeatInterval: Math.min(3000, Math.floor((opts.sessionTimeoutMs ?? 30000) / 10)),
      maxBytesPerPartition: 64 * 1024 * 1024,
      allowAutoTopicCreation: true,
    });
    this.consumer.on(this.consumer.events.GROUP_JOIN, () => {
      this.joined = true;
      this.crashed = false;
    });
    this.consumer.on(this.consumer.events.CRASH, () => {
      this.crashed = true;
    });
  }

  get isReady(): boolean {
    return this.joined && !this.crashed;
  }

  async start(): Promise<void> {
    await this.consumer.connect();
    for (const topic of this.opts.topics) await this.consumer.subscribe({ topic, fromBeginning: true });
    await this.consumer.run({
      eachMessage: async ({ topic, message }) => {
        try {
          await this.opts.handle(topic, message);
        } catch (err) {
          // A record we cannot parse is logged and skipped (it stays in Kafka); Redis errors are thrown so the
          // record is retried.
          if ((err as Error).name === 'CodecError' || err instanceof SyntaxError) {
            this.opts.log.error(
              { err: (err as Error).message, topic, offset: message.offset },
              'unreadable record skipped',
            );
            return;
          }
          throw err;
        }
      },
    });
  }

  async stop(): Promise<void> {
    await this.consumer.disconnect().catch(() => undefined);
  }
}
