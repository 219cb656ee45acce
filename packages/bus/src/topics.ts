import { ALL_TOPICS } from '@mailgate/contracts';
import type { Kafka } from 'kafkajs';
import type { KafkaConfig } from '@mailgate/runtime';

/** Create the pipeline's topics if missing (idempotent; a no-op when `kafka.topics.create` is false). */
export async function ensureTopics(kafka: Kafka, cfg: KafkaConfig): Promise<void> {
  if (!cfg.topics.create) return;
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = ALL_TOPICS.filter((t) => !existing.has(t));
    if (missing.length === 0) return;
    await admin.createTopics({
      waitForLeaders: true,
      topics: missing.map((topic) => ({
        topic,
        numPartitions: cfg.topics.partitions,
        replicationFactor: cfg.topics.replicationFactor,
      })),
    });
  } finally {
    await admin.disconnect();
  }
}
