// The README's screenshots of the web client, made by hand (not by CI):
//
//   cargo build -p palaver-server --bin palaver
//   cd web-tests && PALAVER_BIN=../target/debug/palaver node screenshots.mjs
//
// Starts a server of its own (with the default room #general), seeds a conversation over
// REST (Markdown, a mention, a reaction, a reply, a code block, unread rooms, a direct
// message), signs alice in in Chromium and writes docs/screenshot-desktop-light.png,
// -desktop-dark.png (1280x800), -phone-light.png, -phone-dark.png (390x844) and
// screenshot-call.png (a video call with the fake camera). Env: PALAVER_BIN (required),
// CHROMIUM (default /usr/bin/chromium), OUT (default ../docs).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { Server, serverEnv } from '../test-support/common.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const OUT = path.resolve(process.env.OUT || path.join(HERE, '..', 'docs'));
const BIN = process.env.PALAVER_BIN;
const PASSWORD = 'correct horse battery';
if (!BIN) {
  console.error('PALAVER_BIN must name the palaver binary');
  process.exit(2);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'palaver-shots-'));
const server = new Server({
  bin: BIN,
  dataDir,
  logFile: path.join(HERE, 'artifacts', 'server-screenshots.log'),
  serverEnv: (extra) => serverEnv({ ...extra, PALAVER_DEFAULT_ROOMS: 'general' }),
});

async function rest(token, method, p, body) {
  const res = await fetch(`${server.url}/api/v1${p}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = res.status === 204 ? null : await res.json();
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function register(username, displayName) {
  const r = await rest(null, 'POST', '/auth/register', { username, email: `${username}@example.com`, password: PASSWORD });
  if (displayName) await rest(r.access_token, 'PATCH', '/users/me', { display_name: displayName }).catch(() => {});
  return { token: r.access_token, id: r.user.id, username };
}

async function main() {
  await server.start(0);
  console.log(`server at ${server.url}`);
  const alice = await register('alice', 'Alice Martin');
  const bob = await register('bob', 'Bob Okafor');
  const carol = await register('carol', 'Carol Diaz');
  const dan = await register('dan');
  const { rooms } = await rest(alice.token, 'GET', '/rooms');
  const general = rooms.find((r) => r.name === 'general');
  await rest(alice.token, 'PATCH', `/rooms/${general.id}`, { topic: 'Release planning and everything else' });
  const design = await rest(carol.token, 'POST', '/rooms', { name: 'design', visibility: 'public', topic: 'Mockups and reviews' });
  const random = await rest(dan.token, 'POST', '/rooms', { name: 'random', visibility: 'public' });
  for (const u of [alice, bob]) {
    await rest(u.token, 'POST', `/rooms/${design.id}/join`);
    await rest(u.token, 'POST', `/rooms/${random.id}/join`);
  }
  const say = (u, roomId, content, extra = {}) => rest(u.token, 'POST', `/rooms/${roomId}/messages`, { content, ...extra });

  await say(carol, general.id, 'Morning all! The **1.4 release** branch is cut.');
  const plan = await say(bob, general.id, 'Nice. Checklist for today:\n- run the *migration* on staging\n- update the `palaver.toml` docs\n- see [the release notes](https://example.com/notes)');
  await say(alice, general.id, 'I can take the migration. The command is:\n```\npalaver migrate --data-dir /var/lib/palaver\n```', { reply_to: plan.id });
  const q = await say(bob, general.id, '@alice could you also check the TURN settings before we ship?');
  await rest(carol.token, 'PUT', `/rooms/${general.id}/messages/${q.id}/reactions/${encodeURIComponent('👍')}`);
  await rest(alice.token, 'PUT', `/rooms/${general.id}/messages/${q.id}/reactions/${encodeURIComponent('👍')}`);
  await say(dan, general.id, 'Staging is green, by the way 🎉');
  const last = await say(alice, general.id, 'On it. I will post the results here.');
  await rest(bob.token, 'PUT', `/rooms/${general.id}/messages/${last.id}/reactions/${encodeURIComponent('🙏')}`);
  // Unread rooms and a mention elsewhere; a direct message.
  await say(carol, design.id, 'New mockups for the mobile drawer are up.');
  await say(carol, design.id, '@alice what do you think of the dark theme?');
  for (const t of ['Lunch?', 'Tacos it is', 'See you at noon']) await say(dan, random.id, t);
  const dm = await rest(bob.token, 'POST', '/dms', { user_id: alice.id });
  await say(bob, dm.id, 'Got a minute for a quick call later?');
  await rest(alice.token, 'POST', `/rooms/${general.id}/read`, { seq: 1000000 }).catch(() => {});

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--no-sandbox'],
  });
  // Bob online (a presence dot), in his own browser.
  const bobCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const bobPage = await bobCtx.newPage();
  await signIn(bobPage, 'bob', `#/room/${random.id}`);

  const shots = [
    ['desktop-light', { width: 1280, height: 800 }, 'light'],
    ['desktop-dark', { width: 1280, height: 800 }, 'dark'],
    ['phone-light', { width: 390, height: 844 }, 'light'],
    ['phone-dark', { width: 390, height: 844 }, 'dark'],
  ];
  for (const [name, viewport, scheme] of shots) {
    const context = await browser.newContext({ viewport, colorScheme: scheme, deviceScaleFactor: 1 });
    const page = await context.newPage();
    await signIn(page, 'alice', `#/room/${general.id}`);
    await page.locator('[data-testid=conn-status][data-state=online]').waitFor({ state: 'attached' });
    await page.locator('[data-testid=message]', { hasText: 'On it.' }).waitFor();
    await page.locator('[data-testid=room-item][data-room-name=bob] [data-testid=presence-dot][data-status=online]').waitFor({ state: 'attached' });
    await page.locator('[data-testid=mention]').first().waitFor();
    await page.mouse.move(0, 0);
    await page.evaluate(() => document.activeElement?.blur());
    await sleep(300);
    const file = path.join(OUT, `screenshot-${name}.png`);
    await page.screenshot({ path: file });
    console.log(`${file}: ${fs.statSync(file).size} bytes`);
    await context.close();
  }

  // A video call between alice and bob, in #general.
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light', deviceScaleFactor: 1 });
  const page = await context.newPage();
  await signIn(page, 'alice', `#/room/${general.id}`);
  await bobPage.goto(`${server.url}/#/room/${general.id}`);
  await bobPage.locator('[data-testid=conn-status][data-state=online]').waitFor({ state: 'attached' });
  await page.locator('[data-testid=conn-status][data-state=online]').waitFor({ state: 'attached' });
  await page.getByTestId('call-video').click();
  await bobPage.getByTestId('incoming-accept').click();
  await page.waitForFunction(() => {
    const v = document.querySelector('[data-testid=remote-tile] video');
    return v && v.videoWidth > 0 && v.readyState >= 2;
  }, null, { timeout: 20_000 });
  await page.mouse.move(0, 0);
  await sleep(500);
  const file = path.join(OUT, 'screenshot-call.png');
  await page.screenshot({ path: file });
  console.log(`${file}: ${fs.statSync(file).size} bytes`);
  await page.getByTestId('call-hangup').click();
  await browser.close();
}

/** Signs `username` in on `page`, at `hash` (a room; else the page picks one and reads it). */
async function signIn(page, username, hash = '') {
  await page.goto(`${server.url}/${hash}`);
  await page.getByTestId('login-username').fill(username);
  await page.getByTestId('login-password').fill(PASSWORD);
  await page.getByTestId('login-submit').click();
  await page.locator('[data-testid=conn-status][data-state=online]').waitFor({ state: 'attached', timeout: 15_000 });
}

try {
  await main();
} finally {
  await server.stop().catch(() => {});
  fs.rmSync(dataDir, { recursive: true, force: true });
}
