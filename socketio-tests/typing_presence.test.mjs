// Typing indicators and presence (docs/socketio.md: user_typing / user_stop_typing,
// set_status, user_status_changed).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Palaver, sleep, QUIET_MS } from './harness.mjs';

describe('typing', () => {
  let srv;
  before(async () => {
    srv = await Palaver.start('typing');
  });
  after(async () => {
    await srv?.close();
  });

  it("user_typing reaches the other member as {roomId, userId}, never the typist's own sockets; user_stop_typing likewise", async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    const carol = await srv.user('carol'); // not in the room
    const room = await srv.roomWith(alice, bob);
    const a1 = await srv.sio(alice, {}, 'alice-1');
    const a2 = await srv.sio(alice, { transports: ['websocket'] }, 'alice-2');
    const b = await srv.sio(bob);
    const c = await srv.sio(carol);

    // Unused payload fields (seed 004 sends username) are ignored.
    await a1.ok('user_typing', { roomId: room.id, username: alice.username });
    const t = await b.waitFor('user_typing', (x) => x.roomId === room.id);
    assert.equal(t.userId, alice.id);
    if (t.expiresInMs !== undefined) assert.equal(typeof t.expiresInMs, 'number');
    await a1.none('user_typing');
    await a2.none('user_typing', () => true, { ms: 0 });
    await c.none('user_typing', () => true, { ms: 0 });

    await a1.ok('user_stop_typing', { roomId: room.id });
    const s = await b.waitFor('user_stop_typing', (x) => x.roomId === room.id);
    assert.equal(s.userId, alice.id);
    await a1.none('user_stop_typing');
    await a2.none('user_stop_typing', () => true, { ms: 0 });
    await c.none('user_stop_typing', () => true, { ms: 0 });
    // Typing is not a message.
    assert.equal(b.inbox.all('new_message').length, 0);
  });

  it('typing without an ack works too, and both directions', async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    const room = await srv.roomWith(alice, bob);
    const a = await srv.sio(alice);
    const b = await srv.sio(bob);
    b.emit('user_typing', { roomId: room.id });
    assert.equal((await a.waitFor('user_typing', (x) => x.roomId === room.id)).userId, bob.id);
    a.emit('user_typing', { roomId: room.id });
    assert.equal((await b.waitFor('user_typing', (x) => x.roomId === room.id)).userId, alice.id);
    await sleep(QUIET_MS);
    assert.equal(a.inbox.all('user_typing', (x) => x.userId === alice.id).length, 0);
    assert.equal(b.inbox.all('user_typing', (x) => x.userId === bob.id).length, 0);
    await a.none('error', () => true, { ms: 0 });
    await b.none('error', () => true, { ms: 0 });
  });

  it('typing in a room one is not in: not_member', async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    const room = await srv.createRoom(alice);
    const b = await srv.sio(bob);
    const res = await b.ack('user_typing', { roomId: room.id });
    assert.equal(res.ok, false);
    assert.equal(res.error.code, 'not_member');
  });
});

describe('presence', () => {
  let srv;
  before(async () => {
    srv = await Palaver.start('presence');
  });
  after(async () => {
    await srv?.close();
  });

  it('a user sharing a room sees the other come online, change status and go offline; strangers see nothing', async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    const dave = await srv.user('dave'); // shares no room with Bob
    await srv.roomWith(alice, bob);
    await srv.createRoom(dave);
    const a = await srv.sio(alice);
    const d = await srv.sio(dave);

    // Bob's first connection: online.
    const b = await srv.sio(bob);
    const online = await a.waitFor('user_status_changed', (x) => x.userId === bob.id && x.status === 'online');
    assert.ok('customStatus' in online, `customStatus is present: ${JSON.stringify(online)}`);
    assert.ok('lastSeen' in online, `lastSeen is present: ${JSON.stringify(online)}`);

    // set_status away with a custom status.
    const res = await b.ok('set_status', { status: 'away', customStatus: 'out to lunch' });
    assert.ok('status' in res, JSON.stringify(res));
    const away = await a.waitFor('user_status_changed', (x) => x.userId === bob.id && x.status === 'away');
    assert.equal(away.customStatus, 'out to lunch');

    // Never to the user themself, never to strangers.
    await b.none('user_status_changed', (x) => x.userId === bob.id);
    await d.none('user_status_changed', (x) => x.userId === bob.id, { ms: 0 });

    // Bob's last connection closes: offline, with lastSeen.
    b.close();
    const off = await a.waitFor('user_status_changed', (x) => x.userId === bob.id && x.status === 'offline');
    assert.ok(off.lastSeen, `lastSeen is set when going offline: ${JSON.stringify(off)}`);
  });

  it('set_status offline shows the user as offline (invisible); an unknown status is validation_failed', async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    await srv.roomWith(alice, bob);
    const a = await srv.sio(alice);
    const b = await srv.sio(bob);
    await a.waitFor('user_status_changed', (x) => x.userId === bob.id && x.status === 'online');
    await b.ok('set_status', { status: 'dnd' });
    await a.waitFor('user_status_changed', (x) => x.userId === bob.id && x.status === 'dnd');
    await b.ok('set_status', { status: 'offline' });
    await a.waitFor('user_status_changed', (x) => x.userId === bob.id && x.status === 'offline');
    const bad = await b.ack('set_status', { status: 'sleeping' });
    assert.equal(bad.ok, false);
    assert.equal(bad.error.code, 'validation_failed');
  });

  it("a second user connecting after the first: the first sees the second's online status", async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    await srv.roomWith(bob, alice);
    const a = await srv.sio(alice, { transports: ['websocket'] });
    const from = a.mark();
    await srv.sio(bob, { transports: ['websocket'] });
    const ev = await a.waitFor('user_status_changed', (x) => x.userId === bob.id, { from });
    assert.equal(ev.status, 'online');
  });
});
