// Routing (`#/room/<id>`) and the open room: opening it, its header and actions.

import { call } from './calls.js';
import { renderComposerBars, stopTyping } from './composer.js';
import { $, h, icon } from './dom.js';
import { fillViewport, loadInitial } from './history.js';
import { renderMessageList, renderTyping, scrollToBottom } from './messages.js';
import { maybeMarkRead } from './outbox.js';
import { loadMembers, presenceOf } from './rooms.js';
import { renderSidebar } from './sidebar.js';
import { conn } from './socket.js';
import { roomLabel, roomMsgs, state, view } from './state.js';

export function navigate(roomId) {
  const hash = roomId ? `#/room/${roomId}` : '#/';
  if (location.hash !== hash) location.hash = hash;
  else routeFromHash();
}

export function routeFromHash() {
  if (!state.me) return;
  const m = /^#\/room\/([\w-]+)$/.exec(location.hash);
  const roomId = m && state.rooms.has(m[1]) ? m[1] : null;
  if (roomId !== view.roomId) openRoom(roomId);
}
window.addEventListener('hashchange', routeFromHash);

/** Whether the first `ready` of this sign-in has chosen the room to show yet. */
export const landing = { done: false };

function lastRoomKey() {
  return `palaver.lastRoom.${state.me?.id}`;
}

/**
 * At the first `ready` of a sign-in, when the address names no room: opens the room open
 * last time in this browser if still there, else the first room of the sidebar (a new
 * account lands in its default room, e.g. #general), else nothing (the welcome view).
 */
export function openLandingRoom() {
  if (/^#\/room\//.test(location.hash) || view.roomId) return;
  let last = null;
  try {
    last = localStorage.getItem(lastRoomKey());
  } catch {
    last = null;
  }
  let roomId = last && state.rooms.has(last) ? last : null;
  if (!roomId) {
    const channels = [...state.rooms.values()].filter((r) => r.kind !== 'dm').sort((a, b) => a.name.localeCompare(b.name));
    roomId = channels[0]?.id || null;
  }
  if (roomId) navigate(roomId);
}

export function openRoom(roomId) {
  stopTyping();
  view.roomId = roomId;
  view.replyTo = null;
  view.editing = null;
  view.file = null;
  renderComposerBars();
  $('#room-view').hidden = !roomId;
  $('#empty-state').hidden = !!roomId;
  renderSidebar();
  if (!roomId) return;
  try {
    localStorage.setItem(lastRoomKey(), roomId);
  } catch {
    // not remembered
  }
  const room = state.rooms.get(roomId);
  room.unread_count = 0;
  room.mention_count = 0;
  renderRoomHeader();
  renderMessageList();
  renderTyping();
  scrollToBottom();
  const rm = roomMsgs(roomId);
  if (!rm.loaded) loadInitial(roomId);
  else {
    fillViewport();
    maybeMarkRead();
  }
  if (!state.members.has(roomId)) loadMembers(roomId).catch(() => {});
  const input = $('#composer-input');
  input.placeholder = room.kind === 'dm' ? `Message ${roomLabel(room)}` : `Message #${room.name}`;
  if (!matchMedia('(pointer: coarse)').matches) input.focus();
}

export function renderRoomHeader() {
  const room = state.rooms.get(view.roomId);
  if (!room) return;
  const title = $('#room-title');
  title.replaceChildren();
  if (room.kind === 'dm') {
    const peer = state.dmPeer.get(room.id);
    const status = peer ? presenceOf(peer.user_id) : 'offline';
    title.append(h('span', { class: `dot ${status}`, 'aria-hidden': 'true' }), roomLabel(room),
      h('span', { class: 'sr-only' }, ` (${status})`));
  } else {
    title.append(h('span', { class: 'hash', 'aria-hidden': 'true' }, room.visibility === 'private' ? icon('lock') : '#'), room.name);
    if (room.visibility === 'private') title.append(h('span', { class: 'sr-only' }, ' (private)'));
  }
  $('#room-topic').textContent = room.topic || (room.kind === 'dm' ? 'Direct message' : '');
  const members = state.members.get(room.id);
  const count = members ? members.size : room.member_count;
  $('#room-members').textContent = count ? `${count} member${count === 1 ? '' : 's'}` : '';
  if (members) {
    $('#room-members').title = [...members.values()].map((m) => `${m.username} (${presenceOf(m.user_id)})`).join('\n');
  }
  $('#invite-btn').hidden = room.kind === 'dm';
  $('#leave-btn').hidden = room.kind === 'dm';
  renderRoomActions();
}

export function renderRoomActions() {
  const busy = !!call || conn.state !== 'online';
  for (const id of ['#call-audio-btn', '#call-video-btn']) {
    const b = $(id);
    if (b) b.disabled = busy || !view.roomId;
  }
}
