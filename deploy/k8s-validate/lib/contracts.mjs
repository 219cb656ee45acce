// The service catalog as `npm run gen` writes it from the SERVICES table of packages/contracts/src/services.ts
// (helm/mailgate/generated/services.yaml, which the chart reads too; CI fails when it is stale), so the rendered
// manifests can be checked against the facts the code runs with.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { REPO } from './helm.mjs';

/** The generated fragment: { serviceKeys, consumerKeys, services: { <helmKey>: {...} }, topics: { <key>: <name> } }. */
export function readServiceCatalog() {
  return parse(readFileSync(join(REPO, 'helm', 'mailgate', 'generated', 'services.yaml'), 'utf8'));
}

/** { topics: key -> topic name, graph: component -> { consumes, group } } for the pipeline's consumers and ingress. */
export function readStageGraph() {
  const { services, topics } = readServiceCatalog();
  const graph = {};
  for (const s of Object.values(services))
    graph[s.component] = { consumes: s.topic ?? null, group: s.consumerGroup ?? null };
  return { topics, graph };
}

/** component -> http port (health, readiness, /metrics). */
export function httpPorts() {
  return Object.fromEntries(Object.values(readServiceCatalog().services).map((s) => [s.component, s.httpPort]));
}
