#!/usr/bin/env node
// Runs the built CLI (npm run build). From source: node --import tsx --conditions=mailgate-src packages/cli/src/main.ts
import { main } from '../dist/index.js';

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
