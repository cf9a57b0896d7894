// Browser tests of the web client's everyday features, run by run.mjs after its own tests
// on the same server and users: the server's limits, Markdown, themes, the phone layout,
// keyboard navigation, the emoji picker. Each test asserts what the page does, polling
// (waitFor) for whatever arrives asynchronously.

import assert from 'node:assert/strict';
import path from 'node:path';

/**
 * The tests. `h` carries run.mjs's harness: test, ctx (alice, bob: signed-in users in
 * the room "general"), server, browser, newUser, waitFor, rest, ARTIFACTS and the
 * configured limits (`limits`).
 */
export async function clientTests(h) {
  const { test, ctx, server, waitFor, rest, limits } = h;

  await test('9. the client takes its limits from GET /api/v1/server', async () => {
    const { alice } = ctx;
    const p = alice.page;
    const info = await (await fetch(`${server.url}/api/v1/server`)).json();
    assert.equal(info.limits.message_max_chars, limits.messageMaxChars, 'the suite configured the server');
    await alice.openRoom('general');
    assert.equal(await alice.tid('composer-input').getAttribute('maxlength'), String(limits.messageMaxChars));
    assert.equal(await p.locator('#signup-form [name=password]').getAttribute('minlength'), String(info.limits.password_min_chars));
    // Typing stops at the limit (maxlength); text put there otherwise (a script, an
    // extension) is refused on the page with the server's number, and nothing is sent.
    const before = (await alice.bodies()).length;
    await alice.tid('composer-input').evaluate((el, n) => { el.value = 'x'.repeat(n); }, limits.messageMaxChars + 1);
    await alice.tid('composer-input').press('Enter');
    await waitFor('the length toast', async () =>
      (await alice.tid('toasts').textContent()).includes(`at most ${limits.messageMaxChars} characters`));
    assert.equal(await p.getByTestId('pending-message').count(), 0);
    assert.equal((await alice.bodies()).length, before);
    await alice.tid('composer-input').fill('');
    // A file over the upload limit is refused before it is sent.
    await alice.tid('file-input').setInputFiles({ name: 'big.txt', mimeType: 'text/plain', buffer: Buffer.alloc(limits.uploadMaxBytes + 1, 97) });
    await waitFor('the size toast', async () => (await alice.tid('toasts').textContent()).includes('big.txt is too large'));
    assert.ok(await alice.tid('attach-bar').isHidden(), 'the file is not attached');
    // A type the server does not take, likewise.
    await alice.tid('file-input').setInputFiles({ name: 'page.html', mimeType: 'text/html', buffer: Buffer.from('<p>hi</p>') });
    await waitFor('the type toast', async () => (await alice.tid('toasts').textContent()).includes('does not take text/html'));
    assert.ok(await alice.tid('attach-bar').isHidden());
  });

  await test('10. Markdown: bold, italics, code, blocks, safe links; hostile input stays text', async () => {
    const { alice, bob } = ctx;
    // The renderer itself, case by case (the module the page uses).
    const cases = await bob.page.evaluate(async () => {
      const { renderMarkdown } = await import('/js/markdown.js');
      const attrs = new Set();
      const html = (s) => {
        const div = document.createElement('div');
        div.append(renderMarkdown(s));
        for (const e of div.querySelectorAll('*')) for (const a of e.attributes) attrs.add(a.name);
        return div.innerHTML;
      };
      const inputs = [
        '**bold** and *it* and _it2_',
        'snake_case_name and 2*3*4',
        'a `co*de*` b ``x ` y``',
        'before\n```js\nlet x = "<b>";\n```\nafter',
        '```\nunterminated fence',
        '**unterminated bold',
        '*nested **bold** inside*',
        '[site](https://example.com/a?b=1&c=2) and https://example.org/x.',
        '[bad](javascript:alert(1)) [data](data:text/html,hi) javascript:alert(2)',
        'mail me: mailto:someone@example.com',
        '<script>window.__pwned = 1</script>',
        '<img src=x onerror="window.__pwned = 2">',
        '[**bold link**](https://example.com)',
        '[x](https://a.example/"onmouseover="alert(1))',
      ];
      return { cases: inputs.map((s) => [s, html(s)]), attrs: [...attrs].sort() };
    });
    const out = Object.fromEntries(cases.cases);
    assert.deepEqual(cases.attrs, ['href', 'rel', 'target', 'title'], 'links carry only these attributes');
    assert.equal(out['**bold** and *it* and _it2_'], '<strong>bold</strong> and <em>it</em> and <em>it2</em>');
    assert.equal(out['snake_case_name and 2*3*4'], 'snake_case_name and 2<em>3</em>4');
    assert.equal(out['a `co*de*` b ``x ` y``'], 'a <code>co*de*</code> b <code>x ` y</code>');
    assert.equal(out['before\n```js\nlet x = "<b>";\n```\nafter'], 'before<pre><code>let x = "&lt;b&gt;";</code></pre>after');
    assert.equal(out['```\nunterminated fence'], '```\nunterminated fence');
    assert.equal(out['**unterminated bold'], '**unterminated bold');
    assert.equal(out['*nested **bold** inside*'], '<em>nested <strong>bold</strong> inside</em>');
    assert.equal(out['[site](https://example.com/a?b=1&c=2) and https://example.org/x.'],
      '<a href="https://example.com/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer" title="https://example.com/a?b=1&amp;c=2">site</a>'
      + ' and <a href="https://example.org/x" target="_blank" rel="noopener noreferrer" title="https://example.org/x">https://example.org/x</a>.');
    assert.equal(out['[bad](javascript:alert(1)) [data](data:text/html,hi) javascript:alert(2)'],
      '[bad](javascript:alert(1)) [data](data:text/html,hi) javascript:alert(2)');
    assert.match(out['mail me: mailto:someone@example.com'], /^mail me: <a href="mailto:someone@example.com" target="_blank" rel="noopener noreferrer"/);
    assert.equal(out['<script>window.__pwned = 1</script>'], '&lt;script&gt;window.__pwned = 1&lt;/script&gt;');
    assert.equal(out['<img src=x onerror="window.__pwned = 2">'], '&lt;img src=x onerror="window.__pwned = 2"&gt;');
    assert.match(out['[**bold link**](https://example.com)'], /^<a href="https:\/\/example.com\/"[^>]*><strong>bold link<\/strong><\/a>$/);
    assert.match(out['[x](https://a.example/"onmouseover="alert(1))'], /^\[x\]\(<a href="https:\/\/a.example\/"[^>]*>https:\/\/a.example\/<\/a>"onmouseover="alert\(1\)\)$/);

    // Live, between two pages: formatting shows up, hostile text stays text.
    await alice.openRoom('general');
    await bob.openRoom('general');
    const hostile = [
      '**Release** notes: *soon*, see [the plan](https://example.com/plan) or `make docs`',
      '<img src=x onerror="window.__pwned = 1"><script>window.__pwned = 2</script>',
      '[click me](javascript:window.__pwned=3) **unterminated *markers _here',
    ];
    for (const text of hostile) await alice.send(text);
    const last = bob.page.locator('[data-testid=message]', { hasText: 'click me' });
    await last.waitFor();
    const first = bob.page.locator('[data-testid=message]', { hasText: 'Release' }).getByTestId('message-body');
    assert.equal(await first.locator('strong').textContent(), 'Release');
    assert.equal(await first.locator('em').textContent(), 'soon');
    assert.equal(await first.locator('code').textContent(), 'make docs');
    const a = first.locator('a');
    assert.equal(await a.getAttribute('href'), 'https://example.com/plan');
    assert.equal(await a.getAttribute('target'), '_blank');
    assert.equal(await a.getAttribute('rel'), 'noopener noreferrer');
    const report = await bob.page.evaluate(() => {
      const bodies = [...document.querySelectorAll('[data-testid=message-body]')];
      return {
        pwned: window.__pwned,
        tags: [...new Set(bodies.flatMap((b) => [...b.querySelectorAll('*')].map((e) => e.tagName)))],
        hrefs: bodies.flatMap((b) => [...b.querySelectorAll('a')].map((e) => e.href)),
        handlers: bodies.flatMap((b) => [...b.querySelectorAll('*')].flatMap((e) => [...e.attributes].map((x) => x.name).filter((n) => n.startsWith('on')))),
      };
    });
    assert.equal(report.pwned, undefined, 'no injected script ran');
    for (const tag of report.tags) assert.ok(['STRONG', 'EM', 'CODE', 'PRE', 'A'].includes(tag), `unexpected element ${tag} in a message body`);
    for (const href of report.hrefs) assert.match(href, /^(https?:|mailto:)/);
    assert.deepEqual(report.handlers, []);
    assert.ok((await bob.bodies()).includes('<img src=x onerror="window.__pwned = 1"><script>window.__pwned = 2</script>'), 'shown as typed');
    assert.ok((await bob.bodies()).includes('[click me](javascript:window.__pwned=3) **unterminated *markers _here'), 'shown as typed');
  });

  await test('11. light and dark themes: the system by default, a saved manual choice', async () => {
    const { alice } = ctx;
    const p = alice.page;
    const bg = () => p.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await p.emulateMedia({ colorScheme: 'light' });
    assert.equal(await alice.tid('theme-select').inputValue(), 'system');
    const light = await bg();
    await p.emulateMedia({ colorScheme: 'dark' });
    await waitFor('the dark background from the system', async () => (await bg()) !== light);
    const dark = await bg();
    // Manual choice: light while the system is dark; kept across a reload.
    await alice.tid('theme-select').selectOption('light');
    await waitFor('the light background by choice', async () => (await bg()) === light);
    assert.equal(await p.evaluate(() => localStorage.getItem('palaver.theme')), 'light');
    await p.reload();
    await alice.waitOnline();
    assert.equal(await bg(), light, 'the choice survives a reload');
    assert.equal(await alice.tid('theme-select').inputValue(), 'light');
    await alice.tid('theme-select').selectOption('dark');
    await p.emulateMedia({ colorScheme: 'light' });
    await waitFor('dark by choice on a light system', async () => (await bg()) === dark);
    await alice.tid('theme-select').selectOption('system');
    await waitFor('back to the system (light)', async () => (await bg()) === light);
    assert.equal(await p.evaluate(() => localStorage.getItem('palaver.theme')), null);
    await p.screenshot({ path: path.join(h.ARTIFACTS, 'light.png') });
  });

  await test('12. phone size (390x844): the rooms list is a drawer, nothing scrolls sideways', async () => {
    const phone = await h.newUser('alice', { width: 390, height: 844 });
    ctx.more = [...(ctx.more || []), phone];
    const p = phone.page;
    const noSideScroll = () => p.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth
      && document.body.scrollWidth <= window.innerWidth);
    await p.goto(server.url);
    await phone.tid('login-form').waitFor();
    assert.ok(await noSideScroll(), 'the sign-in page fits');
    await phone.tid('login-username').fill('alice');
    await phone.tid('login-password').fill(h.PASSWORD);
    await phone.tid('login-submit').click();
    // The connection status is in the (closed) drawer: read it rather than look at it.
    await waitFor('the phone page online', async () => (await phone.tid('conn-status').getAttribute('data-state')) === 'online');
    const sidebarShown = () => p.evaluate(() => {
      const r = document.querySelector('#sidebar').getBoundingClientRect();
      return getComputedStyle(document.querySelector('#sidebar')).visibility === 'visible' && r.right > 10;
    });
    assert.equal(await sidebarShown(), false, 'the drawer starts closed');
    await phone.tid('drawer-toggle').click();
    await waitFor('the drawer to open', sidebarShown);
    assert.equal(await phone.tid('drawer-toggle').getAttribute('aria-expanded'), 'true');
    await p.locator('[data-testid=room-item][data-room-name=general]').click();
    await waitFor('general to open', async () => (await phone.tid('room-title').textContent()).includes('general'));
    await waitFor('the drawer to close', async () => !(await sidebarShown()));
    await phone.waitForMessage('Did you read this?');
    assert.ok(await noSideScroll(), 'the room view fits');
    // Escape closes the drawer too.
    await phone.tid('drawer-toggle').click();
    await waitFor('the drawer to open again', sidebarShown);
    assert.ok(await noSideScroll(), 'the open drawer fits');
    await p.keyboard.press('Escape');
    await waitFor('Escape to close the drawer', async () => !(await sidebarShown()));
    await p.screenshot({ path: path.join(h.ARTIFACTS, 'phone.png') });
    ctx.phone = phone;
  });

  await test('13. keyboard: Alt+ArrowUp/Down between rooms, arrows through messages, Escape, focus rings', async () => {
    const { alice } = ctx;
    const p = alice.page;
    await alice.openRoom('general');
    const names = await p.$$eval('#sidebar [data-testid=room-item]', (els) => els.map((e) => e.dataset.roomName));
    const at = names.indexOf('general');
    assert.ok(at >= 0 && names.length >= 3, `rooms: ${names}`);
    await alice.tid('composer-input').focus();
    await p.keyboard.press('Alt+ArrowDown');
    await waitFor(`${names[at + 1]} to open`, async () => (await alice.tid('room-title').textContent()).includes(names[at + 1]));
    await p.keyboard.press('Alt+ArrowUp');
    await waitFor('general again', async () => (await alice.tid('room-title').textContent()).includes('general'));
    // The message list: ArrowUp from the list focuses the newest message, then older ones.
    await alice.tid('messages').focus();
    await p.keyboard.press('ArrowUp');
    const focused = () => p.evaluate(() => {
      const el = document.activeElement;
      return el?.matches('#message-list > li') ? { seq: Number(el.dataset.seq || 0), ring: getComputedStyle(el).outlineStyle, index: [...el.parentElement.children].indexOf(el), count: el.parentElement.children.length } : null;
    });
    const last = await waitFor('a focused message', focused);
    assert.equal(last.index, last.count - 1, 'the newest message first');
    assert.notEqual(last.ring, 'none', 'a visible focus ring');
    await p.keyboard.press('ArrowUp');
    assert.equal((await focused()).index, last.count - 2);
    await p.keyboard.press('ArrowDown');
    assert.equal((await focused()).index, last.count - 1);
    await p.keyboard.press('Home');
    assert.equal((await focused()).index, 0);
    await p.keyboard.press('Escape');
    assert.equal(await p.evaluate(() => document.activeElement?.id), 'composer-input', 'Escape goes back to the message box');
    // Escape closes a dialog.
    await alice.tid('new-room').click();
    await waitFor('the dialog', () => p.evaluate(() => document.querySelector('#new-room-dialog').open));
    await p.keyboard.press('Escape');
    await waitFor('Escape to close it', () => p.evaluate(() => !document.querySelector('#new-room-dialog').open));
    // Focus rings on controls reached with Tab.
    await alice.tid('composer-input').focus();
    await p.keyboard.press('Shift+Tab');
    const ring = await p.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(ring, 'none', 'the focused control shows a ring');
  });

  await test('14. emoji picker: any emoji, searchable by name, from the keyboard', async () => {
    const { alice, bob } = ctx;
    await alice.openRoom('general');
    await bob.openRoom('general');
    await alice.send('Pizza tonight?');
    await bob.waitForMessage('Pizza tonight?');
    const msg = bob.page.locator('[data-testid=message]', { hasText: 'Pizza tonight?' });
    await msg.hover();
    await msg.getByTestId('react-more').click();
    await bob.tid('emoji-picker').waitFor();
    await waitFor('the full list', async () => (await bob.page.getByTestId('emoji-option').count()) > 100);
    await bob.tid('emoji-search').fill('pizza');
    await waitFor('the pizza', async () => (await bob.page.getByTestId('emoji-option').first().getAttribute('data-emoji')) === '🍕');
    await bob.tid('emoji-search').fill('thumbs up');
    await waitFor('thumbs up', async () => (await bob.page.$$eval('[data-testid=emoji-option]', (els) => els.map((e) => e.dataset.emoji))).includes('👍'));
    await bob.tid('emoji-search').fill('zzqx no such emoji');
    await waitFor('no match', async () => (await bob.tid('emoji-status').textContent()) === 'No emoji matches.');
    // Keyboard only: search, ArrowDown into the grid, ArrowRight, Enter.
    await bob.tid('emoji-search').fill('cat face');
    await waitFor('cat faces', async () => (await bob.page.getByTestId('emoji-option').count()) >= 2);
    const second = await bob.page.getByTestId('emoji-option').nth(1).getAttribute('data-emoji');
    await bob.tid('emoji-search').press('ArrowDown');
    await bob.page.keyboard.press('ArrowRight');
    assert.equal(await bob.page.evaluate(() => document.activeElement.dataset.emoji), second);
    await bob.page.keyboard.press('Enter');
    await bob.tid('emoji-picker').waitFor({ state: 'hidden' });
    const reaction = (u) => u.page.locator('[data-testid=message]', { hasText: 'Pizza tonight?' }).getByTestId('reaction');
    await waitFor(`${second} on Alice's page`, async () => (await reaction(alice).textContent({ timeout: 200 })).includes(second));
    // The picked emoji is now a quick reaction; Escape closes the picker without reacting.
    await msg.hover();
    assert.equal(await msg.getByTestId('react').first().textContent(), second);
    await msg.getByTestId('react-more').click();
    await bob.tid('emoji-picker').waitFor();
    await bob.page.keyboard.press('Escape');
    await bob.tid('emoji-picker').waitFor({ state: 'hidden' });
    assert.equal(await reaction(bob).count(), 1);
  });

  await test('15. room settings: topic, roles, kick, ban, leave, delete', async () => {
    const { alice, bob } = ctx;
    const generalId = await h.roomIdOf(alice, 'general');
    // Two more members, over REST.
    const dave = await h.register('dave');
    const mallory = await h.register('mallory');
    for (const u of [dave, mallory]) await rest(server, u.token, 'POST', `/rooms/${generalId}/join`);
    await alice.openRoom('general');
    await bob.openRoom('general');
    // A member sees the settings read-only: no save, no member actions.
    await bob.tid('room-settings-button').click();
    await bob.tid('room-settings').waitFor();
    assert.ok(await bob.tid('room-settings-name').isDisabled());
    assert.ok(await bob.tid('room-settings-save').isHidden());
    assert.ok(await bob.tid('room-delete').isHidden());
    await waitFor('the members on Bob\'s page', async () => (await bob.page.getByTestId('room-member').count()) >= 4);
    assert.equal(await bob.page.getByTestId('member-kick').count(), 0);
    await bob.page.keyboard.press('Escape');

    // The owner: a new topic, live on Bob's page.
    await alice.tid('room-settings-button').click();
    await alice.tid('room-settings-topic').fill('Plans, lunch and releases');
    await alice.tid('room-settings-save').click();
    await waitFor('the topic on Bob\'s page', async () => (await bob.page.locator('#room-topic').textContent()) === 'Plans, lunch and releases');
    const row = (u, name) => u.page.locator(`[data-testid=room-member][data-username=${name}]`);
    // Bob becomes an admin of the room.
    await row(alice, 'bob').getByTestId('member-role-select').selectOption('admin');
    await waitFor('Bob\'s role to read Admin', async () => (await row(alice, 'bob').getAttribute('data-role')) === 'admin');
    const members = await rest(server, await alice.token(), 'GET', `/rooms/${generalId}/members`);
    assert.equal(members.members.find((m) => m.username === 'bob').role, 'admin');
    // Kick Dave, ban Mallory (confirmations accepted).
    alice.page.once('dialog', (d) => d.accept());
    await row(alice, 'dave').getByTestId('member-kick').click();
    await row(alice, 'dave').waitFor({ state: 'detached' });
    alice.page.once('dialog', (d) => d.accept());
    await row(alice, 'mallory').getByTestId('member-ban').click();
    await row(alice, 'mallory').waitFor({ state: 'detached' });
    const after = (await rest(server, await alice.token(), 'GET', `/rooms/${generalId}/members`)).members.map((m) => m.username);
    assert.ok(!after.includes('dave') && !after.includes('mallory'), `${after}`);
    await rest(server, dave.token, 'POST', `/rooms/${generalId}/join`); // a kick is not a ban
    await assert.rejects(rest(server, mallory.token, 'POST', `/rooms/${generalId}/join`), /403/, 'the ban holds');
    await alice.page.keyboard.press('Escape');

    // Leave and delete from the dialog: Bob leaves a room of Alice's, Alice deletes it.
    const doomed = await rest(server, await alice.token(), 'POST', '/rooms', { name: 'doomed', visibility: 'public' });
    await rest(server, await bob.token(), 'POST', `/rooms/${doomed.id}/join`);
    await bob.openRoom('doomed');
    await bob.tid('room-settings-button').click();
    bob.page.once('dialog', (d) => d.accept());
    await bob.tid('room-settings-leave').click();
    await waitFor('doomed to leave Bob\'s sidebar', async () => (await bob.page.locator('[data-testid=room-item][data-room-name=doomed]').count()) === 0);
    await alice.openRoom('doomed');
    await alice.tid('room-settings-button').click();
    alice.page.once('dialog', (d) => d.accept());
    await alice.tid('room-delete').click();
    await waitFor('doomed to leave Alice\'s sidebar', async () => (await alice.page.locator('[data-testid=room-item][data-room-name=doomed]').count()) === 0);
    await assert.rejects(rest(server, await alice.token(), 'GET', `/rooms/${doomed.id}`), /404/);
    ctx.dave = dave;
  });

  await test('16. account: profile, status, password, API keys, deleting the account', async () => {
    const { alice, bob } = ctx;
    // Profile and status (Alice); Bob sees her status in their DM.
    await alice.tid('account-button').click();
    await alice.tid('account-dialog').waitFor();
    await alice.tid('profile-display-name').fill('Alice Liddell');
    await alice.tid('profile-bio').fill('Curiouser and curiouser.');
    await alice.tid('profile-save').click();
    await waitFor('the profile saved', async () => {
      const me = await rest(server, await alice.token(), 'GET', '/users/me');
      return me.display_name === 'Alice Liddell' && me.bio === 'Curiouser and curiouser.';
    });
    await alice.tid('status-select').selectOption('away');
    await alice.tid('status-text').fill('at lunch');
    await alice.tid('status-save').click();
    const dot = bob.page.locator('[data-testid=room-item][data-room-name=alice] [data-testid=presence-dot]');
    await waitFor('Bob to see Alice away', async () => (await dot.getAttribute('data-status')) === 'away');
    const presence = await rest(server, await bob.token(), 'GET', `/users/${(await rest(server, await alice.token(), 'GET', '/users/me')).id}/presence`);
    assert.equal(presence.status_text, 'at lunch');
    await alice.tid('status-select').selectOption('online');
    await alice.tid('status-text').fill('');
    await alice.tid('status-save').click();
    await waitFor('Bob to see Alice online', async () => (await dot.getAttribute('data-status')) === 'online');
    await alice.page.keyboard.press('Escape');

    // Frank: password, API keys, then deletes the account.
    const frank = await h.newUser('frank');
    ctx.more = [...(ctx.more || []), frank];
    await frank.signUp(server.url);
    await frank.tid('account-button').click();
    await frank.tid('password-current').fill(h.PASSWORD);
    await frank.tid('password-new').fill('a brand new passphrase');
    await frank.tid('password-save').click();
    await waitFor('the new password to work', async () => (await fetch(`${server.url}/api/v1/auth/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login: 'frank', password: 'a brand new passphrase' }),
    })).status === 200);
    await frank.tid('key-name').fill('deploy bot');
    await frank.tid('key-create').click();
    const key = (await waitFor('the new key', async () => (await frank.tid('key-value').textContent()).trim())).trim();
    assert.match(key, /^plv_/);
    await frank.page.locator('[data-testid=api-key][data-key-name="deploy bot"]').waitFor();
    const asKey = () => fetch(`${server.url}/api/v1/users/me`, { headers: { authorization: `Bearer ${key}` } }).then((r) => r.status);
    assert.equal(await asKey(), 200, 'the key works');
    frank.page.once('dialog', (d) => d.accept());
    await frank.page.locator('[data-testid=api-key][data-key-name="deploy bot"]').getByTestId('api-key-revoke').click();
    await frank.page.locator('[data-testid=api-key][data-key-name="deploy bot"]').waitFor({ state: 'detached' });
    assert.equal(await asKey(), 401, 'the revoked key is refused');
    await frank.tid('delete-account-password').fill('a brand new passphrase');
    frank.page.once('dialog', (d) => d.accept());
    await frank.tid('delete-account').click();
    await frank.tid('login-form').waitFor();
    const gone = await fetch(`${server.url}/api/v1/auth/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login: 'frank', password: 'a brand new passphrase' }),
    });
    assert.equal(gone.status, 401, 'the deleted account cannot log in');
  });

  await test('17. administration: only for staff; search, role, disable and enable', async () => {
    const { alice, bob } = ctx;
    assert.ok(await alice.tid('admin-button').isHidden(), 'no admin UI for a user');
    await h.palaverAdmin(['set-role', 'alice', 'admin']);
    await alice.page.reload();
    await alice.waitOnline();
    await alice.tid('admin-button').click();
    await alice.tid('admin-dialog').waitFor();
    assert.ok(await bob.tid('admin-button').isHidden());
    await alice.tid('admin-search').fill('dav');
    const dave = alice.page.locator('[data-testid=admin-user][data-username=dave]');
    await waitFor('the search to narrow the list to Dave', async () =>
      (await alice.page.getByTestId('admin-user').count()) === 1 && (await dave.count()) === 1);
    await dave.getByTestId('admin-disable').click();
    await waitFor('Dave disabled', async () => (await dave.getAttribute('data-disabled')) === 'true');
    const login = () => fetch(`${server.url}/api/v1/auth/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login: 'dave', password: h.PASSWORD }),
    }).then((r) => r.status);
    assert.equal(await login(), 403, 'a disabled account cannot log in');
    await dave.getByTestId('admin-enable').click();
    await waitFor('Dave enabled', async () => (await dave.getAttribute('data-disabled')) === 'false');
    assert.equal(await login(), 200);
    // Bob becomes a moderator: the page shows him the reports, not the accounts.
    await alice.tid('admin-search').fill('bob');
    const bobRow = alice.page.locator('[data-testid=admin-user][data-username=bob]');
    await bobRow.getByTestId('admin-role').selectOption('moderator');
    await waitFor('Bob a moderator', async () => (await rest(server, await alice.token(), 'GET', '/admin/users?q=bob')).users[0].role === 'moderator');
    await alice.page.keyboard.press('Escape');
    await bob.page.reload();
    await bob.waitOnline();
    await bob.tid('admin-button').click();
    await bob.tid('report-list').waitFor();
    assert.ok(await bob.page.locator('#admin-users').isHidden(), 'accounts are for admins');
    await bob.page.keyboard.press('Escape');
  });

  await test('18. calls: the incoming call rings (WebAudio); screen sharing replaces the camera without renegotiating', async () => {
    const { alice, bob } = ctx;
    await alice.openRoom('general');
    await bob.openRoom('general');
    const ring = (u) => u.page.evaluate(() => window.__palaver.ringing());
    assert.equal((await ring(bob)).on, false);
    await alice.tid('call-video').click();
    await bob.tid('incoming-call').waitFor();
    await waitFor('the ring to sound on Bob\'s page', async () => {
      const r = await ring(bob);
      return r.on && r.level > 0.01;
    });
    await bob.tid('incoming-accept').click();
    assert.equal((await ring(bob)).on, false, 'answering stops the ring');
    // The fake camera is 640x480 (4:3), the fake screen 1280x720 (16:9). On a busy machine
    // WebRTC may scale a track down (CPU or bandwidth adaptation), never changing its
    // aspect: the frames Bob receives are told apart by their shape.
    const remoteSize = (u) => u.page.evaluate(() => {
      const v = document.querySelector('[data-testid=remote-tile] video');
      if (!v || !v.videoWidth || !v.videoHeight) return '';
      const ratio = v.videoWidth / v.videoHeight;
      if (Math.abs(ratio - 4 / 3) < 0.05) return 'camera';
      if (Math.abs(ratio - 16 / 9) < 0.05) return 'screen';
      return `${v.videoWidth}x${v.videoHeight}`;
    });
    await waitFor('the camera on Bob\'s page', async () => (await remoteSize(bob)) === 'camera', { timeout: 20_000 });
    const offer = () => alice.page.evaluate(() => window.__palaver.peerConnections()[0].localDescription.sdp);
    const sdpBefore = await offer();
    const sentLabel = () => alice.page.evaluate(() => window.__palaver.peerConnections()[0].getSenders()
      .find((s) => s.track?.kind === 'video')?.track.label || '');
    // Share: Bob receives the screen's frames (16:9) on the same track.
    await alice.tid('call-share').click();
    await waitFor('the shared screen on Bob\'s page', async () => (await remoteSize(bob)) === 'screen', { timeout: 20_000 });
    assert.match(await sentLabel(), /^screen/);
    assert.equal(await alice.tid('call-share').getAttribute('aria-pressed'), 'true');
    assert.equal(await offer(), sdpBefore, 'no renegotiation');
    // Stop: the camera again.
    await alice.tid('call-share').click();
    await waitFor('the camera back on Bob\'s page', async () => (await remoteSize(bob)) === 'camera', { timeout: 20_000 });
    assert.doesNotMatch(await sentLabel(), /^screen/);
    assert.equal(await alice.tid('call-share').getAttribute('aria-pressed'), 'false');
    await alice.tid('call-hangup').click();
    for (const u of [alice, bob]) await u.tid('call-view').waitFor({ state: 'hidden' });
  });
}
