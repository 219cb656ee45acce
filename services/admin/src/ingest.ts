import type { Bus, SideConsumer } from '@mailgate/bus';
import type { Logger } from '@mailgate/runtime';
import type { KafkaMessage } from 'kafkajs';

/**
 * A plain consumer for the admin's side topics (events, quarantine, dead-letter), from the bus: a crash kafkajs
 * will not restart shuts the admin down (connectBus). The handler writes to Redis and is idempotent; kafkajs
 * commits an offset only after the handler resolved, so a crash re-reads, never skips.
 */
export class TopicIngest {
  private readonly consumer: SideConsumer;

  constructor(
    bus: Pick<Bus, 'consumer'>,
    private readonly opts: {
      groupId: string;
      topics: string[];
      handle: (topic: string, m: KafkaMessage) => Promise<void>;
      log: Logger;
      sessionTimeoutMs?: number;
    },
  ) {
    this.consumer = bus.consumer({
      name: `ingest ${opts.groupId}`,
      groupId: opts.groupId,
      topics: opts.topics,
      ...(opts.sessionTimeoutMs ? { sessionTimeoutMs: opts.sessionTimeoutMs } : {}),
      eachMessage: (topic, message) => this.handle(topic, message),
    });
  }

  get isReady(): boolean {
    return this.consumer.isReady;
  }

  start(): Promise<void> {
    return this.consumer.start();
  }

  stop(): Promise<void> {
    return this.consumer.stop();
  }

  private async handle(topic: string, message: KafkaMessage): Promise<void> {
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
  }
}
