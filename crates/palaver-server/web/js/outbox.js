// Outgoing messages (queued while offline; `client_id` makes retries idempotent) and
// the `read` markers sent while a room is on screen.

import { Disconnected, api } from './api.js';
import { applyLiveMessage } from './events.js';
import { scrollToBottom, showPending, updatePending } from './messages.js';
import { renderSidebar } from './sidebar.js';
import { conn, request } from './socket.js';
import { state, view } from './state.js';

function newClientId() {
  return `web-${crypto.randomUUID ? crypto.randomUUID() : Date.now() + Math.random().toString(16).slice(2)}`;
}

export function queueMessage(roomId, content, { replyTo = null, file = null } = {}) {
  const p = {
    client_id: newClientId(),
    room_id: roomId,
    content,
    reply_to: replyTo,
    file,
    attachment_id: null,
    status: 'queued',
    error: null,
    inflight: false,
    created_at: new Date().toISOString(),
  };
  state.pending.set(p.client_id, p);
  if (view.roomId === roomId) {
    showPending(p);
    scrollToBottom();
  }
  trySend(p);
}

export function flushPending() {
  for (const p of state.pending.values()) if (p.status !== 'failed') trySend(p);
}

export async function trySend(p) {
  if (p.inflight || !conn.ready) {
    if (!conn.ready) updatePending(p);
    return;
  }
  p.inflight = true;
  try {
    if (p.file && !p.attachment_id) {
      p.status = 'uploading';
      updatePending(p);
      const form = new FormData();
      form.append('file', p.file, p.file.name);
      const att = await api('POST', '/attachments', { form });
      p.attachment_id = att.id;
    }
    p.status = 'sending';
    updatePending(p);
    const data = { room_id: p.room_id, client_id: p.client_id };
    if (p.content) data.content = p.content;
    if (p.reply_to) data.reply_to = p.reply_to;
    if (p.attachment_id) data.attachment_id = p.attachment_id;
    const m = await request('message.send', data);
    if (state.pending.has(p.client_id)) {
      // The reply can come before (or, after a retry, instead of) the live event.
      applyLiveMessage(m, m.seq, true, true);
    }
  } catch (e) {
    if (!state.pending.has(p.client_id)) return;
    if (e instanceof Disconnected || e instanceof TypeError) p.status = 'queued';
    else {
      p.status = 'failed';
      p.error = e.message;
    }
    updatePending(p);
  } finally {
    p.inflight = false;
  }
}

export function dropPending(clientId) {
  if (!state.pending.delete(clientId)) return;
  view.pendingEls.get(clientId)?.remove();
  view.pendingEls.delete(clientId);
}

// ---------------------------------------------------------------------------------------
// Reading: `read` for the newest message while the room is on screen

export function maybeMarkRead() {
  const roomId = view.roomId;
  if (!roomId || !conn.ready || document.visibilityState !== 'visible' || !view.stick) return;
  const rm = state.msgs.get(roomId);
  const room = state.rooms.get(roomId);
  if (!rm?.loaded || !room) return;
  const latest = rm.order.at(-1)?.seq || 0;
  if (room.unread_count || room.mention_count) {
    room.unread_count = 0;
    room.mention_count = 0;
    renderSidebar();
  }
  if (!latest || latest <= (room.last_read_seq || 0) || latest <= (state.readSent.get(roomId) || 0)) return;
  state.readSent.set(roomId, latest);
  request('read', { room_id: roomId, seq: latest })
    .then((r) => {
      room.last_read_seq = Math.max(room.last_read_seq || 0, r.last_read_seq);
      room.unread_count = view.roomId === roomId ? 0 : r.unread_count;
      room.mention_count = view.roomId === roomId ? 0 : (r.mention_count ?? 0);
      renderSidebar();
    })
    .catch(() => state.readSent.delete(roomId));
}
