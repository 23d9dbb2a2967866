// The vacation reply in a real browser: open the Vacation dialog, see the reply off, turn it on with dates, a
// subject and a message, save (VacationResponse/set), then reload the page and find the same values back
// (read with VacationResponse/get). The Rust test checks the account's VacationResponse over JMAP too.

import { login, newContext, scenario } from './harness.mjs';

async function dialogValues(page) {
  return {
    enabled: await page.locator('[data-test=vacation-enabled]').isChecked(),
    from: await page.locator('[data-test=vacation-from]').inputValue(),
    to: await page.locator('[data-test=vacation-to]').inputValue(),
    subject: await page.locator('[data-test=vacation-subject]').inputValue(),
    body: await page.locator('[data-test=vacation-body]').inputValue(),
  };
}

await scenario(async (browser, run) => {
  const context = await newContext(browser);
  const page = await context.newPage();
  run.page = page;

  await run.do('log in', async () => { await login(page); });

  await run.do('open the vacation dialog', async () => {
    await page.locator('[data-test=vacation]').click();
    await page.locator('[data-test=vacation-dialog][open]').waitFor();
    run.facts.before = await dialogValues(page);
  });

  await run.do('a last day before the first is refused', async () => {
    await page.locator('[data-test=vacation-from]').fill('2027-01-10');
    await page.locator('[data-test=vacation-to]').fill('2027-01-05');
    await page.locator('[data-test=vacation-save]').click();
    await page.locator('[data-test=vacation-error]').waitFor();
    run.facts.dateError = await page.locator('[data-test=vacation-error]').innerText();
  });

  await run.do('turn it on and save', async () => {
    await page.locator('[data-test=vacation-enabled]').check();
    await page.locator('[data-test=vacation-from]').fill('2026-12-20');
    await page.locator('[data-test=vacation-to]').fill('2027-01-05');
    await page.locator('[data-test=vacation-subject]').fill('Away until January');
    await page.locator('[data-test=vacation-body]').fill('I am away and will answer in January.');
    await run.shot(page, 'vacation-filled');
    await page.locator('[data-test=vacation-save]').click();
    await page.locator('[data-test=vacation-dialog]:not([open])').waitFor({ state: 'attached' });
    await page.locator('[data-test=toast]', { hasText: 'Vacation reply is on' }).waitFor();
    run.facts.toast = await page.locator('[data-test=toast]').innerText();
  });

  await run.do('reload and find it saved', async () => {
    await page.reload();
    await page.locator('body[data-ready=true]').waitFor({ timeout: 20000 });
    await page.locator('[data-test=vacation]').click();
    await page.locator('[data-test=vacation-dialog][open]').waitFor();
    run.facts.after = await dialogValues(page);
    await run.shot(page, 'vacation-saved');
    await page.locator('[data-test=vacation-cancel]').click();
  });

  await context.close();
});
