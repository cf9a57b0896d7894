// One room, three protocols: a native WebSocket client (/api/v1/ws, docs/protocol.md), a
// Socket.IO client (docs/socketio.md) and a SignalR client (/hubs/chat) all send, and all
// receive each other's messages, edits, deletes and typing, with the same ids and seqs.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Palaver, text } from './harness.mjs';

describe('native WebSocket, Socket.IO and SignalR in one room', () => {
  let srv, alice, bob, carol, room, n, s, r;
  before(async () => {
    srv = await Palaver.start('mixed');
    alice = await srv.user('alice'); // native WebSocket
    bob = await srv.user('bob'); // Socket.IO
    carol = await srv.user('carol'); // SignalR
    room = await srv.roomWith(alice, bob, carol);
    n = await srv.ws(alice);
    s = await srv.sio(bob);
    r = await srv.signalr(carol);
  });
  after(async () => {
    await srv?.close();
  });

  it('SignalR -> native and Socket.IO: the same message, id and seq', async () => {
    const content = text('from-signalr');
    const m = await r.invoke('SendMessage', room.id, { text: content, clientId: 'mixed-sr-1' });
    const frame = await n.waitFor('message.created', (f) => f.data.id === m.id);
    assert.equal(frame.data.content, content);
    assert.equal(frame.data.room_id, room.id);
    assert.equal(frame.data.sender.id, carol.id);
    assert.equal(frame.data.seq, m.seq);
    assert.equal(frame.data.client_id, 'mixed-sr-1');
    const x = await s.waitFor('new_message', (y) => y.id === m.id);
    assert.equal(x.content, content);
    assert.equal(x.roomId, room.id);
    assert.equal(x.senderId, carol.id);
    assert.equal(x.seq, m.seq);
  });

  it('native -> SignalR: ReceiveMessage with the same id and seq', async () => {
    const content = text('from-native');
    const reply = await n.ok('message.send', { room_id: room.id, content });
    const [ch, m] = await r.waitFor('ReceiveMessage', ([, y]) => y.id === reply.id);
    assert.equal(ch, room.id);
    assert.equal(m.text, content);
    assert.equal(m.senderId, alice.id);
    assert.equal(m.senderName, alice.username);
    assert.equal(m.seq, reply.seq);
  });

  it('Socket.IO -> SignalR: ReceiveMessage with the same id and seq', async () => {
    const content = text('from-sio');
    const { message } = await s.ok('send_message', { roomId: room.id, content });
    const [ch, m] = await r.waitFor('ReceiveMessage', ([, y]) => y.id === message.id);
    assert.equal(ch, room.id);
    assert.equal(m.text, content);
    assert.equal(m.senderId, bob.id);
    assert.equal(m.seq, message.seq);
  });

  it('a conversation of all three keeps one order on every side', async () => {
    const fromN = n.mark();
    const fromS = s.mark();
    const fromR = r.mark();
    const contents = [];
    for (let i = 0; i < 3; i++) {
      const c1 = text(`n${i}`);
      contents.push(c1);
      await n.ok('message.send', { room_id: room.id, content: c1 });
      const c2 = text(`s${i}`);
      contents.push(c2);
      await s.ok('send_message', { roomId: room.id, content: c2 });
      const c3 = text(`r${i}`);
      contents.push(c3);
      await r.invoke('SendMessage', room.id, c3);
    }
    const onN = await n.inbox.waitForCount('message.created', 9, (f) => contents.includes(f.data.content), { from: fromN });
    const onS = await s.inbox.waitForCount('new_message', 9, (m) => contents.includes(m.content), { from: fromS });
    const onR = await r.inbox.waitForCount('ReceiveMessage', 9, ([, m]) => contents.includes(m.text), { from: fromR });
    assert.deepEqual(onN.map((f) => f.data.content), contents);
    assert.deepEqual(onS.map((m) => m.content), contents);
    assert.deepEqual(onR.map(([, m]) => m.text), contents);
    assert.deepEqual(onR.map(([, m]) => m.seq), onN.map((f) => f.data.seq));
  });

  it('edits and deletes cross over: SignalR -> native and Socket.IO, native -> SignalR, Socket.IO -> SignalR', async () => {
    const mine = await r.invoke('SendMessage', room.id, text('typo'));
    await r.invoke('EditMessage', mine.id, 'fixed by signalr');
    const upd = await n.waitFor('message.updated', (f) => f.data.id === mine.id);
    assert.equal(upd.data.content, 'fixed by signalr');
    const edited = await s.waitFor('message_edited', (m) => m.id === mine.id);
    assert.equal(edited.content, 'fixed by signalr');
    await r.invoke('DeleteMessage', mine.id);
    await n.waitFor('message.deleted', (f) => f.data.id === mine.id);
    await s.waitFor('message_deleted', (m) => m.messageId === mine.id);

    const reply = await n.ok('message.send', { room_id: room.id, content: 'native typo' });
    await n.ok('message.edit', { room_id: room.id, message_id: reply.id, content: 'native fixed' });
    const [ch, m] = await r.waitFor('MessageEdited', ([, y]) => y.id === reply.id);
    assert.equal(ch, room.id);
    assert.equal(m.text, 'native fixed');
    await n.ok('message.delete', { room_id: room.id, message_id: reply.id });
    const [ch2, id] = await r.waitFor('MessageDeleted', ([, y]) => y === reply.id);
    assert.equal(ch2, room.id);
    assert.equal(id, reply.id);

    const { message } = await s.ok('send_message', { roomId: room.id, content: 'sio typo' });
    await s.ok('edit_message', { messageId: message.id, content: 'sio fixed' });
    const [, e] = await r.waitFor('MessageEdited', ([, y]) => y.id === message.id);
    assert.equal(e.text, 'sio fixed');
  });

  it('typing crosses over, never back to the typist', async () => {
    const fromR = r.mark();
    await r.invoke('Typing', room.id, true);
    const f = await n.waitFor('typing', (x) => x.data.user_id === carol.id && x.data.active === true);
    assert.equal(f.data.room_id, room.id);
    const t = await s.waitFor('user_typing', (x) => x.userId === carol.id);
    assert.equal(t.roomId, room.id);
    await r.invoke('Typing', room.id, false);
    await n.waitFor('typing', (x) => x.data.user_id === carol.id && x.data.active === false);

    await n.ok('typing', { room_id: room.id, active: true });
    await r.waitFor('UserTyping', ([ch, u, on]) => ch === room.id && u === alice.id && on === true, { from: fromR });
    await s.ok('user_typing', { roomId: room.id });
    await r.waitFor('UserTyping', ([ch, u, on]) => ch === room.id && u === bob.id && on === true, { from: fromR });
    await r.none('UserTyping', ([, u]) => u === carol.id, { from: fromR });
  });
});
