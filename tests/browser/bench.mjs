// Benchmark (not a test; BENCHMARKS.md "Webmail"): in headless chromium, the time from pressing "Log in" to
// the first screen of a large INBOX (folders and the first page of the list drawn), and from a click on a
// message to its body on screen. It measures and prints; it asserts nothing.
//
//   node bench.mjs [--seed N] [--runs R] [--opens K]
//
// --seed N fills MAILBUS_USER's INBOX up to N messages first (JMAP upload + Email/import, 1 in 5 a reply so
// threads collapse). Environment as for the scenarios (harness.mjs): MAILBUS_URL, MAILBUS_USER,
// MAILBUS_PASSWORD, CHROMIUM.

import { request } from 'playwright-core';
import { env, launch, login, newContext } from './harness.mjs';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const SEED = option('seed', 0);
const RUNS = option('runs', 5);
const OPENS = option('opens', 20);
const USING = ['urn:ietf:params:jmap:core', 'urn:ietf:params:jmap:mail'];

const WORDS = ('budget meeting harbour report invoice draft design review launch travel plans quarterly figures ' +
  'lunch release notes roadmap hiring contract summary minutes schedule update question feedback proposal').split(' ');
const NAMES = ['Ada Lovelace', 'Grace Hopper', 'Alan Turing', 'Edsger Dijkstra', 'Barbara Liskov', 'Donald Knuth',
  'Frances Allen', 'Ken Thompson', 'Radia Perlman', 'Leslie Lamport'];

function message(i) {
  const name = NAMES[i % NAMES.length];
  const email = `${name.split(' ')[0].toLowerCase()}@bench.test`;
  // Five messages to a thread: a first one and four replies with its subject and a reference to it.
  const g = Math.floor(i / 5) * 5;
  const topic = `${WORDS[g % WORDS.length]} ${WORDS[(g * 7) % WORDS.length]} ${g / 5}`;
  const reply = i % 5 !== 0;
  const root = `<bench-${g}@bench.test>`;
  const date = new Date(Date.UTC(2026, 0, 1) + i * 60000);
  const body = Array.from({ length: 12 }, (_, l) => `Line ${l + 1} of message ${i} about the ${topic}: ${WORDS.slice(l, l + 8).join(' ')}.`).join('\r\n');
  return [
    `From: ${name} <${email}>`, `To: ${env.user}`, `Subject: ${reply ? 'Re: ' : ''}${topic}`,
    `Message-ID: <bench-${i}@bench.test>`, reply ? `In-Reply-To: ${root}\r\nReferences: ${root}` : null,
    `Date: ${date.toUTCString().replace('GMT', '+0000')}`, 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8',
    '', body, '',
  ].filter((l) => l !== null).join('\r\n');
}

async function seed(total) {
  const auth = `Basic ${Buffer.from(`${env.user}:${env.password}`).toString('base64')}`;
  const api = await request.newContext({ ignoreHTTPSErrors: true, extraHTTPHeaders: { Authorization: auth } });
  const session = await (await api.get(`${env.url}/jmap/session`)).json();
  const accountId = Object.keys(session.accounts)[0];
  const parallel = session.capabilities['urn:ietf:params:jmap:core'].maxConcurrentUpload || 4;
  const call = async (calls) => {
    const response = await api.post(`${env.url}/jmap/api`, { data: { using: USING, methodCalls: calls } });
    const body = await response.json();
    for (const [name, result] of body.methodResponses) if (name === 'error') throw new Error(JSON.stringify(result));
    return body.methodResponses;
  };
  const [[, boxes]] = await call([['Mailbox/get', { accountId, ids: null, properties: ['role', 'totalEmails'] }, 'm']]);
  const inbox = boxes.list.find((m) => m.role === 'inbox');
  let have = inbox.totalEmails;
  process.stderr.write(`seed: INBOX has ${have}, want ${total}\n`);
  const started = Date.now();
  const BATCH = 100;
  while (have < total) {
    const count = Math.min(BATCH, total - have);
    // Uploads run maxConcurrentUpload at a time (RFC 8620 §2: the server may refuse more).
    const blobs = [];
    for (let k = 0; k < count; k += parallel) {
      blobs.push(...await Promise.all(Array.from({ length: Math.min(parallel, count - k) }, async (_, j) => {
        const i = have + k + j;
        const response = await api.post(`${env.url}/jmap/upload/${accountId}/`, {
          headers: { 'Content-Type': 'message/rfc822' }, data: Buffer.from(message(i)),
        });
        const blob = await response.json();
        if (!blob.blobId) throw new Error(`upload ${response.status()}: ${JSON.stringify(blob)}`);
        return { i, blobId: blob.blobId };
      })));
    }
    const emails = {};
    for (const { i, blobId } of blobs) {
      emails[`e${i}`] = { blobId, mailboxIds: { [inbox.id]: true }, receivedAt: new Date(Date.UTC(2026, 0, 1) + i * 60000).toISOString().replace(/\.\d+Z$/, 'Z') };
    }
    const [[, imported]] = await call([['Email/import', { accountId, emails }, 'i']]);
    const failed = Object.values(imported.notCreated || {});
    if (failed.length) throw new Error(`import failed: ${JSON.stringify(failed[0])}`);
    have += count;
    if (have % 1000 === 0) process.stderr.write(`seed: ${have} (${Math.round((Date.now() - started) / 1000)} s)\n`);
  }
  await api.dispose();
}

function stats(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { n: sorted.length, min: sorted[0], median: at(0.5), p90: at(0.9), max: sorted[sorted.length - 1] };
}

// From the login form's POST leaving the browser (the click submits at once; playwright's own click
// checks before it are not the page's time) to the app's 'mailbus:first-screen' mark, both wall clock.
async function loginOnce(context) {
  const page = await context.newPage();
  await page.goto(`${env.url}/`);
  await page.locator('[data-test=login-username]').fill(env.user);
  await page.locator('[data-test=login-password]').fill(env.password);
  const posted = page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith('/webmail/login'));
  await page.locator('[data-test=login-submit]').click();
  const clicked = (await posted).timing().startTime;
  await page.locator('body[data-ready=true]').waitFor({ timeout: 60000 });
  const shown = await page.evaluate(() => performance.timeOrigin + performance.getEntriesByName('mailbus:first-screen')[0].startTime);
  const rows = await page.locator('[data-test=message-row]').count();
  const paging = await page.locator('[data-test=paging]').textContent();
  return { page, ms: shown - clicked, rows, paging };
}

// From the click on a row (a capturing listener's timestamp) to its body in the DOM (text) or the body's frame
// loaded (HTML), measured inside the page.
async function openOnce(page, index) {
  return page.evaluate((i) => new Promise((resolve, reject) => {
    const row = document.querySelectorAll('[data-test=message-row]')[i];
    if (!row) return reject(new Error(`no row ${i}`));
    const id = row.dataset.id;
    let clicked = 0;
    const done = () => { observer.disconnect(); resolve(performance.now() - clicked); };
    const observer = new MutationObserver(() => {
      const card = document.querySelector(`[data-test=message-card][data-id="${id}"]`);
      if (!card) return;
      if (card.querySelector('[data-test=message-body]')) return done();
      const frame = card.querySelector('[data-test=message-html]');
      if (frame && !frame.dataset.benchWatched) {
        frame.dataset.benchWatched = '1';
        frame.addEventListener('load', done, { once: true });
      }
    });
    observer.observe(document.getElementById('message'), { childList: true, subtree: true });
    document.addEventListener('click', () => { clicked = performance.now(); }, { capture: true, once: true });
    row.click();
    setTimeout(() => reject(new Error('body not shown in 10 s')), 10000);
  }), index);
}

if (SEED) await seed(SEED);
const browser = await launch();
const cold = [];
const warm = [];
const opens = [];
let seen = null;
try {
  for (let r = 0; r < RUNS; r++) {
    // Cold: a fresh profile (no cache, nothing remembered). Warm: the same profile logs in again.
    const context = await newContext(browser);
    const first = await loginOnce(context);
    cold.push(first.ms);
    seen = { rows: first.rows, paging: first.paging };
    await first.page.locator('[data-test=logout]').click();
    await first.page.locator('[data-test=login-form]').waitFor();
    const again = await loginOnce(context);
    warm.push(again.ms);
    if (r === 0) {
      for (let k = 0; k < OPENS; k++) opens.push(await openOnce(again.page, k % Math.max(1, again.rows)));
    }
    await context.close();
  }
} finally {
  await browser.close();
}
const round = (s) => Object.fromEntries(Object.entries(s).map(([k, v]) => [k, Math.round(v * 10) / 10]));
console.log(JSON.stringify({
  url: env.url, inbox: seen,
  loginToFirstScreenColdMs: round(stats(cold)), loginToFirstScreenWarmMs: round(stats(warm)),
  clickToBodyMs: round(stats(opens)),
}, null, 1));
