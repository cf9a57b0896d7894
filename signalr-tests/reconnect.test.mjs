// Reconnecting without losing or repeating anything (the spec's "Stateful reconnect" and
// "Server shutdown"):
// (a) withAutomaticReconnect() across a server restart (SIGTERM, same port and data);
// (b) the same with withStatefulReconnect() too;
// (c) withStatefulReconnect() when the socket drops (a TCP proxy cuts it): the client
//     reconnects to the same connection by itself, without onreconnecting.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Palaver, Gate, CutProxy, RawHub, text, sleep, QUIET_MS } from './harness.mjs';

/** The `[channelId, message]` of the ReceiveMessage events of `roomId` in `client` since `from`. */
function received(client, roomId, from) {
  return client.inbox.all('ReceiveMessage', ([ch]) => ch === roomId, from).map(([, m]) => m);
}

/**
 * The restart scenario: Alice's client (built with `opts`) sees three live messages; the
 * server stops (SIGTERM) and starts again; while Alice's client is held back (the gate on
 * its access-token factory), Bob posts three messages, edits one live message and deletes
 * another; then Alice's client reconnects by itself while Bob keeps posting.
 */
async function restartScenario(srv, label, opts) {
  const alice = await srv.user('alice');
  const bob = await srv.user('bob');
  const room = await srv.roomWith(alice, bob);
  const gate = new Gate();
  const a = await srv.signalr(alice, { ...opts, gate, label });

  const live = [];
  for (let i = 0; i < 3; i++) live.push(await srv.post(bob, room.id, text(`live-${i}`)));
  await a.waitFor('ReceiveMessage', ([, m]) => m.id === live[2].id);

  gate.close();
  const from = a.mark();
  await srv.stop();
  await srv.startAgain();

  const missed = [];
  for (let i = 0; i < 3; i++) missed.push(await srv.post(bob, room.id, text(`missed-${i}`)));
  const edited = await srv.edit(bob, room.id, live[0].id, text('edited while away'));
  await srv.remove(bob, room.id, live[1].id);

  gate.open();
  const later = [];
  const sending = (async () => {
    for (let i = 0; i < 2; i++) later.push(await srv.post(bob, room.id, text(`later-${i}`)));
  })();
  await a.waitFor('$reconnecting', () => true, { from });
  await a.waitFor('$reconnected', () => true, { from, timeout: 60_000 });
  await sending;
  // Wait for the last one; if it never comes, the assertions on what did come say more.
  await a.waitFor('ReceiveMessage', ([, m]) => m.id === later[1].id, { from }).catch(() => {});
  await sleep(QUIET_MS);

  return { a, room, live, missed, later, edited, from };
}

function assertNothingLostNothingRepeated({ a, room, live, missed, later, edited, from }) {
  const got = received(a, room.id, from);
  const dump = JSON.stringify(got.map((m) => [m.seq, m.text]), null, 1);
  // Every message sent while Alice was away, then the later ones: each once, in seq order.
  assert.deepEqual(
    got.map((m) => m.id),
    [...missed, ...later].map((m) => m.id),
    `ReceiveMessage after the restart: the missed messages then the later ones, once each, in order:\n${dump}`,
  );
  const seqs = got.map((m) => m.seq);
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `seq increasing:\n${dump}`);
  // Nothing Alice already had came again.
  for (const m of live) assert.equal(a.inbox.all('ReceiveMessage', ([, x]) => x.id === m.id).length, 1, `live message ${m.content} once`);
  // The edit and the delete made while she was away, once each.
  const edits = a.inbox.all('MessageEdited', ([, m]) => m.id === live[0].id, from);
  assert.equal(edits.length, 1, `the edit arrives once: ${JSON.stringify(edits)}`);
  assert.equal(edits[0][0], room.id);
  assert.equal(edits[0][1].text, edited.content);
  const deletes = a.inbox.all('MessageDeleted', ([, id]) => id === live[1].id, from);
  assert.equal(deletes.length, 1, `the delete arrives once: ${JSON.stringify(deletes)}`);
  assert.equal(deletes[0][0], room.id);
}

describe('reconnecting across a server restart', () => {
  let srv;
  before(async () => {
    srv = await Palaver.start('reconnect');
  });
  after(async () => {
    await srv?.close();
  });

  it('(a) withAutomaticReconnect: the shutdown Close record allows reconnecting; onreconnecting/onreconnected fire; every missed message arrives once, in seq order', async () => {
    const s = await restartScenario(srv, 'alice-auto', { reconnect: true });
    const closes = s.a.inbox.all('$closeRecord', () => true, s.from);
    assert.equal(closes.length, 1, `one Close record at shutdown: ${JSON.stringify(closes)}`);
    assert.equal(closes[0].allowReconnect, true);
    assert.equal(typeof closes[0].error, 'string');
    assert.deepEqual(s.a.inbox.all('$close'), [], 'onclose never fired');
    assert.equal(s.a.state, 'Connected');
    assertNothingLostNothingRepeated(s);
    // Live after the reconnect, both ways.
    const m = await s.a.invoke('SendMessage', s.room.id, text('back'));
    await s.a.waitFor('ReceiveMessage', ([, x]) => x.id === m.id);
  });

  it('(b) withStatefulReconnect + withAutomaticReconnect: the same', async () => {
    const s = await restartScenario(srv, 'alice-stateful', { reconnect: true, stateful: true });
    assert.deepEqual(s.a.inbox.all('$close'), [], 'onclose never fired');
    assert.equal(s.a.state, 'Connected');
    assertNothingLostNothingRepeated(s);
    const m = await s.a.invoke('SendMessage', s.room.id, text('back'));
    await s.a.waitFor('ReceiveMessage', ([, x]) => x.id === m.id);
  });

  it('after a second restart with nothing missed, nothing is replayed', async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    const room = await srv.roomWith(alice, bob);
    const a = await srv.signalr(alice, { reconnect: true, label: 'alice-quiet' });
    const seen = await srv.post(bob, room.id, text('seen'));
    await a.waitFor('ReceiveMessage', ([, m]) => m.id === seen.id);
    const from = a.mark();
    await srv.restart();
    await a.waitFor('$reconnected', () => true, { from, timeout: 60_000 });
    const control = await srv.post(bob, room.id, text('control'));
    await a.waitFor('ReceiveMessage', ([, m]) => m.id === control.id, { from });
    await sleep(QUIET_MS);
    assert.deepEqual(received(a, room.id, from).map((m) => m.id), [control.id], 'only the new message after the restart');
  });
});

describe('stateful reconnect when the socket drops', () => {
  let srv, proxy;
  before(async () => {
    srv = await Palaver.start('stateful');
    proxy = await CutProxy.start(srv.port);
  });
  after(async () => {
    await proxy?.close();
    await srv?.close();
  });

  it('(c) the client reconnects to the same connection by itself and gets every message sent while cut off, once, in order', async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    const room = await srv.roomWith(alice, bob);
    // Alice through the proxy, stateful; Bob directly.
    const a = await srv.signalr(alice, { stateful: true, url: `${proxy.url}/hubs/chat`, label: 'alice-via-proxy' });
    const b = await srv.signalr(bob, { label: 'bob-direct' });
    const connectionId = a.connectionId;

    const live = [];
    for (let i = 0; i < 3; i++) live.push(await b.invoke('SendMessage', room.id, text(`live-${i}`)));
    await a.waitFor('ReceiveMessage', ([, m]) => m.id === live[2].id);

    const from = a.mark();
    const fromB = b.mark();
    const accepted = proxy.accepted;
    proxy.cut();
    // While cut off: Bob writes, and Alice invokes (her client buffers the invocation).
    const missed = [];
    for (let i = 0; i < 3; i++) missed.push(await b.invoke('SendMessage', room.id, text(`missed-${i}`)));
    const aliceWhileCut = text('sent while cut off');
    const pending = a.invoke('SendMessage', room.id, aliceWhileCut);
    pending.catch(() => {}); // awaited below
    // The client tried to reconnect: its new TCP connection waits in the proxy.
    await sleep(2000);
    proxy.resume();

    const mine = await pending; // the invocation made while cut off completes after the reconnect
    assert.equal(mine.text, aliceWhileCut);
    const later = await b.invoke('SendMessage', room.id, text('later'));
    await a.waitFor('ReceiveMessage', ([, m]) => m.id === later.id, { from });
    await sleep(QUIET_MS);

    assert.ok(proxy.accepted > accepted, 'the client opened a new socket');
    assert.deepEqual(a.inbox.all('$reconnecting'), [], 'no onreconnecting: the reconnect was transparent');
    assert.deepEqual(a.inbox.all('$close'), [], 'no onclose');
    assert.equal(a.state, 'Connected');
    assert.equal(a.connectionId, connectionId, 'the same connection');

    const got = received(a, room.id, from);
    const dump = JSON.stringify(got.map((m) => [m.seq, m.text]), null, 1);
    const expected = [...missed, mine, later].sort((x, y) => x.seq - y.seq);
    assert.deepEqual(got.map((m) => m.id), expected.map((m) => m.id), `every message while cut off, once, in seq order:\n${dump}`);
    for (const m of live) assert.equal(a.inbox.all('ReceiveMessage', ([, x]) => x.id === m.id).length, 1, `live ${m.text} once`);
    // Alice's buffered invocation ran once: Bob got it once.
    await b.waitFor('ReceiveMessage', ([, m]) => m.id === mine.id, { from: fromB });
    assert.equal(b.inbox.all('ReceiveMessage', ([, m]) => m.text === aliceWhileCut).length, 1, 'the resent invocation ran once');
    // And the connection goes on.
    const m = await a.invoke('SendMessage', room.id, text('after'));
    await b.waitFor('ReceiveMessage', ([, x]) => x.id === m.id);
  });

  it('the server takes a dropped stateful connection back by its id (Sequence records), and not after 30 s', async () => {
    const alice = await srv.user('alice');
    const room = await srv.createRoom(alice);
    const r1 = await srv.raw(alice, { stateful: true, handshake: { protocol: 'json', version: 2 }, label: 'raw-stateful-1' });
    assert.deepEqual(r1.handshakeResponse, {});
    const id = r1.connectionToken;
    const done = await r1.invoke('SendMessage', [room.id, text('before the drop')]);
    assert.equal(done.error, undefined, JSON.stringify(done));
    r1.terminate();
    await r1.closed;
    await sleep(500);

    // Right away: the same id reconnects to the same connection (no new handshake: the
    // client announces with a Sequence record where its sending resumes, the server too).
    const url = `${srv.hubUrl('chat').replace(/^http/, 'ws')}?id=${encodeURIComponent(id)}`;
    const r2 = new RawHub(url, { authorization: `Bearer ${alice.token}` }, 'raw-stateful-2');
    srv.closeables.add(r2);
    await r2.opened();
    r2.nextId = 100;
    r2.sendRecords({ type: 9, sequenceId: 2 });
    const seq = await r2.waitFor('Sequence');
    assert.equal(typeof seq.sequenceId, 'number');
    const done2 = await r2.invoke('SendMessage', [room.id, text('after the drop')]);
    assert.equal(done2.error, undefined, JSON.stringify(done2));

    // Dropped again, and left alone for more than 30 s: the connection is gone.
    r2.terminate();
    await r2.closed;
    await sleep(35_000);
    const late = await srv.upgrade(`/hubs/chat?id=${encodeURIComponent(id)}`, { authorization: `Bearer ${alice.token}` });
    assert.equal(late.status, 404, `after the window the id is unknown: ${JSON.stringify(late)}`);
  });
});
