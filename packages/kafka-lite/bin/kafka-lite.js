#!/usr/bin/env node
import { runBrokerCli } from '../dist/index.js';

runBrokerCli(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`kafka-lite: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
