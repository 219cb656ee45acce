// The stage graph as packages/contracts/src/topics.ts declares it, read from the source text (no build needed), so
// the chart's catalog can be checked against the code that actually runs.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './helm.mjs';

export function readStageGraph() {
  const src = readFileSync(join(REPO, 'packages', 'contracts', 'src', 'topics.ts'), 'utf8');
  const topicsBlock = src.match(/export const TOPICS = \{([\s\S]*?)\} as const;/);
  if (!topicsBlock) throw new Error('TOPICS not found in topics.ts');
  const topics = Object.fromEntries([...topicsBlock[1].matchAll(/^\s*(\w+):\s*'([^']+)'/gm)].map((m) => [m[1], m[2]]));
  const graphBlock = src.match(/export const STAGE_GRAPH[^=]*=\s*\{([\s\S]*?)\n\};/);
  if (!graphBlock) throw new Error('STAGE_GRAPH not found in topics.ts');
  const graph = {};
  // Entries look like:  'virus-scan': { consumes: TOPICS.dnsblChecked, produces: TOPICS.scanned, group: 'mailgate.virus-scan' },
  for (const m of graphBlock[1].matchAll(/'?([\w-]+)'?:\s*\{([^}]*)\}/g)) {
    const body = m[2];
    const consumes = body.match(/consumes:\s*(?:TOPICS\.(\w+)|null)/);
    const group = body.match(/group:\s*(?:'([^']+)'|null)/);
    graph[m[1]] = {
      consumes: consumes?.[1] ? topics[consumes[1]] : null,
      group: group?.[1] ?? null,
    };
  }
  return { topics, graph };
}
