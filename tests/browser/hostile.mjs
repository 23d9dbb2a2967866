// Hostile mail in a real browser. The Rust test has delivered one HTML message, Subject "Hostile", full of
// things that would run script or fetch from MAILBUS_TRAP_URL (a loopback server that must see nothing).
// This scenario opens it like a person would and reports every request the page and its frames made, the
// dialogs that opened, the console's errors, the frame's src and sandbox, the text the frame shows and the
// tab's title (the mail's scripts try alert() and document.title = 'pwned').

import { env, login, newContext, row, scenario } from './harness.mjs';

await scenario(async (browser, run) => {
  const context = await newContext(browser);
  const requests = [];
  context.on('request', (r) => requests.push(r.url()));
  const page = await context.newPage();
  run.page = page;
  let dialogs = 0;
  page.on('dialog', (dialog) => { dialogs += 1; dialog.dismiss().catch(() => {}); });
  const consoleErrors = [];
  page.on('console', (message) => { if (message.type() === 'error') consoleErrors.push(message.text()); });
  page.on('pageerror', (error) => consoleErrors.push(String(error)));
  const popups = [];
  context.on('page', (p) => popups.push(p.url()));

  await run.do('log in', async () => { await login(page); });

  await run.do('open the hostile mail', async () => {
    await row(page, 'Hostile').click();
    await page.locator('[data-test=message-subject]', { hasText: 'Hostile' }).waitFor();
    const frame = page.locator('[data-test=message-html]');
    await frame.waitFor();
    run.facts.frameSrc = await frame.getAttribute('src');
    run.facts.frameSandbox = await frame.getAttribute('sandbox');
    // Everything the mail could load starts with the frame's document: wait for its load event (its
    // subresources done) and then for the network to fall quiet.
    const handle = await frame.elementHandle();
    const content = await handle.contentFrame();
    if (content) await content.waitForLoadState('load');
    await page.waitForLoadState('networkidle');
    run.facts.frameUrl = content ? content.url() : null;
    run.facts.bodyText = content ? await content.locator('body').innerText({ timeout: 5000 }).catch((e) => `unreadable: ${e}`) : null;
    // Links that survived the sanitiser, and whether any of them is a javascript: URL.
    run.facts.links = content ? await content.locator('a[href]').evaluateAll((as) => as.map((a) => a.getAttribute('href'))).catch(() => []) : [];
    run.facts.imagesBanner = await page.locator('[data-test=images-banner]').isVisible();
    await run.shot(page, 'hostile');
  });

  // Opt-in second phase (MAILBUS_SHOW_IMAGES=1): the user asks for the remote images. Only the one remote
  // <img> may then be fetched, which also proves the request log and the trap would have seen a leak.
  if (process.env.MAILBUS_SHOW_IMAGES === '1') {
    await run.do('show remote images', async () => {
      const before = requests.length;
      run.facts.requestsBeforeImages = before;
      const image = context.waitForEvent('request', { predicate: (r) => r.url().startsWith(env.trap), timeout: 10000 });
      await page.locator('[data-test=show-images]').click();
      await page.locator('[data-test=message-html][src$="images=1"]').waitFor();
      await image;
      await page.waitForLoadState('networkidle');
      const origin = new URL(env.url).origin;
      run.facts.afterShowImages = requests.slice(before).filter((u) => !u.startsWith('data:') && new URL(u).origin !== origin);
      await run.shot(page, 'hostile-images');
    });
  }

  run.facts.title = await page.title();
  run.facts.dialogs = dialogs;
  run.facts.consoleErrors = consoleErrors;
  run.facts.popups = popups;
  run.facts.requests = requests;
  const origin = new URL(env.url).origin;
  run.facts.offOrigin = requests.slice(0, run.facts.requestsBeforeImages ?? requests.length).filter((u) => !u.startsWith('data:') && new URL(u).origin !== origin);
  await context.close();
});
