// /hubs/chat: invocations with results and errors, fire-and-forget sends, ReceiveMessage
// to every member's connections, JoinChannel / LeaveChannel, clientId idempotency, edits,
// deletes, attachments and read markers (the spec's "/hubs/chat").

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Palaver, text, sleep, QUIET_MS, NO_SUCH_ID, ISO } from './harness.mjs';

const MESSAGE_FIELDS = ['id', 'channelId', 'senderId', 'senderName', 'text', 'attachments', 'createdAt', 'editedAt', 'seq', 'clientId', 'replyTo'];

describe('/hubs/chat', () => {
  let srv, alice, bob, carol, room, a, b, c;
  before(async () => {
    srv = await Palaver.start('chat');
    alice = await srv.user('alice');
    bob = await srv.user('bob');
    carol = await srv.user('carol'); // a member of no room of theirs
    room = await srv.roomWith(alice, bob);
    a = await srv.signalr(alice);
    b = await srv.signalr(bob);
    c = await srv.signalr(carol);
  });
  after(async () => {
    await srv?.close();
  });

  it('SendMessage returns the message object with the documented fields', async () => {
    const content = text('hello');
    const m = await a.invoke('SendMessage', room.id, content);
    for (const f of MESSAGE_FIELDS) assert.ok(f in m, `message has ${f}: ${JSON.stringify(m)}`);
    assert.equal(typeof m.id, 'string');
    assert.equal(m.channelId, room.id);
    assert.equal(m.senderId, alice.id);
    assert.equal(m.senderName, alice.username);
    assert.equal(m.text, content);
    assert.deepEqual(m.attachments, []);
    assert.match(m.createdAt, ISO);
    assert.equal(m.editedAt, null);
    assert.equal(typeof m.seq, 'number');
    assert.equal(m.clientId, null);
    assert.equal(m.replyTo, null);
    // The same message is what REST stores.
    const { messages } = await srv.rest('GET', `/rooms/${room.id}/messages?limit=5`, alice.token);
    const stored = messages.find((x) => x.id === m.id);
    assert.ok(stored, 'stored');
    assert.equal(stored.seq, m.seq);
    assert.equal(stored.content, content);
  });

  it('the payload may be an object {text, clientId, replyTo}', async () => {
    const first = await a.invoke('SendMessage', room.id, text('first'));
    const content = text('a reply');
    const m = await a.invoke('SendMessage', room.id, { text: content, clientId: 'obj-1', replyTo: first.id });
    assert.equal(m.text, content);
    assert.equal(m.clientId, 'obj-1');
    assert.ok(m.replyTo === first.id || m.replyTo?.id === first.id, `replyTo names the first message: ${JSON.stringify(m.replyTo)}`);
  });

  it('ReceiveMessage(channelId, message) reaches every member, the sender included, and no one else', async () => {
    const fromC = c.mark();
    const content = text('to the room');
    const m = await a.invoke('SendMessage', room.id, content);
    const [ch, got] = await b.waitFor('ReceiveMessage', ([, x]) => x.id === m.id);
    assert.equal(ch, room.id);
    assert.deepEqual(got, m, 'the pushed message is the returned one');
    await a.waitFor('ReceiveMessage', ([, x]) => x.id === m.id);
    await c.none('ReceiveMessage', () => true, { from: fromC });
    assert.equal(a.inbox.all('ReceiveMessage', ([, x]) => x.id === m.id).length, 1);
    assert.equal(b.inbox.all('ReceiveMessage', ([, x]) => x.id === m.id).length, 1);
  });

  it('a message sent over REST arrives as ReceiveMessage too', async () => {
    const posted = await srv.post(bob, room.id, text('over REST'));
    const [ch, got] = await a.waitFor('ReceiveMessage', ([, x]) => x.id === posted.id);
    assert.equal(ch, room.id);
    assert.equal(got.text, posted.content);
    assert.equal(got.seq, posted.seq);
    assert.equal(got.senderId, bob.id);
    assert.equal(got.senderName, bob.username);
  });

  it('fire-and-forget send: the message still arrives at the other member', async () => {
    const content = text('fire and forget');
    await a.send('SendMessage', room.id, content);
    const [ch, got] = await b.waitFor('ReceiveMessage', ([, x]) => x.text === content);
    assert.equal(ch, room.id);
    assert.equal(got.senderId, alice.id);
  });

  it('SendMessage to a room you are not a member of rejects with not_member and delivers nothing', async () => {
    const fromA = a.mark();
    const err = await c.invokeError('SendMessage', room.id, text('intruder'));
    assert.match(err, /not_member/);
    // A positive control, then nothing from carol.
    const control = await b.invoke('SendMessage', room.id, text('control'));
    await a.waitFor('ReceiveMessage', ([, x]) => x.id === control.id, { from: fromA });
    await a.none('ReceiveMessage', ([, x]) => x.senderId === carol.id, { from: fromA });
  });

  it('errors carry their code: unknown method, wrong arguments, validation, unknown room', async () => {
    assert.match(await a.invokeError('SendMessage', room.id), /bad_request/, 'one argument missing');
    assert.match(await a.invokeError('SendMessage', room.id, 'x', 'extra'), /bad_request/, 'one argument too many');
    assert.match(await a.invokeError('SendMessage', 42, 'x'), /bad_request/, 'a number as the channel id (a wrong type)');
    assert.match(await a.invokeError('SendMessage', room.id, '   '), /validation_failed/, 'only whitespace');
    assert.match(await a.invokeError('SendMessage', room.id, 'x'.repeat(4001)), /validation_failed/, 'too long');
    assert.match(await a.invokeError('SendMessage', NO_SUCH_ID, 'x'), /not_found/);
    // The connection is still fine.
    const m = await a.invoke('SendMessage', room.id, text('still here'));
    assert.equal(m.channelId, room.id);
    assert.equal(a.state, 'Connected');
    assert.match(await a.invokeError('NoSuchMethod', 1, 2), /^unknown_type: /);
  });

  it('JoinChannel of a public room returns the room, announces the join, and its messages follow', async () => {
    const other = await srv.createRoom(alice, { topic: 'the topic' });
    const fromA = a.mark();
    const r = await c.invoke('JoinChannel', other.id);
    assert.equal(r.id, other.id);
    assert.equal(r.name, other.name);
    assert.equal(r.topic, 'the topic');
    assert.equal(r.visibility, 'public');
    assert.equal(r.kind, 'channel');
    const [ch, uid] = await a.waitFor('UserJoinedChannel', ([x, u]) => x === other.id && u === carol.id, { from: fromA });
    assert.equal(ch, other.id);
    assert.equal(uid, carol.id);
    assert.ok((await srv.memberIds(alice, other.id)).includes(carol.id), 'carol is a member now');
    const m = await a.invoke('SendMessage', other.id, text('welcome'));
    await c.waitFor('ReceiveMessage', ([x, msg]) => x === other.id && msg.id === m.id);
    const back = await c.invoke('SendMessage', other.id, text('thanks'));
    await a.waitFor('ReceiveMessage', ([, msg]) => msg.id === back.id);
  });

  it('JoinChannel of a private room is refused', async () => {
    const secret = await srv.createRoom(alice, { visibility: 'private' });
    assert.match(await c.invokeError('JoinChannel', secret.id), /forbidden|not_found/);
    assert.ok(!(await srv.memberIds(alice, secret.id)).includes(carol.id));
  });

  it('LeaveChannel returns null, announces the leave, and stops the room events on every connection', async () => {
    const r = await srv.roomWith(alice, bob);
    const bob2 = await srv.login(bob);
    const b2 = await srv.signalr(bob2, { label: 'bob-second-device' });
    const before = await a.invoke('SendMessage', r.id, text('before leaving'));
    await b.waitFor('ReceiveMessage', ([, x]) => x.id === before.id);
    await b2.waitFor('ReceiveMessage', ([, x]) => x.id === before.id);

    const fromA = a.mark();
    const fromB = b.mark();
    const fromB2 = b2.mark();
    const res = await b.invoke('LeaveChannel', r.id);
    await a.waitFor('UserLeftChannel', ([x, u]) => x === r.id && u === bob.id, { from: fromA });
    assert.ok(!(await srv.memberIds(alice, r.id)).includes(bob.id), 'bob is no longer a member');

    const after1 = await a.invoke('SendMessage', r.id, text('after leaving'));
    await a.waitFor('ReceiveMessage', ([, x]) => x.id === after1.id, { from: fromA });
    await b.none('ReceiveMessage', ([x]) => x === r.id, { from: fromB });
    await b2.none('ReceiveMessage', ([x]) => x === r.id, { from: fromB2, ms: 0 });
    assert.match(await b.invokeError('SendMessage', r.id, 'x'), /not_member/);
    await b2.close();
    assert.equal(res, null, 'LeaveChannel completes with a null result');
  });

  it('a repeated clientId returns the original message and is delivered once', async () => {
    const clientId = `idem-${Math.random().toString(36).slice(2)}`;
    const content = text('idempotent');
    const m1 = await a.invoke('SendMessage', room.id, { text: content, clientId });
    const m2 = await a.invoke('SendMessage', room.id, { text: content, clientId });
    assert.equal(m2.id, m1.id);
    assert.equal(m2.seq, m1.seq);
    assert.equal(m1.clientId, clientId);
    const control = await a.invoke('SendMessage', room.id, text('control'));
    await b.waitFor('ReceiveMessage', ([, x]) => x.id === control.id);
    await sleep(QUIET_MS);
    assert.equal(b.inbox.all('ReceiveMessage', ([, x]) => x.id === m1.id).length, 1);
    const { messages } = await srv.rest('GET', `/rooms/${room.id}/messages?limit=100`, alice.token);
    assert.equal(messages.filter((x) => x.client_id === clientId).length, 1, 'stored once');
  });

  it('EditMessage returns the edited message and pushes MessageEdited(channelId, message)', async () => {
    const m = await a.invoke('SendMessage', room.id, text('typo'));
    const fixed = text('fixed');
    const e = await a.invoke('EditMessage', m.id, fixed);
    assert.equal(e.id, m.id);
    assert.equal(e.text, fixed);
    assert.match(e.editedAt, ISO);
    assert.equal(e.seq, m.seq, 'a message keeps its position');
    const [ch, got] = await b.waitFor('MessageEdited', ([, x]) => x.id === m.id);
    assert.equal(ch, room.id);
    assert.equal(got.text, fixed);
    await a.waitFor('MessageEdited', ([, x]) => x.id === m.id);
    // An edit over REST arrives the same way.
    const viaRest = text('edited over REST');
    await srv.edit(alice, room.id, m.id, viaRest);
    await b.waitFor('MessageEdited', ([, x]) => x.id === m.id && x.text === viaRest);
  });

  it('only the author edits: another member is refused and nothing is pushed', async () => {
    const m = await a.invoke('SendMessage', room.id, text('mine'));
    const fromB = b.mark();
    await b.invokeError('EditMessage', m.id, 'not yours');
    assert.match(await a.invokeError('EditMessage', NO_SUCH_ID, 'x'), /not_found/);
    await b.none('MessageEdited', ([, x]) => x.id === m.id, { from: fromB });
  });

  it('DeleteMessage returns the tombstone and pushes MessageDeleted(channelId, messageId)', async () => {
    const m = await a.invoke('SendMessage', room.id, text('regrettable'));
    const t = await a.invoke('DeleteMessage', m.id);
    assert.equal(t.id, m.id);
    assert.equal(t.text, '');
    const [ch, id] = await b.waitFor('MessageDeleted', ([, x]) => x === m.id);
    assert.equal(ch, room.id);
    assert.equal(id, m.id);
    await a.waitFor('MessageDeleted', ([, x]) => x === m.id);
    const { messages } = await srv.rest('GET', `/rooms/${room.id}/messages?limit=100`, alice.token);
    assert.ok(messages.find((x) => x.id === m.id)?.deleted_at, 'a tombstone in the history');
  });

  it('an attachment uploaded by REST goes out with {id, url, mimeType, size, fileName}', async () => {
    const png = Buffer.from(
      'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
      'base64',
    );
    const att = await srv.upload(alice, 'dot.png', png, 'image/png');
    const content = text('a picture');
    const m = await a.invoke('SendMessage', room.id, { text: content, attachments: [att.id] });
    assert.equal(m.attachments.length, 1, JSON.stringify(m));
    const x = m.attachments[0];
    assert.equal(x.id, att.id);
    assert.equal(x.mimeType, 'image/png');
    assert.equal(x.size, png.length);
    assert.equal(x.fileName, 'dot.png');
    assert.equal(typeof x.url, 'string');
    const [, got] = await b.waitFor('ReceiveMessage', ([, y]) => y.id === m.id);
    assert.deepEqual(got.attachments, m.attachments);
    // The URL serves the bytes to another member.
    const res = await fetch(new URL(x.url, srv.url), { headers: { authorization: `Bearer ${bob.token}` } });
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), png);
    // The {id} form works too; an id that is not yours is validation_failed.
    const att2 = await srv.upload(alice, 'two.png', png, 'image/png');
    const m2 = await a.invoke('SendMessage', room.id, { text: 'two', attachments: [{ id: att2.id }] });
    assert.equal(m2.attachments[0].id, att2.id);
    const bobs = await srv.upload(bob, 'bob.png', png, 'image/png');
    assert.match(await a.invokeError('SendMessage', room.id, { text: 'stolen', attachments: [bobs.id] }), /validation_failed/);
  });

  it('MarkRead moves the read marker', async () => {
    const r = await srv.roomWith(alice, bob);
    const m1 = await a.invoke('SendMessage', r.id, text('one'));
    const m2 = await a.invoke('SendMessage', r.id, text('two'));
    await b.invoke('MarkRead', r.id, m1.seq);
    let view = await srv.rest('GET', `/rooms/${r.id}`, bob.token);
    assert.equal(view.last_read_seq, m1.seq);
    assert.equal(view.unread_count, 1);
    await b.invoke('MarkRead', r.id, m2.seq);
    view = await srv.rest('GET', `/rooms/${r.id}`, bob.token);
    assert.equal(view.last_read_seq, m2.seq);
    assert.equal(view.unread_count, 0);
    assert.match(await c.invokeError('MarkRead', r.id, m2.seq), /not_member/);
  });

  it('messages of one room arrive in seq order', async () => {
    const r = await srv.roomWith(alice, bob);
    const from = b.mark();
    const sent = await Promise.all(Array.from({ length: 10 }, (_, i) => a.invoke('SendMessage', r.id, text(`burst-${i}`))));
    const got = await b.inbox.waitForCount('ReceiveMessage', 10, ([ch]) => ch === r.id, { from });
    const seqs = got.map(([, m]) => m.seq);
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), `in seq order: ${seqs}`);
    assert.deepEqual(new Set(got.map(([, m]) => m.id)), new Set(sent.map((m) => m.id)));
  });
});
