// The room settings dialog: name, topic and who may use @room, the members with their roles (change a role,
// kick, ban), invite, leave and delete, through the REST routes under
// /api/v1/rooms/{room_id}. The controls offered follow the caller's role in the room
// (owner > admin > member); the server checks every action anyway.

import { api } from './api.js';
import { inviteUser, leaveRoom, openDialog, openUserDialog } from './dialogs.js';
import { $, avatar, h, toast } from './dom.js';
import { renderRoomHeader } from './room-view.js';
import { forgetRoom, loadMembers, presenceOf, upsertRoom } from './rooms.js';
import { renderSidebar } from './sidebar.js';
import { state, view } from './state.js';

const RANK = { member: 0, admin: 1, owner: 2 };
const ROLE_NAMES = { owner: 'Owner', admin: 'Admin', member: 'Member' };

function errorBox() {
  return $('#room-settings-dialog .form-error');
}

/** Opens the settings of the open room. */
export async function openRoomSettings() {
  const room = state.rooms.get(view.roomId);
  if (!room) return;
  const mine = room.my_role || 'member';
  const form = $('#room-settings-form');
  form.elements.name.value = room.name;
  form.elements.topic.value = room.topic || '';
  const canEdit = RANK[mine] >= RANK.admin;
  form.elements.name.disabled = !canEdit;
  form.elements.topic.disabled = !canEdit;
  form.elements.room_mentions.value = room.room_mentions || 'members';
  form.elements.room_mentions.disabled = !canEdit;
  $('#room-mentions-row').hidden = room.kind === 'dm';
  $('#room-settings-save').hidden = !canEdit;
  $('#room-delete').hidden = mine !== 'owner';
  $('#room-settings-invite').hidden = room.kind === 'dm';
  $('#room-settings-leave').hidden = room.kind === 'dm';
  $('#room-settings-title').textContent = room.kind === 'dm' ? 'Conversation settings' : `Settings of ${room.name}`;
  openDialog($('#room-settings-dialog'));
  try {
    await loadMembers(room.id);
  } catch (e) {
    errorBox().textContent = e.message;
  }
  renderMembers();
}

/** The members list of the dialog, with the actions the caller's role allows. */
export function renderMembers() {
  const room = state.rooms.get(view.roomId);
  const members = state.members.get(view.roomId);
  const list = $('#room-member-list');
  if (!room || !members) {
    list.replaceChildren();
    return;
  }
  const mine = room.my_role || 'member';
  const sorted = [...members.values()].sort((a, b) => RANK[b.role] - RANK[a.role] || a.username.localeCompare(b.username));
  list.replaceChildren(...sorted.map((m) => {
    const me = m.user_id === state.me?.id;
    const name = m.display_name ? `${m.display_name} (${m.username})` : m.username;
    const li = h('li', { class: 'member', 'data-testid': 'room-member', 'data-username': m.username, 'data-role': m.role },
      avatar(m.username),
      h('span', { class: 'member-name' }, name, me ? h('span', { class: 'muted' }, ' (you)') : null,
        h('span', { class: `dot ${presenceOf(m.user_id)}`, 'aria-hidden': 'true' })),
      h('span', { class: 'role-badge', 'data-testid': 'member-role' }, ROLE_NAMES[m.role] || m.role));
    if (me || room.kind === 'dm') return li;
    const actions = h('span', { class: 'member-actions' });
    if (mine === 'owner' && m.role !== 'owner') {
      const select = h('select', { 'aria-label': `Role of ${m.username}`, 'data-testid': 'member-role-select' },
        h('option', { value: 'member' }, 'Member'), h('option', { value: 'admin' }, 'Admin'));
      select.value = m.role;
      select.addEventListener('change', () => setRole(m, select.value));
      actions.append(select);
    }
    if (RANK[mine] >= RANK.admin && RANK[mine] > RANK[m.role]) {
      actions.append(
        h('button', { type: 'button', class: 'ghost small', 'data-testid': 'member-kick', 'aria-label': `Remove ${m.username} from the room`, onclick: () => kick(m) }, 'Remove'),
        h('button', { type: 'button', class: 'ghost small danger', 'data-testid': 'member-ban', 'aria-label': `Ban ${m.username} from the room`, onclick: () => ban(m) }, 'Ban'));
    }
    if (actions.children.length) li.append(actions);
    return li;
  }));
}

async function act(what, fn) {
  errorBox().textContent = '';
  try {
    await fn();
    await loadMembers(view.roomId);
    renderMembers();
  } catch (e) {
    errorBox().textContent = `Could not ${what}: ${e.message}`;
  }
}

function setRole(m, role) {
  return act(`change ${m.username}'s role`, () => api('PUT', `/rooms/${view.roomId}/members/${m.user_id}/role`, { body: { role } }));
}

function kick(m) {
  if (!window.confirm(`Remove ${m.username} from the room? They can come back if it is public, or with a new invitation.`)) return null;
  return act(`remove ${m.username}`, () => api('DELETE', `/rooms/${view.roomId}/members/${m.user_id}`));
}

function ban(m) {
  if (!window.confirm(`Ban ${m.username}? They are removed and cannot come back.`)) return null;
  return act(`ban ${m.username}`, () => api('PUT', `/rooms/${view.roomId}/bans/${m.user_id}`));
}

async function saveSettings(e) {
  e.preventDefault();
  const form = e.currentTarget;
  const roomId = view.roomId;
  errorBox().textContent = '';
  const topic = form.elements.topic.value.trim();
  try {
    const body = { name: form.elements.name.value.trim(), topic: topic || null };
    if (!$('#room-mentions-row').hidden) body.room_mentions = form.elements.room_mentions.value;
    const room = await api('PATCH', `/rooms/${roomId}`, { body });
    upsertRoom(room);
    renderSidebar();
    if (view.roomId === roomId) renderRoomHeader();
    toast('The room is saved.');
  } catch (err) {
    errorBox().textContent = err.message;
  }
}

async function deleteRoom() {
  const room = state.rooms.get(view.roomId);
  if (!room || !window.confirm(`Delete ${room.name} for everyone, with all its messages? This cannot be undone.`)) return;
  try {
    await api('DELETE', `/rooms/${room.id}`);
    $('#room-settings-dialog').close();
    forgetRoom(room.id, 'Deleted');
  } catch (e) {
    errorBox().textContent = `Could not delete the room: ${e.message}`;
  }
}

export function wireRoomSettings() {
  $('#room-settings-btn').addEventListener('click', openRoomSettings);
  $('#room-settings-form').addEventListener('submit', saveSettings);
  $('#room-delete').addEventListener('click', deleteRoom);
  $('#room-settings-leave').addEventListener('click', async () => {
    const roomId = view.roomId;
    await leaveRoom();
    if (!state.rooms.has(roomId)) $('#room-settings-dialog').close();
  });
  $('#room-settings-invite').addEventListener('click', () => {
    const room = state.rooms.get(view.roomId);
    $('#room-settings-dialog').close();
    if (room) openUserDialog(`Invite someone to ${room.name}`, inviteUser);
  });
}
