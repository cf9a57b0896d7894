// Rooms and their members: added, refreshed, forgotten; members and presence loaded.

import { api } from './api.js';
import { toast } from './dom.js';
import { refreshMentions, renderSeenBy } from './messages.js';
import { navigate, renderRoomHeader } from './room-view.js';
import { renderSidebar } from './sidebar.js';
import { conn } from './socket.js';
import { roomLabel, state, view } from './state.js';

export function upsertRoom(r) {
  const old = state.rooms.get(r.id);
  const room = { ...(old || { unread_count: 0, last_read_seq: 0 }), ...r };
  if (room.unread_count == null) room.unread_count = 0;
  if (room.mention_count == null) room.mention_count = 0;
  if (room.last_read_seq == null) room.last_read_seq = 0;
  state.rooms.set(r.id, room);
  if (room.kind === 'dm' && !state.dmPeer.has(room.id)) loadMembers(room.id).catch(() => {});
  return room;
}

export function forgetRoom(roomId, why) {
  const room = state.rooms.get(roomId);
  state.rooms.delete(roomId);
  state.msgs.delete(roomId);
  state.roomSeq.delete(roomId);
  state.members.delete(roomId);
  state.receipts.delete(roomId);
  state.typing.delete(roomId);
  state.dmPeer.delete(roomId);
  state.readSent.delete(roomId);
  for (const [cid, p] of state.pending) if (p.room_id === roomId) state.pending.delete(cid);
  if (view.roomId === roomId) {
    if (why && room) toast(`${why}: ${roomLabel(room)}`);
    navigate(null);
  }
  renderSidebar();
}

export async function loadMembers(roomId) {
  const { members } = await api('GET', `/rooms/${roomId}/members`);
  const first = !state.members.has(roomId);
  state.members.set(roomId, new Map(members.map((m) => [m.user_id, m])));
  // Read markers as of now (live ones arrive as receipt.updated): "seen by" after a reload.
  let receipts = state.receipts.get(roomId);
  if (!receipts) state.receipts.set(roomId, (receipts = new Map()));
  for (const m of members) {
    if (m.user_id !== state.me?.id && m.last_read_seq > (receipts.get(m.user_id) || 0)) {
      receipts.set(m.user_id, m.last_read_seq);
    }
  }
  const room = state.rooms.get(roomId);
  if (room?.kind === 'dm') {
    const peer = members.find((m) => m.user_id !== state.me?.id);
    if (peer) {
      state.dmPeer.set(roomId, { user_id: peer.user_id, username: peer.username });
      if (!state.presence.has(peer.user_id)) loadPresence(peer.user_id);
    }
  }
  renderSidebar();
  if (view.roomId === roomId) {
    renderRoomHeader();
    if (first) refreshMentions(roomId);
    renderSeenBy();
  }
}

export async function loadPresence(userId) {
  try {
    const p = await api('GET', `/users/${userId}/presence`);
    state.presence.set(userId, p);
    renderSidebar();
  } catch {
    // not visible to us (no shared room); leave it unknown
  }
}

export async function refreshRoom(roomId) {
  try {
    const r = await api('GET', `/rooms/${roomId}`);
    const room = upsertRoom(r);
    if (view.roomId === roomId) {
      room.unread_count = 0;
      room.mention_count = 0;
    }
    renderSidebar();
  } catch (e) {
    if (e.status === 403 || e.status === 404) forgetRoom(roomId);
  }
}


export function presenceOf(userId) {
  if (userId === state.me?.id) return conn.state === 'online' ? 'online' : 'offline';
  return state.presence.get(userId)?.status || 'offline';
}
