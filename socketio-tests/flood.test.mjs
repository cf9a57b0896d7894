// A client that sends faster than its events are run (docs/socketio.md, "Acknowledgements
// and errors"): every event with a callback is answered exactly once, either run or
// refused with rate_limited, and nothing it was told was stored goes missing.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Palaver } from './harness.mjs';

describe('a burst of events', () => {
  let srv, alice, bob, room;
  before(async () => {
    srv = await Palaver.start('flood');
    alice = await srv.user('alice');
    bob = await srv.user('bob');
    room = await srv.roomWith(alice, bob);
  });
  after(async () => {
    await srv?.close();
  });

  it('300 sends without waiting: every ack arrives once, ok or rate_limited, and every ok one is delivered', async () => {
    const a = await srv.sio(alice, { transports: ['websocket'] }, 'alice-flood');
    const b = await srv.sio(bob, { transports: ['websocket'] }, 'bob-flood');
    const contents = Array.from({ length: 300 }, (_, i) => `burst-${i}`);
    const acks = await Promise.all(
      contents.map((content) => a.ack('send_message', { roomId: room.id, content })),
    );
    const codes = new Set();
    const stored = [];
    acks.forEach((res, i) => {
      if (res.ok) stored.push(contents[i]);
      else codes.add(res.error.code);
    });
    assert.deepEqual([...codes].filter((c) => c !== 'rate_limited'), [], `unexpected refusals: ${[...codes]}`);
    assert.ok(stored.length > 0, 'some sends are run');
    // Every stored message reaches the other member, in the order they were stored.
    const last = stored[stored.length - 1];
    await b.waitFor('new_message', (m) => m.content === last);
    const received = b.inbox.events
      .filter((e) => e.name === 'new_message' && e.payload.content.startsWith('burst-'))
      .map((e) => e.payload.content);
    assert.deepEqual(received, stored);
  });
});
