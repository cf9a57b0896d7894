// Connecting: credentials in `auth.token` or an Authorization header, refusals with
// `connect_error` naming Palaver's error code, revocation, and the Origin check
// (docs/socketio.md, "Connecting").

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Palaver, userIdOf } from './harness.mjs';

describe('connecting and credentials', () => {
  let srv;
  before(async () => {
    srv = await Palaver.start('auth');
  });
  after(async () => {
    await srv?.close();
  });

  it('a valid access token in auth.token gets ready {user, rooms} with each room and its lastSeq', async () => {
    const alice = await srv.user('alice');
    const room = await srv.createRoom(alice);
    await srv.post(alice, room.id, 'one');
    await srv.post(alice, room.id, 'two');
    const a = await srv.sio(alice);
    const ready = await a.waitFor('ready');
    assert.equal(userIdOf(ready.user), alice.id);
    assert.equal(ready.user.username, alice.username);
    assert.ok(Array.isArray(ready.rooms), `rooms is an array: ${JSON.stringify(ready)}`);
    const r = ready.rooms.find((x) => (x.id ?? x._id) === room.id);
    assert.ok(r, `the user's room is in ready: ${JSON.stringify(ready.rooms)}`);
    assert.equal(r.lastSeq, 2, `lastSeq after two messages: ${JSON.stringify(r)}`);
    assert.equal(a.inbox.all('ready').length, 1, 'ready comes once');
  });

  it('no token: connect_error "unauthorized..."', async () => {
    const c = srv.sioSocket({}, 'no-token');
    const msg = await c.refused();
    assert.match(msg, /^unauthorized/);
    assert.equal(c.socket.connected, false);
  });

  it('a garbage token: connect_error "unauthorized..."', async () => {
    for (const token of ['garbage', 'eyJhbGciOiJIUzI1NiJ9.e30.AAAA', 'plv_nope_nope']) {
      const c = srv.sioSocket({ auth: { token } }, `garbage(${token})`);
      const msg = await c.refused();
      assert.match(msg, /^unauthorized/, `token ${token}`);
    }
  });

  it('websocket-only without a token is refused the same way', async () => {
    const c = srv.sioSocket({ transports: ['websocket'] }, 'no-token-ws');
    assert.match(await c.refused(), /^unauthorized/);
  });

  it('an Authorization: Bearer header works instead of auth.token (polling and websocket)', async () => {
    const bob = await srv.user('bob');
    for (const transports of [['polling', 'websocket'], ['websocket']]) {
      const c = srv.sioSocket({ transports, extraHeaders: { Authorization: `Bearer ${bob.token}` } }, `header(${transports})`);
      const ready = await c.ready();
      assert.equal(userIdOf(ready.user), bob.id);
      c.close();
    }
  });

  it('a plv_ API key works as the token, and revoking it disconnects the socket', async () => {
    const carl = await srv.user('carl');
    const created = await srv.rest('POST', '/users/me/api-keys', carl.token, { name: 'sio bot' });
    assert.match(created.key, /^plv_/);
    const c = await srv.sio({ ...carl, token: created.key }, {}, 'api-key');
    assert.equal(userIdOf(c.inbox.all('ready')[0].user), carl.id);
    await srv.rest('DELETE', `/users/me/api-keys/${created.id}`, carl.token);
    assert.equal(await c.waitFor('$disconnect'), 'io server disconnect');
  });

  it('logout (POST /api/v1/auth/logout) disconnects a connected socket of that session at once; the token is then refused', async () => {
    const dora = await srv.user('dora');
    const polling = await srv.sio(dora, {}, 'dora-default');
    const ws = await srv.sio(dora, { transports: ['websocket'] }, 'dora-ws');
    await srv.logout(dora);
    assert.equal(await polling.waitFor('$disconnect'), 'io server disconnect');
    assert.equal(await ws.waitFor('$disconnect'), 'io server disconnect');
    const again = srv.sioSocket({ auth: { token: dora.token } }, 'dora-again');
    assert.match(await again.refused(), /^unauthorized/);
  });

  it('a disallowed Origin gets connect_error "forbidden..." (websocket and polling)', async () => {
    const eve = await srv.user('eve');
    for (const transports of [['websocket'], ['polling']]) {
      const c = srv.sioSocket(
        { transports, auth: { token: eve.token }, extraHeaders: { Origin: 'https://evil.example' } },
        `evil-origin(${transports})`,
      );
      assert.match(await c.refused(), /^forbidden/, `transports ${transports}`);
    }
  });

  it("the server's own Origin is allowed", async () => {
    const fay = await srv.user('fay');
    for (const transports of [['websocket'], ['polling', 'websocket']]) {
      const c = srv.sioSocket({ transports, auth: { token: fay.token }, extraHeaders: { Origin: srv.url } }, `own-origin(${transports})`);
      assert.equal(userIdOf((await c.ready()).user), fay.id);
      c.close();
    }
  });
});
