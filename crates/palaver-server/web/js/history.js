// A room's history over REST: the newest page when the room opens, older pages as the
// list scrolls up.

import { api } from './api.js';
import { $, toast } from './dom.js';
import { applyReactionTo, keepMessage } from './events.js';
import { renderMessageList, renderSeenBy, scrollToBottom, showMessage } from './messages.js';
import { maybeMarkRead } from './outbox.js';
import { navigate, openRoom } from './room-view.js';
import { forgetRoom } from './rooms.js';
import { roomLabel, roomMsgs, state, storeMessage, view } from './state.js';

const PAGE = 50;

export async function loadInitial(roomId) {
  const rm = roomMsgs(roomId);
  if (rm.loading || rm.loaded) return;
  rm.loading = true;
  if (view.roomId === roomId) setHistoryStatus('Loading messages…');
  try {
    const { messages, has_more } = await api('GET', `/rooms/${roomId}/messages?limit=${PAGE}`);
    for (const m of messages) storeMessage(m);
    rm.hasMore = has_more;
    rm.loaded = true;
  } catch (e) {
    rm.buffer.length = 0;
    if (view.roomId === roomId) setHistoryStatus(`Could not load messages: ${e.message}`);
    if (e.status === 403 || e.status === 404) forgetRoom(roomId);
    return;
  } finally {
    rm.loading = false;
  }
  // Events that came while the page was on its way, in their order (by id, so nothing
  // doubles up with the page).
  for (const b of rm.buffer.splice(0)) {
    if (b.m) keepMessage(b.m, b.created, false);
    else applyReactionTo(b.d, b.added, false);
  }
  if (view.roomId === roomId) {
    renderMessageList();
    scrollToBottom();
    fillViewport();
    maybeMarkRead();
  }
}

export async function loadOlder(roomId, limit = PAGE) {
  const rm = state.msgs.get(roomId);
  if (!rm?.loaded || !rm.hasMore || rm.loadingOlder) return;
  const oldest = rm.order[0]?.seq;
  if (!oldest) {
    rm.hasMore = false;
    return;
  }
  rm.loadingOlder = true;
  if (view.roomId === roomId) setHistoryStatus('Loading older messages…');
  try {
    const { messages, has_more } = await api('GET', `/rooms/${roomId}/messages?before=${oldest}&limit=${limit}`);
    rm.hasMore = has_more;
    if (view.roomId !== roomId) {
      for (const m of messages) storeMessage(m);
      return;
    }
    const box = $('#messages');
    const before = box.scrollHeight - box.scrollTop;
    for (const m of messages) {
      storeMessage(m);
      showMessage(m, { quiet: true });
    }
    box.scrollTop = box.scrollHeight - before;
    renderSeenBy();
  } catch (e) {
    if (view.roomId === roomId) toast(`Could not load older messages: ${e.message}`, 'error');
  } finally {
    rm.loadingOlder = false;
    if (view.roomId === roomId) updateHistoryStatus();
  }
  if (view.roomId === roomId) fillViewport();
}

/** Loads older pages until the list can scroll (so scrolling up can load more). */
export function fillViewport() {
  const box = $('#messages');
  const rm = state.msgs.get(view.roomId);
  if (rm?.hasMore && box.scrollHeight <= box.clientHeight + 50) loadOlder(view.roomId);
}

export function setHistoryStatus(text) {
  $('#history-status').textContent = text;
}

export function updateHistoryStatus() {
  const rm = state.msgs.get(view.roomId);
  if (!rm?.loaded) return;
  const room = state.rooms.get(view.roomId);
  if (rm.hasMore) setHistoryStatus('Scroll up for older messages');
  else if (!rm.order.length) setHistoryStatus('No messages yet. Say hello!');
  else setHistoryStatus(room ? `This is the beginning of ${room.kind === 'dm' ? 'your conversation with ' : ''}${roomLabel(room)}.` : '');
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Opens `roomId` and brings message `messageId` (position `seq`) into view, highlighted
 * and focused. History is contiguous (from the newest message back), so a message older
 * than the loaded pages is reached by loading older pages (100 at a time) down to it.
 * Returns false if the message could not be shown (deleted, or the room is gone).
 */
export async function jumpToMessage(roomId, messageId, seq) {
  if (!state.rooms.has(roomId)) return false;
  navigate(roomId);
  // The hash changes asynchronously: open the room now, so what follows works on its list.
  if (view.roomId !== roomId) openRoom(roomId);
  const rm = roomMsgs(roomId);
  for (let i = 0; !rm.loaded && i < 200; i++) {
    if (!rm.loading) loadInitial(roomId);
    await sleep(50);
  }
  if (!rm.loaded || view.roomId !== roomId) return false;
  while (!rm.byId.has(messageId) && rm.hasMore && (rm.order[0]?.seq ?? 0) > seq) {
    if (view.roomId !== roomId) return false;
    setHistoryStatus('Loading history…');
    if (rm.loadingOlder) {
      await sleep(50);
      continue;
    }
    const oldest = rm.order[0]?.seq;
    await loadOlder(roomId, 100);
    if (!state.rooms.has(roomId) || rm.order[0]?.seq === oldest) return false; // failed
  }
  const el = view.els.get(messageId);
  if (!el || view.roomId !== roomId) return false;
  el.scrollIntoView({ block: 'center' });
  view.stick = false;
  for (const other of document.querySelectorAll('#message-list .found')) other.classList.remove('found');
  el.classList.remove('flash');
  void el.offsetWidth; // restart the animation
  el.classList.add('flash', 'found');
  el.focus({ preventScroll: true });
  setTimeout(() => el.classList.remove('flash'), 1500);
  return true;
}
