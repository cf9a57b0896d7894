// The sidebar: who I am, the rooms and direct messages with unread counts and presence,
// and the invitations waiting for an answer.

import { api, session } from './api.js';
import { incoming } from './calls.js';
import { $, h, hueOf, icon, toast } from './dom.js';
import { navigate } from './room-view.js';
import { presenceOf, refreshRoom, upsertRoom } from './rooms.js';
import { roomLabel, state, view } from './state.js';
import { renderAdminButton } from './admin.js';
import { showAvatarImage } from './account.js';

export function renderMe() {
  $('#me-name').textContent = state.me?.username || session?.user?.username || '';
  const av = $('#me-avatar');
  const name = state.me?.username || '?';
  const url = state.me?.avatar_url || '';
  // The picture, if any (kept while it does not change), else the initial.
  if (!url || av.dataset.avatarUrl !== url) {
    av.dataset.avatarUrl = url;
    av.textContent = name.slice(0, 1).toUpperCase();
    showAvatarImage(av, url, 'me-avatar-image');
  }
  av.style.setProperty('--hue', String(hueOf(name)));
  const p = state.presence.get(state.me?.id);
  const words = { away: 'Away', dnd: 'Do not disturb', invisible: 'Invisible' };
  const status = [words[p?.status], p?.status_text].filter(Boolean).join(': ');
  $('#me-status').textContent = status;
  renderAdminButton();
}

export function renderSidebar() {
  const focusedId = document.activeElement?.closest?.('.room-item')?.dataset.roomId;
  const channels = [];
  const dms = [];
  for (const room of state.rooms.values()) (room.kind === 'dm' ? dms : channels).push(room);
  channels.sort((a, b) => a.name.localeCompare(b.name));
  dms.sort((a, b) => roomLabel(a).localeCompare(roomLabel(b)));
  $('#room-list').replaceChildren(...channels.map(roomItem));
  $('#dm-list').replaceChildren(...dms.map(roomItem));
  if (!channels.length) $('#room-list').append(h('li', { class: 'muted small empty' }, 'No rooms yet'));
  if (!dms.length) $('#dm-list').append(h('li', { class: 'muted small empty' }, 'No conversations yet'));
  if (focusedId) document.querySelector(`.room-item[data-room-id="${focusedId}"]`)?.focus();
  if (incoming) return; // the title shows the ringing
  const total = [...state.rooms.values()].reduce((n, r) => n + (r.unread_count || 0), 0);
  document.title = total ? `(${total}) Palaver` : 'Palaver';
}

function roomItem(room) {
  const active = room.id === view.roomId;
  const unread = room.unread_count || 0;
  const a = h('a', {
    href: `#/room/${room.id}`,
    class: `room-item${active ? ' active' : ''}${unread ? ' unread' : ''}`,
    'data-testid': 'room-item',
    'data-room-id': room.id,
    'data-room-name': roomLabel(room),
    'aria-current': active ? 'page' : null,
  });
  if (room.kind === 'dm') {
    const peer = state.dmPeer.get(room.id);
    const status = peer ? presenceOf(peer.user_id) : 'offline';
    a.append(h('span', { class: `dot ${status}`, 'data-testid': 'presence-dot', 'data-status': status, 'aria-hidden': 'true' }),
      h('span', { class: 'room-name' }, roomLabel(room)),
      h('span', { class: 'sr-only' }, ` (${status})`));
  } else {
    a.append(h('span', { class: 'hash', 'aria-hidden': 'true' }, room.visibility === 'private' ? icon('lock') : '#'),
      h('span', { class: 'room-name' }, room.name));
  }
  const mentions = room.mention_count || 0;
  if (mentions) {
    a.classList.add('mentioned');
    a.append(h('span', { class: 'badge mention-badge', 'data-testid': 'mention-badge', 'aria-hidden': 'true' }, `@${mentions > 99 ? '99+' : mentions}`),
      h('span', { class: 'sr-only' }, ` ${mentions} mention${mentions === 1 ? '' : 's'}`));
  }
  if (unread) {
    a.append(h('span', { class: 'badge', 'data-testid': 'unread-badge' }, unread > 99 ? '99+' : String(unread)),
      h('span', { class: 'sr-only' }, ` ${unread} unread`));
  }
  return h('li', null, a);
}

export async function loadInvitations() {
  try {
    const { invitations } = await api('GET', '/invitations');
    state.invitations = new Map(invitations.map((i) => [i.id, i]));
    renderInvitations();
  } catch {
    // shown again at the next ready
  }
}

export function renderInvitations() {
  const list = $('#invite-list');
  list.replaceChildren();
  for (const inv of state.invitations.values()) {
    list.append(h('li', { class: 'invite', 'data-testid': 'invitation' },
      h('span', null, h('strong', null, inv.room_name), h('span', { class: 'muted small' }, ` from ${inv.inviter.username}`)),
      h('span', { class: 'invite-actions' },
        h('button', { type: 'button', class: 'primary small', 'data-testid': 'invitation-accept', onclick: () => answerInvitation(inv, true) }, 'Accept'),
        h('button', { type: 'button', class: 'ghost small', 'data-testid': 'invitation-decline', onclick: () => answerInvitation(inv, false) }, 'Decline'))));
  }
  $('#invites-section').hidden = state.invitations.size === 0;
}

async function answerInvitation(inv, accept) {
  try {
    if (accept) {
      const room = await api('POST', `/invitations/${inv.id}/accept`);
      upsertRoom(room);
      await refreshRoom(room.id);
      navigate(room.id);
    } else {
      await api('POST', `/invitations/${inv.id}/decline`);
    }
    state.invitations.delete(inv.id);
    renderInvitations();
  } catch (e) {
    toast(`Could not answer the invitation: ${e.message}`, 'error');
    if (e.status === 404) {
      state.invitations.delete(inv.id);
      renderInvitations();
    }
  }
}
