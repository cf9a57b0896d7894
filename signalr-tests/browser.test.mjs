// The official client's browser bundle (`@microsoft/signalr/dist/browser/signalr.js`, the
// file seed apps load with a <script> tag) in real Chromium (Debian's, never downloaded),
// running the browser snippet of docs/signalr.md: log in with fetch, connect with
// `accessTokenFactory` (browsers send it as the `access_token` query parameter, and keep
// negotiate's cookie themselves), join a room, send, receive; then a server restart with
// `withAutomaticReconnect()`: what was posted meanwhile arrives once each.
//
// Env: CHROMIUM (default /usr/bin/chromium).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import { Palaver, PASSWORD, text, waitUntil } from './harness.mjs';

const require = createRequire(import.meta.url);
const BUNDLE = require.resolve('@microsoft/signalr/dist/browser/signalr.js');

describe('the browser bundle in Chromium', () => {
  let srv, browser, page;
  before(async () => {
    srv = await Palaver.start('browser');
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: ['--no-sandbox'],
    });
    page = await browser.newPage();
    page.on('console', (m) => srv.clientLog.write(`[browser] ${m.type()}: ${m.text()}\n`));
    // A page of the server's origin, as a seed app served from it: a plain response of
    // the server itself (the web client's page has a Content-Security-Policy that forbids
    // adding scripts).
    await page.goto(`${srv.url}/healthz`);
    await page.addScriptTag({ path: BUNDLE });
  });
  after(async () => {
    await browser?.close();
    await srv?.close();
  });

  it("runs docs/signalr.md's snippet: login, connect, JoinChannel, SendMessage, ReceiveMessage both ways, then resumes across a restart", async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    const room = await srv.createRoom(bob, { name: 'browser-room' });
    const b = await srv.signalr(bob, { label: 'bob' });

    // The snippet, as a page would run it.
    const sent = await page.evaluate(
      async ({ username, password, roomId }) => {
        const login = await fetch('/api/v1/auth/login', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ login: username, password }),
        }).then((r) => r.json());
        window.received = [];
        window.connection = new signalR.HubConnectionBuilder()
          .withUrl('/hubs/chat', { accessTokenFactory: () => login.access_token })
          .withAutomaticReconnect([0, 500, 1000, 1000, 2000, 2000, 5000])
          .build();
        window.connection.on('ReceiveMessage', (channelId, m) => {
          window.received.push({ channelId, id: m.id, text: m.text, seq: m.seq });
        });
        await window.connection.start();
        const joined = await window.connection.invoke('JoinChannel', roomId);
        return await window.connection.invoke('SendMessage', joined.id, 'hello from the browser');
      },
      { username: alice.username, password: PASSWORD, roomId: room.id },
    );
    assert.equal(sent.text, 'hello from the browser');
    assert.equal(sent.channelId, room.id);
    assert.ok(sent.seq > 0);

    // Bob (Node client) receives it; the browser receives Bob's.
    await b.waitFor('ReceiveMessage', ([ch, m]) => ch === room.id && m.id === sent.id);
    const fromBob = await b.invoke('SendMessage', room.id, text('hello from node'));
    const inBrowser = async (id) =>
      waitUntil(`message ${id} in the browser`, () =>
        page.evaluate((id) => window.received.filter((m) => m.id === id).length, id),
      );
    await inBrowser(fromBob.id);

    // A restart: the page's automatic reconnect negotiates again with its cookie and
    // resumes; what Bob posts while it is away arrives, once each, in seq order.
    await srv.stop();
    await srv.startAgain();
    const missed = [];
    for (let i = 0; i < 3; i++) missed.push(await srv.post(bob, room.id, text(`while away ${i}`)));
    for (const m of missed) await inBrowser(m.id);
    const got = await page.evaluate(() => window.received);
    const after = got.filter((m) => missed.some((x) => x.id === m.id));
    assert.deepEqual(
      after.map((m) => m.id),
      missed.map((m) => m.id),
      `each missed message once, in order: ${JSON.stringify(got)}`,
    );
    assert.equal(got.filter((m) => m.id === fromBob.id).length, 1, 'nothing received before the restart came again');
    assert.equal(await page.evaluate(() => window.connection.state), 'Connected');
  });
});
