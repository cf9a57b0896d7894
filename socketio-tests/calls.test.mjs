// Calls and WebRTC signaling over Socket.IO (docs/socketio.md: call_user, accept_call,
// reject_call, end_call, webrtc_offer / webrtc_answer / ice_candidate and the server
// events incoming_call, call_accepted, call_rejected, call_answered_elsewhere,
// call_ended).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Palaver, sleep, QUIET_MS } from './harness.mjs';

const OFFER = { type: 'offer', sdp: 'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n' };
const ANSWER = { type: 'answer', sdp: 'v=0\r\no=- 1234567890123456789 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n' };
const CAND_A = { candidate: 'candidate:1 1 udp 2122260223 192.0.2.10 54400 typ host', sdpMid: '0', sdpMLineIndex: 0 };
const CAND_B = { candidate: 'candidate:2 1 udp 2122260223 192.0.2.20 54401 typ host', sdpMid: '0', sdpMLineIndex: 0 };

const SIGNALING = [
  'incoming_call',
  'call_accepted',
  'call_rejected',
  'call_answered_elsewhere',
  'call_ended',
  'call_left',
  'webrtc_offer',
  'webrtc_answer',
  'ice_candidate',
];

function sameCandidate(got, want) {
  assert.equal(got.candidate, want.candidate);
  assert.equal(got.sdpMid, want.sdpMid);
  assert.equal(got.sdpMLineIndex, want.sdpMLineIndex);
}

describe('calls', () => {
  let srv;
  before(async () => {
    srv = await Palaver.start('calls');
  });
  after(async () => {
    await srv?.close();
  });

  it('a 1:1 call (no roomId): ring, accept, offer/answer/candidates relayed both ways, end; a third user sees none of it', async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    const carol = await srv.user('carol');
    // Carol shares a group room with both, so room-wide fan-out would reach her.
    await srv.roomWith(alice, bob, carol);
    const a = await srv.sio(alice, {}, 'alice');
    const b1 = await srv.sio(bob, {}, 'bob-laptop');
    const b2 = await srv.sio(bob, { transports: ['websocket'] }, 'bob-phone');
    const c = await srv.sio(carol, {}, 'carol');

    const started = await a.ok('call_user', { targetUserId: bob.id, callType: 'video' });
    const callId = started.callId;
    assert.equal(typeof callId, 'string', JSON.stringify(started));
    assert.equal(typeof started.participantId, 'string');
    assert.ok(started.call, 'the ack carries the call');

    // Every device of Bob rings.
    for (const b of [b1, b2]) {
      const ring = await b.waitFor('incoming_call', (x) => x.callId === callId);
      assert.equal(ring.callerId, alice.id);
      assert.equal(ring.callerName, alice.username);
      assert.equal(ring.callType, 'video');
      assert.equal(typeof ring.roomId, 'string', 'the DM the call is in');
    }

    // Bob takes it on his laptop: Alice hears call_accepted, his phone stops ringing.
    const accepted = await b1.ok('accept_call', { callId });
    assert.equal(accepted.callId, callId);
    assert.equal(typeof accepted.participantId, 'string');
    const acc = await a.waitFor('call_accepted', (x) => x.callId === callId);
    assert.equal(acc.userId, bob.id);
    assert.equal(acc.username, bob.username);
    assert.equal(acc.participantId, accepted.participantId);
    await b2.waitFor('call_answered_elsewhere', (x) => x.callId === callId);

    // Offer A -> B.
    await a.ok('webrtc_offer', { targetUserId: bob.id, offer: OFFER, callId });
    const offer = await b1.waitFor('webrtc_offer');
    assert.equal(offer.senderId, alice.id);
    assert.equal(offer.callId, callId);
    assert.equal(offer.offer.type, 'offer');
    assert.equal(offer.offer.sdp, OFFER.sdp);

    // Answer B -> A (callId omitted: the socket is in exactly one call).
    await b1.ok('webrtc_answer', { targetUserId: alice.id, answer: ANSWER });
    const answer = await a.waitFor('webrtc_answer');
    assert.equal(answer.senderId, bob.id);
    assert.equal(answer.callId, callId);
    assert.equal(answer.answer.type, 'answer');
    assert.equal(answer.answer.sdp, ANSWER.sdp);

    // Candidates both ways.
    await a.ok('ice_candidate', { targetUserId: bob.id, candidate: CAND_A });
    const ca = await b1.waitFor('ice_candidate');
    assert.equal(ca.senderId, alice.id);
    assert.equal(ca.callId, callId);
    sameCandidate(ca.candidate, CAND_A);
    await b1.ok('ice_candidate', { targetUserId: alice.id, candidate: CAND_B, callId });
    const cb = await a.waitFor('ice_candidate');
    assert.equal(cb.senderId, bob.id);
    sameCandidate(cb.candidate, CAND_B);

    // Signaling goes to Bob's participant only: not his phone, not Carol.
    await sleep(QUIET_MS);
    for (const ev of ['webrtc_offer', 'webrtc_answer', 'ice_candidate']) {
      await b2.none(ev, () => true, { ms: 0 });
    }

    // Hang up: both get call_ended.
    await a.ok('end_call', { callId });
    const endA = await a.waitFor('call_ended', (x) => x.callId === callId);
    const endB = await b1.waitFor('call_ended', (x) => x.callId === callId);
    assert.equal(typeof endA.reason, 'string');
    assert.equal(endB.reason, endA.reason);

    await sleep(QUIET_MS);
    for (const ev of SIGNALING) await c.none(ev, () => true, { ms: 0 });
  });

  it('a call in a group room (call_user with roomId) rings only the target; the others get no signaling', async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    const carol = await srv.user('carol');
    const room = await srv.roomWith(alice, bob, carol);
    const a = await srv.sio(alice);
    const b = await srv.sio(bob);
    const c = await srv.sio(carol);

    const started = await a.ok('call_user', { targetUserId: bob.id, roomId: room.id, callType: 'audio' });
    const { callId } = started;
    const ring = await b.waitFor('incoming_call', (x) => x.callId === callId);
    assert.equal(ring.roomId, room.id);
    assert.equal(ring.callType, 'audio');
    assert.equal(ring.callerId, alice.id);

    await b.ok('accept_call', { callId });
    await a.waitFor('call_accepted', (x) => x.callId === callId && x.userId === bob.id);
    await b.ok('webrtc_offer', { targetUserId: alice.id, offer: OFFER, callId });
    const offer = await a.waitFor('webrtc_offer', (x) => x.callId === callId);
    assert.equal(offer.senderId, bob.id);
    await a.ok('webrtc_answer', { targetUserId: bob.id, answer: ANSWER, callId });
    assert.equal((await b.waitFor('webrtc_answer', (x) => x.callId === callId)).senderId, alice.id);

    await a.ok('end_call', {});
    await a.waitFor('call_ended', (x) => x.callId === callId);
    await b.waitFor('call_ended', (x) => x.callId === callId);

    await sleep(QUIET_MS);
    for (const ev of SIGNALING) await c.none(ev, () => true, { ms: 0 });
  });

  it('reject_call: the caller gets call_rejected {callId, userId}, and the call ends', async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    const a = await srv.sio(alice);
    const b = await srv.sio(bob);
    const { callId } = await a.ok('call_user', { targetUserId: bob.id, callType: 'audio' });
    await b.waitFor('incoming_call', (x) => x.callId === callId);
    await b.ok('reject_call', { callId });
    const rej = await a.waitFor('call_rejected', (x) => x.callId === callId);
    assert.equal(rej.userId, bob.id);
    const ended = await a.waitFor('call_ended', (x) => x.callId === callId);
    assert.equal(ended.reason, 'declined');
    // The call is over: Alice can start another one.
    const again = await a.ok('call_user', { targetUserId: bob.id, callType: 'audio' });
    assert.notEqual(again.callId, callId);
    await a.ok('end_call', { callId: again.callId });
  });

  it('signaling errors: to a user not in the call is not_found or validation_failed; accept of an unknown call is not_found', async () => {
    const alice = await srv.user('alice');
    const bob = await srv.user('bob');
    const carol = await srv.user('carol');
    await srv.roomWith(alice, bob, carol);
    const a = await srv.sio(alice);
    const b = await srv.sio(bob);
    const c = await srv.sio(carol);
    const { callId } = await a.ok('call_user', { targetUserId: bob.id, callType: 'video' });
    await b.ok('accept_call', { callId });
    // Carol is not a participant: a signal to her is refused, and she receives nothing.
    const res = await a.ack('webrtc_offer', { targetUserId: carol.id, offer: OFFER, callId });
    assert.equal(res.ok, false, JSON.stringify(res));
    assert.ok(['not_found', 'validation_failed'].includes(res.error.code), JSON.stringify(res));
    // Carol cannot see a call in a DM she is not in.
    const acc = await c.ack('accept_call', { callId });
    assert.equal(acc.ok, false);
    assert.equal(acc.error.code, 'not_found');
    await c.none('webrtc_offer');
    await a.ok('end_call', { callId });
    await b.waitFor('call_ended', (x) => x.callId === callId);
  });
});
