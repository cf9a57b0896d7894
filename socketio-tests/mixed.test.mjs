// One room, two protocols: a native WebSocket client (/api/v1/ws, docs/protocol.md) and
// a Socket.IO client exchange messages, changes and typing both ways (docs/socketio.md:
// "it receives what native WebSocket clients in the same rooms send, and the other way
// round").

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Palaver, text } from './harness.mjs';

describe('native WebSocket and Socket.IO in one room', () => {
  let srv, alice, bob, room, n, s;
  before(async () => {
    srv = await Palaver.start('mixed');
    alice = await srv.user('alice'); // native WebSocket
    bob = await srv.user('bob'); // Socket.IO
    room = await srv.roomWith(alice, bob);
    n = await srv.ws(alice);
    s = await srv.sio(bob);
  });
  after(async () => {
    await srv?.close();
  });

  it('Socket.IO -> native: message.created with the same id and seq', async () => {
    const content = text('from-sio');
    const { message } = await s.ok('send_message', { roomId: room.id, content, clientId: 'mixed-1' });
    const frame = await n.waitFor('message.created', (f) => f.data.content === content);
    assert.equal(frame.data.id, message.id);
    assert.equal(frame.data.room_id, room.id);
    assert.equal(frame.data.sender.id, bob.id);
    assert.equal(frame.data.client_id, 'mixed-1');
    assert.equal(frame.data.seq, message.seq);
    assert.equal(frame.seq, message.seq);
  });

  it('native -> Socket.IO: new_message with the same id and changeSeq = the frame seq', async () => {
    const content = text('from-native');
    const reply = await n.ok('message.send', { room_id: room.id, content });
    const nativeFrame = await n.waitFor('message.created', (f) => f.data.id === reply.id);
    const m = await s.waitFor('new_message', (x) => x.content === content);
    assert.equal(m.id, reply.id);
    assert.equal(m._id, reply.id);
    assert.equal(m.senderId, alice.id);
    assert.equal(m.senderName, alice.username);
    assert.equal(m.roomId, room.id);
    assert.equal(m.seq, reply.seq);
    assert.equal(m.changeSeq, nativeFrame.seq);
  });

  it('a conversation both ways keeps one order on both sides', async () => {
    const fromN = n.mark();
    const fromS = s.mark();
    const contents = [];
    for (let i = 0; i < 3; i++) {
      const c1 = text(`n${i}`);
      contents.push(c1);
      await n.ok('message.send', { room_id: room.id, content: c1 });
      const c2 = text(`s${i}`);
      contents.push(c2);
      await s.ok('send_message', { roomId: room.id, content: c2 });
    }
    const onN = await n.inbox.waitForCount('message.created', 6, (f) => contents.includes(f.data.content), { from: fromN });
    const onS = await s.inbox.waitForCount('new_message', 6, (m) => contents.includes(m.content), { from: fromS });
    assert.deepEqual(onN.map((f) => f.data.content), contents);
    assert.deepEqual(onS.map((m) => m.content), contents);
    assert.deepEqual(onS.map((m) => m.changeSeq), onN.map((f) => f.seq));
  });

  it('changes cross over: a Socket.IO reaction and edit reach the native client, a native edit and delete reach Socket.IO', async () => {
    const reply = await n.ok('message.send', { room_id: room.id, content: text('react-to-me') });
    await s.waitFor('new_message', (m) => m.id === reply.id);
    await s.ok('add_reaction', { messageId: reply.id, emoji: '👍' });
    const r = await n.waitFor('reaction.added', (f) => f.data.message_id === reply.id);
    assert.equal(r.data.user_id, bob.id);
    assert.equal(r.data.emoji, '👍');

    const mine = await s.ok('send_message', { roomId: room.id, content: text('typo') });
    await s.ok('edit_message', { messageId: mine.message.id, content: 'fixed' });
    const upd = await n.waitFor('message.updated', (f) => f.data.id === mine.message.id);
    assert.equal(upd.data.content, 'fixed');

    await n.ok('message.edit', { room_id: room.id, message_id: reply.id, content: 'native edit' });
    const edited = await s.waitFor('message_edited', (m) => m.id === reply.id);
    assert.equal(edited.content, 'native edit');
    const del = await n.ok('message.delete', { room_id: room.id, message_id: reply.id });
    const deleted = await s.waitFor('message_deleted', (m) => m.messageId === reply.id);
    assert.equal(deleted.isDeleted, true);
    assert.equal(deleted.changeSeq, (await n.waitFor('message.deleted', (f) => f.data.id === del.id)).seq);
  });

  it('typing crosses over, never back to the typist', async () => {
    await n.ok('typing', { room_id: room.id, active: true });
    const t = await s.waitFor('user_typing', (x) => x.roomId === room.id);
    assert.equal(t.userId, alice.id);
    await s.ok('user_typing', { roomId: room.id });
    const f = await n.waitFor('typing', (x) => x.data.user_id === bob.id);
    assert.equal(f.data.room_id, room.id);
    assert.equal(f.data.active, true);
    await s.ok('user_stop_typing', { roomId: room.id });
    await n.waitFor('typing', (x) => x.data.user_id === bob.id && x.data.active === false);
    await n.none('typing', (x) => x.data.user_id === alice.id);
    await s.none('user_typing', (x) => x.userId === bob.id, { ms: 0 });
  });

  it('read markers cross over: mark_message_read -> receipt.updated', async () => {
    const reply = await n.ok('message.send', { room_id: room.id, content: text('read me') });
    await s.waitFor('new_message', (m) => m.id === reply.id);
    await s.ok('mark_message_read', reply.id);
    const rec = await n.waitFor('receipt.updated', (f) => f.data.user_id === bob.id && f.data.seq === reply.seq);
    assert.equal(rec.data.room_id, room.id);
  });
});
