// Child-process entry for startKafkaProcess(): runs one kafka-lite broker until SIGTERM/SIGINT.
// Options come as JSON in MAILGATE_KAFKA_CHILD_OPTS; prints `KAFKA_LITE_READY {"host","port"}` when listening.
import { loadKafkaLite, type KafkaLiteBrokerOptions } from './kafka-lite-loader.js';

const opts = JSON.parse(process.env['MAILGATE_KAFKA_CHILD_OPTS'] ?? '{}') as KafkaLiteBrokerOptions;
const { startBroker } = await loadKafkaLite();
const broker = await startBroker(opts);
process.stdout.write(`KAFKA_LITE_READY ${JSON.stringify({ host: broker.host, port: broker.port })}\n`);

let closing = false;
const shutdown = (): void => {
  if (closing) return;
  closing = true;
  broker.close().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`kafka-lite close failed: ${String(err)}\n`);
      process.exit(1);
    },
  );
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
// Exit if the parent dies (stdin is a pipe from the parent).
process.stdin.on('end', shutdown);
process.stdin.resume();
