// Calls: signaling over the WebSocket, media over WebRTC (a mesh: one
// RTCPeerConnection per remote participant; the joiner offers to everyone already in the
// call), the incoming call card and the call view.

import { api } from './api.js';
import { $, h, hueOf, toast } from './dom.js';
import { markCallEnded, refreshJoinButtons } from './messages.js';
import { navigate, renderRoomActions } from './room-view.js';
import { renderSidebar } from './sidebar.js';
import { request } from './socket.js';
import { memberName, roomLabel, state, view } from './state.js';
import { startRing, stopRing } from './ring.js';

// per remote participant; the joiner offers to everyone already in the call).

export let call = null;
export let incoming = null;

function newCall({ id = null, roomId, kind }) {
  return {
    id,
    roomId,
    kind,
    myPid: null,
    host: null,
    state: 'starting', // starting | ringing | active
    participants: new Map(), // participant id -> {participant_id, user_id, username}
    peers: new Map(), // participant id -> peer
    localStream: null,
    iceServers: [],
    muted: false,
    cameraOff: false,
    screen: null, // the shared screen's stream, while sharing
  };
}

async function getIceServers() {
  try {
    const { ice_servers } = await api('GET', '/rtc/ice-servers');
    return ice_servers || [];
  } catch {
    return [];
  }
}

async function getLocalMedia(kind) {
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video: kind === 'video' });
  } catch (e) {
    if (kind === 'video') {
      try {
        const s = await navigator.mediaDevices.getUserMedia({ audio: true });
        toast('No camera available: joining with audio only.');
        return s;
      } catch {
        // fall through
      }
    }
    toast(`No microphone or camera (${e.name}): you can listen and watch only.`);
    return null;
  }
}

export async function startCall(kind) {
  const roomId = view.roomId;
  if (call || !roomId) return;
  call = newCall({ roomId, kind });
  renderCall();
  const mine = call;
  try {
    const [ice, stream] = await Promise.all([getIceServers(), getLocalMedia(kind)]);
    if (call !== mine) {
      stream?.getTracks().forEach((t) => t.stop());
      return;
    }
    call.iceServers = ice;
    call.localStream = stream;
    renderCall();
    const r = await request('call.start', { room_id: roomId, kind });
    if (call !== mine) {
      // Hung up while the call was being set up.
      request('call.leave', { call_id: r.call.call_id }).catch(() => {});
      return;
    }
    call.id = r.call.call_id;
    call.myPid = r.participant_id;
    applyCallSnapshot(r.call);
    renderCall();
    refreshJoinButtons();
  } catch (e) {
    if (call === mine) teardownCall();
    toast(e.code === 'conflict' ? 'A call is already going on in this room: join it from its line in the chat.' : `Could not start the call: ${e.message}`, 'error');
  }
}

function applyCallSnapshot(c) {
  call.kind = c.kind;
  call.host = c.host;
  call.state = c.state === 'active' ? 'active' : 'ringing';
  call.participants = new Map(c.participants.map((p) => [p.participant_id, p]));
}

export function onIncomingCall(d) {
  if (call?.id === d.call_id) return;
  incoming = d;
  const room = state.rooms.get(d.room_id);
  const where = room && room.kind !== 'dm' ? ` in #${room.name}` : '';
  $('#incoming-title').textContent = `${d.caller.username} is calling${where}`;
  $('#incoming-desc').textContent = d.kind === 'video' ? 'Video call' : 'Audio call';
  const box = $('#incoming-call');
  box.dataset.callId = d.call_id;
  box.hidden = false;
  $('#incoming-accept').focus();
  if (state.presence.get(state.me?.id)?.status !== 'dnd') startRing();
  document.title = `📞 ${d.caller.username} is calling`;
}

export function hideIncoming() {
  incoming = null;
  stopRing();
  const box = $('#incoming-call');
  if (!box.hidden) {
    box.hidden = true;
    renderSidebar();
  }
}

export async function acceptIncoming() {
  const inc = incoming;
  hideIncoming();
  if (inc) await joinCall(inc);
}

export async function declineIncoming() {
  const inc = incoming;
  hideIncoming();
  if (inc) request('call.decline', { call_id: inc.call_id }).catch(() => {});
}

/** Accepts a call (rung or not): media first, then `call.accept`, then offers to everyone. */
export async function joinCall(inc) {
  if (call) {
    if (call.id === inc.call_id) return;
    await hangUp();
  }
  if (state.rooms.has(inc.room_id) && view.roomId !== inc.room_id) navigate(inc.room_id);
  call = newCall({ id: inc.call_id, roomId: inc.room_id, kind: inc.kind });
  const mine = call;
  renderCall();
  refreshJoinButtons();
  try {
    const [ice, stream] = await Promise.all([getIceServers(), getLocalMedia(inc.kind)]);
    if (call !== mine) {
      stream?.getTracks().forEach((t) => t.stop());
      return;
    }
    call.iceServers = ice;
    call.localStream = stream;
    const r = await request('call.accept', { call_id: inc.call_id });
    if (call !== mine) {
      request('call.leave', { call_id: inc.call_id }).catch(() => {});
      return;
    }
    call.myPid = r.participant_id;
    applyCallSnapshot(r.call);
    call.state = 'active';
    renderCall();
    for (const p of r.call.participants) {
      if (p.participant_id === call.myPid) continue;
      const peer = ensurePeer(p.participant_id);
      queuePeer(peer, async () => {
        await peer.pc.setLocalDescription();
        await sendDescription(peer);
      });
    }
  } catch (e) {
    if (call === mine) teardownCall();
    if (e.code === 'not_found') {
      markCallEnded(inc.call_id);
      toast('That call has ended.');
    } else toast(`Could not join the call: ${e.message}`, 'error');
  }
}

export function ensurePeer(pid) {
  let peer = call.peers.get(pid);
  if (peer) return peer;
  const pc = new RTCPeerConnection({ iceServers: call.iceServers });
  peer = {
    pid,
    pc,
    chain: Promise.resolve(),
    remoteCandidates: [], // candidates that came before the remote description
    localCandidates: [], // candidates found before our description was sent
    descriptionSent: false,
    stream: new MediaStream(),
  };
  call.peers.set(pid, peer);
  const local = call.localStream;
  if (local) for (const t of local.getTracks()) pc.addTrack(t, local);
  // Without a track of a kind we still want to receive it.
  if (!local?.getAudioTracks().length) pc.addTransceiver('audio', { direction: 'recvonly' });
  if (call.kind === 'video' && !local?.getVideoTracks().length) pc.addTransceiver('video', { direction: 'recvonly' });
  if (call.screen) videoSender(pc)?.replaceTrack(call.screen.getVideoTracks()[0]).catch(() => {});
  const callId = call.id;
  pc.onicecandidate = (e) => {
    if (!e.candidate || !e.candidate.candidate) return;
    const c = e.candidate.toJSON();
    if (!peer.descriptionSent) peer.localCandidates.push(c);
    else signal(callId, pid, { candidate: c });
  };
  pc.ontrack = (e) => {
    if (!peer.stream.getTracks().includes(e.track)) peer.stream.addTrack(e.track);
    e.track.onunmute = () => renderCall();
    renderCall();
  };
  pc.onconnectionstatechange = () => {
    renderCall();
    if (pc.connectionState === 'failed') pc.restartIce?.();
  };
  return peer;
}

function queuePeer(peer, fn) {
  peer.chain = peer.chain.then(fn).catch((e) => console.warn('palaver: webrtc', e));
  return peer.chain;
}

async function sendDescription(peer) {
  const d = peer.pc.localDescription;
  await signal(call.id, peer.pid, { description: { type: d.type, sdp: d.sdp } });
  peer.descriptionSent = true;
  for (const c of peer.localCandidates.splice(0)) signal(call.id, peer.pid, { candidate: c });
}

function signal(callId, to, payload) {
  return request('rtc.signal', { call_id: callId, to, ...payload }).catch((e) => {
    console.warn('palaver: rtc.signal', e.code, e.message);
  });
}

export function onSignal(d) {
  if (!call || call.id !== d.call_id) return;
  if (!call.participants.has(d.from)) {
    call.participants.set(d.from, { participant_id: d.from, user_id: d.from_user, username: memberName(call.roomId, d.from_user) });
  }
  const peer = ensurePeer(d.from);
  queuePeer(peer, async () => {
    const pc = peer.pc;
    if (d.description) {
      await pc.setRemoteDescription(d.description);
      if (d.description.type === 'offer') {
        await pc.setLocalDescription();
        await sendDescription(peer);
      }
      for (const c of peer.remoteCandidates.splice(0)) await pc.addIceCandidate(c).catch(() => {});
    } else if (d.candidate) {
      if (!pc.remoteDescription) peer.remoteCandidates.push(d.candidate);
      else await pc.addIceCandidate(d.candidate).catch((e) => console.warn('palaver: candidate', e));
    }
  });
  renderCall();
}

export function closePeer(pid) {
  const peer = call?.peers.get(pid);
  if (!peer) return;
  peer.pc.close();
  call.peers.delete(pid);
}

export async function hangUp() {
  const c = call;
  if (!c) return;
  teardownCall();
  if (c.id) await request('call.leave', { call_id: c.id }).catch(() => {});
}

export function teardownCall(message) {
  const c = call;
  if (!c) return;
  call = null;
  for (const peer of c.peers.values()) peer.pc.close();
  c.localStream?.getTracks().forEach((t) => t.stop());
  c.screen?.getTracks().forEach((t) => t.stop());
  renderCall();
  if (message) toast(message);
  // Let the call's log lines offer "Join" again if it goes on.
  if (view.roomId === c.roomId) refreshJoinButtons();
}

export function toggleMute() {
  if (!call?.localStream) return;
  call.muted = !call.muted;
  for (const t of call.localStream.getAudioTracks()) t.enabled = !call.muted;
  renderCall();
}

/** The sender of a peer connection's video (found by its receiver's kind, which a
 * replaced track does not change); null in an audio call. */
function videoSender(pc) {
  return pc.getTransceivers().find((t) => t.receiver.track?.kind === 'video' && !t.stopped)?.sender || null;
}

/** Sends `track` (or nothing, for null) as the video to every peer, without renegotiating. */
function sendVideo(track) {
  return Promise.all([...call.peers.values()].map((peer) => videoSender(peer.pc)?.replaceTrack(track)));
}

/**
 * Shares the screen (getDisplayMedia) in place of the camera, or stops sharing and puts
 * the camera back. Only video calls whose camera is on can share: the screen replaces the
 * camera's track on the same sender (RTCRtpSender.replaceTrack), so the call is not
 * renegotiated. The browser's own "Stop sharing" ends it too.
 */
export async function toggleScreenShare() {
  if (!call) return;
  if (call.screen) {
    await stopScreenShare();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (e) {
    if (e.name !== 'NotAllowedError') toast(`Could not share the screen: ${e.message}`, 'error');
    return;
  }
  const track = stream.getVideoTracks()[0];
  if (!call || !track) {
    stream.getTracks().forEach((t) => t.stop());
    return;
  }
  call.screen = stream;
  track.addEventListener('ended', () => stopScreenShare());
  try {
    await sendVideo(track);
  } catch (e) {
    toast(`Could not share the screen: ${e.message}`, 'error');
    await stopScreenShare();
    return;
  }
  renderCall();
}

async function stopScreenShare() {
  const screen = call?.screen;
  if (!screen) return;
  call.screen = null;
  screen.getTracks().forEach((t) => t.stop());
  await sendVideo(call.localStream?.getVideoTracks()[0] || null).catch(() => {});
  renderCall();
}

export function toggleCamera() {
  if (!call?.localStream) return;
  call.cameraOff = !call.cameraOff;
  for (const t of call.localStream.getVideoTracks()) t.enabled = !call.cameraOff;
  renderCall();
}

const tiles = new Map(); // participant id (or 'local') -> element

export function renderCall() {
  const viewEl = $('#call-view');
  renderRoomActions();
  if (!call) {
    viewEl.hidden = true;
    for (const t of tiles.values()) t.remove();
    tiles.clear();
    return;
  }
  viewEl.hidden = false;
  viewEl.dataset.callState = call.state;
  const room = state.rooms.get(call.roomId);
  $('#call-title').textContent = `${call.kind === 'video' ? 'Video' : 'Audio'} call${room ? ` · ${roomLabel(room)}` : ''}`;
  const others = [...call.participants.values()].filter((p) => p.participant_id !== call.myPid);
  let status;
  if (call.state === 'starting') status = 'Starting…';
  else if (call.state === 'ringing' && !others.length) status = 'Ringing…';
  else {
    const connected = [...call.peers.values()].filter((p) => p.pc.connectionState === 'connected').length;
    status = `${others.length + 1} in the call${connected < others.length ? ' · connecting…' : ''}`;
  }
  $('#call-status').textContent = status;
  const grid = $('#call-grid');
  const wanted = new Set(['local', ...call.peers.keys()]);
  for (const [key, el] of tiles) {
    if (!wanted.has(key)) {
      el.remove();
      tiles.delete(key);
    }
  }
  // The local tile
  let local = tiles.get('local');
  if (!local) {
    local = makeTile(true);
    tiles.set('local', local);
    grid.prepend(local);
  }
  const lv = local.querySelector('video');
  const shown = call.screen || call.localStream;
  if (shown && lv.srcObject !== shown) lv.srcObject = shown;
  local.querySelector('figcaption').textContent = `${state.me?.username || 'You'} (you)${call.muted ? ' · muted' : ''}`;
  local.dataset.video = call.localStream?.getVideoTracks().length && !call.cameraOff ? 'on' : 'off';
  setTileInitial(local, state.me?.username);
  for (const [pid, peer] of call.peers) {
    let tile = tiles.get(pid);
    if (!tile) {
      tile = makeTile(false);
      tile.dataset.participantId = pid;
      tiles.set(pid, tile);
      grid.append(tile);
    }
    const v = tile.querySelector('video');
    if (v.srcObject !== peer.stream) v.srcObject = peer.stream;
    const p = call.participants.get(pid);
    const name = p?.username || 'Connecting…';
    tile.dataset.connectionState = peer.pc.connectionState;
    tile.dataset.video = peer.stream.getVideoTracks().some((t) => !t.muted) ? 'on' : 'off';
    const host = call.host === pid ? ' · host' : '';
    const cs = peer.pc.connectionState === 'connected' ? '' : ` · ${peer.pc.connectionState}`;
    tile.querySelector('figcaption').textContent = `${name}${host}${cs}`;
    setTileInitial(tile, p?.username);
  }
  grid.dataset.count = String(tiles.size);
  const mute = $('#mute-btn');
  mute.querySelector('.label').textContent = call.muted ? 'Unmute' : 'Mute';
  mute.setAttribute('aria-pressed', String(call.muted));
  mute.disabled = !call.localStream?.getAudioTracks().length;
  const cam = $('#camera-btn');
  cam.hidden = call.kind !== 'video';
  cam.querySelector('.label').textContent = call.cameraOff ? 'Camera on' : 'Camera off';
  cam.setAttribute('aria-pressed', String(call.cameraOff));
  cam.disabled = !call.localStream?.getVideoTracks().length || !!call.screen;
  const share = $('#share-btn');
  share.hidden = call.kind !== 'video' || !navigator.mediaDevices?.getDisplayMedia;
  share.disabled = !call.localStream?.getVideoTracks().length || call.cameraOff;
  share.querySelector('.label').textContent = call.screen ? 'Stop sharing' : 'Share screen';
  share.setAttribute('aria-pressed', String(!!call.screen));
}

function makeTile(isLocal) {
  const video = h('video', { autoplay: true, playsinline: true, 'data-testid': isLocal ? 'local-video' : 'remote-video' });
  if (isLocal) video.muted = true;
  return h('figure', { class: `tile${isLocal ? ' local' : ''}`, 'data-testid': isLocal ? 'local-tile' : 'remote-tile' },
    video, h('span', { class: 'tile-initial', 'aria-hidden': 'true' }), h('figcaption'));
}

function setTileInitial(tile, name) {
  const el = tile.querySelector('.tile-initial');
  el.textContent = (name || '?').slice(0, 1).toUpperCase();
  el.style.setProperty('--hue', String(hueOf(name || '?')));
}
