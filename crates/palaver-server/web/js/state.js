// The client's model of the account's world (`state`) and of the open room (`view`),
// with the small functions that read and update it.


export const state = {
  me: null,
  rooms: new Map(), // room id -> Room (with my_role, last_read_seq, unread_count, ...)
  msgs: new Map(), // room id -> {byId, order (by seq), hasMore, loaded, loading, loadingOlder}
  roomSeq: new Map(), // room id -> highest change seq seen (what `since` presents)
  presence: new Map(), // user id -> {status, status_text, last_seen}
  dmPeer: new Map(), // DM room id -> {user_id, username}
  members: new Map(), // room id -> Map(user id -> Member)
  receipts: new Map(), // room id -> Map(user id -> read seq)
  typing: new Map(), // room id -> Map(user id -> timer)
  invitations: new Map(), // invitation id -> Invitation
  pending: new Map(), // client_id -> outgoing message not yet acknowledged
  readSent: new Map(), // room id -> seq of the last `read` sent
};

export function roomMsgs(roomId) {
  let rm = state.msgs.get(roomId);
  if (!rm) {
    rm = { byId: new Map(), order: [], hasMore: true, loaded: false, loading: false, loadingOlder: false, buffer: [] };
    state.msgs.set(roomId, rm);
  }
  return rm;
}

export function noteSeq(roomId, seq) {
  if (typeof seq === 'number' && seq > (state.roomSeq.get(roomId) || 0)) state.roomSeq.set(roomId, seq);
}

/** Stores (or replaces, by id) a message. Returns true if it was new. */
export function storeMessage(m) {
  if (m.message_type === 'call' && ['missed', 'declined', 'ended'].includes(m.call?.event)) endedCalls.add(m.call.call_id);
  const rm = roomMsgs(m.room_id);
  const old = rm.byId.get(m.id);
  rm.byId.set(m.id, m);
  if (old) {
    const i = rm.order.indexOf(old);
    if (i >= 0) rm.order[i] = m;
    return false;
  }
  let lo = 0;
  let hi = rm.order.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (rm.order[mid].seq < m.seq) lo = mid + 1;
    else hi = mid;
  }
  rm.order.splice(lo, 0, m);
  return true;
}

export function memberName(roomId, userId) {
  if (userId === state.me?.id) return state.me.username;
  const m = state.members.get(roomId)?.get(userId);
  if (m) return m.display_name || m.username;
  for (const [, peer] of state.dmPeer) if (peer.user_id === userId) return peer.username;
  return 'someone';
}

export function roomLabel(room) {
  if (room.kind === 'dm') return state.dmPeer.get(room.id)?.username || room.name;
  return room.name;
}

export const endedCalls = new Set(); // call ids with a closing log entry or a call.ended

// ---------------------------------------------------------------------------------------
// Room view

export const view = {
  roomId: null,
  els: new Map(), // message id -> <li>
  pendingEls: new Map(), // client_id -> <li>
  stick: true, // scrolled to the bottom: follow new messages
  replyTo: null, // message being replied to
  file: null, // file chosen for the next message
  editing: null, // message id being edited
};
