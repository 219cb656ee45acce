// Lint: typescript-eslint's recommended rules on every workspace's sources, tests and benchmarks, plus the import
// rule of docs/architecture.md ("Who may import whom") on production sources (src/; tests may import anything).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const SERVICES = ['admin', 'attachment-policy', 'delivery', 'dnsbl-check', 'ingress-smtp', 'spam-check', 'virus-scan'];
const names = (pkgs) => pkgs.flatMap((p) => [`@mailgate/${p}`, `@mailgate/${p}/*`]);
const SEE = 'See docs/architecture.md, "Who may import whom".';
const NO_SERVICES = (message, except = []) => ({
  group: names(SERVICES.filter((s) => !except.includes(s))),
  message: `${message} ${SEE}`,
});
const NO_TESTKIT = {
  group: names(['testkit', 'devstack']),
  message: `production code never imports @mailgate/testkit, nor @mailgate/devstack (the CLI's dev launcher only). ${SEE}`,
};
const DEV_ONLY = 'production code never imports @mailgate/testkit; @mailgate/devstack only in the dev launcher.';
/** no-restricted-imports misses import(): the same rule for dynamic imports of literal names. */
const dynamic = (pkgs, message) => ({
  selector: `ImportExpression[source.value=/^@mailgate\\/(${pkgs.join('|')})(\\/|$)/]`,
  message: `${message} ${SEE}`,
});
const imports = (patterns, dyn) => ({
  'no-restricted-imports': ['error', { patterns }],
  'no-restricted-syntax': ['error', ...dyn],
});
const SERVICE_RULE = 'services never import other services: move what they share into a package.';
const PACKAGE_RULE = 'packages never import services (only the CLI, which starts them, does).';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'var/**', 'helm/**', '**/*.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        URL: 'readonly',
        fetch: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      '@typescript-eslint/no-explicit-any': 'warn',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['services/*/src/**/*.ts'],
    rules: imports(
      [NO_SERVICES(SERVICE_RULE), NO_TESTKIT],
      [dynamic(SERVICES, SERVICE_RULE), dynamic(['testkit'], 'production code never imports @mailgate/testkit.')],
    ),
  },
  {
    files: ['packages/*/src/**/*.ts'],
    ignores: ['packages/cli/**', 'packages/testkit/**'],
    rules: imports(
      [NO_SERVICES(PACKAGE_RULE), NO_TESTKIT],
      [dynamic(SERVICES, PACKAGE_RULE), dynamic(['testkit'], 'production code never imports @mailgate/testkit.')],
    ),
  },
  {
    // Platform packages sit at the bottom: nothing domain-specific, no CLI, no dev broker.
    files: ['packages/{contracts,telemetry,runtime,bus}/src/**/*.ts'],
    rules: imports(
      [
        NO_SERVICES(PACKAGE_RULE),
        NO_TESTKIT,
        {
          group: names(['dnsbl', 'sender-auth', 'rspamd', 'lists', 'recipients', 'mail', 'cli', 'kafka-lite']),
          message: `platform packages (contracts, telemetry, runtime, bus) import only each other. ${SEE}`,
        },
      ],
      [dynamic(SERVICES, PACKAGE_RULE), dynamic(['testkit'], 'production code never imports @mailgate/testkit.')],
    ),
  },
  {
    files: ['packages/testkit/src/**/*.ts'],
    rules: imports([NO_SERVICES(PACKAGE_RULE)], [dynamic(SERVICES, PACKAGE_RULE)]),
  },
  {
    // The CLI is the composition root: it loads services, never testkit. What `mailgate dev` starts is
    // @mailgate/devstack, loaded lazily by the dev launcher only (below), so `mailgate <service>` never loads it.
    files: ['packages/cli/src/**/*.ts'],
    ignores: ['packages/cli/src/dev.ts', 'packages/cli/src/dev-*.ts'],
    rules: imports([NO_TESTKIT], [dynamic(['testkit', 'devstack'], DEV_ONLY)]),
  },
  {
    // The dev launcher (dev.ts and its dev-*.ts modules): devstack as import() or `import type` only, so loading
    // dev.ts (main.ts does, for every command) costs nothing; testkit never.
    files: ['packages/cli/src/dev.ts', 'packages/cli/src/dev-*.ts'],
    rules: imports(
      [
        { group: names(['testkit']), message: `production code never imports @mailgate/testkit. ${SEE}` },
        {
          group: names(['devstack']),
          allowTypeImports: true,
          message: `load @mailgate/devstack with import(). ${SEE}`,
        },
      ],
      [dynamic(['testkit'], 'production code never imports @mailgate/testkit.')],
    ),
  },
);
