// Reconnecting across a server restart without losing or repeating anything: the client
// passes, per room, the highest changeSeq it saw in `auth.since` (docs/socketio.md, "Seq
// and reconnecting without losing anything").

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Palaver, text, sleep, QUIET_MS } from './harness.mjs';

const CHANGES = ['new_message', 'message_edited', 'message_deleted', 'reaction_added', 'reaction_removed'];

/**
 * The client of docs/socketio.md: tracks the highest changeSeq per room and passes it on
 * every (re)connect. `gate` (a promise) holds the CONNECT packet back until it resolves,
 * so the test decides what happens between the transport opening and the socket
 * connecting; the client still reconnects by itself.
 */
function trackingClient(srv, user, label) {
  const lastSeq = {};
  const state = { gate: Promise.resolve(), authCalls: 0 };
  const client = srv.sioSocket(
    {
      reconnection: true,
      reconnectionDelay: 100,
      reconnectionDelayMax: 500,
      auth: (cb) => {
        state.authCalls += 1;
        state.gate.then(() => cb({ token: user.token, since: { ...lastSeq } }));
      },
    },
    label,
  );
  client.socket.on('ready', ({ rooms }) => {
    for (const r of rooms) lastSeq[r.id] ??= r.lastSeq;
  });
  for (const e of CHANGES) {
    client.socket.on(e, (m) => {
      lastSeq[m.roomId] = Math.max(lastSeq[m.roomId] ?? 0, m.changeSeq);
    });
  }
  return { client, lastSeq, state };
}

/** The room-`roomId` change events in `inbox` from `from` on, as `[event, changeSeq, id]`. */
function changesOf(inbox, roomId, from = 0) {
  return inbox.events
    .slice(from)
    .filter((e) => CHANGES.includes(e.name) && e.payload?.roomId === roomId)
    .map((e) => [e.name, e.payload.changeSeq, e.payload.id ?? e.payload.messageId, e.payload.content]);
}

describe('server restart', () => {
  let srv;
  before(async () => {
    srv = await Palaver.start('restart');
  });
  after(async () => {
    await srv?.close();
  });

  it('a client reconnects by itself after a restart and receives every missed change once, in order, before live ones', async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    const room = await srv.roomWith(alice, bob);
    // History before Alice connects: covered by ready's lastSeq, never replayed.
    const early = await srv.post(bob, room.id, text('before-connect'));

    const { client: a, lastSeq, state } = trackingClient(srv, alice, 'alice-tracking');
    const ready1 = await a.ready();
    assert.equal(ready1.rooms.find((r) => r.id === room.id)?.lastSeq, early.seq);

    // Live messages while connected.
    const live = [];
    for (let i = 0; i < 3; i++) live.push(await srv.post(bob, room.id, text(`live-${i}`)));
    await a.waitFor('new_message', (m) => m.id === live[2].id);
    assert.equal(lastSeq[room.id], live[2].seq);

    // The server goes away; Alice's client starts reconnecting on its own. Its next
    // CONNECT waits at the gate until the missed changes exist.
    let open;
    state.gate = new Promise((r) => (open = r));
    const beforeRestart = a.mark();
    await srv.stop();
    await srv.startAgain();

    // Missed while Alice was away: three new messages, an edit of an old one, a reaction
    // to another old one.
    const missed = [];
    for (let i = 0; i < 3; i++) missed.push(await srv.post(bob, room.id, text(`missed-${i}`)));
    const edited = await srv.edit(bob, room.id, live[0].id, text('edited-while-away'));
    await srv.rest('PUT', `/rooms/${room.id}/messages/${live[1].id}/reactions/${encodeURIComponent('🎉')}`, bob.token);

    // Alice's client connects by itself (the gate only held its CONNECT back); while
    // the replay runs Bob keeps writing: those arrive live, after the replay.
    open();
    const after1 = [];
    const sending = (async () => {
      for (let i = 0; i < 3; i++) after1.push(await srv.post(bob, room.id, text(`after-${i}`)));
    })();
    const reason = await a.waitFor('$disconnect', () => true, { from: beforeRestart });
    assert.notEqual(reason, 'io server disconnect', 'a restart must not look like a kick: the client would not reconnect by itself');
    await a.ready({ from: beforeRestart });
    await sending;
    await a.waitFor('new_message', (m) => m.id === after1[2].id, { from: beforeRestart });
    await sleep(QUIET_MS);
    assert.ok(state.authCalls >= 2, 'the auth callback ran again for the reconnect');

    const got = changesOf(a.inbox, room.id, beforeRestart);
    const dump = JSON.stringify(got, null, 1);
    const seqs = got.map((g) => g[1]);
    // In order, each change once: strictly increasing changeSeq, all after what Alice had,
    // up to Bob's last message. (The replay may fold several changes of one message into
    // one event carrying its current state, so seqs need not be consecutive.)
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `changeSeq strictly increasing:\n${dump}`);
    assert.ok(seqs[0] > live[2].seq, `nothing Alice had comes again:\n${dump}`);
    assert.equal(seqs.at(-1), after1[2].seq, dump);
    // The new messages: the missed ones then the later ones, each once, in order.
    assert.deepEqual(
      got.filter((g) => g[0] === 'new_message').map((g) => g[2]),
      [...missed, ...after1].map((m) => m.id),
      dump,
    );
    // The edit of an old message, with its new content.
    const edit = got.filter((g) => g[0] === 'message_edited' && g[2] === live[0].id);
    assert.equal(edit.length, 1, `the edit is replayed once as message_edited:\n${dump}`);
    assert.equal(edit[0][3], edited.content);
    // The reaction: as reaction_added, or folded into message_edited of that message.
    const reaction = a.inbox.events
      .slice(beforeRestart)
      .filter(
        (e) =>
          (e.name === 'reaction_added' && e.payload.messageId === live[1].id && e.payload.emoji === '🎉') ||
          (e.name === 'message_edited' && e.payload.id === live[1].id && e.payload.reactions?.some((r) => r.emoji === '🎉')),
      );
    assert.equal(reaction.length, 1, `the reaction is replayed once:\n${dump}`);
    // Nothing from before the restart came again as new_message.
    assert.equal(a.inbox.all('new_message', (x) => x.id === early.id).length, 0, 'history before connecting is not replayed');
    for (const m of live) assert.equal(a.inbox.all('new_message', (x) => x.id === m.id).length, 1, `new_message ${m.content} once`);
    assert.equal(lastSeq[room.id], after1[2].seq);
  });

  it('after a second restart with nothing missed, nothing is replayed', async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    const room = await srv.roomWith(alice, bob);
    for (let i = 0; i < 2; i++) await srv.post(bob, room.id, text(`old-${i}`));
    const { client: a } = trackingClient(srv, alice, 'alice-quiet');
    await a.ready();
    const m = await srv.post(bob, room.id, text('seen'));
    await a.waitFor('new_message', (x) => x.id === m.id);
    const from = a.mark();
    await srv.restart();
    await a.ready({ from });
    const control = await srv.post(bob, room.id, text('control'));
    await a.waitFor('new_message', (x) => x.id === control.id, { from });
    await sleep(QUIET_MS);
    assert.deepEqual(changesOf(a.inbox, room.id, from).map((g) => g[2]), [control.id], 'only the new message after the restart');
  });

  it('a since of 0 for a room replays its history once (latest page), then live', async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    const room = await srv.roomWith(alice, bob);
    const sent = [];
    for (let i = 0; i < 4; i++) sent.push(await srv.post(bob, room.id, text(`hist-${i}`)));
    const a = srv.sioSocket({ auth: { token: alice.token, since: { [room.id]: 0 } } }, 'alice-since-0');
    await a.ready();
    const got = await a.inbox.waitForCount('new_message', 4, (x) => x.roomId === room.id);
    assert.deepEqual(got.map((x) => x.id), sent.map((x) => x.id));
    const live = await srv.post(bob, room.id, text('live'));
    await a.waitFor('new_message', (x) => x.id === live.id);
    await sleep(QUIET_MS);
    assert.equal(a.inbox.all('new_message', (x) => x.roomId === room.id).length, 5);
  });
});
