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
}
