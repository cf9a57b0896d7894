// Changes to messages: edit_message, delete_message, add_reaction / remove_reaction and
// mark_message_read, their acks and the events the other member receives
// (docs/socketio.md, "Client events", "Server events").

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Palaver, text, NO_SUCH_ID } from './harness.mjs';

describe('edits, deletions, reactions, read markers', () => {
  let srv, alice, bob, carol, room, a, b, c;
  before(async () => {
    srv = await Palaver.start('changes');
    alice = await srv.user('alice');
    bob = await srv.user('bob');
    carol = await srv.user('carol'); // in another room only
    room = await srv.roomWith(alice, bob);
    await srv.createRoom(carol);
    a = await srv.sio(alice);
    b = await srv.sio(bob);
    c = await srv.sio(carol);
  });
  after(async () => {
    await srv?.close();
  });

  /** Alice sends a message; Bob has received it. */
  async function aliceSays(content = text('msg')) {
    const { message } = await a.ok('send_message', { roomId: room.id, content });
    await b.waitFor('new_message', (x) => x.id === message.id);
    return message;
  }

  it('edit_message: ack {ok, message} and message_edited to the other member, changeSeq the next change', async () => {
    const m = await aliceSays();
    const content = text('edited');
    const res = await a.ok('edit_message', { messageId: m.id, content, roomId: room.id });
    assert.equal(res.message.id, m.id);
    assert.equal(res.message.content, content);
    assert.ok(res.message.editedAt, `editedAt is set: ${JSON.stringify(res.message)}`);
    const ev = await b.waitFor('message_edited', (x) => x.id === m.id);
    assert.equal(ev._id, m.id);
    assert.equal(ev.content, content);
    assert.equal(ev.roomId, room.id);
    assert.equal(ev.seq, m.seq, "the message's position does not change");
    assert.equal(ev.changeSeq, m.seq + 1, 'the edit is the next change of the room');
    assert.ok(ev.editedAt);
  });

  it('edit_message without roomId finds the room', async () => {
    const m = await aliceSays();
    const content = text('edited-noroom');
    await a.ok('edit_message', { messageId: m.id, content });
    await b.waitFor('message_edited', (x) => x.id === m.id && x.content === content);
  });

  it("edit_message of someone else's message: ok:false forbidden, and nothing changes", async () => {
    const m = await aliceSays();
    const res = await b.ack('edit_message', { messageId: m.id, content: 'hijacked', roomId: room.id });
    assert.equal(res.ok, false, JSON.stringify(res));
    assert.equal(res.error.code, 'forbidden');
    await a.none('message_edited', (x) => x.id === m.id);
  });

  it('a message of a room one is not in is not_found, as an unknown one', async () => {
    const m = await aliceSays();
    for (const [event, payload] of [
      ['edit_message', { messageId: m.id, content: 'x' }],
      ['delete_message', m.id],
      ['add_reaction', { messageId: m.id, emoji: '👍' }],
      ['mark_message_read', m.id],
    ]) {
      const res = await c.ack(event, payload);
      assert.equal(res.ok, false, `${event}: ${JSON.stringify(res)}`);
      assert.equal(res.error.code, 'not_found', `${event}: ${JSON.stringify(res)}`);
    }
    const res = await a.ack('edit_message', { messageId: NO_SUCH_ID, content: 'x' });
    assert.equal(res.ok, false);
    assert.equal(res.error.code, 'not_found');
  });

  it('delete_message with a bare messageId: tombstone ack and message_deleted (isDeleted, empty content, messageId)', async () => {
    const m = await aliceSays();
    const res = await a.ok('delete_message', m.id);
    assert.equal(res.message.id, m.id);
    assert.equal(res.message.isDeleted, true);
    const ev = await b.waitFor('message_deleted', (x) => x.messageId === m.id || x.id === m.id);
    assert.equal(ev.isDeleted, true);
    assert.equal(ev.content, '');
    assert.equal(ev.messageId, m.id);
    assert.equal(ev.roomId, room.id);
    assert.ok(ev.deletedAt);
    assert.equal(ev.changeSeq, m.seq + 1);
  });

  it('delete_message with {messageId, roomId} works too', async () => {
    const m = await aliceSays();
    await a.ok('delete_message', { messageId: m.id, roomId: room.id });
    const ev = await b.waitFor('message_deleted', (x) => x.messageId === m.id);
    assert.equal(ev.isDeleted, true);
  });

  it('add_reaction / remove_reaction: reaction_added / reaction_removed {roomId, messageId, emoji, userId, changeSeq}', async () => {
    const m = await aliceSays();
    const added = await b.ok('add_reaction', { messageId: m.id, emoji: '👍', roomId: room.id });
    assert.deepEqual(
      added.message.reactions.map((r) => [r.emoji, r.userId]),
      [['👍', bob.id]],
      `the ack's message has the reaction: ${JSON.stringify(added.message.reactions)}`,
    );
    const ev = await a.waitFor('reaction_added', (x) => x.messageId === m.id);
    assert.deepEqual(
      { roomId: ev.roomId, messageId: ev.messageId, emoji: ev.emoji, userId: ev.userId, changeSeq: ev.changeSeq },
      { roomId: room.id, messageId: m.id, emoji: '👍', userId: bob.id, changeSeq: m.seq + 1 },
    );

    await b.ok('remove_reaction', { messageId: m.id, emoji: '👍' });
    const gone = await a.waitFor('reaction_removed', (x) => x.messageId === m.id);
    assert.deepEqual(
      { roomId: gone.roomId, messageId: gone.messageId, emoji: gone.emoji, userId: gone.userId, changeSeq: gone.changeSeq },
      { roomId: room.id, messageId: m.id, emoji: '👍', userId: bob.id, changeSeq: m.seq + 2 },
    );
  });

  it('add_reaction with something that is not one emoji: validation_failed', async () => {
    const m = await aliceSays();
    const res = await b.ack('add_reaction', { messageId: m.id, emoji: 'not an emoji' });
    assert.equal(res.ok, false);
    assert.equal(res.error.code, 'validation_failed');
  });

  it('mark_message_read with a bare messageId: ack {read: {roomId, lastReadSeq, unreadCount}}, message_read {roomId, userId, seq} to the other member', async () => {
    const m = await aliceSays();
    const res = await b.ok('mark_message_read', m.id);
    assert.equal(res.read.roomId, room.id);
    assert.equal(res.read.lastReadSeq, m.seq);
    assert.equal(res.read.unreadCount, 0);
    const ev = await a.waitFor('message_read', (x) => x.userId === bob.id && x.seq === m.seq);
    assert.equal(ev.roomId, room.id);
  });

  it('mark_message_read with {messageId, roomId} works too', async () => {
    const m = await aliceSays();
    await b.ok('mark_message_read', { messageId: m.id, roomId: room.id });
    await a.waitFor('message_read', (x) => x.userId === bob.id && x.seq === m.seq);
  });

  it('a change made over REST reaches the Socket.IO sockets (message_edited)', async () => {
    const m = await aliceSays();
    const content = text('rest-edit');
    await srv.edit(alice, room.id, m.id, content);
    const ev = await b.waitFor('message_edited', (x) => x.id === m.id && x.content === content);
    assert.equal(ev.changeSeq, m.seq + 1);
  });
});
