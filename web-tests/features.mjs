// Browser tests of search, mentions, notifications (settings, the service worker, Web
// Push delivered through the DevTools protocol, notifications while the tab is hidden),
// the profile picture and default rooms. Run by run.mjs after client.mjs, with users of their own (gina and
// hank in the browser, ivan over REST only), so they do not depend on the earlier tests.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The tests; `h` as in client.mjs. */
export async function featureTests(h) {
  const { test, ctx, server, waitFor, rest, log } = h;
  const f = (ctx.features = {});

  /** Signs up `name` in a new browser page (1280x800). */
  const browserUser = async (name) => {
    const u = await h.newUser(name);
    ctx.more = [...(ctx.more || []), u];
    await u.signUp(server.url);
    return u;
  };

  /** Posts a message over REST as `token`; returns it. */
  const post = (token, roomId, content) => rest(server, token, 'POST', `/rooms/${roomId}/messages`, { content });

  /** Texts of the search results on `u`'s page: [{room, text, marks}]. */
  const results = (u) => u.page.$$eval('[data-testid=search-result]', (els) => els.map((e) => ({
    room: e.dataset.roomName,
    id: e.dataset.messageId,
    text: e.querySelector('[data-testid=search-snippet]').textContent,
    marks: [...e.querySelectorAll('[data-testid=search-snippet] mark')].map((m) => m.textContent),
    // Only text and <mark> inside a snippet: never markup from the message.
    tags: [...e.querySelectorAll('[data-testid=search-snippet] *')].map((m) => m.tagName),
  })));

  /** Runs a search from the dialog and waits for its answer. */
  const search = async (u, q) => {
    await u.tid('search-q').fill(q);
    await u.tid('search-submit').click();
    await waitFor(`the search for ${q}`, async () => {
      const s = await u.tid('search-status').textContent();
      return s && s !== 'Searching…';
    });
    return results(u);
  };

  await test('20. search: Ctrl+K, results only from my rooms, highlights as text, filters, paging, jump to an old message', async () => {
    const gina = (f.gina = await browserUser('gina'));
    const hank = (f.hank = await browserUser('hank'));
    const ivan = (f.ivan = await h.register('ivan'));
    const gt = await gina.token();
    const ht = await hank.token();
    const atlas = await rest(server, gt, 'POST', '/rooms', { name: 'atlas', visibility: 'public' });
    const borealis = await rest(server, gt, 'POST', '/rooms', { name: 'borealis', visibility: 'public' });
    const secret = await rest(server, ivan.token, 'POST', '/rooms', { name: 'secret', visibility: 'private' });
    await rest(server, ht, 'POST', `/rooms/${atlas.id}/join`);
    await rest(server, ht, 'POST', `/rooms/${borealis.id}/join`);
    Object.assign(f, { atlas, borealis, secret });

    const deployment = await post(gt, atlas.id, 'The deployment of the zeppelin went fine');
    await post(ht, atlas.id, 'zeppelin parts arrived');
    // An attachment with a caption.
    const form = new FormData();
    form.append('file', new Blob(['blueprint'], { type: 'text/plain' }), 'blueprint.txt');
    const upload = await fetch(`${server.url}/api/v1/attachments`, { method: 'POST', headers: { authorization: `Bearer ${ht}` }, body: form });
    assert.equal(upload.status, 201);
    const att = await upload.json();
    await rest(server, ht, 'POST', `/rooms/${atlas.id}/messages`, { content: 'zeppelin blueprint attached', attachment_id: att.id });
    // 120 later messages: the first ones are not in the room's first page.
    for (let i = 1; i <= 120; i++) await post(i % 2 ? gt : ht, atlas.id, `filler number ${i}`);
    await post(gt, borealis.id, '<b>zeppelin</b> over borealis stays text');
    await post(ivan.token, secret.id, 'zeppelin secret plans');

    // Ctrl+K opens the dialog with the query box focused.
    await gina.page.locator('body').click({ position: { x: 5, y: 5 } }).catch(() => {});
    await gina.page.keyboard.press('Control+k');
    await gina.tid('search-dialog').waitFor();
    assert.equal(await gina.page.evaluate(() => document.activeElement?.id), 'search-q');

    let found = await search(gina, 'zeppelin');
    assert.deepEqual(found.map((r) => r.room).sort(), ['atlas', 'atlas', 'atlas', 'borealis'], JSON.stringify(found));
    assert.ok(!found.some((r) => r.text.includes('secret')), 'nothing from a room gina is not in');
    for (const r of found) {
      assert.ok(r.marks.length >= 1 && r.marks.every((m) => m.toLowerCase() === 'zeppelin'), `highlighted: ${JSON.stringify(r)}`);
      assert.ok(r.tags.every((t) => t === 'MARK'), `only <mark> in a snippet: ${r.tags}`);
    }
    assert.ok(found.find((r) => r.room === 'borealis').text.includes('<b>zeppelin</b>'), 'markup in a message is shown as text');
    // The word itself is matched by prefix (the server's rule), and ivan's room stays out.
    assert.equal((await search(gina, 'zepp')).length, 4);

    // Filters narrow.
    const filters = gina.tid('search-filters');
    await filters.locator('summary').click();
    await gina.tid('search-room-filter').selectOption({ label: '#borealis' });
    found = await search(gina, 'zeppelin');
    assert.deepEqual(found.map((r) => r.room), ['borealis']);
    await gina.tid('search-room-filter').selectOption({ label: 'All my rooms' });
    await gina.tid('search-sender').fill('hank');
    found = await search(gina, 'zeppelin');
    assert.deepEqual(found.map((r) => r.text).sort(), ['zeppelin blueprint attached', 'zeppelin parts arrived']);
    await gina.tid('search-attachment').selectOption('true');
    found = await search(gina, 'zeppelin');
    assert.deepEqual(found.map((r) => r.text), ['zeppelin blueprint attached']);
    await gina.tid('search-sender').fill('');
    await gina.tid('search-attachment').selectOption('');
    const tomorrow = new Date(Date.now() + 86400e3);
    const ymd = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
    await gina.tid('search-after').fill(ymd(tomorrow));
    found = await search(gina, 'zeppelin');
    assert.equal(found.length, 0);
    assert.equal(await gina.tid('search-status').textContent(), 'No message matches.');
    await gina.tid('search-after').fill(ymd(new Date()));
    await gina.tid('search-before').fill(ymd(new Date()));
    assert.equal((await search(gina, 'zeppelin')).length, 4, 'today, both days included');
    await gina.tid('search-after').fill('');
    await gina.tid('search-before').fill('');
    await gina.tid('search-sort').selectOption('newest');
    found = await search(gina, 'zeppelin');
    assert.equal(found[0].room, 'borealis', 'newest first');

    // Paging: 120 fillers, 20 a page, "More results" until the end.
    found = await search(gina, 'filler');
    assert.equal(found.length, 20);
    for (let i = 0; i < 10 && (await gina.tid('search-more').isVisible()); i++) {
      const before = (await results(gina)).length;
      await gina.tid('search-more').click();
      await waitFor('the next page', async () => (await results(gina)).length > before);
    }
    found = await results(gina);
    assert.equal(found.length, 120, 'every filler once');
    assert.equal(new Set(found.map((r) => r.id)).size, 120, 'no duplicate across pages');
    assert.ok(await gina.tid('search-more').isHidden());
    await gina.tid('search-sort').selectOption('relevance');

    // Jump: the deployment message is older than the room's first page.
    found = await search(gina, 'deployment');
    assert.equal(found.length, 1);
    assert.equal(found[0].id, deployment.id);
    await gina.page.locator(`[data-testid=search-result][data-message-id="${deployment.id}"]`).click();
    await gina.tid('search-dialog').waitFor({ state: 'hidden' });
    await waitFor('atlas open', async () => (await gina.tid('room-title').textContent()).includes('atlas'));
    const target = gina.page.locator(`[data-testid=message][data-id="${deployment.id}"]`);
    await target.waitFor({ timeout: 15_000 });
    await waitFor('the message highlighted and on screen', async () => {
      const box = await gina.tid('messages').boundingBox();
      const el = await target.boundingBox();
      const cls = await target.getAttribute('class');
      return el && cls.includes('found') && el.y >= box.y && el.y + el.height <= box.y + box.height;
    });
    // The whole history between it and the newest message is loaded, in order.
    const seqs = await gina.page.$$eval('[data-testid=message]', (els) => els.map((e) => Number(e.dataset.seq)));
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
    assert.ok((await gina.bodies()).includes('filler number 120'));
    // "/" outside a text box opens the search too.
    await gina.tid('messages').focus();
    await gina.page.keyboard.press('/');
    await gina.tid('search-dialog').waitFor();
    await gina.tid('search-dialog').locator('[data-close]').click();
    await gina.tid('search-dialog').waitFor({ state: 'hidden' });
  });

  await test('21. mentions: autocomplete, highlight, badge from the event and from the room, cleared when read', async () => {
    const { gina, hank, atlas, borealis } = f;
    const p = gina.page;
    await gina.openRoom('atlas');
    await hank.openRoom('borealis');
    const input = gina.tid('composer-input');
    const options = () => p.$$eval('[data-testid=mention-option]', (els) => els.map((e) => e.dataset.insert));
    const active = () => p.$eval('[data-testid=mention-option][aria-selected=true]', (e) => e.dataset.insert);
    await waitFor('the members of atlas', () => p.evaluate((id) => window.__palaver.state.members.get(id)?.size === 2, atlas.id));

    // "@" alone: the members (not me), @room, @here.
    await input.fill('');
    await input.pressSequentially('Hey @');
    await gina.tid('mention-list').waitFor();
    assert.deepEqual(await options(), ['hank', 'room', 'here']);
    // Escape closes the list and keeps the text.
    await input.press('Escape');
    await gina.tid('mention-list').waitFor({ state: 'hidden' });
    assert.equal(await input.inputValue(), 'Hey @');
    // "@h": hank and here; Down, Up, Enter inserts (and does not send).
    await input.pressSequentially('h');
    await waitFor('the narrowed list', async () => JSON.stringify(await options()) === '["hank","here"]');
    assert.equal(await active(), 'hank');
    await input.press('ArrowDown');
    assert.equal(await active(), 'here');
    await input.press('ArrowUp');
    assert.equal(await active(), 'hank');
    assert.equal(await input.getAttribute('aria-activedescendant'), 'mention-option-0');
    await input.press('Enter');
    await gina.tid('mention-list').waitFor({ state: 'hidden' });
    assert.equal(await input.inputValue(), 'Hey @hank ');
    assert.equal(await p.getByTestId('pending-message').count(), 0, 'Enter picked, did not send');
    // Tab picks too.
    await input.pressSequentially('and @her');
    await waitFor('@here offered', async () => JSON.stringify(await options()) === '["here"]');
    await input.press('Tab');
    assert.equal(await input.inputValue(), 'Hey @hank and @here ');
    await input.pressSequentially('look, and @ivan too');
    await input.press('Enter');
    await gina.waitForMessage('Hey @hank and @here look, and @ivan too');

    // Hank (reading borealis) gets the badge live, from the `mention` event.
    const badge = hank.page.locator('[data-testid=room-item][data-room-name=atlas] [data-testid=mention-badge]');
    await waitFor('the mention badge on atlas', async () => (await badge.textContent({ timeout: 200 })) === '@1');
    // On Gina's page: @hank and @here highlighted, @ivan (not a member) plain.
    const sent = p.locator('[data-testid=message]', { hasText: 'look, and @ivan too' });
    assert.deepEqual(await sent.locator('[data-testid=mention]').evaluateAll((els) => els.map((e) => `${e.textContent}|${e.className}`)),
      ['@hank|mention', '@here|mention all']);
    assert.equal(await sent.getAttribute('data-mentions-me'), null, 'her own message is not for her');

    // Hank opens atlas: the badge goes, the message is marked for him, his name styled.
    await hank.openRoom('atlas');
    await waitFor('the badge to clear', async () => (await badge.count()) === 0);
    const got = hank.page.locator('[data-testid=message]', { hasText: 'look, and @ivan too' });
    await got.waitFor();
    await waitFor('the mention styled for hank', async () =>
      JSON.stringify(await got.locator('[data-testid=mention]').evaluateAll((els) => els.map((e) => `${e.textContent}|${e.className}`)))
        === JSON.stringify(['@hank|mention mention-me', '@here|mention all']));
    assert.equal(await got.getAttribute('data-mentions-me'), 'true');
    assert.equal(await got.locator('[data-mention=ivan]').count(), 0, 'a non-member is not highlighted');
    await waitFor('the server to count it read', async () =>
      (await rest(server, await hank.token(), 'GET', `/rooms/${atlas.id}`)).mention_count === 0);

    // The count from the room (Room.mention_count) after a reload, then read again.
    await hank.openRoom('borealis');
    await post(await gina.token(), atlas.id, 'Another one for @HANK.');
    await waitFor('the live badge again', async () => (await badge.textContent({ timeout: 200 })) === '@1');
    await hank.page.reload();
    await hank.waitOnline();
    await waitFor('the badge from the room snapshot', async () => (await badge.textContent({ timeout: 200 })) === '@1');
    assert.equal((await rest(server, await hank.token(), 'GET', `/rooms/${atlas.id}`)).mention_count, 1);
    await hank.openRoom('atlas');
    await waitFor('read: no badge', async () => (await badge.count()) === 0);
    await hank.page.locator('[data-testid=message]', { hasText: 'Another one for' }).locator('.mention.mention-me').waitFor();
    // A message mentioning nobody marks nothing.
    assert.equal(await hank.page.locator('[data-testid=message]', { hasText: 'filler number 120' }).getAttribute('data-mentions-me'), null);
    void borealis;

    // Who may use @room: the owner restricts it to owners and admins (room settings);
    // a member is no longer offered @room, the owner still is.
    await gina.tid('room-settings-button').click();
    await gina.tid('room-settings-mentions').selectOption('admins');
    await gina.tid('room-settings-save').click();
    await waitFor('room_mentions = admins on the server', async () =>
      (await rest(server, await gina.token(), 'GET', `/rooms/${atlas.id}`)).room_mentions === 'admins');
    await gina.tid('room-settings').locator('[data-close]').last().click();
    await waitFor('Hank to learn it (room.updated)', () => hank.page.evaluate((id) => window.__palaver.state.rooms.get(id)?.room_mentions === 'admins', atlas.id));
    const hinput = hank.tid('composer-input');
    await hinput.fill('');
    await hinput.pressSequentially('@');
    await hank.tid('mention-list').waitFor();
    assert.deepEqual(await hank.page.$$eval('[data-testid=mention-option]', (els) => els.map((e) => e.dataset.insert)), ['gina', 'here']);
    await hinput.press('Escape');
    await hinput.fill('');
    await input.fill('');
    await input.pressSequentially('@');
    await gina.tid('mention-list').waitFor();
    assert.deepEqual(await options(), ['hank', 'room', 'here'], 'the owner may still use @room');
    await input.press('Escape');
    await input.fill('');
  });

  await test('22. notifications: settings round-trip, service worker at /, push delivered over CDP shows a notification, hidden-tab notifications honor the level and mute', async () => {
    const { gina, hank, atlas } = f;
    const p = gina.page;
    const gt = await gina.token();
    const settingsNow = () => rest(server, gt, 'GET', `/rooms/${atlas.id}/notifications`);

    // Settings: mentions only, muted for 8 hours.
    await gina.openRoom('atlas');
    await gina.tid('notify-button').click();
    await gina.tid('notify-dialog').waitFor();
    await waitFor('the settings loaded', async () => (await gina.tid('notify-form').getAttribute('data-loaded')) === 'true');
    assert.equal(await gina.tid('notify-level-all').isChecked(), true, 'the default');
    await gina.tid('notify-level-mentions').check();
    await gina.tid('notify-mute').selectOption('8h');
    const t0 = Date.now();
    await gina.tid('notify-save').click();
    await gina.tid('notify-dialog').waitFor({ state: 'hidden' });
    let s = await settingsNow();
    assert.equal(s.level, 'mentions');
    const until = Date.parse(s.muted_until);
    assert.ok(Math.abs(until - (t0 + 8 * 3600e3)) < 60e3, `muted for 8 h: ${s.muted_until}`);
    // Reopened, the dialog shows what the server has.
    await gina.tid('notify-button').click();
    await waitFor('the settings loaded', async () => (await gina.tid('notify-form').getAttribute('data-loaded')) === 'true');
    assert.equal(await gina.tid('notify-level-mentions').isChecked(), true);
    assert.equal(await gina.tid('notify-mute').inputValue(), 'keep');
    assert.match(await gina.tid('notify-mute-state').textContent(), /^Muted until /);
    await gina.tid('notify-mute').selectOption('forever');
    await gina.tid('notify-level-none').check();
    await gina.tid('notify-save').click();
    await gina.tid('notify-dialog').waitFor({ state: 'hidden' });
    s = await settingsNow();
    assert.equal(s.level, 'none');
    assert.ok(s.muted_until.startsWith('9999-12-31'), s.muted_until);
    // Changed elsewhere (over REST), shown on opening.
    await rest(server, gt, 'PUT', `/rooms/${atlas.id}/notifications`, { level: 'mentions', muted_until: null });
    await gina.tid('notify-button').click();
    await waitFor('the settings loaded', async () => (await gina.tid('notify-form').getAttribute('data-loaded')) === 'true');
    assert.equal(await gina.tid('notify-level-mentions').isChecked(), true);
    assert.equal(await gina.tid('notify-mute').inputValue(), '');
    assert.equal(await gina.tid('notify-mute-state').textContent(), 'Not muted.');

    // This device: permission granted, the service worker, the push subscription.
    await p.context().grantPermissions(['notifications'], { origin: server.url });
    const status = gina.tid('push-status');
    assert.equal(await status.getAttribute('data-state'), 'off');
    await gina.tid('push-enable').click();
    await waitFor('enabling to finish', async () => ['push-on', 'push-failed'].includes(await status.getAttribute('data-state')), { timeout: 20_000 });
    const pushState = await status.getAttribute('data-state');
    const pushText = await status.textContent();
    log(`    push on headless Chromium: ${pushState}: ${pushText}`);
    const scope = await p.evaluate(async () => (await navigator.serviceWorker.getRegistration('/'))?.scope);
    assert.equal(scope, `${server.url}/`, 'the service worker controls the whole origin');
    const subs = (await rest(server, gt, 'GET', '/push/subscriptions')).subscriptions;
    if (pushState === 'push-on') {
      // The browser subscribed: the server holds the endpoint the browser has.
      const endpoint = await p.evaluate(async () => (await (await navigator.serviceWorker.ready).pushManager.getSubscription())?.endpoint);
      assert.deepEqual(subs.map((x) => x.endpoint), [endpoint]);
    } else {
      // The browser could not subscribe (no push service): said plainly, nothing posted.
      assert.match(pushText, /could not subscribe to push messages/);
      assert.equal(subs.length, 0);
    }
    f.push = { state: pushState, text: pushText };
    await p.keyboard.press('Escape');

    // A push of the server's shape, delivered to the worker by the DevTools protocol.
    const cdp = await p.context().newCDPSession(p);
    const registrations = [];
    cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => registrations.push(...e.registrations));
    await cdp.send('ServiceWorker.enable');
    const reg = await waitFor('the registration over CDP', () => registrations.find((r) => r.scopeURL === `${server.url}/` && !r.isDeleted));
    // The worker says which notification it showed; the list itself is read only after
    // that (reading it while one is being shown can miss it, in Chromium).
    await p.evaluate(() => {
      window.__shown = [];
      navigator.serviceWorker.addEventListener('message', (e) => {
        if (e.data?.type === 'notification-shown') window.__shown.push(e.data);
      });
      navigator.serviceWorker.startMessages();
    });
    const shownTags = () => p.evaluate(() => window.__shown.map((x) => x.tag));
    const waitShown = (what, tag) => waitFor(what, async () => (await shownTags()).includes(tag));
    const notifications = () => p.evaluate(async () => (await (await navigator.serviceWorker.ready).getNotifications())
      .map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data })));
    const closeAll = () => p.evaluate(async () => (await (await navigator.serviceWorker.ready).getNotifications()).forEach((n) => n.close()));
    const byTag = async (tag) => (await notifications()).find((n) => n.tag === tag);
    await closeAll();
    const payload = {
      type: 'message', room_id: atlas.id, room_name: 'atlas', room_kind: 'channel', message_id: '0190f0f0-0000-7000-8000-000000000001',
      seq: 7, sender: { id: (await rest(server, await hank.token(), 'GET', '/users/me')).id, username: 'hank' }, body: 'Ping @gina, the build is green', mention: true,
    };
    await cdp.send('ServiceWorker.deliverPushMessage', { origin: server.url, registrationId: reg.registrationId, data: JSON.stringify(payload) });
    await waitShown('the push notification', payload.message_id);
    const shown = await byTag(payload.message_id);
    assert.equal(shown?.title, 'hank mentioned you in #atlas', JSON.stringify(await notifications()));
    assert.equal(shown.body, 'Ping @gina, the build is green');
    assert.deepEqual(shown.data, { room_id: atlas.id, message_id: payload.message_id, seq: 7 });
    // A direct message's push without a preview: the sender is the title.
    const dmTag = '0190f0f0-0000-7000-8000-000000000002';
    await cdp.send('ServiceWorker.deliverPushMessage', {
      origin: server.url, registrationId: reg.registrationId,
      data: JSON.stringify({ ...payload, room_kind: 'dm', room_name: 'x', message_id: dmTag, body: '', mention: false }),
    });
    await waitShown('the DM push notification', dmTag);
    const dm = await byTag(dmTag);
    assert.deepEqual([dm?.title, dm?.body], ['hank', 'New message']);
    await closeAll();

    // The tab hidden (the page's view of it): notifications from the open client.
    await gina.openRoom('borealis');
    await p.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    const ht = await hank.token();
    // Level `mentions`: a plain message is not shown, a mention is.
    const plain = await post(ht, atlas.id, 'plain words, no notification');
    const ping = await post(ht, atlas.id, '@gina are you there?');
    await waitShown('the mention notification', ping.id);
    const mention = await byTag(ping.id);
    assert.equal(mention?.title, 'hank mentioned you in #atlas');
    assert.equal(mention.body, '@gina are you there?');
    assert.equal(mention.data.room_id, atlas.id);
    assert.ok(!(await shownTags()).includes(plain.id), 'no notification for a plain message at level mentions');
    // A click on it (the worker's notificationclick tells the open tab): the tab opens
    // the room at the message. The worker's side cannot be clicked headless; its message
    // is what the page receives.
    await p.evaluate((d) => navigator.serviceWorker.dispatchEvent(new MessageEvent('message', { data: { type: 'open-room', ...d } })), mention.data);
    await waitFor('atlas opened at the mention', async () => (await gina.tid('room-title').textContent()).includes('atlas')
      && ((await p.locator(`[data-testid=message][data-id="${ping.id}"]`).getAttribute('class', { timeout: 200 })) || '').includes('found'));
    await gina.openRoom('borealis');
    // A direct message (in a conversation the page did not know yet) is shown.
    const dmRoom = await rest(server, ht, 'POST', '/dms', { user_id: (await rest(server, gt, 'GET', '/users/me')).id });
    const direct = await post(ht, dmRoom.id, 'a direct word');
    await waitShown('the DM notification', direct.id);
    assert.deepEqual([(await byTag(direct.id))?.title, (await byTag(direct.id))?.body], ['hank', 'a direct word']);
    // Level `all`: a plain message is shown too.
    await rest(server, gt, 'PUT', `/rooms/${atlas.id}/notifications`, { level: 'all', muted_until: null });
    await p.evaluate(() => window.__palaver.forgetNotificationSettings());
    const plainAll = await post(ht, atlas.id, 'plain words at level all');
    await waitShown('the plain message notification', plainAll.id);
    assert.equal((await byTag(plainAll.id))?.title, 'hank in #atlas');
    // Muted: nothing, not even a mention.
    await rest(server, gt, 'PUT', `/rooms/${atlas.id}/notifications`, { level: 'all', muted_until: new Date(Date.now() + 3600e3).toISOString() });
    await p.evaluate(() => window.__palaver.forgetNotificationSettings());
    const muted = await post(ht, atlas.id, '@gina while muted');
    const after = await post(ht, dmRoom.id, 'after the muted one'); // arrives after it: the muted one had its chance
    await waitShown('the later DM notification', after.id);
    assert.ok(!(await shownTags()).includes(muted.id), 'nothing from a muted room');
    assert.ok(!(await notifications()).some((n) => n.tag === muted.id));
    await rest(server, gt, 'PUT', `/rooms/${atlas.id}/notifications`, { level: 'all', muted_until: null });
    // Visible again: no notifications.
    await p.evaluate(() => {
      delete document.visibilityState;
      document.dispatchEvent(new Event('visibilitychange'));
    });
    const seen = await post(ht, dmRoom.id, 'seen in the open tab');
    await waitFor('the page to have the message', () => p.evaluate(([roomId, id]) => window.__palaver.state.rooms.get(roomId)?.last_message?.id === id, [dmRoom.id, seen.id]));
    assert.ok(!(await shownTags()).includes(seen.id), 'no notification while the tab is visible');
    await closeAll();
    await cdp.detach();
  });

  await test('23. profile picture: uploaded from the account dialog, shown from a blob: URL (it needs the token), removed', async () => {
    const { gina } = f;
    const p = gina.page;
    const png = await p.screenshot({ clip: { x: 0, y: 0, width: 64, height: 48 } });
    await gina.tid('account-button').click();
    await gina.tid('account-dialog').waitFor();
    assert.ok(await gina.tid('avatar-remove').isHidden(), 'nothing to remove yet');
    await gina.tid('avatar-input').setInputFiles({ name: 'me.png', mimeType: 'image/png', buffer: png });
    const loaded = (testid) => p.evaluate((t) => {
      const img = document.querySelector(`[data-testid=${t}]`);
      return !!img && img.complete && img.naturalWidth === 64 && img.src.startsWith('blob:');
    }, testid);
    await waitFor('the picture in the dialog', () => loaded('profile-avatar-image'));
    await waitFor('the picture in the sidebar', () => loaded('me-avatar-image'));
    const me = await rest(server, await gina.token(), 'GET', '/users/me');
    assert.match(me.avatar_url, /^\/api\/v1\/users\/[\w-]+\/avatar/);
    // A file that is not a picture is refused with the server's reason.
    await gina.tid('avatar-input').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not a picture') });
    await waitFor('the refusal', async () => (await gina.tid('account-error').textContent()).startsWith('Could not save the picture'));
    await gina.tid('avatar-remove').click();
    await waitFor('the initial again', async () => (await p.locator('#profile-avatar img').count()) === 0
      && (await p.locator('#me-avatar').textContent()) === 'G');
    assert.equal((await rest(server, await gina.token(), 'GET', '/users/me')).avatar_url, null);
    await gina.tid('account-dialog').locator('[data-close]').last().click();
  });

  await test('24. default rooms: a new account lands in #general; another newcomer\'s message reaches it', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'palaver-web-defaults-'));
    const other = new h.Server({
      bin: h.BIN,
      dataDir,
      logFile: path.join(h.ARTIFACTS, 'server-default-rooms.log'),
      serverEnv: (extra) => h.serverEnv({ ...extra, PALAVER_DEFAULT_ROOMS: 'general' }),
      startTimeoutMs: 20_000,
      stopTimeoutMs: 15_000,
    });
    await other.start(0);
    try {
      const first = await h.newUser('newcomer1');
      const second = await h.newUser('newcomer2');
      ctx.more = [...(ctx.more || []), first, second];
      await first.signUp(other.url);
      await waitFor('the first newcomer in #general', async () => (await first.tid('room-title').textContent()).includes('general'));
      assert.ok(await first.page.locator('#room-view').isVisible(), 'the room is open');
      assert.ok(await first.page.locator('#empty-state').isHidden(), 'not the empty welcome view');
      assert.equal(await first.page.locator('[data-testid=room-item][data-room-name=general]').getAttribute('aria-current'), 'page');
      await second.signUp(other.url);
      await waitFor('the second newcomer in #general', async () => (await second.tid('room-title').textContent()).includes('general'));
      await second.send('Hello, I am new here too');
      await first.waitForMessage('Hello, I am new here too');
      await first.page.context().close();
      await second.page.context().close();
      ctx.more = ctx.more.filter((u) => u !== first && u !== second);
    } finally {
      await other.stop().catch(() => {});
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
}
