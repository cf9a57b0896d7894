// Accessibility: axe-core (npm, pinned) run in the page on every main view of the web
// client (sign-in, the room view, each dialog, search with results, the mention list,
// notification settings, the call, the phone layout, the dark theme). A view passes with no critical or serious violation; the others (moderate,
// minor) are logged.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';

const AXE_SOURCE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/**
 * Runs axe on `page` as it is now; returns the critical and serious violations as
 * readable lines. The script goes in through the DevTools protocol (page.evaluate), which
 * the page's Content-Security-Policy does not apply to; the page itself stays untouched.
 */
export async function axeViolations(page) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => `${n.target.join(' ')}: ${n.failureSummary.split('\n').slice(1).join(' ')}`),
    }));
  });
  return result;
}

/** The tests; `h` as in client.mjs. */
export async function a11yTests(h) {
  const { test, ctx, server, waitFor, log } = h;
  const checked = [];
  const failures = [];

  /** Runs axe on `page` (the view named `view`); its critical and serious violations are
   * asserted absent at the end of the test, all views' at once. */
  async function check(page, view) {
    await page.mouse.move(0, 0); // no hover state left from the last click
    const violations = await axeViolations(page);
    const bad = violations.filter((v) => v.impact === 'critical' || v.impact === 'serious');
    for (const v of violations.filter((x) => !bad.includes(x))) log(`    axe (${view}): ${v.impact} ${v.id}: ${v.help}`);
    checked.push(view);
    for (const v of bad) failures.push(`${view}: ${v.impact} ${v.id} (${v.help}):\n      ${v.nodes.join('\n      ')}`);
  }

  /** Opens a dialog with `open`, checks it, closes it with its Close button. */
  async function checkDialog(user, testid, view, open) {
    await open();
    await user.tid(testid).waitFor();
    await check(user.page, view);
    await user.tid(testid).locator('[data-close]').last().click();
    await user.tid(testid).waitFor({ state: 'hidden' });
  }

  await test('25. accessibility (axe-core): no critical or serious violation on any main view', async () => {
    const { alice, bob } = ctx;
    // Sign-in and sign-up, in a fresh context.
    const visitor = await h.newUser('visitor');
    ctx.more = [...(ctx.more || []), visitor];
    await visitor.page.goto(server.url);
    await visitor.tid('login-form').waitFor();
    await check(visitor.page, 'the sign-in page');
    await visitor.tid('tab-signup').click();
    await check(visitor.page, 'the sign-up form');
    await visitor.page.close();

    const p = alice.page;
    for (const scheme of ['light', 'dark']) {
      await p.emulateMedia({ colorScheme: scheme });
      await alice.openRoom('general');
      await alice.tid('message').first().waitFor();
      await check(p, `the room view (${scheme})`);
      await checkDialog(alice, 'new-room-dialog', `the new room dialog (${scheme})`, () => alice.tid('new-room').click());
      await checkDialog(alice, 'account-dialog', `the account dialog (${scheme})`, () => alice.tid('account-button').click());
    }
    await p.emulateMedia({ colorScheme: 'light' });
    await checkDialog(alice, 'browse-dialog', 'the public directory', async () => {
      await alice.tid('browse-rooms').click();
      await alice.tid('directory-room').first().waitFor();
    });
    await checkDialog(alice, 'user-dialog', 'the user search', async () => {
      await alice.tid('new-dm').click();
      await alice.tid('user-search').fill('bo');
      await alice.tid('user-result').first().waitFor();
    });
    await checkDialog(alice, 'security-dialog', 'the security dialog', async () => {
      await alice.tid('security').click();
      await waitFor('the security state', async () => (await alice.tid('tf-status').textContent()) !== 'Loading…');
    });
    await checkDialog(alice, 'room-settings', 'the room settings', async () => {
      await alice.tid('room-settings-button').click();
      await alice.tid('room-member').first().waitFor();
    });
    await checkDialog(alice, 'admin-dialog', 'the administration dialog', async () => {
      await alice.tid('admin-button').click();
      await alice.tid('admin-user').first().waitFor();
    });
    const msg = p.locator('[data-testid=message]').last();
    await checkDialog(alice, 'emoji-picker', 'the emoji picker', async () => {
      await msg.hover();
      await msg.getByTestId('react-more').click();
      await waitFor('the emoji list', async () => (await p.getByTestId('emoji-option').count()) > 100);
    });

    // Search with results, the mention list open, the notification settings.
    await checkDialog(alice, 'search-dialog', 'the search panel with results', async () => {
      await p.keyboard.press('Control+k');
      await alice.tid('search-q').fill('hello');
      await alice.tid('search-submit').click();
      await alice.tid('search-result').first().waitFor();
      await alice.tid('search-filters').locator('summary').click();
    });
    await alice.openRoom('general');
    await alice.tid('composer-input').fill('');
    await alice.tid('composer-input').pressSequentially('@b');
    await alice.tid('mention-option').first().waitFor();
    await check(p, 'the mention autocomplete');
    await alice.tid('composer-input').press('Escape');
    await alice.tid('composer-input').fill('');
    await checkDialog(alice, 'notify-dialog', 'the notification settings', async () => {
      await alice.tid('notify-button').click();
      await waitFor('the settings loaded', async () => (await alice.tid('notify-form').getAttribute('data-loaded')) === 'true');
    });

    // A call: the incoming card on Bob's page, the call view on both.
    await bob.openRoom('general');
    await alice.tid('call-video').click();
    await bob.tid('incoming-call').waitFor();
    await check(bob.page, 'the incoming call card');
    await bob.tid('incoming-accept').click();
    await waitFor('the call to connect', () => alice.page.evaluate(() => window.__palaver.peerConnections()[0]?.connectionState === 'connected'), { timeout: 20_000 });
    await check(alice.page, 'the call view');
    await alice.tid('call-hangup').click();
    for (const u of [alice, bob]) await u.tid('call-view').waitFor({ state: 'hidden' });

    // The phone layout, drawer closed and open, in dark.
    const phone = ctx.phone;
    if (phone) {
      await phone.page.emulateMedia({ colorScheme: 'dark' });
      await phone.page.reload();
      await waitFor('the phone page online', async () => (await phone.tid('conn-status').getAttribute('data-state')) === 'online');
      await phone.tid('room-title').waitFor();
      await check(phone.page, 'the phone room view (dark)');
      await phone.tid('drawer-toggle').click();
      await waitFor('the drawer', () => phone.page.evaluate(() => getComputedStyle(document.querySelector('#sidebar')).visibility === 'visible'));
      await check(phone.page, 'the phone drawer (dark)');
      await phone.page.keyboard.press('Escape');
    }
    log(`    axe: ${checked.length} views checked: ${checked.join('; ')}`);
    assert.equal(checked.length, 21, `views checked: ${checked.join("; ")}`);
    assert.deepEqual(failures, [], 'axe found critical or serious violations');
  });
}
