// Typing -> UserTyping(channelId, userId, isTyping) to the room's other members; presence:
// UserConnected / UserDisconnected with UserPresenceUpdate to users sharing a room,
// SetStatus (the spec's "/hubs/chat": Typing, SetStatus and the client events).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Palaver, text } from './harness.mjs';

/** Presence may be announced after a grace period: wait generously. */
const PRESENCE_MS = 45_000;

describe('typing', () => {
  let srv, alice, bob, carol, room, a, b, c;
  before(async () => {
    srv = await Palaver.start('typing');
    alice = await srv.user('alice');
    bob = await srv.user('bob');
    carol = await srv.user('carol'); // shares no room with them
    room = await srv.roomWith(alice, bob);
    a = await srv.signalr(alice);
    b = await srv.signalr(bob);
    c = await srv.signalr(carol);
  });
  after(async () => {
    await srv?.close();
  });

  it('Typing(channelId, true/false) -> UserTyping(channelId, userId, isTyping) at the other member, never the typist or a stranger', async () => {
    const fromA = a.mark();
    const fromC = c.mark();
    const results = [await a.invoke('Typing', room.id, true)];
    const [ch, uid, on] = await b.waitFor('UserTyping', ([x, u]) => x === room.id && u === alice.id);
    assert.equal(ch, room.id);
    assert.equal(uid, alice.id);
    assert.equal(on, true);
    results.push(await a.invoke('Typing', room.id, false));
    await b.waitFor('UserTyping', ([x, u, t]) => x === room.id && u === alice.id && t === false);
    // The other way round, as a positive control for Alice's inbox.
    await b.invoke('Typing', room.id, true);
    await a.waitFor('UserTyping', ([x, u, t]) => x === room.id && u === bob.id && t === true, { from: fromA });
    await a.none('UserTyping', ([, u]) => u === alice.id, { from: fromA });
    await c.none('UserTyping', () => true, { from: fromC, ms: 0 });
    await b.invoke('Typing', room.id, false);
    assert.deepEqual(results, [null, null], 'Typing completes with a null result');
  });

  it('Typing in a room you are not a member of is not_member; a wrong type bad_request', async () => {
    assert.match(await c.invokeError('Typing', room.id, true), /not_member/);
    assert.match(await a.invokeError('Typing', room.id, 'yes'), /bad_request/);
  });

  it('sending a message after typing works, and typing is never stored', async () => {
    await a.invoke('Typing', room.id, true);
    const m = await a.invoke('SendMessage', room.id, text('typed'));
    await b.waitFor('ReceiveMessage', ([, x]) => x.id === m.id);
    const { messages } = await srv.rest('GET', `/rooms/${room.id}/messages`, alice.token);
    assert.deepEqual(messages.map((x) => x.id), [m.id], 'only the message is in the history');
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

  it('a room-mate connecting: UserConnected and UserPresenceUpdate online; disconnecting: UserDisconnected and offline', async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    const carol = await srv.user('carol'); // shares no room with bob
    await srv.roomWith(alice, bob);
    await srv.roomWith(alice, carol);
    const a = await srv.signalr(alice);
    const c = await srv.signalr(carol);

    const fromA = a.mark();
    const b = await srv.signalr(bob);
    const [who] = await a.waitFor('UserConnected', ([u]) => u === bob.id, { from: fromA, timeout: PRESENCE_MS });
    assert.equal(who, bob.id);
    await a.waitFor('UserPresenceUpdate', ([u, s]) => u === bob.id && s === 'online', { from: fromA, timeout: PRESENCE_MS });
    const onlineAt = a.mark();

    await b.close();
    await a.waitFor('UserDisconnected', ([u]) => u === bob.id, { from: onlineAt, timeout: PRESENCE_MS });
    await a.waitFor('UserPresenceUpdate', ([u, s]) => u === bob.id && s === 'offline', { from: onlineAt, timeout: PRESENCE_MS });

    // Bob's presence never reaches carol, who shares no room with him.
    await c.none('UserConnected', ([u]) => u === bob.id, { ms: 0 });
    await c.none('UserDisconnected', ([u]) => u === bob.id, { ms: 0 });
    await c.none('UserPresenceUpdate', ([u]) => u === bob.id, { ms: 0 });
    // Alice hears of herself from nobody.
    await a.none('UserConnected', ([u]) => u === alice.id, { ms: 0 });
  });

  it('a user is offline only when the last connection closes', async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    const room = await srv.roomWith(alice, bob);
    const a = await srv.signalr(alice);
    const from = a.mark();
    const b1 = await srv.signalr(bob, { label: 'bob-1' });
    await a.waitFor('UserPresenceUpdate', ([u, s]) => u === bob.id && s === 'online', { from, timeout: PRESENCE_MS });
    const b2 = await srv.signalr(await srv.login(bob), { label: 'bob-2' });
    const two = a.mark();
    await b1.close();
    // Bob still has b2: a message from him proves delivery went on, and no offline came.
    const m = await b2.invoke('SendMessage', room.id, text('still here'));
    await a.waitFor('ReceiveMessage', ([, x]) => x.id === m.id);
    await a.none('UserPresenceUpdate', ([u, s]) => u === bob.id && s === 'offline', { from: two, ms: 3000 });
    await a.none('UserDisconnected', ([u]) => u === bob.id, { from: two, ms: 0 });
    await b2.close();
    await a.waitFor('UserPresenceUpdate', ([u, s]) => u === bob.id && s === 'offline', { from: two, timeout: PRESENCE_MS });
    await a.waitFor('UserDisconnected', ([u]) => u === bob.id, { from: two, timeout: PRESENCE_MS });
  });

  it('looped: a device whose start() resolved counts at once, so the other device closing right after never makes the user offline', async () => {
    // The race: a connection answered before it counted as connected would let the
    // other device's close announce the user offline. 15 rounds of connect-then-close.
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    await srv.roomWith(alice, bob);
    const a = await srv.signalr(alice);
    const from = a.mark();
    let current = await srv.signalr(bob, { label: 'bob-0' });
    await a.waitFor('UserPresenceUpdate', ([u, s]) => u === bob.id && s === 'online', { from, timeout: PRESENCE_MS });
    const steady = a.mark();
    for (let round = 1; round <= 15; round++) {
      const next = await srv.signalr(await srv.login(bob), { label: `bob-${round}` });
      await current.close();
      current = next;
    }
    await a.none('UserPresenceUpdate', ([u, s]) => u === bob.id && s === 'offline', { from: steady, ms: 2000 });
    await a.none('UserDisconnected', ([u]) => u === bob.id, { from: steady, ms: 0 });
    await current.close();
  });

  it('SetStatus returns {userId, status} and announces UserPresenceUpdate to room-mates; invisible shows as offline', async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    await srv.roomWith(alice, bob);
    const a = await srv.signalr(alice);
    const b = await srv.signalr(bob);
    await a.waitFor('UserPresenceUpdate', ([u, s]) => u === bob.id && s === 'online', { timeout: PRESENCE_MS });

    let from = a.mark();
    const r = await b.invoke('SetStatus', 'away');
    assert.equal(r.userId, bob.id);
    assert.equal(r.status, 'away');
    await a.waitFor('UserPresenceUpdate', ([u, s]) => u === bob.id && s === 'away', { from, timeout: PRESENCE_MS });

    from = a.mark();
    await b.invoke('SetStatus', 'dnd');
    await a.waitFor('UserPresenceUpdate', ([u, s]) => u === bob.id && s === 'dnd', { from, timeout: PRESENCE_MS });

    from = a.mark();
    await b.invoke('SetStatus', 'invisible');
    await a.waitFor('UserPresenceUpdate', ([u, s]) => u === bob.id && s === 'offline', { from, timeout: PRESENCE_MS });

    from = a.mark();
    await b.invoke('SetStatus', 'online');
    await a.waitFor('UserPresenceUpdate', ([u, s]) => u === bob.id && s === 'online', { from, timeout: PRESENCE_MS });

    assert.match(await b.invokeError('SetStatus', 'asleep'), /validation_failed/);
    // The REST view agrees.
    const p = await srv.rest('GET', `/users/${bob.id}/presence`, alice.token);
    assert.equal(p.status, 'online');
  });
});
