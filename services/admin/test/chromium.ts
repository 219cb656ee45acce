// Headless Chromium for the console tests (Debian `chromium` driven by playwright-core), the same way
// console.test.ts starts it; a file skips its Chromium tests when there is none (outside CI).
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ADMIN_TOKEN } from './helpers.js';

export const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
export const ARTIFACTS = path.join(path.resolve(import.meta.dirname, '../../..'), 'test-artifacts');

/** `skip` option of a describe(): false when Chromium is there (or in CI, where its absence must fail). */
export const chromiumSkip: string | false =
  existsSync(CHROMIUM) || process.env['CI'] ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium)`;

export async function launchChromium(): Promise<Browser> {
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-sync',
    ],
  });
}

/** A page signed in to the console with `token`; CSP violations and page errors are collected. */
export async function signedInPage(
  browser: Browser,
  url: string,
  token = ADMIN_TOKEN,
): Promise<{ page: Page; cspViolations: string[]; pageErrors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const cspViolations: string[] = [];
  const pageErrors: string[] = [];
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(`${url}/console/login`);
  await page.fill('input[name=token]', token);
  await page.click('button:has-text("Sign in")');
  await page.waitForURL(/\/console\/messages$/);
  return { page, cspViolations, pageErrors };
}
