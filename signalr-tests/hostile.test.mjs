// The JSON hub protocol by hand over a raw WebSocket (`ws`): records are JSON texts each
// ended by the record separator 0x1E, independent of WebSocket frames. Framing edge cases
// work; oversized records, floods and malformed records end in a Close record with an error
// (or completions), never a hang, and the server keeps serving everybody else.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Palaver, RS, text, sleep, waitUntil } from './harness.mjs';

describe('a raw client speaking the protocol by hand', () => {
  let srv, alice, bob, room, watcher;
  before(async () => {
    srv = await Palaver.start('hostile');
    alice = await srv.user('alice');
    bob = await srv.user('bob');
    room = await srv.roomWith(alice, bob);
    watcher = await srv.signalr(bob, { label: 'bob-watcher' });
  });
  after(async () => {
    await srv?.close();
  });

  /** The server still serves an official client: Bob sends, and receives his message. */
  async function stillServing() {
    const m = await watcher.invoke('SendMessage', room.id, text('still serving'));
    await watcher.waitFor('ReceiveMessage', ([, x]) => x.id === m.id);
  }

  /** Waits for a Close record with an error, then for the socket to close. */
  async function closedWithError(r) {
    const close = await r.waitFor('Close');
    assert.equal(typeof close.error, 'string', `a Close record with an error: ${JSON.stringify(close)}`);
    assert.ok(close.error.length > 0);
    await r.closed;
    return close;
  }

  it('two records in one frame both run', async () => {
    const r = await srv.raw(alice, { label: 'two-in-one' });
    const t1 = text('first of two');
    const t2 = text('second of two');
    const i1 = r.invocation('SendMessage', [room.id, t1]);
    const i2 = r.invocation('SendMessage', [room.id, t2]);
    r.sendRecords(i1, i2);
    const c1 = await r.completion(i1.invocationId);
    const c2 = await r.completion(i2.invocationId);
    assert.equal(c1.error, undefined, JSON.stringify(c1));
    assert.equal(c2.error, undefined, JSON.stringify(c2));
    assert.equal(c1.result.text, t1);
    assert.equal(c2.result.text, t2);
    assert.ok(c1.result.seq < c2.result.seq, 'run in order');
    await watcher.waitFor('ReceiveMessage', ([, x]) => x.id === c2.result.id);
    r.close();
  });

  it('the handshake and an invocation in one frame both run', async () => {
    const r = await srv.raw(alice, { handshake: null, label: 'handshake-and-invocation' });
    const inv = r.invocation('SendMessage', [room.id, text('with the handshake')]);
    r.sendRaw(JSON.stringify({ protocol: 'json', version: 1 }) + RS + JSON.stringify(inv) + RS);
    assert.deepEqual(await r.waitFor('handshake'), {});
    const c = await r.completion(inv.invocationId);
    assert.equal(c.error, undefined, JSON.stringify(c));
    r.close();
  });

  it('one record split across two frames runs (and a frame ending in the middle of the next record)', async () => {
    const r = await srv.raw(alice, { label: 'split' });
    const i1 = r.invocation('SendMessage', [room.id, text('split in two')]);
    const i2 = r.invocation('SendMessage', [room.id, text('straddling')]);
    const s1 = JSON.stringify(i1) + RS;
    const s2 = JSON.stringify(i2) + RS;
    const cut = Math.floor(s1.length / 2);
    r.sendRaw(s1.slice(0, cut));
    await sleep(300);
    await r.none('Completion', () => true, { ms: 0 });
    r.sendRaw(s1.slice(cut) + s2.slice(0, 10));
    const c1 = await r.completion(i1.invocationId);
    assert.equal(c1.error, undefined, JSON.stringify(c1));
    await sleep(300);
    r.sendRaw(s2.slice(10));
    const c2 = await r.completion(i2.invocationId);
    assert.equal(c2.error, undefined, JSON.stringify(c2));
    await r.none('Close', () => true, { ms: 0 });
    r.close();
  });

  it('an oversized record (over 64 KiB, no terminator, in small frames) gets a Close record with an error; others are served', async () => {
    const r = await srv.raw(alice, { label: 'oversized' });
    r.sendRaw(`{"type":1,"invocationId":"1","target":"SendMessage","arguments":["${room.id}","`);
    const chunk = 'x'.repeat(16 * 1024);
    for (let i = 0; i < 6; i++) {
      if (r.ws.readyState !== r.ws.OPEN) break;
      r.sendRaw(chunk);
      await sleep(20);
    }
    await closedWithError(r);
    assert.equal(r.inbox.all('Completion').length, 0, 'the oversized invocation did not run');
    await stillServing();
  });

  it('a flood of 500 invocations without waiting gets completions or a Close with an error, never a hang; the server stays up', async (t) => {
    const r = await srv.raw(alice, { label: 'flood' });
    const ids = [];
    for (let i = 0; i < 500; i++) {
      const inv = r.invocation('SendMessage', [room.id, `flood ${i}`]);
      ids.push(inv.invocationId);
      r.sendRecords(inv);
    }
    const outcome = await waitUntil(
      'all 500 completions or a close',
      () => {
        if (r.inbox.all('$wsclose').length) return 'closed';
        if (r.inbox.all('Completion').length >= 500) return 'completed';
        return null;
      },
      { timeout: 120_000 },
    );
    const completions = r.inbox.all('Completion');
    t.diagnostic(`${outcome}: ${completions.length} completions, ${completions.filter((c) => c.error !== undefined).length} failed`);
    const seen = new Map();
    for (const c of completions) seen.set(c.invocationId, (seen.get(c.invocationId) ?? 0) + 1);
    for (const [id, n] of seen) {
      assert.ok(ids.includes(id), `a completion of an invocation we sent: ${id}`);
      assert.equal(n, 1, `invocation ${id} completed once`);
    }
    if (outcome === 'closed') {
      const closes = r.inbox.all('Close');
      assert.equal(closes.length, 1, `closed with a Close record: ${r.inbox.summary()}`);
      assert.equal(typeof closes[0].error, 'string');
    } else {
      assert.equal(completions.length, 500);
      for (const c of completions) {
        if (c.error !== undefined) assert.match(c.error, /rate_limited/, `a failed completion is rate_limited: ${JSON.stringify(c)}`);
      }
      r.close();
    }
    await stillServing();
  });

  it('invalid JSON gets a Close record with an error and the socket closes', async () => {
    const r = await srv.raw(alice, { label: 'invalid-json' });
    r.sendRaw(`{"type":1,"target":"SendMessage",${RS}`);
    await closedWithError(r);
    await stillServing();
  });

  it('an invocation without a target gets a Close record with an error and the socket closes', async () => {
    const r = await srv.raw(alice, { label: 'no-target' });
    r.sendRecords({ type: 1, invocationId: '1', arguments: [room.id, 'no target'] });
    await closedWithError(r);
    assert.equal(r.inbox.all('Completion').length, 0);
    await stillServing();
  });

  it('a record that is not an object with a numeric type gets a Close record with an error', async () => {
    const r = await srv.raw(alice, { label: 'no-type' });
    r.sendRecords({ target: 'SendMessage', arguments: [room.id, 'no type'] });
    await closedWithError(r);
    await stillServing();
  });

  it('a malformed handshake gets a handshake error and the socket closes', async () => {
    const r = await srv.raw(alice, { handshake: null, label: 'bad-handshake' });
    r.sendRaw(`not a handshake${RS}`);
    const h = await r.waitFor('handshake');
    assert.equal(typeof h.error, 'string', JSON.stringify(h));
    await r.closed;
    await stillServing();
  });
});
