// Browser tests of Palaver's web client, in real Chromium (Debian's, never downloaded).
//
//   PALAVER_BIN=/path/to/palaver node run.mjs
//
// Starts the server itself (`serve --port 0 --data-dir <tmp>`), drives two browser
// contexts as two users, restarts the server in the middle of a conversation, places a
// real WebRTC call between the two pages, and saves screenshots to artifacts/. Then, on
// the same server and users, client.mjs (limits, Markdown, themes, phone layout,
// keyboard, emoji picker, settings, account, admin, ring, screen sharing), features.mjs
// (search, mentions, notifications and Web Push, default rooms) and a11y.mjs
// (axe-core on every main view). Exits non-zero if any test fails. Env: PALAVER_BIN (required), CHROMIUM (default
// /usr/bin/chromium), HEADFUL=1 to watch.

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { Server, totp } from '../test-support/common.mjs';
import { a11yTests } from './a11y.mjs';
import { clientTests } from './client.mjs';
import { featureTests } from './features.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = path.join(HERE, 'artifacts');
const BIN = process.env.PALAVER_BIN;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TOTAL_BUDGET_MS = 360_000;
// ONLY=<regex>: run only the tests whose name matches (for working on them; the others
// may depend on what earlier tests left, so a filtered run is not the suite).
const ONLY = process.env.ONLY ? new RegExp(process.env.ONLY) : null;
const PASSWORD = 'correct horse battery';

if (!BIN) {
  console.error('PALAVER_BIN must name the palaver binary (e.g. target/debug/palaver)');
  process.exit(2);
}
if (!fs.existsSync(BIN)) {
  console.error(`PALAVER_BIN=${BIN}: no such file`);
  process.exit(2);
}
fs.mkdirSync(ARTIFACTS, { recursive: true });

const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s]`, ...a);

// ---------------------------------------------------------------------------------------
// The server

// test-support/common.mjs's Server, with this runner's own environment, timeouts and log.
//
// The server's environment: ours, without this runner's own PALAVER_BIN (the server
// warns about PALAVER_* variables that name no configuration key), and without the
// per-account message limit, because the history test seeds 120 messages over REST in
// a second, far faster than a person types (the limits have tests of their own).
function serverEnv(extra = {}) {
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info' };
  delete env.PALAVER_BIN;
  env.PALAVER_USER_LIMITS__MESSAGES__MAX = '0';
  // No default rooms (#general) unless a test asks: users share only the rooms it makes.
  env.PALAVER_DEFAULT_ROOMS = '';
  // Limits other than the defaults, so a client that hard-coded them would fail
  // (client.mjs reads them back from GET /api/v1/server).
  env.PALAVER_LIMITS__MESSAGE_MAX_CHARS = String(LIMITS.messageMaxChars);
  env.PALAVER_ATTACHMENTS__MAX_BYTES = String(LIMITS.uploadMaxBytes);
  return { ...env, ...extra };
}

const LIMITS = { messageMaxChars: 3000, uploadMaxBytes: 300_000 };

// ---------------------------------------------------------------------------------------
// Helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, { timeout = 10_000, interval = 100 } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(interval);
  }
}

/** A page plus its user, with the selectors the tests use. */
class User {
  constructor(name, page) {
    this.name = name;
    this.page = page;
    this.consoleErrors = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error') this.consoleErrors.push(msg.text());
    });
    page.on('pageerror', (err) => this.consoleErrors.push(`pageerror: ${err.message}`));
  }

  get tid() {
    return (id) => this.page.getByTestId(id);
  }

  async signUp(baseUrl) {
    const p = this.page;
    await p.goto(baseUrl);
    await p.getByTestId('tab-signup').click();
    await p.getByTestId('signup-username').fill(this.name);
    await p.getByTestId('signup-email').fill(`${this.name}@example.com`);
    await p.getByTestId('signup-password').fill(PASSWORD);
    await p.getByTestId('signup-submit').click();
    await this.waitOnline();
    assert.equal(await p.getByTestId('me-name').textContent(), this.name);
  }

  async logIn(baseUrl) {
    const p = this.page;
    await p.goto(baseUrl);
    await p.getByTestId('login-username').fill(this.name);
    await p.getByTestId('login-password').fill(PASSWORD);
    await p.getByTestId('login-submit').click();
    await this.waitOnline();
  }

  async waitOnline(timeout = 15_000) {
    await this.page.locator('[data-testid=conn-status][data-state=online]').waitFor({ timeout });
  }

  /** Creates a public room from the sidebar and waits until it is open. */
  async createRoom(name, topic) {
    await this.tid('new-room').click();
    await this.tid('new-room-name').fill(name);
    if (topic) await this.tid('new-room-topic').fill(topic);
    await this.tid('new-room-submit').click();
    await waitFor(`${this.name}'s new room ${name} to open`, async () => (await this.tid('room-title').textContent()).includes(name));
  }

  /** Joins a public room from the directory and waits until it is open. */
  async joinFromDirectory(name) {
    await this.tid('browse-rooms').click();
    await this.page.locator(`[data-testid=directory-room][data-room-name=${name}] [data-testid=directory-join]`).click();
    await waitFor(`${this.name} in ${name}`, async () => (await this.tid('room-title').textContent()).includes(name));
  }

  async openRoom(name) {
    await this.page.locator(`[data-testid=room-item][data-room-name="${name}"]`).click();
    await waitFor(`${this.name} to open ${name}`, async () => (await this.page.getByTestId('room-title').textContent()).includes(name));
  }

  async send(text) {
    const input = this.page.getByTestId('composer-input');
    await input.fill(text);
    await input.press('Enter');
  }

  /** Texts of the messages in the open room, in order. */
  bodies() {
    return this.page.$$eval('[data-testid=message] [data-testid=message-body]', (els) => els.map((e) => e.textContent));
  }

  async waitForMessage(text, timeout = 10_000) {
    await waitFor(`"${text}" on ${this.name}'s page`, async () => (await this.bodies()).includes(text), { timeout });
  }

  token() {
    return this.page.evaluate(() => JSON.parse(sessionStorage.getItem('palaver.session')).access_token);
  }
}

const stepNow = () => Math.floor(Date.now() / 1000 / 30);

function countOf(list, text) {
  return list.filter((t) => t === text).length;
}

async function rest(server, token, method, p, body) {
  const res = await fetch(`${server.url}/api/v1${p}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = res.status === 204 ? null : await res.json();
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

// ---------------------------------------------------------------------------------------
// The tests

const results = [];
const ctx = {}; // shared between tests: server, browser, users, room ids

async function test(name, fn) {
  if (ONLY && !ONLY.test(name)) return;
  const start = Date.now();
  log(`▶ ${name}`);
  try {
    // Whatever an earlier failure left behind: a call, an open dialog, a ringing card.
    for (const u of [ctx.alice, ctx.bob].filter(Boolean)) {
      if (await u.page.getByTestId('call-view').isVisible()) await u.page.getByTestId('call-hangup').click();
      if (await u.page.getByTestId('incoming-call').isVisible()) await u.page.getByTestId('incoming-decline').click();
      await u.page.keyboard.press('Escape');
    }
    await fn();
    results.push({ name, ok: true, ms: Date.now() - start });
    log(`✔ ${name} (${((Date.now() - start) / 1000).toFixed(1)} s)`);
  } catch (e) {
    results.push({ name, ok: false, ms: Date.now() - start, error: e });
    log(`✘ ${name}\n    ${String(e.stack || e).split('\n').join('\n    ')}`);
    for (const u of [ctx.alice, ctx.bob].filter(Boolean)) {
      const file = path.join(ARTIFACTS, `failure-${name.replace(/\W+/g, '-').slice(0, 40)}-${u.name}.png`);
      await u.page.screenshot({ path: file }).catch(() => {});
      log(`    screenshot of ${u.name}'s page: ${file}`);
      if (u.consoleErrors.length) log(`    ${u.name}'s console errors:\n      ${u.consoleErrors.join('\n      ')}`);
    }
  }
}

async function main() {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'palaver-web-tests-'));
  const server = new Server({
    bin: BIN,
    dataDir,
    logFile: path.join(ARTIFACTS, 'server.log'),
    serverEnv,
    startTimeoutMs: 20_000,
    stopTimeoutMs: 15_000,
    portRetries: 20,
  });
  ctx.server = server;
  await server.start(0);
  log(`server at ${server.url} (data ${dataDir}, log ${server.logFile})`);

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: !process.env.HEADFUL,
    // Fake camera and microphone, the fake screen for getDisplayMedia (1280x720, picked
    // without a prompt by the fake UI), and sound without a prior click (the ring).
    args: ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--no-sandbox',
      '--autoplay-policy=no-user-gesture-required'],
  });
  ctx.browser = browser;
  log(`chromium ${browser.version()}`);
  const newUser = async (name, viewport = { width: 1280, height: 800 }) => {
    const context = await browser.newContext({ viewport });
    context.setDefaultTimeout(10_000);
    return new User(name, await context.newPage());
  };

  try {
    await test('1. two users: sign up, room, live messages both ways, typing, read markers, unread, presence', async () => {
      const alice = (ctx.alice = await newUser('alice'));
      const bob = (ctx.bob = await newUser('bob'));
      await alice.signUp(server.url);
      await bob.signUp(server.url);

      // Alice creates a public room; Bob finds it in the directory and joins.
      await alice.createRoom('general', 'Everything and nothing');
      await bob.joinFromDirectory('general');

      // Messages both ways, live on both pages.
      await alice.send('Hello Bob, welcome to general!');
      await bob.waitForMessage('Hello Bob, welcome to general!');
      await alice.waitForMessage('Hello Bob, welcome to general!');
      await bob.send('Hi Alice! Glad to be here.');
      await alice.waitForMessage('Hi Alice! Glad to be here.');
      await bob.waitForMessage('Hi Alice! Glad to be here.');
      // Screen readers hear new messages from others (a polite live region).
      assert.equal(await alice.tid('announcer').textContent(), 'bob: Hi Alice! Glad to be here.');
      assert.equal(await alice.tid('announcer').getAttribute('aria-live'), 'polite');

      // Typing: Bob types, Alice sees it; sending clears it.
      await bob.tid('composer-input').pressSequentially('How is everyone doing?', { delay: 20 });
      await waitFor("Alice to see Bob's typing indicator", async () => (await alice.tid('typing').textContent()) === 'bob is typing…');
      await bob.tid('composer-input').press('Enter');
      await alice.waitForMessage('How is everyone doing?');
      await waitFor('the typing indicator to clear', async () => (await alice.tid('typing').textContent()) === '');

      // Read markers: Bob has the room open, so he reads Alice's message; Alice sees it.
      await alice.send('Did you read this?');
      await bob.waitForMessage('Did you read this?');
      const seen = alice.page.locator('[data-testid=message]', { hasText: 'Did you read this?' }).getByTestId('seen-by');
      await waitFor('Alice to see that Bob read her message', async () => (await seen.textContent({ timeout: 200 })) === 'Seen by bob');

      // Reactions and replies render on both sides.
      const bobsMsg = alice.page.locator('[data-testid=message]', { hasText: 'Glad to be here' });
      await bobsMsg.hover();
      await bobsMsg.locator('[data-testid=react]').first().click();
      await waitFor('Bob to see the reaction', async () =>
        (await bob.page.locator('[data-testid=message]', { hasText: 'Glad to be here' }).getByTestId('reaction').count()) === 1);
      await bobsMsg.hover();
      await bobsMsg.getByTestId('reply').click();
      await alice.send('Let me show you around.');
      await waitFor('the reply quote on Bob\'s page', async () =>
        (await bob.page.locator('[data-testid=message]', { hasText: 'Let me show you around.' }).getByTestId('reply-quote').textContent({ timeout: 200 })).includes('Glad to be here'));

      // Unread count: Bob looks at a room of his own while Alice writes in general.
      await bob.tid('new-room').click();
      await bob.tid('new-room-name').fill('bobs-corner');
      await bob.tid('new-room-private').check();
      await bob.tid('new-room-submit').click();
      await waitFor('Bob in his room', async () => (await bob.tid('room-title').textContent()).includes('bobs-corner'));
      await alice.send('Lunch at noon?');
      await alice.send('Usual place, my treat.');
      const badge = bob.page.locator('[data-testid=room-item][data-room-name=general] [data-testid=unread-badge]');
      await waitFor('an unread badge of 2 on general', async () => (await badge.textContent({ timeout: 200 })) === '2');
      await bob.openRoom('general');
      await waitFor('the badge to go', async () => (await badge.count()) === 0);
      await bob.waitForMessage('Usual place, my treat.');

      // A DM: presence dot of the other user.
      await alice.tid('new-dm').click();
      await alice.tid('user-search').fill('bo');
      await alice.page.locator('[data-testid=user-result][data-username=bob]').click();
      await waitFor('the DM to open', async () => (await alice.tid('room-title').textContent()).includes('bob'));
      const dot = alice.page.locator('[data-testid=room-item][data-room-name=bob] [data-testid=presence-dot]');
      await waitFor("Bob's presence dot to be online", async () => (await dot.getAttribute('data-status', { timeout: 200 })) === 'online');
      await alice.send('A private word, Bob.');
      await waitFor('the DM to appear on Bob\'s side', async () =>
        (await bob.page.locator('[data-testid=room-item][data-room-name=alice]').count()) === 1);
      const bobDot = bob.page.locator('[data-testid=room-item][data-room-name=alice] [data-testid=presence-dot]');
      await waitFor("Alice's presence dot on Bob's side", async () => (await bobDot.getAttribute('data-status', { timeout: 200 })) === 'online');

      // Log in (not only sign up): Alice on a second device sees her rooms.
      const alice2 = await newUser('alice');
      await alice2.logIn(server.url);
      await alice2.page.locator('[data-testid=room-item][data-room-name=general]').waitFor();
      await alice2.page.close();
      await waitFor("Alice's presence to stay online with one device left", async () => (await bobDot.getAttribute('data-status')) === 'online');

      // Back in general for the screenshot.
      await alice.openRoom('general');
      await alice.page.mouse.move(0, 0);
      await alice.page.waitForTimeout(200);
      await alice.page.screenshot({ path: path.join(ARTIFACTS, 'chat.png') });
    });

    await test('2. history: older pages load on scroll up', async () => {
      const { alice, bob } = ctx;
      const token = await alice.token();
      const room = await rest(server, token, 'POST', '/rooms', { name: 'history', visibility: 'public' });
      await rest(server, await bob.token(), 'POST', `/rooms/${room.id}/join`);
      for (let i = 1; i <= 120; i++) {
        await rest(server, token, 'POST', `/rooms/${room.id}/messages`, { content: `history ${i}` });
      }
      await bob.openRoom('history');
      await bob.waitForMessage('history 120');
      const first = (await bob.bodies()).length;
      assert.ok(first < 120, `the first view should hold one page, not all ${first}`);
      for (let i = 0; i < 10 && (await bob.bodies()).length < 120; i++) {
        await bob.tid('messages').evaluate((el) => { el.scrollTop = 0; });
        await sleep(300);
      }
      const all = await bob.bodies();
      assert.equal(all.length, 120, 'every message once after scrolling up');
      assert.deepEqual(all, Array.from({ length: 120 }, (_, i) => `history ${i + 1}`), 'in order, no gap, no duplicate');
      await waitFor('the beginning of the room', async () => (await bob.tid('history-status').textContent()).startsWith('This is the beginning'));
      await bob.openRoom('general');
      await alice.openRoom('general');
    });

    await test('3. reconnect: the server restarts mid-conversation; nothing lost, nothing twice', async () => {
      const { alice, bob } = ctx;
      await alice.send('Before the restart');
      await bob.waitForMessage('Before the restart');

      // Restart 1: both pages reconnect by themselves; Bob writes while the server is down.
      const port = server.port;
      await server.stop();
      log('server stopped (SIGTERM)');
      await waitFor('both pages to notice', async () =>
        (await alice.page.getAttribute('[data-testid=conn-status]', 'data-state')) !== 'online'
        && (await bob.page.getAttribute('[data-testid=conn-status]', 'data-state')) !== 'online');
      await bob.send('Sent while the server was down');
      await bob.page.locator('[data-testid=pending-message]', { hasText: 'Sent while the server was down' }).waitFor();
      await sleep(500);
      await server.start(port);
      log(`server restarted on port ${server.port}`);
      await alice.waitOnline(20_000);
      await bob.waitOnline(20_000);
      await alice.waitForMessage('Sent while the server was down');
      await bob.waitForMessage('Sent while the server was down');

      // Restart 2: Alice's network goes down too while Bob writes (queued, over REST and
      // live): she must get all of it from the resume, once.
      const generalId = await roomId(alice, 'general');
      const bobToken = await bob.token();
      await server.stop();
      await waitFor('Alice to notice the second stop', async () =>
        (await alice.page.getAttribute('[data-testid=conn-status]', 'data-state')) !== 'online');
      await alice.page.context().setOffline(true);
      log('server stopped again; Alice offline');
      try {
        await bob.send('Queued by Bob during the second restart');
        await server.start(port);
        await bob.waitOnline(20_000);
        await bob.waitForMessage('Queued by Bob during the second restart');
        await rest(server, bobToken, 'POST', `/rooms/${generalId}/messages`, { content: 'Posted over REST while Alice was away' });
        await bob.send('Live while Alice is still away');
        await bob.waitForMessage('Live while Alice is still away');
        assert.notEqual(await alice.page.getAttribute('[data-testid=conn-status]', 'data-state'), 'online', "Alice's page should still be disconnected");
      } finally {
        await alice.page.context().setOffline(false);
      }
      log('Alice back online');
      await alice.waitOnline(20_000);
      await alice.waitForMessage('Live while Alice is still away');
      await alice.send('After the restarts');
      await bob.waitForMessage('After the restarts');
      await sleep(500); // let any late duplicate show up

      const expected = [
        'Before the restart',
        'Sent while the server was down',
        'Queued by Bob during the second restart',
        'Posted over REST while Alice was away',
        'Live while Alice is still away',
        'After the restarts',
      ];
      for (const u of [alice, bob]) {
        const bodies = await u.bodies();
        for (const text of expected) assert.equal(countOf(bodies, text), 1, `${u.name} shows "${text}" ${countOf(bodies, text)} times`);
        const seqs = await u.page.$$eval('[data-testid=message]', (els) => els.map((e) => Number(e.dataset.seq)));
        assert.equal(new Set(seqs).size, seqs.length, `${u.name}: duplicate seqs ${seqs}`);
        assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), `${u.name}: messages out of order`);
        assert.equal(await u.page.getByTestId('pending-message').count(), 0, `${u.name}: a message is still pending`);
      }
      // The page matches the server's history exactly.
      const hist = await rest(server, await alice.token(), 'GET', `/rooms/${await roomId(alice, 'general')}/messages?limit=100`);
      const serverTexts = hist.messages.filter((m) => m.message_type === 'text').map((m) => m.content);
      assert.deepEqual(await alice.bodies(), serverTexts, "Alice's page differs from the server's history");
      assert.deepEqual(await bob.bodies(), serverTexts, "Bob's page differs from the server's history");
    });

    await test('4. a video call: both peers connected with remote media', async () => {
      const { alice, bob } = ctx;
      await alice.openRoom('general');
      await bob.openRoom('general');
      await alice.tid('call-video').click();
      await bob.tid('incoming-call').waitFor({ timeout: 10_000 });
      assert.match(await bob.tid('incoming-call').textContent(), /alice is calling/);
      await bob.tid('incoming-accept').click();

      for (const u of [alice, bob]) {
        await waitFor(`${u.name}'s peer connection to be connected`, () => u.page.evaluate(() => {
          const pcs = window.__palaver.peerConnections();
          return pcs.length === 1 && pcs[0].connectionState === 'connected';
        }), { timeout: 20_000 });
        await waitFor(`${u.name} to receive live audio and video`, () => u.page.evaluate(() => {
          const kinds = window.__palaver.peerConnections()[0].getReceivers()
            .filter((r) => r.track && r.track.readyState === 'live' && !r.track.muted).map((r) => r.track.kind);
          return kinds.includes('audio') && kinds.includes('video');
        }), { timeout: 20_000 });
        await waitFor(`${u.name}'s remote video to play`, () => u.page.evaluate(() => {
          const v = document.querySelector('[data-testid=remote-tile] video');
          return v && v.videoWidth > 0 && v.readyState >= 2;
        }), { timeout: 20_000 });
        assert.equal(await u.page.locator('[data-testid=remote-tile][data-connection-state=connected]').count(), 1);
      }
      await alice.page.mouse.move(0, 0);
      await alice.page.waitForTimeout(300);
      await alice.page.screenshot({ path: path.join(ARTIFACTS, 'call.png') });

      // Alice hangs up; Bob, alone, leaves too; both see the call log.
      await alice.tid('call-hangup').click();
      for (const u of [alice, bob]) {
        await u.tid('call-view').waitFor({ state: 'hidden', timeout: 10_000 });
        await waitFor(`the "ended" call log line on ${u.name}'s page`, async () =>
          (await u.page.locator('[data-testid=call-log][data-call-event=ended]').count()) === 1);
        assert.equal(await u.page.evaluate(() => window.__palaver.peerConnections().length), 0);
      }
    });

    await test('5. edit, delete, attachments, invitations, a declined call', async () => {
      const { alice, bob } = ctx;
      await alice.openRoom('general');
      await bob.openRoom('general');

      // Edit (Alice) and delete (Alice) show up on Bob's page.
      const mine = alice.page.locator('[data-testid=message]', { hasText: 'Let me show you around.' });
      await mine.hover();
      await mine.getByTestId('edit').click();
      await alice.tid('edit-input').fill('Let me show you around!');
      await alice.tid('edit-input').press('Enter');
      await bob.waitForMessage('Let me show you around!');
      assert.equal(await bob.page.locator('[data-testid=message]', { hasText: 'Let me show you around!' }).locator('.msg-edited').count(), 1);
      const doomed = alice.page.locator('[data-testid=message]', { hasText: 'Lunch at noon?' });
      await doomed.hover();
      alice.page.once('dialog', (d) => d.accept());
      await doomed.getByTestId('delete').click();
      await waitFor('the tombstone on Bob\'s page', async () => {
        const bodies = await bob.bodies();
        return !bodies.includes('Lunch at noon?') && bodies.includes('This message was deleted.');
      });

      // Attachments: an image (shown from a blob URL) and a text file (a download link).
      const png = await alice.page.screenshot({ clip: { x: 0, y: 0, width: 120, height: 80 } });
      await alice.tid('file-input').setInputFiles({ name: 'sidebar.png', mimeType: 'image/png', buffer: png });
      await alice.send('A picture of the sidebar');
      const img = bob.page.locator('[data-testid=message]', { hasText: 'A picture of the sidebar' }).getByTestId('attachment-image');
      await waitFor('the image on Bob\'s page', () => img.evaluate((el) => el.complete && el.naturalWidth === 120 && el.src.startsWith('blob:')), { timeout: 10_000 });
      await alice.tid('file-input').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('plain notes\n') });
      await alice.tid('send').click();
      const link = bob.page.locator('[data-testid=attachment-link]', { hasText: 'notes.txt' });
      await link.waitFor();
      const [download] = await Promise.all([bob.page.waitForEvent('download'), link.click()]);
      assert.equal(download.suggestedFilename(), 'notes.txt');
      assert.equal(fs.readFileSync(await download.path(), 'utf8'), 'plain notes\n');

      // Invitations: Bob invites Alice to his private room; she accepts.
      await bob.openRoom('bobs-corner');
      await bob.tid('invite-button').click();
      await bob.tid('user-search').fill('ali');
      await bob.page.locator('[data-testid=user-result][data-username=alice]').click();
      const invitation = alice.page.getByTestId('invitation').filter({ hasText: 'bobs-corner' });
      await invitation.waitFor({ timeout: 10_000 });
      await invitation.getByTestId('invitation-accept').click();
      await waitFor('Alice in bobs-corner', async () => (await alice.tid('room-title').textContent()).includes('bobs-corner'));
      await alice.send('Thanks for the invitation!');
      await bob.waitForMessage('Thanks for the invitation!');

      // A declined audio call in the DM: ringing stops, the caller's call ends, the log says so.
      await alice.openRoom('bob');
      await alice.tid('call-audio').click();
      await bob.tid('incoming-call').waitFor({ timeout: 10_000 });
      await bob.tid('incoming-decline').click();
      await alice.tid('call-view').waitFor({ state: 'hidden', timeout: 10_000 });
      await waitFor('the "declined" line on Alice\'s page', async () =>
        (await alice.page.locator('[data-testid=call-log][data-call-event=declined]').count()) === 1);
      assert.ok(await bob.tid('incoming-call').isHidden());
    });

    await test('6. screenshots saved', async () => {
      for (const name of ['chat.png', 'call.png']) {
        const file = path.join(ARTIFACTS, name);
        assert.ok(fs.existsSync(file), `${file} is missing`);
        const head = fs.readFileSync(file).subarray(0, 8);
        assert.deepEqual([...head], [137, 80, 78, 71, 13, 10, 26, 10], `${file} is not a PNG`);
        log(`screenshot: ${file} (${fs.statSync(file).size} bytes)`);
      }
    });

    await test('7. a new tab of the same browser is signed in by the HttpOnly refresh cookie; scripts see no refresh token', async () => {
      // One browser context = one browser profile: its tabs share cookies.
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      context.setDefaultTimeout(10_000);
      const carol = new User('carol', await context.newPage());
      ctx.tabs = [carol];
      await carol.signUp(server.url);
      const stored = await carol.page.evaluate(() => sessionStorage.getItem('palaver.session'));
      assert.ok(!stored.includes('refresh'), `no refresh token in page storage: ${stored}`);
      assert.equal(await carol.page.evaluate(() => document.cookie), '', 'the refresh cookie is HttpOnly');
      const cookies = await context.cookies();
      const refresh = cookies.find((c) => c.name === 'palaver_refresh');
      assert.ok(refresh, `a refresh cookie: ${JSON.stringify(cookies)}`);
      assert.equal(refresh.httpOnly, true);
      assert.equal(refresh.sameSite, 'Strict');
      assert.equal(refresh.path, '/api/v1/auth/refresh', 'sent to the refresh route only');

      // A second tab: signed in at once, as the same person, live.
      const second = new User('carol', await context.newPage());
      ctx.tabs.push(second);
      await second.page.goto(server.url);
      await second.waitOnline();
      assert.equal(await second.tid('me-name').textContent(), 'carol');
      await carol.createRoom('tabs');
      await second.openRoom('tabs');
      await carol.send('Hello from the first tab');
      await second.waitForMessage('Hello from the first tab');

      // Logging out ends the browser's sign-in: a new tab shows the login form.
      await second.tid('logout').click();
      await second.tid('login-form').waitFor();
      const third = await context.newPage();
      await third.goto(server.url);
      await third.getByTestId('login-form').waitFor();
      await context.close();
    });

    await test('8. two-factor codes: set up in Security (QR code), sign out, sign in again with a code; sessions listed', async () => {
      const erin = (ctx.erin = await newUser('erin'));
      await erin.signUp(server.url);
      const p = erin.page;
      await erin.tid('security').click();
      await waitFor('the two-factor state', async () => (await erin.tid('tf-status').textContent()).startsWith('Off'));
      // Sessions: this device is listed.
      await waitFor('this session listed', async () => (await erin.tid('session-list').textContent()).includes('this device'));
      await erin.tid('tf-password').fill(PASSWORD);
      await erin.tid('tf-begin').click();
      await erin.tid('tf-confirm-form').waitFor();
      // The QR code is the server's SVG, shown as an image that actually rendered.
      await waitFor('the QR code image to load', () => p.evaluate(() => {
        const img = document.querySelector('[data-testid=tf-qr]');
        return img.complete && img.naturalWidth >= 100 && img.src.startsWith('data:image/svg+xml;base64,');
      }));
      const secret = (await erin.tid('tf-secret').textContent()).trim();
      assert.match(secret, /^[A-Z2-7]{32}$/);
      const step = stepNow();
      await erin.tid('tf-confirm-code').fill(totp(secret, step));
      await erin.tid('tf-confirm').click();
      await erin.tid('tf-recovery').waitFor();
      const codes = await erin.page.$$eval('[data-testid=tf-recovery-list] li', (els) => els.map((e) => e.textContent));
      assert.equal(codes.length, 10);
      await waitFor('the state to say on', async () => (await erin.tid('tf-status').textContent()).startsWith('On'));
      await p.keyboard.press('Escape');

      await erin.tid('logout').click();
      await erin.tid('login-form').waitFor();
      await erin.tid('login-username').fill('erin');
      await erin.tid('login-password').fill(PASSWORD);
      await erin.tid('login-submit').click();
      // The password was right: the page asks for the code.
      await erin.tid('login-code').waitFor();
      await waitFor('the code prompt', async () => (await erin.tid('login-error').textContent()).includes('authenticator'));
      await erin.tid('login-code').fill(totp(secret, step + 1));
      await erin.tid('login-submit').click();
      await erin.waitOnline();
      assert.equal(await erin.tid('me-name').textContent(), 'erin');

      // Another sign-in elsewhere shows up in Security, and can be signed out from here.
      const other = await fetch(`${server.url}/api/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'erin-phone' },
        body: JSON.stringify({ login: 'erin', password: PASSWORD, code: codes[0] }),
      });
      assert.equal(other.status, 200, await other.clone().text());
      const phone = await other.json();
      await erin.tid('security').click();
      const phoneRow = p.locator('[data-testid=session]', { hasText: 'erin-phone' });
      await phoneRow.waitFor();
      await phoneRow.getByTestId('session-end').click();
      await phoneRow.waitFor({ state: 'detached' });
      const refused = await fetch(`${server.url}/api/v1/auth/refresh`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ refresh_token: phone.refresh_token }),
      });
      assert.equal(refused.status, 401, 'the signed-out session cannot refresh');
      await p.keyboard.press('Escape');
    });

    // A new account over REST: {token, user}.
    const register = async (name) => {
      const res = await fetch(`${server.url}/api/v1/auth/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: name, email: `${name}@example.com`, password: PASSWORD }),
      });
      const body = await res.json();
      if (!res.ok) throw new Error(`register ${name}: ${res.status} ${JSON.stringify(body)}`);
      return { token: body.access_token, user: body.user };
    };
    // `palaver admin <args>` on the running server's data directory.
    const palaverAdmin = (args) => new Promise((resolve, reject) => {
      execFile(BIN, ['admin', ...args, '--data-dir', dataDir], { env: serverEnv() }, (err, stdout, stderr) =>
        (err ? reject(new Error(`palaver admin ${args.join(' ')}: ${err.message}\n${stderr}`)) : resolve(stdout)));
    });
    const harness = {
      test, ctx, server, browser, newUser, waitFor, rest, log, ARTIFACTS, PASSWORD, limits: LIMITS, User,
      register, palaverAdmin, roomIdOf: roomId, serverEnv, Server, BIN,
    };
    await clientTests(harness);
    await featureTests(harness);
    await a11yTests(harness);

    for (const u of [ctx.alice, ctx.bob, ctx.erin, ...(ctx.tabs || []), ...(ctx.more || [])].filter(Boolean)) {
      // CSP violations and uncaught exceptions show up here.
      const bad = u.consoleErrors.filter((e) => /Content Security Policy|pageerror|Uncaught/i.test(e));
      if (bad.length) {
        results.push({ name: `no CSP violations or uncaught errors on ${u.name}'s page`, ok: false, error: new Error(bad.join('\n')) });
        log(`✘ ${u.name}'s page logged:\n    ${bad.join('\n    ')}`);
      }
    }
  } finally {
    await browser.close().catch(() => {});
    await server.stop().catch(() => {});
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

async function roomId(user, name) {
  const { rooms } = await rest(ctx.server, await user.token(), 'GET', '/rooms');
  return rooms.find((r) => r.name === name).id;
}

const budget = setTimeout(() => {
  console.error(`✘ the suite took longer than ${TOTAL_BUDGET_MS / 1000} s; giving up`);
  ctx.server?.proc?.kill('SIGKILL');
  process.exit(1);
}, TOTAL_BUDGET_MS);
budget.unref();

try {
  await main();
} catch (e) {
  results.push({ name: 'setup', ok: false, error: e });
  console.error(e);
}

const failed = results.filter((r) => !r.ok);
console.log(`\n${results.length - failed.length} passed, ${failed.length} failed, ${((Date.now() - t0) / 1000).toFixed(1)} s total`);
for (const r of failed) console.log(`  ✘ ${r.name}: ${r.error?.message?.split('\n')[0]}`);
console.log(`artifacts: ${ARTIFACTS}/chat.png, ${ARTIFACTS}/call.png, server log ${ARTIFACTS}/server.log`);
process.exit(failed.length ? 1 : 0);
