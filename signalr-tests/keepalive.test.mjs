// Keep-alive (the spec's "Connecting": keep-alive): the server pings a connection it has
// not written to for 15 s and closes one it has not heard from for 30 s; the official
// client pings every 15 s, so an idle official client stays connected indefinitely.
//
// The three clients start together in `before` and are watched for 40 s side by side, so
// the file takes about 45 s rather than two minutes.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Palaver, text, sleep } from './harness.mjs';

const IDLE_MS = 40_000;

describe('keep-alive', () => {
  let srv, alice, bob, room, idle, silent, pinging, pingLoop, started;
  before(async () => {
    srv = await Palaver.start('keepalive');
    alice = await srv.user('alice');
    bob = await srv.user('bob');
    room = await srv.roomWith(alice, bob);
    // The official client with its defaults: a ping every 15 s, server timeout 30 s.
    idle = await srv.signalr(alice, { label: 'idle-official' });
    // Raw clients: one silent after the handshake, one sending a Ping record every 10 s.
    silent = await srv.raw(alice, { label: 'silent-raw' });
    pinging = await srv.raw(alice, { label: 'pinging-raw' });
    started = Date.now();
    pingLoop = (async () => {
      while (Date.now() - started < IDLE_MS) {
        await sleep(10_000);
        pinging.sendRecords({ type: 6 });
      }
    })();
  });
  after(async () => {
    await srv?.close();
  });

  const untilIdleDone = () => sleep(Math.max(0, started + IDLE_MS - Date.now()));

  it('an official client idle for 40 s stays connected, receives the server pings, and can still invoke', async () => {
    await untilIdleDone();
    assert.equal(idle.state, 'Connected');
    assert.deepEqual(idle.inbox.all('$close'), [], 'no onclose');
    assert.deepEqual(idle.inbox.all('$closeRecord'), [], 'no Close record');
    assert.ok(idle.pings >= 2, `the server pinged the idle connection at least twice in 40 s (got ${idle.pings})`);
    const m = await idle.invoke('SendMessage', room.id, text('still alive'));
    assert.equal(m.channelId, room.id);
    const b = await srv.signalr(bob);
    const back = await b.invoke('SendMessage', room.id, text('hello again'));
    await idle.waitFor('ReceiveMessage', ([, x]) => x.id === back.id);
  });

  it('a raw client that goes silent after the handshake gets a Close record with an error and is closed', async () => {
    assert.deepEqual(silent.handshakeResponse, {});
    const close = await silent.waitFor('Close', () => true, { timeout: Math.max(1, started + 75_000 - Date.now()) });
    assert.ok(Date.now() - started >= 25_000, 'not closed long before 30 s of silence');
    assert.equal(typeof close.error, 'string', `the Close record carries an error: ${JSON.stringify(close)}`);
    assert.ok(close.error.length > 0);
    await silent.closed;
    assert.ok(silent.inbox.all('Ping').length >= 1, 'the server pinged before giving up');
    // The server serves others.
    const done = await pinging.invoke('SendMessage', [room.id, text('others are fine')]);
    assert.equal(done.error, undefined, JSON.stringify(done));
  });

  it('a raw client that sends a Ping record every 10 s is not closed', async () => {
    await untilIdleDone();
    await pingLoop;
    await pinging.none('Close', () => true, { ms: 0 });
    await pinging.none('$wsclose', () => true, { ms: 0 });
    const done = await pinging.invoke('SendMessage', [room.id, text('pinged along')]);
    assert.equal(done.error, undefined, JSON.stringify(done));
  });
});
