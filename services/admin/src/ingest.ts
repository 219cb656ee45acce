import type { Bus, SideConsumer } from '@mailgate/bus';
import type { Logger } from '@mailgate/runtime';
import type { KafkaMessage } from 'kafkajs';

/**
 * Records handed to a batch handler at once: a fetch after a backlog can hold thousands, and one Redis MULTI per
 * slice keeps each write (and the time Redis spends on it) bounded.
 */
const BATCH_SLICE = 500;

/**
 * A plain consumer for the admin's side topics (events, quarantine, dead-letter), from the bus: a crash kafkajs
 * will not restart shuts the admin down (connectBus). The handler writes to Redis and is idempotent; kafkajs
 * commits an offset only after the handler resolved, so a crash re-reads, never skips.
 */
export class TopicIngest<T = never> {
  private readonly consumer: SideConsumer;

  constructor(
    bus: Pick<Bus, 'consumer'>,
    private readonly opts: {
      groupId: string;
      topics: string[];
      handle: (topic: string, m: KafkaMessage) => Promise<void>;
      /**
       * Optional: the readable records of one fetch at once (each first passed through `decode`, which throws
       * for an unreadable one: logged and skipped like handle's), e.g. to write them in one Redis round trip.
       */
      batch?: { decode: (m: KafkaMessage) => T; handle: (items: T[]) => Promise<void> };
      log: Logger;
      sessionTimeoutMs?: number;
      /** Fetch batching (SideConsumerOptions.fetch): events may wait this long to be written in one go. */
      fetch?: { minBytes: number; maxWaitMs: number };
    },
  ) {
    this.consumer = bus.consumer({
      name: `ingest ${opts.groupId}`,
      groupId: opts.groupId,
      topics: opts.topics,
      ...(opts.sessionTimeoutMs ? { sessionTimeoutMs: opts.sessionTimeoutMs } : {}),
      ...(opts.fetch ? { fetch: opts.fetch } : {}),
      ...(opts.batch
        ? { eachBatch: (topic: string, messages: KafkaMessage[]) => this.handleBatch(topic, messages) }
        : { eachMessage: (topic: string, message: KafkaMessage) => this.handle(topic, message) }),
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
      if (!this.skipUnreadable(err, topic, message)) throw err;
    }
  }

  /** Decode every record (skipping unreadable ones), then hand them over in slices of BATCH_SLICE. */
  private async handleBatch(topic: string, messages: KafkaMessage[]): Promise<void> {
    const { decode, handle } = this.opts.batch!;
    const items: T[] = [];
    for (const m of messages) {
      try {
        items.push(decode(m));
      } catch (err) {
        if (!this.skipUnreadable(err, topic, m)) throw err;
      }
    }
    for (let i = 0; i < items.length; i += BATCH_SLICE) await handle(items.slice(i, i + BATCH_SLICE));
  }

  /**
   * A record we cannot parse is logged and skipped (it stays in Kafka); anything else (Redis errors) is thrown so
   * the record is retried.
   */
  private skipUnreadable(err: unknown, topic: string, message: KafkaMessage): boolean {
    if ((err as Error).name !== 'CodecError' && !(err instanceof SyntaxError)) return false;
    this.opts.log.error({ err: (err as Error).message, topic, offset: message.offset }, 'unreadable record skipped');
    return true;
  }
}
