// /hubs/webrtc (seed 000): CallUser -> IncomingCall, AcceptCaller -> CallAccepted,
// SendSignal -> ReceiveSignal, RejectCall -> CallRejected, EndCall -> CallEnded, nothing to
// a third user; SendMessage -> NewMessage to the lobby room's members only (the spec's
// "/hubs/webrtc").

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Palaver, text, sdp, candidate, waitUntil, NO_SUCH_ID } from './harness.mjs';

const CALL_EVENTS = ['IncomingCall', 'CallAccepted', 'ReceiveSignal', 'CallRejected', 'CallEnded'];

function sameSdp(got, sent) {
  assert.equal(got?.type, sent.type, `signal type: ${JSON.stringify(got)}`);
  assert.equal(got.sdp, sent.sdp, 'the SDP is relayed as sent');
}

function sameCandidate(got, sent) {
  assert.equal(got?.candidate?.candidate, sent.candidate.candidate, `candidate: ${JSON.stringify(got)}`);
  assert.equal(got.candidate.sdpMid, sent.candidate.sdpMid);
  assert.equal(got.candidate.sdpMLineIndex, sent.candidate.sdpMLineIndex);
}

describe('/hubs/webrtc calls', () => {
  let srv, alice, bob, carol, a, b1, b2, c;
  const call = {};
  before(async () => {
    srv = await Palaver.start('webrtc');
    alice = await srv.user('alice');
    bob = await srv.user('bob');
    carol = await srv.user('carol');
    // Carol shares a room with both: she could hear of them, but never of their call.
    await srv.roomWith(alice, bob, carol);
    a = await srv.signalr(alice, { hub: 'webrtc', label: 'alice' });
    b1 = await srv.signalr(bob, { hub: 'webrtc', label: 'bob-1' });
    b2 = await srv.signalr(await srv.login(bob), { hub: 'webrtc', label: 'bob-2' });
    c = await srv.signalr(carol, { hub: 'webrtc', label: 'carol' });
  });
  after(async () => {
    await srv?.close();
  });

  it('CallUser(B, offer) rings every connection of B with IncomingCall({from, name, signal, callId}); the result is {callId}', async () => {
    call.offer = sdp('offer');
    const r = await a.invoke('CallUser', bob.id, call.offer);
    assert.equal(typeof r?.callId, 'string', JSON.stringify(r));
    call.id = r.callId;
    for (const x of [b1, b2]) {
      const [inc] = await x.waitFor('IncomingCall', ([p]) => p.callId === call.id);
      assert.equal(inc.from, alice.id);
      assert.equal(inc.name, alice.username);
      sameSdp(inc.signal, call.offer);
    }
    await a.none('IncomingCall', () => true, { ms: 0 });
  });

  it('AcceptCaller(A, answer) -> the caller gets CallAccepted(signal)', async () => {
    assert.ok(call.id, 'the call of the previous test');
    call.answer = sdp('answer');
    await b1.invoke('AcceptCaller', alice.id, call.answer);
    const [signal] = await a.waitFor('CallAccepted');
    sameSdp(signal, call.answer);
  });

  it('SendSignal both ways -> ReceiveSignal({from, signal}) at the other participant', async () => {
    assert.ok(call.answer, 'the accepted call of the previous test');
    const fromA = candidate(1);
    await a.invoke('SendSignal', bob.id, fromA);
    const [atB] = await b1.waitFor('ReceiveSignal', ([p]) => p.from === alice.id);
    sameCandidate(atB.signal, fromA);

    const fromB = { type: 'candidate', ...candidate(2) };
    await b1.invoke('SendSignal', alice.id, fromB);
    const [atA] = await a.waitFor('ReceiveSignal', ([p]) => p.from === bob.id);
    sameCandidate(atA.signal, fromB);

    // A renegotiation: an SDP description goes the same way.
    const reoffer = sdp('offer');
    await a.invoke('SendSignal', bob.id, reoffer);
    const [again] = await b1.waitFor('ReceiveSignal', ([p]) => p.from === alice.id && p.signal?.type === 'offer');
    sameSdp(again.signal, reoffer);

    // Signals of one sender arrive in order.
    const burst = [3, 4, 5, 6].map((n) => candidate(n));
    for (const s of burst) await a.invoke('SendSignal', bob.id, s);
    const got = await b1.inbox.waitForCount('ReceiveSignal', 4, ([p]) => p.from === alice.id && /192\.168\.1\.[3-6] /.test(p.signal?.candidate?.candidate));
    assert.deepEqual(got.map(([p]) => p.signal.candidate.candidate), burst.map((s) => s.candidate.candidate));
  });

  it('a third user receives nothing of the call, and her SendSignal to A or B is refused', async () => {
    for (const target of [alice, bob]) {
      assert.match(await c.invokeError('SendSignal', target.id, candidate(9)), /not_found|forbidden/);
    }
    // A positive control after the refusals: Alice's next signal reaches Bob, not Carol's.
    const s = candidate(7);
    await a.invoke('SendSignal', bob.id, s);
    await b1.waitFor('ReceiveSignal', ([p]) => p.signal?.candidate?.candidate === s.candidate.candidate);
    await b1.none('ReceiveSignal', ([p]) => p.from === carol.id);
    await a.none('ReceiveSignal', ([p]) => p.from === carol.id, { ms: 0 });
    for (const e of CALL_EVENTS) await c.none(e, () => true, { ms: 0 });
  });

  it('EndCall -> the other side gets CallEnded({callId, reason}); signals are refused afterwards', async () => {
    assert.ok(call.id, 'the call of the first test');
    await a.invoke('EndCall');
    const [ended] = await b1.waitFor('CallEnded', ([p]) => p.callId === call.id);
    assert.equal(typeof ended.reason, 'string');
    assert.match(await a.invokeError('SendSignal', bob.id, candidate(8)), /not_found|forbidden/);
    for (const e of CALL_EVENTS) await c.none(e, () => true, { ms: 0 });
  });

  it('RejectCall(caller) -> the caller gets CallRejected({from, callId})', async () => {
    const from = a.mark();
    const r = await a.invoke('CallUser', bob.id, sdp('offer'));
    await b2.waitFor('IncomingCall', ([p]) => p.callId === r.callId);
    await b2.invoke('RejectCall', alice.id);
    const [rej] = await a.waitFor('CallRejected', ([p]) => p.callId === r.callId, { from });
    assert.equal(rej.from, bob.id);
    assert.equal(rej.callId, r.callId);
    for (const e of CALL_EVENTS) await c.none(e, () => true, { ms: 0 });
  });

  it('AcceptCaller of a caller who is not calling you is refused, and the caller hears nothing', async () => {
    const from = a.mark();
    assert.match(await c.invokeError('AcceptCaller', alice.id, sdp('answer')), /not_found|forbidden|conflict/);
    await a.none('CallAccepted', () => true, { from });
  });

  it('CallUser to an unknown user is not_found; to oneself validation_failed; a bad signal bad_request or validation_failed', async () => {
    assert.match(await a.invokeError('CallUser', NO_SUCH_ID, sdp('offer')), /not_found/);
    assert.match(await a.invokeError('CallUser', alice.id, sdp('offer')), /validation_failed/);
    assert.match(await a.invokeError('CallUser', bob.id, { type: 'bogus', sdp: 'x' }), /validation_failed|bad_request/);
    assert.match(await a.invokeError('CallUser', bob.id), /bad_request/);
  });

  it('SendMessage with no lobby room configured is not_found (no lobby room)', async () => {
    const err = await a.invokeError('SendMessage', 'hello lobby');
    assert.match(err, /not_found/);
    assert.match(err, /lobby/);
  });
});

describe('/hubs/webrtc lobby (signalr.lobby_room)', () => {
  let srv, owner;
  before(async () => {
    srv = await Palaver.start('webrtc-lobby');
    owner = await srv.user('owner');
  });
  after(async () => {
    await srv?.close();
  });

  it('a public lobby: connecting makes you a member, SendMessage -> NewMessage({user, message}) to its members only', async () => {
    const lobby = await srv.createRoom(owner, { name: 'lobby' });
    const dave = await srv.user('dave');
    const erin = await srv.user('erin');
    const frank = await srv.user('frank'); // never connects to /hubs/webrtc
    await srv.restart({ env: { PALAVER_SIGNALR__LOBBY_ROOM: lobby.id } });

    const d = await srv.signalr(dave, { hub: 'webrtc', label: 'dave' });
    const e = await srv.signalr(erin, { hub: 'webrtc', label: 'erin' });
    // Connecting joins the public lobby (the join may land just after the handshake).
    await waitUntil('dave and erin members of the lobby', async () => {
      const members = await srv.memberIds(owner, lobby.id);
      return members.includes(dave.id) && members.includes(erin.id);
    });
    assert.ok(!(await srv.memberIds(owner, lobby.id)).includes(frank.id));
    // Frank is on /hubs/chat only, in no room of theirs.
    const f = await srv.signalr(frank, { label: 'frank-chat' });

    const message = text('hi all');
    await e.invoke('SendMessage', message);
    for (const x of [d, e]) {
      const [p] = await x.waitFor('NewMessage', ([m]) => m.message === message);
      assert.equal(p.user, erin.username);
      assert.equal(p.message, message);
    }
    await f.none('NewMessage');
    await f.none('ReceiveMessage', ([, m]) => m.text === message, { ms: 0 });
  });

  it('a private lobby reaches only its members: a non-member neither receives nor sends', async () => {
    const mia = await srv.user('mia');
    const nick = await srv.user('nick');
    const lobby = await srv.privateRoomWith(owner, mia);
    await srv.restart({ env: { PALAVER_SIGNALR__LOBBY_ROOM: lobby.id } });

    const o = await srv.signalr(owner, { hub: 'webrtc', label: 'owner' });
    const m = await srv.signalr(mia, { hub: 'webrtc', label: 'mia' });
    const n = await srv.signalr(nick, { hub: 'webrtc', label: 'nick' });
    assert.ok(!(await srv.memberIds(owner, lobby.id)).includes(nick.id), 'a private lobby is not joined by connecting');

    const message = text('members only');
    await o.invoke('SendMessage', message);
    const [p] = await m.waitFor('NewMessage', ([x]) => x.message === message);
    assert.equal(p.user, owner.username);
    await n.none('NewMessage');

    const err = await n.invokeError('SendMessage', text('let me in'));
    assert.match(err, /not_member|forbidden/);
    await m.none('NewMessage', ([x]) => x.user === nick.username);
  });
});
