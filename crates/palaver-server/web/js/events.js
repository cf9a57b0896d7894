// The server's events (docs/protocol.md, "Server events") applied to the model and the
// page.

import { saveSession, session } from './api.js';
import { call, closePeer, ensurePeer, hangUp, hideIncoming, incoming, onIncomingCall, onSignal, renderCall, teardownCall } from './calls.js';
import { $, announce, toast } from './dom.js';
import { loadInitial } from './history.js';
import { markCallEnded, renderSeenBy, renderTyping, showMessage } from './messages.js';
import { dropPending, flushPending, maybeMarkRead } from './outbox.js';
import { landing, openLandingRoom, renderRoomHeader, routeFromHash } from './room-view.js';
import { forgetRoom, loadMembers, loadPresence, refreshRoom, upsertRoom } from './rooms.js';
import { loadInvitations, renderInvitations, renderMe, renderSidebar } from './sidebar.js';
import { conn, setConnState, startHeartbeat } from './socket.js';
import { memberName, noteSeq, roomMsgs, state, storeMessage, view } from './state.js';
import { renderMembers } from './room-settings.js';
import { mentionsMe } from './mentions.js';
import { maybeNotify, resumeNotifications } from './notify.js';

const recent = new Map(); // message id -> the latest live message (for `mention` events)
const countedMentions = new Set(); // message ids already in a room's mention_count

/** Whether the open room is on screen and followed (its new messages are read at once). */
function reading(roomId) {
  return view.roomId === roomId && document.visibilityState === 'visible' && view.stick;
}

export const handlers = {
  ready(d) {
    conn.ready = true;
    conn.attempt = 0;
    conn.failedBeforeOpen = false;
    setConnState('online');
    startHeartbeat();
    state.me = d.user;
    saveSession({ ...session, user: d.user });
    renderMe();
    const fresh = new Set(d.rooms.map((r) => r.id));
    for (const id of [...state.rooms.keys()]) if (!fresh.has(id)) forgetRoom(id, 'You are no longer in');
    for (const r of d.rooms) {
      const room = upsertRoom(r);
      const rm = state.msgs.get(r.id);
      // Rooms without history in memory start from the snapshot; the others were resumed
      // with `since` and move forward with the replay.
      if (!rm?.loaded) state.roomSeq.set(r.id, Math.max(state.roomSeq.get(r.id) || 0, r.last_seq));
      if (view.roomId === r.id) {
        room.unread_count = 0;
        room.mention_count = 0;
      }
    }
    renderSidebar();
    // Presence may have changed while we were away.
    for (const peer of state.dmPeer.values()) loadPresence(peer.user_id);
    loadInvitations();
    routeFromHash();
    if (!landing.done) {
      landing.done = true;
      openLandingRoom();
      resumeNotifications();
    }
    if (view.roomId) {
      const rm = roomMsgs(view.roomId);
      if (!rm.loaded && !rm.loading) loadInitial(view.roomId);
      if (!state.members.has(view.roomId)) loadMembers(view.roomId).catch(() => {});
    }
    flushPending();
    maybeMarkRead();
  },

  'message.created'(m, f) {
    applyLiveMessage(m, f.seq ?? m.seq, true);
  },
  'message.updated'(m, f) {
    applyLiveMessage(m, f.seq ?? m.seq, false);
  },
  'message.deleted'(m, f) {
    applyLiveMessage(m, f.seq ?? m.seq, false);
    const room = state.rooms.get(m.room_id);
    if (room && room.unread_count > 0 && view.roomId !== m.room_id) refreshRoom(m.room_id);
  },

  'reaction.added'(d, f) {
    applyReaction(d, f.seq ?? d.seq, true);
  },
  'reaction.removed'(d, f) {
    applyReaction(d, f.seq ?? d.seq, false);
  },

  'receipt.updated'(d) {
    if (d.user_id === state.me?.id) {
      // Read on another device or tab.
      const room = state.rooms.get(d.room_id);
      if (room && d.seq > (room.last_read_seq || 0)) {
        room.last_read_seq = d.seq;
        const rm = state.msgs.get(d.room_id);
        const latest = rm?.order.at(-1)?.seq || 0;
        if (rm?.loaded && d.seq >= latest) {
          room.unread_count = 0;
          room.mention_count = 0;
        }
        else refreshRoom(d.room_id);
        renderSidebar();
      }
      return;
    }
    let r = state.receipts.get(d.room_id);
    if (!r) state.receipts.set(d.room_id, (r = new Map()));
    if (d.seq > (r.get(d.user_id) || 0)) r.set(d.user_id, d.seq);
    if (view.roomId === d.room_id) renderSeenBy();
  },

  mention(d) {
    const room = state.rooms.get(d.room_id);
    if (!room) return;
    if (!reading(d.room_id) && d.seq > (room.last_read_seq || 0) && !countedMentions.has(d.message_id)) {
      countedMentions.add(d.message_id);
      room.mention_count = (room.mention_count || 0) + 1;
      renderSidebar();
    }
    const m = recent.get(d.message_id) || state.msgs.get(d.room_id)?.byId.get(d.message_id);
    if (m) maybeNotify(m, 'mention');
  },

  'member.joined'(d) {
    if (d.user_id === state.me?.id) {
      if (!state.rooms.has(d.room_id)) refreshRoom(d.room_id);
      return;
    }
    const room = state.rooms.get(d.room_id);
    const members = state.members.get(d.room_id);
    if (members && !members.has(d.user_id)) {
      members.set(d.user_id, { user_id: d.user_id, username: d.username, display_name: null, role: 'member' });
      if (room) room.member_count = members.size;
    } else if (room && !members) room.member_count = (room.member_count || 0) + 1;
    if (!state.presence.has(d.user_id)) loadPresence(d.user_id);
    if (view.roomId === d.room_id) renderRoomHeader();
  },

  'member.left'(d) {
    if (d.user_id === state.me?.id) {
      const why = d.reason === 'kicked' ? 'You were removed from' : d.reason === 'banned' ? 'You were banned from' : 'You left';
      forgetRoom(d.room_id, why);
      return;
    }
    const room = state.rooms.get(d.room_id);
    const members = state.members.get(d.room_id);
    if (members?.delete(d.user_id) && room) room.member_count = members.size;
    else if (room && !members) room.member_count = Math.max(0, (room.member_count || 1) - 1);
    clearTyping(d.room_id, d.user_id);
    if (view.roomId === d.room_id) renderRoomHeader();
  },

  'member.updated'(d) {
    const m = state.members.get(d.room_id)?.get(d.user_id);
    if (m) m.role = d.role;
    if (view.roomId === d.room_id && $('#room-settings-dialog').open) renderMembers();
    if (d.user_id === state.me?.id) {
      const room = state.rooms.get(d.room_id);
      if (room) room.my_role = d.role;
    }
  },

  'room.updated'(r) {
    if (!state.rooms.has(r.id)) return;
    upsertRoom(r);
    renderSidebar();
    if (view.roomId === r.id) renderRoomHeader();
  },

  'room.deleted'(d) {
    forgetRoom(d.room_id, 'The room was deleted');
  },

  'invitation.created'(inv) {
    state.invitations.set(inv.id, inv);
    renderInvitations();
    toast(`${inv.inviter.username} invited you to ${inv.room_name}`);
  },

  'presence.updated'(d) {
    state.presence.set(d.user_id, d);
    renderSidebar();
    if (view.roomId) renderRoomHeader();
  },

  typing(d) {
    if (d.user_id === state.me?.id) return;
    if (!d.active) {
      clearTyping(d.room_id, d.user_id);
      return;
    }
    let m = state.typing.get(d.room_id);
    if (!m) state.typing.set(d.room_id, (m = new Map()));
    clearTimeout(m.get(d.user_id));
    m.set(d.user_id, setTimeout(() => clearTyping(d.room_id, d.user_id), d.expires_in_ms || 6000));
    if (view.roomId === d.room_id) renderTyping();
  },

  error(d) {
    console.warn('palaver: server error event', d);
  },

  // Calls
  'call.incoming'(d) {
    onIncomingCall(d);
  },
  'call.answered_elsewhere'(d) {
    if (incoming?.call_id === d.call_id) hideIncoming();
  },
  'call.missed'(d) {
    if (incoming?.call_id === d.call_id) {
      const who = incoming.caller?.username || 'someone';
      hideIncoming();
      toast(`Missed call from ${who}`);
    }
  },
  'call.declined'(d) {
    if (incoming?.call_id === d.call_id && d.user_id === state.me?.id) hideIncoming();
    if (call?.id === d.call_id && d.user_id !== state.me?.id) {
      toast(`${memberName(call.roomId, d.user_id)} declined the call`);
    }
  },
  'call.participant_joined'(d) {
    if (call?.id !== d.call_id) return;
    call.participants.set(d.participant.participant_id, d.participant);
    call.state = 'active';
    // The joiner sends the offer; prepare the tile meanwhile.
    ensurePeer(d.participant.participant_id);
    renderCall();
  },
  'call.participant_left'(d) {
    if (call?.id !== d.call_id) return;
    call.participants.delete(d.participant_id);
    closePeer(d.participant_id);
    renderCall();
    if (call.state === 'active' && call.participants.size <= 1) {
      // Everyone else hung up: leave too, which ends the call.
      hangUp();
    }
  },
  'call.host_changed'(d) {
    if (call?.id !== d.call_id) return;
    call.host = d.host;
    renderCall();
  },
  'call.ended'(d) {
    if (incoming?.call_id === d.call_id) hideIncoming();
    if (call?.id === d.call_id) {
      const why = { missed: 'No answer.', declined: 'The call was declined.', removed: 'You left the room.', room_closed: 'The room was deleted.' };
      teardownCall(why[d.reason] || 'The call ended.');
    }
    markCallEnded(d.call_id);
  },
  'rtc.signal'(d) {
    onSignal(d);
  },
};

/**
 * Applies a message from a frame (`changeSeq` = the frame's seq) or, with `fromReply`, from
 * the reply to our own send. Only frames move the resume point: a reply can overtake the
 * events of other messages before it, and resuming after its seq would skip them.
 */
export function applyLiveMessage(m, changeSeq, created, fromReply = false) {
  const room = state.rooms.get(m.room_id);
  if (!room) {
    // A room this page does not know yet (a new conversation): learn it, and notify.
    if (created && !fromReply && m.sender.id !== state.me?.id) {
      refreshRoom(m.room_id).then(() => {
        if (state.rooms.has(m.room_id)) notifyNew(m);
      });
    }
    return;
  }
  const visible = reading(m.room_id);
  // Only changes after the room's snapshot count: earlier ones are already in
  // `unread_count` (the events right after `ready`, or a replay).
  if (!fromReply && changeSeq > (room.last_seq || 0)) {
    room.last_seq = changeSeq;
    if (created && m.message_type !== 'call' && !m.deleted_at && m.sender.id !== state.me?.id
        && m.seq > (room.last_read_seq || 0) && !visible) {
      room.unread_count = (room.unread_count || 0) + 1;
    }
  }
  if (created && (!room.last_message || room.last_message.seq <= m.seq)) room.last_message = m;
  if (!fromReply && !m.deleted_at && m.sender.id !== state.me?.id) {
    recent.set(m.id, m);
    if (recent.size > 200) recent.delete(recent.keys().next().value);
    if (created) notifyNew(m);
  }
  if (!fromReply) noteSeq(m.room_id, changeSeq);
  if (created) clearTyping(m.room_id, m.sender.id);
  if (m.client_id && m.sender.id === state.me?.id) dropPending(m.client_id);
  const rm = roomMsgs(m.room_id);
  if (rm.loading) rm.buffer.push({ m, created });
  else keepMessage(m, created);
  if (m.message_type === 'call' && ['missed', 'declined', 'ended'].includes(m.call?.event)) markCallEnded(m.call.call_id);
  renderSidebar();
  maybeMarkRead();
}

/** A browser notification (tab hidden) for a new message, not for a late replay. */
function notifyNew(m) {
  const room = state.rooms.get(m.room_id);
  if (!room || Date.now() - Date.parse(m.created_at) > 10 * 60 * 1000) return;
  maybeNotify(m, room.kind === 'dm' ? 'dm' : mentionsMe(m) ? 'mention' : 'message');
}

/**
 * Keeps a message from an event in the room's history if that history is loaded and the
 * message falls inside it. A room whose history is not loaded keeps nothing (its first
 * page comes by REST), and an update to a message older than the loaded pages is left for
 * the page that holds it: storing either would leave a gap that paging skips.
 */
export function keepMessage(m, created, render = true) {
  const rm = state.msgs.get(m.room_id);
  if (!rm?.loaded) return;
  const inside = created || !rm.hasMore || (rm.order.length && m.seq >= rm.order[0].seq);
  if (!inside) return;
  const isNew = storeMessage(m);
  if (render && view.roomId === m.room_id) {
    showMessage(m);
    if (isNew && created && m.sender.id !== state.me?.id) {
      announce(`${m.sender.username}: ${m.content || m.attachment?.filename || ''}`);
    }
  }
}

function applyReaction(d, changeSeq, added) {
  noteSeq(d.room_id, changeSeq);
  const room = state.rooms.get(d.room_id);
  if (room && changeSeq > (room.last_seq || 0)) room.last_seq = changeSeq;
  const rm = state.msgs.get(d.room_id);
  // While the first page is on its way, apply once it is stored.
  if (rm?.loading) rm.buffer.push({ d, added });
  else applyReactionTo(d, added, true);
}

export function applyReactionTo(d, added, render) {
  const rm = state.msgs.get(d.room_id);
  const m = rm?.byId.get(d.message_id);
  if (!m) return;
  const reactions = (m.reactions || []).map((r) => ({ ...r, user_ids: [...r.user_ids] }));
  let group = reactions.find((r) => r.emoji === d.emoji);
  if (added) {
    if (!group) reactions.push((group = { emoji: d.emoji, count: 0, user_ids: [] }));
    if (!group.user_ids.includes(d.user_id)) group.user_ids.push(d.user_id);
  } else if (group) {
    group.user_ids = group.user_ids.filter((u) => u !== d.user_id);
  }
  for (const r of reactions) r.count = r.user_ids.length;
  const next = { ...m, reactions: reactions.filter((r) => r.count > 0) };
  storeMessage(next);
  if (render && view.roomId === d.room_id) showMessage(next);
}

function clearTyping(roomId, userId) {
  const m = state.typing.get(roomId);
  if (!m || !m.has(userId)) return;
  clearTimeout(m.get(userId));
  m.delete(userId);
  if (view.roomId === roomId) renderTyping();
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') maybeMarkRead();
  renderSidebar();
});
window.addEventListener('focus', () => maybeMarkRead());
