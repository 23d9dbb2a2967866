// What every browser scenario shares: the stack's address and accounts from the environment, a headless
// Debian chromium driven by playwright-core, logging in through the real form, asking the Rust test for a
// delivery, and the one JSON line a scenario ends with (the test reads the last line of stdout).
//
// Environment (set by tests/tests/stack/webmail.rs): MAILBUS_URL, MAILBUS_USER, MAILBUS_PASSWORD,
// MAILBUS_USER2, MAILBUS_PASSWORD2, MAILBUS_SCREENSHOTS, MAILBUS_TRAP_URL (hostile.mjs), CHROMIUM.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

export const env = {
  url: (process.env.MAILBUS_URL || 'https://127.0.0.1:8443').replace(/\/$/, ''),
  user: process.env.MAILBUS_USER || 'demo@example.test',
  password: process.env.MAILBUS_PASSWORD || 'demo',
  user2: process.env.MAILBUS_USER2 || '',
  password2: process.env.MAILBUS_PASSWORD2 || '',
  screenshots: process.env.MAILBUS_SCREENSHOTS || join(process.cwd(), 'screenshots'),
  trap: (process.env.MAILBUS_TRAP_URL || '').replace(/\/$/, ''),
  chromium: process.env.CHROMIUM || '/usr/bin/chromium',
};

// The flags that work as root in a container, from the issue; playwright adds --headless and a fresh
// --user-data-dir of its own.
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

export async function launch() {
  return chromium.launch({ executablePath: env.chromium, args: ARGS, headless: true });
}

export async function newContext(browser, options = {}) {
  return browser.newContext({
    ignoreHTTPSErrors: true, // the stack's certificate is self-signed
    viewport: { width: 1440, height: 900 },
    colorScheme: 'light',
    locale: 'en-GB',
    timezoneId: 'UTC',
    ...options,
  });
}

/** Scenario bookkeeping: the step being run, the facts found, the screenshots taken. */
export class Run {
  constructor() {
    this.step = 'start';
    this.facts = {};
    this.shots = [];
    mkdirSync(env.screenshots, { recursive: true });
  }

  async do(step, work) {
    this.step = step;
    process.stderr.write(`step: ${step}\n`);
    return work();
  }

  async shot(page, name, options = {}) {
    const path = join(env.screenshots, `${String(this.shots.length + 1).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path, ...options });
    this.shots.push(path);
    return path;
  }

  finish(extra = {}) {
    print({ ok: true, ...this.facts, ...extra, screenshots: this.shots });
    process.exit(0);
  }

  fail(error) {
    print({ ok: false, step: this.step, error: String((error && error.stack) || error), ...this.facts, screenshots: this.shots });
    process.exit(1);
  }
}

export function print(object) {
  process.stdout.write(`${JSON.stringify(object)}\n`);
}

let lines = null;

/** Asks the Rust test to deliver a message with this Subject to MAILBUS_USER; resolves once it says so. */
export async function requestDelivery(subject) {
  if (!lines) lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  print({ request: 'deliver', subject });
  const { value, done } = await lines.next();
  if (done) throw new Error('stdin closed before the delivery was confirmed');
  const answer = JSON.parse(value);
  if (!answer.delivered) throw new Error(`delivery refused: ${value}`);
  return answer;
}

/** Logs in through the form and waits until the app has shown the first screen; returns the ms it took. */
export async function login(page, user = env.user, password = env.password) {
  await page.goto(`${env.url}/`);
  await page.locator('[data-test=login-username]').fill(user);
  await page.locator('[data-test=login-password]').fill(password);
  const started = Date.now();
  await page.locator('[data-test=login-submit]').click();
  await page.locator('body[data-ready=true]').waitFor({ timeout: 20000 });
  return Date.now() - started;
}

/** The rows of the message list as the user sees them. */
export async function rows(page) {
  return page.locator('[data-test=message-row]').evaluateAll((nodes) => nodes.map((n) => ({
    id: n.dataset.id,
    subject: n.dataset.subject,
    unread: n.dataset.unread === 'true',
    flagged: n.dataset.flagged === 'true',
  })));
}

export function row(page, subject) {
  return page.locator(`[data-test=message-row][data-subject="${subject.replace(/"/g, '\\"')}"]`);
}

export function folder(page, name) {
  return page.locator(`[data-test=folder][data-name="${name.replace(/"/g, '\\"')}"]`);
}

/** Runs a scenario: launches, runs, always closes the browser, prints the last line. */
export async function scenario(body) {
  const run = new Run();
  let browser = null;
  try {
    browser = await launch();
    await body(browser, run);
  } catch (error) {
    // The screen as it was when the step failed, for whoever reads the test's output.
    if (run.page) await run.shot(run.page, 'failed').catch(() => {});
    if (browser) await browser.close().catch(() => {});
    run.fail(error);
  }
  await browser.close().catch(() => {});
  run.finish();
}
