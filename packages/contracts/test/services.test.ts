import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ALL_TOPICS,
  AUX_GROUPS,
  AUX_SERVICES,
  inputTopicOf,
  nextStage,
  PIPELINE_STAGES,
  SERVICE_NAMES,
  SERVICES,
  serviceSpec,
  STAGE_GRAPH,
  TOPICS,
  type PipelineStage,
} from '@mailgate/contracts';

test('the pipeline is a chain: each stage consumes what the previous one produces', () => {
  assert.deepEqual(PIPELINE_STAGES, [
    'ingress-smtp',
    'dnsbl-check',
    'virus-scan',
    'attachment-policy',
    'spam-check',
    'delivery',
  ]);
  assert.deepEqual(AUX_SERVICES, ['admin']);
  for (const [i, stage] of PIPELINE_STAGES.entries()) {
    const prev: PipelineStage | undefined = PIPELINE_STAGES[i - 1];
    assert.equal(STAGE_GRAPH[stage].consumes, prev ? STAGE_GRAPH[prev].produces : null, stage);
    assert.equal(nextStage(stage), PIPELINE_STAGES[i + 1] ?? null);
  }
  assert.equal(inputTopicOf('virus-scan'), TOPICS.dnsblChecked);
  assert.throws(() => inputTopicOf('ingress-smtp'), /no input topic/);
});

test('ports, sections, helm keys and consumer groups are unique; topics are declared ones', () => {
  const specs = SERVICE_NAMES.map(serviceSpec);
  for (const key of ['httpPort', 'section', 'helmKey', 'package'] as const) {
    const values = specs.map((s) => s[key]);
    assert.equal(new Set(values).size, values.length, `${key} repeated: ${values.join(', ')}`);
  }
  const groups = specs.flatMap((s) => [s.group, ...Object.values(s.sideConsumers ?? {}).map((c) => c.group)]);
  const named = groups.filter((g) => g !== null);
  assert.equal(new Set(named).size, named.length, 'consumer group repeated');
  for (const s of specs) {
    for (const t of [s.consumes, s.produces, ...Object.values(s.sideConsumers ?? {}).map((c) => c.topic)])
      if (t !== null) assert.ok(ALL_TOPICS.includes(t), `${t} is not in TOPICS`);
    // A consumer has a group and scales on its lag; ingress scales on CPU.
    assert.equal(s.kind === 'consumer', s.consumes !== null && s.group !== null);
    if (s.kind === 'consumer') assert.equal(s.scaling.on, 'lag');
    if (s.kind === 'smtp') assert.equal(s.scaling.on, 'cpu');
    if (s.scaling.on !== 'none') assert.ok(s.scaling.minReplicas <= s.scaling.maxReplicas);
  }
  assert.equal(AUX_GROUPS.adminEvents, SERVICES.admin.sideConsumers.adminEvents.group);
});
