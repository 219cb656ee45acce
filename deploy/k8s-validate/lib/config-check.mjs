// Runs the project's own `mailgate config check` (the services' strict zod schemas) on a configuration document,
// from source (tsx, mailgate-src condition) so no build is needed. This is what catches a chart or compose config
// that the services would refuse at start-up.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from './helm.mjs';

const CLI = join(REPO, 'packages', 'cli', 'src', 'main.ts');

export function configCheckAvailable() {
  return existsSync(CLI) && existsSync(join(REPO, 'node_modules', 'tsx'));
}

/**
 * @param {string} yamlText the document
 * @param {Record<string,string>} env MAILGATE__* overrides the pods would get (from Secrets)
 * @returns {{ ok: boolean, output: string }}
 */
export function configCheck(yamlText, env = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'mailgate-config-'));
  try {
    const file = join(dir, 'mailgate.yaml');
    writeFileSync(file, yamlText);
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MAILGATE')));
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', '--conditions=mailgate-src', CLI, 'config', 'check', '--config', file],
      { cwd: REPO, env: { ...clean, ...env }, encoding: 'utf8' },
    );
    return { ok: r.status === 0, output: `${r.stdout}\n${r.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
