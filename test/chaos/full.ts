// Full-size chaos run (not in CI): `node --import tsx --conditions=mailgate-src test/chaos/full.ts`
//   MAILGATE_CHAOS_MESSAGES (default 5000), MAILGATE_CHAOS_SECONDS (stream length, default 240),
//   MAILGATE_CHAOS_CLIENTS (default 20), MAILGATE_E2E_LOGDIR (keep every process's log there).
// Prints the report; exits 1 if an accepted message is missing, EICAR reached a sink or a fault could not be applied.
import { formatReport, runChaos } from './run.js';

const env = (k: string, d: number): number => Number(process.env[k] ?? d);
const { report, stack } = await runChaos({
  messages: env('MAILGATE_CHAOS_MESSAGES', 5000),
  streamSeconds: env('MAILGATE_CHAOS_SECONDS', 240),
  clients: env('MAILGATE_CHAOS_CLIENTS', 20),
  clamdDownSeconds: 30,
  sink4xxSeconds: 20,
  settleSeconds: 600,
});
console.log(formatReport(report));
if (process.env['MAILGATE_E2E_LOGDIR']) console.log(`logs: ${await stack.dumpLogs()}`);
await stack.stop();
const failed =
  report.missing.length > 0 ||
  report.eicarDelivered > 0 ||
  report.unscannedDelivered > 0 ||
  report.faults.some((f) => f.error);
process.exit(failed ? 1 : 0);
