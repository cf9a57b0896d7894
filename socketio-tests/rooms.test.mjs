// Rooms: join_room (public channels, message_history), leave_room, user_joined /
// user_left, and receiving a room's events without join_room (docs/socketio.md).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Palaver, text, NO_SUCH_ID } from './harness.mjs';

describe('rooms', () => {
  let srv;
  before(async () => {
    srv = await Palaver.start('rooms');
  });
  after(async () => {
    await srv?.close();
  });

  it('a member receives its rooms without join_room', async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    const r1 = await srv.roomWith(alice, bob);
    const r2 = await srv.roomWith(alice, bob);
    const b = await srv.sio(bob);
    const t1 = text('r1');
    const t2 = text('r2');
    await srv.post(alice, r1.id, t1);
    await srv.post(alice, r2.id, t2);
    assert.equal((await b.waitFor('new_message', (m) => m.content === t1)).roomId, r1.id);
    assert.equal((await b.waitFor('new_message', (m) => m.content === t2)).roomId, r2.id);
  });

  it('join_room on a public channel: ack {room}, message_history (oldest first), user_joined to members, then live messages', async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    const room = await srv.createRoom(alice);
    const sent = [];
    for (let i = 0; i < 3; i++) sent.push(await srv.post(alice, room.id, text(`hist-${i}`)));
    const a = await srv.sio(alice);
    const b = await srv.sio(bob);

    const res = await b.ok('join_room', { roomId: room.id });
    assert.equal(res.room.id ?? res.room._id, room.id, JSON.stringify(res));
    const history = await b.waitFor('message_history');
    assert.ok(Array.isArray(history), JSON.stringify(history));
    assert.deepEqual(history.map((m) => m.id), sent.map((m) => m.id), 'the history, oldest first');
    assert.equal(history[0].roomId, room.id);
    assert.equal(history[0].senderId, alice.id);
    assert.equal(history[0]._id, sent[0].id);

    const joined = await a.waitFor('user_joined', (x) => x.userId === bob.id);
    assert.equal(joined.roomId, room.id);
    assert.equal(joined.username, bob.username);

    const live = text('welcome');
    await a.ok('send_message', { roomId: room.id, content: live });
    await b.waitFor('new_message', (m) => m.content === live);
  });

  it('join_room of a room one is already in: a no-op that still sends message_history', async () => {
    const alice = await srv.user('alice');
    const room = await srv.createRoom(alice);
    const m = await srv.post(alice, room.id, text('only'));
    const a = await srv.sio(alice);
    await a.ok('join_room', { roomId: room.id });
    const history = await a.waitFor('message_history');
    assert.deepEqual(history.map((x) => x.id), [m.id]);
  });

  it('join_room of a private room is forbidden; of an unknown room not_found', async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    const priv = await srv.createRoom(alice, { visibility: 'private' });
    const b = await srv.sio(bob);
    const res = await b.ack('join_room', { roomId: priv.id });
    assert.equal(res.ok, false);
    assert.equal(res.error.code, 'forbidden');
    const unknown = await b.ack('join_room', { roomId: NO_SUCH_ID });
    assert.equal(unknown.ok, false);
    assert.equal(unknown.error.code, 'not_found');
    await b.none('message_history');
  });

  it('leave_room: ack {}, user_left to the others, and the leaver receives nothing more from the room', async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    const room = await srv.roomWith(alice, bob);
    const a = await srv.sio(alice);
    const b = await srv.sio(bob);
    const res = await b.ok('leave_room', { roomId: room.id });
    assert.equal(res.ok, true);
    const left = await a.waitFor('user_left', (x) => x.userId === bob.id);
    assert.equal(left.roomId, room.id);
    assert.equal(left.reason, 'left');
    const after = text('after-leave');
    await a.ok('send_message', { roomId: room.id, content: after });
    await a.waitFor('new_message', (m) => m.content === after); // positive control
    await b.none('new_message', (m) => m.content === after);
    const refused = await b.ack('send_message', { roomId: room.id, content: 'still here?' });
    assert.equal(refused.ok, false);
    assert.equal(refused.error.code, 'not_member');
  });

  it('a room joined over REST while connected: its events arrive on the open socket', async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    const b = await srv.sio(bob);
    const room = await srv.createRoom(alice);
    await srv.join(bob, room.id);
    await b.waitFor('user_joined', (x) => x.userId === bob.id && x.roomId === room.id);
    const t = text('new-room');
    await srv.post(alice, room.id, t);
    await b.waitFor('new_message', (m) => m.content === t);
  });

  it('an invitation to a private room reaches the invitee as invitation_created; accepting it delivers the room', async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    const priv = await srv.createRoom(alice, { visibility: 'private' });
    const b = await srv.sio(bob);
    const inv = await srv.invite(alice, priv.id, bob);
    const ev = await b.waitFor('invitation_created', (x) => x.id === inv.id);
    assert.equal(ev.roomId, priv.id);
    await srv.acceptInvitation(bob, inv.id);
    await b.waitFor('user_joined', (x) => x.userId === bob.id && x.roomId === priv.id);
    const t = text('private');
    await srv.post(alice, priv.id, t);
    await b.waitFor('new_message', (m) => m.content === t);
  });
});
