// Transports: HTTP long-polling upgraded to WebSocket (the client's default) and
// WebSocket only; both send and receive (docs/socketio.md, "Connecting").

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Palaver, text, waitUntil } from './harness.mjs';

describe('transports', () => {
  let srv, alice, bob, room;
  before(async () => {
    srv = await Palaver.start('transports');
    alice = await srv.user('alice');
    bob = await srv.user('bob');
    room = await srv.roomWith(alice, bob);
  });
  after(async () => {
    await srv?.close();
  });

  /** `x` sends to `y` and `y` to `x`; each sees the other's message. */
  async function exchange(x, y) {
    const t1 = text('x-to-y');
    await x.ok('send_message', { roomId: room.id, content: t1 });
    await y.waitFor('new_message', (m) => m.content === t1);
    const t2 = text('y-to-x');
    await y.ok('send_message', { roomId: room.id, content: t2 });
    await x.waitFor('new_message', (m) => m.content === t2);
  }

  it('default: starts on polling, upgrades to websocket, and sends and receives before and after the upgrade', async () => {
    const a = srv.sioSocket({ auth: { token: alice.token } }, 'alice-default');
    assert.equal(a.socket.io.engine.transport.name, 'polling', 'the handshake is over HTTP long-polling');
    const upgraded = new Promise((resolve) => a.socket.io.engine.once('upgrade', (t) => resolve(t.name)));
    await a.ready();
    const b = await srv.sio(bob, { transports: ['websocket'] }, 'bob-ws');
    await exchange(a, b);
    assert.equal(await upgraded, 'websocket');
    await waitUntil('the websocket transport', () => a.socket.io.engine.transport.name === 'websocket');
    await exchange(a, b);
  });

  it('websocket only: sends and receives', async () => {
    const a = await srv.sio(alice, { transports: ['websocket'] }, 'alice-ws');
    assert.equal(a.socket.io.engine.transport.name, 'websocket');
    const b = await srv.sio(bob, { transports: ['websocket'] }, 'bob-ws2');
    await exchange(a, b);
    assert.equal(a.socket.io.engine.transport.name, 'websocket');
  });

  it('polling that never upgrades (upgrade: false) still sends and receives, acks included', async () => {
    const a = await srv.sio(alice, { upgrade: false }, 'alice-polling');
    const b = await srv.sio(bob, {}, 'bob-default');
    await exchange(a, b);
    assert.equal(a.socket.io.engine.transport.name, 'polling');
  });

  it('many messages in a burst over polling arrive complete and in order', async () => {
    const a = await srv.sio(alice, { upgrade: false }, 'alice-burst');
    const b = await srv.sio(bob, { upgrade: false }, 'bob-burst');
    const from = b.mark();
    const contents = Array.from({ length: 30 }, (_, i) => `burst ${i} ${text('')}`);
    await Promise.all(contents.map((content, i) => a.ok('send_message', { roomId: room.id, content, clientId: `burst-${i}-${content.slice(-8)}` })));
    const got = await b.inbox.waitForCount('new_message', contents.length, (m) => m.content.startsWith('burst '), { from });
    const seqs = got.map((m) => m.changeSeq);
    assert.deepEqual([...seqs].sort((x, y) => x - y), seqs, 'events of a room arrive in seq order');
    assert.deepEqual(new Set(got.map((m) => m.content)), new Set(contents));
  });
});
