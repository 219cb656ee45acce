// Child process for bench/broker.ts: runs kafka-lite and reports its own CPU usage over IPC.
import { startBroker } from '@mailgate/kafka-lite';

const opts = JSON.parse(process.argv[2] ?? '{}') as Record<string, unknown>;
const b = await startBroker({ port: 0, logLevel: 'warn', ...opts });
process.on('message', (m: unknown) => {
  if (m === 'cpu') process.send!({ cpu: process.cpuUsage(), rss: process.memoryUsage().rss });
  if (m === 'close') void b.close().then(() => process.exit(0));
});
process.send!({ port: b.port });
