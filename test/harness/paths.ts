import { fileURLToPath } from 'node:url';

/** The repository root (test/harness/ → ../../). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
