import { CHAINABLE_STAGES, isChainableStage, type PipelineStage } from '@mailgate/contracts';
import { defineChainService, stageDefinitionOf, type StageDefinition, type StageSections } from '@mailgate/bus';
import type { ServiceDefinition } from '@mailgate/runtime';
import { loadService } from './services.js';

export const CHAIN_USAGE = `mailgate chain STAGE,STAGE,… [--config FILE]
  One process runs consecutive stages in memory (a "stage chain"), e.g.
    mailgate chain dnsbl-check,virus-scan,attachment-policy,spam-check
    mailgate chain dnsbl-check,virus-scan,attachment-policy,spam-check,delivery   (delivery's retry worker too)
  Stages that can be chained: ${CHAINABLE_STAGES.join(', ')} (consecutive, in pipeline order).
  Each stage reads its own config section; the first stage's section gives the http port and the bus overrides.
  Consumer group: mailgate.chain.<first>..<last> — never run a chain beside the split stages it replaces
  (docs/operations.md "Switching to a stage chain").`;

/** A usage or configuration problem of `mailgate chain` (the CLI prints it and exits 64 or 78). */
export class ChainArgError extends Error {
  constructor(
    message: string,
    readonly kind: 'usage' | 'config',
  ) {
    super(message);
  }
}

/** The chain service of the comma-separated `list` of stages, each loaded from its own package. */
export async function loadChainService(list: string | undefined): Promise<ServiceDefinition<StageSections>> {
  if (!list) throw new ChainArgError(`mailgate chain: which stages?\n\n${CHAIN_USAGE}`, 'usage');
  const names = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const stages: PipelineStage[] = [];
  for (const n of names) {
    if (!isChainableStage(n)) {
      throw new ChainArgError(
        `mailgate chain: ${n} cannot be a step of a stage chain: only the stages that read a topic can (${CHAINABLE_STAGES.join(', ')})`,
        'config',
      );
    }
    stages.push(n);
  }
  const defs: StageDefinition[] = [];
  for (const s of stages) {
    const def = stageDefinitionOf(await loadService(s));
    if (!def) throw new Error(`${s}: its package's service is not a stage service (no stageDefinition)`);
    defs.push(def);
  }
  try {
    return defineChainService(defs);
  } catch (err) {
    throw new ChainArgError(`mailgate chain: ${(err as Error).message}`, 'config');
  }
}
