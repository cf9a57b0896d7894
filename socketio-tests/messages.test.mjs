// send_message: acknowledgements, message_sent, idempotent retries, validation, errors
// without an ack, and fan-out to the room's members with seed 004's field names
// (docs/socketio.md, "Acknowledgements and errors", "Client events", "The message object").

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Palaver, text, sleep, QUIET_MS, NO_SUCH_ID } from './harness.mjs';

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

describe('send_message', () => {
  let srv, alice, bob, carol, room, a, b, c;
  before(async () => {
    srv = await Palaver.start('messages');
    alice = await srv.user('alice');
    bob = await srv.user('bob');
    carol = await srv.user('carol'); // not a member of the room
    room = await srv.roomWith(alice, bob);
    a = await srv.sio(alice);
    b = await srv.sio(bob);
    c = await srv.sio(carol);
  });
  after(async () => {
    await srv?.close();
  });

  it('acks {ok: true, message}, emits message_sent to the sender and new_message to every member (seed field names, changeSeq)', async () => {
    const content = text('hello');
    const res = await a.ok('send_message', { roomId: room.id, content, clientId: 'c-first' });
    const m = res.message;
    assert.ok(m, `ack carries message: ${JSON.stringify(res)}`);
    assert.equal(m.content, content);
    assert.equal(m.roomId, room.id);
    assert.equal(m.senderId, alice.id);
    assert.equal(m.clientId, 'c-first');
    assert.equal(m._id, m.id);
    assert.equal(typeof m.seq, 'number');

    const sent = await a.waitFor('message_sent', (x) => x.id === m.id);
    assert.equal(sent.content, content);

    // The other member, with every field of the seed's Message schema that applies.
    const got = await b.waitFor('new_message', (x) => x.content === content);
    assert.equal(got._id, m.id);
    assert.equal(got.id, m.id);
    assert.equal(got.roomId, room.id);
    assert.equal(got.senderId, alice.id);
    assert.equal(got.senderName, alice.username);
    assert.equal(got.content, content);
    assert.match(got.createdAt, ISO);
    assert.equal(got.messageType, 'text');
    assert.equal(got.encrypted, false);
    assert.equal(got.isDeleted, false);
    assert.deepEqual(got.reactions, []);
    assert.equal(got.seq, m.seq);
    assert.equal(got.changeSeq, m.seq, 'a new message is its room change: changeSeq = seq');
    assert.equal(got.clientId, 'c-first');

    // The sender's own socket gets new_message too (io.to(room) semantics); a non-member none.
    await a.waitFor('new_message', (x) => x.id === m.id);
    await c.none('new_message', (x) => x.roomId === room.id);
  });

  it('changeSeq increases by one per message', async () => {
    const from = b.mark();
    const contents = [text('seq1'), text('seq2'), text('seq3')];
    for (const content of contents) await a.ok('send_message', { roomId: room.id, content });
    const got = await b.inbox.waitForCount('new_message', 3, (x) => contents.includes(x.content), { from });
    assert.deepEqual(got.map((x) => x.content), contents, 'in order');
    assert.equal(got[1].changeSeq, got[0].changeSeq + 1);
    assert.equal(got[2].changeSeq, got[1].changeSeq + 1);
  });

  it('a retry with the same clientId answers the same message and delivers nothing new', async () => {
    const content = text('idem');
    const clientId = `c-${Math.random().toString(36).slice(2, 10)}`;
    const first = await a.ok('send_message', { roomId: room.id, content, clientId });
    const second = await a.ok('send_message', { roomId: room.id, content, clientId });
    assert.equal(second.message.id, first.message.id);
    assert.equal(second.message.seq, first.message.seq);
    // Positive control: a later message reaches Bob, so anything before it has too.
    const control = text('control');
    await a.ok('send_message', { roomId: room.id, content: control });
    await b.waitFor('new_message', (x) => x.content === control);
    await sleep(QUIET_MS);
    assert.equal(b.inbox.all('new_message', (x) => x.content === content).length, 1, "Bob's socket saw the message once");
    assert.equal(a.inbox.all('new_message', (x) => x.content === content).length, 1, "Alice's socket saw the message once");
  });

  it('empty content is refused: {ok: false, error: {code: validation_failed}}; nothing is delivered', async () => {
    for (const content of ['', '   ']) {
      const res = await a.ack('send_message', { roomId: room.id, content });
      assert.equal(res.ok, false, JSON.stringify(res));
      assert.equal(res.error.code, 'validation_failed');
      assert.equal(typeof res.error.message, 'string');
      assert.equal(res.error.field, 'content');
    }
  });

  it('encrypted: true is refused (validation_failed, field encrypted); encrypted: false is accepted', async () => {
    const secret = text('secret');
    const res = await a.ack('send_message', { roomId: room.id, content: secret, encrypted: true });
    assert.equal(res.ok, false, JSON.stringify(res));
    assert.equal(res.error.code, 'validation_failed');
    assert.equal(res.error.field, 'encrypted');
    const plain = text('plain');
    const ok = await a.ok('send_message', { roomId: room.id, content: plain, encrypted: false });
    assert.equal(ok.message.encrypted, false);
    await b.waitFor('new_message', (x) => x.content === plain);
    await b.none('new_message', (x) => x.content === secret);
  });

  it('a room the sender is not in: not_member; an unknown room: not_found', async () => {
    const res = await c.ack('send_message', { roomId: room.id, content: 'let me in' });
    assert.equal(res.ok, false);
    assert.equal(res.error.code, 'not_member');
    const unknown = await a.ack('send_message', { roomId: NO_SUCH_ID, content: 'anyone?' });
    assert.equal(unknown.ok, false);
    assert.equal(unknown.error.code, 'not_found');
  });

  it('an event without an ack that fails is answered with an error event {code, message, event}', async () => {
    const from = a.mark();
    a.emit('send_message', { roomId: room.id, content: '' });
    const err = await a.waitFor('error', (e) => e.event === 'send_message', { from });
    assert.equal(err.code, 'validation_failed');
    assert.equal(typeof err.message, 'string');
    assert.equal(err.field, 'content');
  });

  it('an event without an ack that succeeds gets no error event, and is delivered', async () => {
    const from = a.mark();
    const content = text('no-ack');
    a.emit('send_message', { roomId: room.id, content });
    await b.waitFor('new_message', (x) => x.content === content);
    await a.waitFor('message_sent', (x) => x.content === content, { from });
    await a.none('error', () => true, { from });
  });

  it('an unknown event gets an error event', async () => {
    const from = a.mark();
    a.emit('no_such_event', { roomId: room.id });
    const err = await a.waitFor('error', () => true, { from });
    assert.equal(typeof err.code, 'string');
    assert.equal(typeof err.message, 'string');
  });

  it('a message sent over REST reaches the Socket.IO sockets as new_message', async () => {
    const content = text('rest');
    const m = await srv.post(bob, room.id, content);
    const got = await a.waitFor('new_message', (x) => x.content === content);
    assert.equal(got.id, m.id);
    assert.equal(got.senderId, bob.id);
    assert.equal(got.changeSeq, m.seq);
  });

  it('replyTo is kept', async () => {
    const first = await a.ok('send_message', { roomId: room.id, content: text('question') });
    const content = text('answer');
    const res = await b.ok('send_message', { roomId: room.id, content, replyTo: first.message.id });
    const got = await a.waitFor('new_message', (x) => x.content === content);
    const replyTo = got.replyTo?.id ?? got.replyTo?._id ?? got.replyTo;
    assert.equal(replyTo, first.message.id, `replyTo: ${JSON.stringify(got.replyTo)}`);
    assert.ok(res.message.replyTo);
  });
});
