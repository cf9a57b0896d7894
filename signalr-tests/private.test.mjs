// SendPrivateMessage -> ReceivePrivateMessage(senderId, message) on every connection of
// both users of the DM, nobody else (the spec's "/hubs/chat": SendPrivateMessage,
// ReceivePrivateMessage).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Palaver, text, NO_SUCH_ID } from './harness.mjs';

describe('private messages', () => {
  let srv, alice, bob, carol, a1, a2, b1, b2, c;
  before(async () => {
    srv = await Palaver.start('private');
    alice = await srv.user('alice');
    bob = await srv.user('bob');
    carol = await srv.user('carol');
    // Two devices each (two sessions), and a third user who shares a room with both.
    a1 = await srv.signalr(alice, { label: 'alice-1' });
    a2 = await srv.signalr(await srv.login(alice), { label: 'alice-2' });
    b1 = await srv.signalr(bob, { label: 'bob-1' });
    b2 = await srv.signalr(await srv.login(bob), { label: 'bob-2' });
    await srv.roomWith(alice, bob, carol);
    c = await srv.signalr(carol, { label: 'carol' });
  });
  after(async () => {
    await srv?.close();
  });

  it('SendPrivateMessage returns the message, in the DM room of the two', async () => {
    const content = text('psst');
    const m = await a1.invoke('SendPrivateMessage', bob.id, content);
    assert.equal(m.text, content);
    assert.equal(m.senderId, alice.id);
    assert.equal(m.senderName, alice.username);
    const dm = await srv.dm(alice, bob);
    assert.equal(dm.kind, 'dm');
    assert.equal(m.channelId, dm.id, 'channelId is the DM room');
    const { messages } = await srv.rest('GET', `/rooms/${dm.id}/messages`, bob.token);
    assert.ok(messages.some((x) => x.id === m.id), 'stored in the DM');
  });

  it('ReceivePrivateMessage(senderId, message) reaches every connection of the target and of the sender, not a third user', async () => {
    const fromC = c.mark();
    const content = text('for bob only');
    const m = await a1.invoke('SendPrivateMessage', bob.id, { text: content, clientId: 'pm-1' });
    for (const target of [b1, b2]) {
      const [senderId, got] = await target.waitFor('ReceivePrivateMessage', ([, x]) => x.id === m.id);
      assert.equal(senderId, alice.id);
      assert.equal(got.text, content);
      assert.equal(got.channelId, m.channelId);
      assert.equal(got.clientId, 'pm-1');
    }
    // The sender's devices: the other one (and the sending one) see their own message.
    for (const own of [a2, a1]) {
      const [senderId] = await own.waitFor('ReceivePrivateMessage', ([, x]) => x.id === m.id);
      assert.equal(senderId, alice.id);
    }
    await c.none('ReceivePrivateMessage', () => true, { from: fromC });
    await c.none('ReceiveMessage', ([ch]) => ch === m.channelId, { from: fromC, ms: 0 });
    // A DM message is a private message: not also a ReceiveMessage.
    for (const x of [a1, a2, b1, b2]) await x.none('ReceiveMessage', ([ch]) => ch === m.channelId, { ms: 0 });
    for (const x of [b1, b2, a1, a2]) assert.equal(x.inbox.all('ReceivePrivateMessage', ([, y]) => y.id === m.id).length, 1, `${x.label}: once`);
  });

  it('the answer goes back the same way, in the same DM', async () => {
    const first = await a1.invoke('SendPrivateMessage', bob.id, text('ping'));
    const content = text('pong');
    const back = await b2.invoke('SendPrivateMessage', alice.id, content);
    assert.equal(back.channelId, first.channelId, 'one DM for the pair');
    for (const x of [a1, a2, b1]) {
      const [senderId, got] = await x.waitFor('ReceivePrivateMessage', ([, y]) => y.id === back.id);
      assert.equal(senderId, bob.id);
      assert.equal(got.text, content);
    }
  });

  it('a message sent to the DM over REST arrives as ReceivePrivateMessage', async () => {
    const dm = await srv.dm(bob, alice);
    const posted = await srv.post(bob, dm.id, text('over REST'));
    const [senderId, got] = await a1.waitFor('ReceivePrivateMessage', ([, x]) => x.id === posted.id);
    assert.equal(senderId, bob.id);
    assert.equal(got.channelId, dm.id);
  });

  it('a private message to an unknown user is not_found; a bad payload validation_failed', async () => {
    assert.match(await a1.invokeError('SendPrivateMessage', NO_SUCH_ID, 'hello?'), /not_found/);
    assert.match(await a1.invokeError('SendPrivateMessage', bob.id, ''), /validation_failed/);
  });

  it('a private message to someone who blocked you is refused and delivers nothing', async () => {
    const dave = await srv.user('dave');
    const d = await srv.signalr(dave, { label: 'dave' });
    const opened = await a1.invoke('SendPrivateMessage', dave.id, text('hi dave'));
    await d.waitFor('ReceivePrivateMessage', ([, x]) => x.id === opened.id);
    await srv.rest('PUT', `/users/me/blocks/${alice.id}`, dave.token);
    const from = d.mark();
    assert.match(await a1.invokeError('SendPrivateMessage', dave.id, text('blocked')), /forbidden/);
    await d.none('ReceivePrivateMessage', () => true, { from });
  });
});
