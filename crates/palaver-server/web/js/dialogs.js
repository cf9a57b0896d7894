// Dialogs: create a room, the public directory, find a user (new DM, invitation), and
// leaving a room.

import { api, enc } from './api.js';
import { $, avatar, h, toast } from './dom.js';
import { navigate } from './room-view.js';
import { forgetRoom, loadPresence, refreshRoom, upsertRoom } from './rooms.js';
import { renderSidebar } from './sidebar.js';
import { state, view } from './state.js';

export function openDialog(dlg) {
  const err = dlg.querySelector('.form-error');
  if (err) err.textContent = '';
  dlg.showModal();
}

for (const dlg of document.querySelectorAll('dialog')) {
  dlg.addEventListener('click', (e) => {
    if (e.target.closest('[data-close]')) dlg.close();
  });
}

export async function createRoom(e) {
  e.preventDefault();
  const form = e.currentTarget;
  const data = new FormData(form);
  const body = { name: String(data.get('name')).trim(), visibility: data.get('visibility') };
  const topic = String(data.get('topic') || '').trim();
  if (topic) body.topic = topic;
  if (!body.name) {
    form.querySelector('.form-error').textContent = 'Give the room a name.';
    return;
  }
  try {
    const room = await api('POST', '/rooms', { body });
    upsertRoom(room);
    renderSidebar();
    form.reset();
    $('#new-room-dialog').close();
    navigate(room.id);
  } catch (err) {
    form.querySelector('.form-error').textContent = err.message;
  }
}

let browseSearch = null; // debounce timer of the directory's search box
let browseLoad = 0; // bumped per (re)load, so a stale page is not shown

/** The directory's search box changed: reloads after a short pause in typing. */
export function onBrowseInput() {
  clearTimeout(browseSearch);
  browseSearch = setTimeout(loadDirectory, 250);
}

/** Opens the public directory: the newest rooms first, a page at a time. */
export function openDirectory() {
  const dlg = $('#browse-dialog');
  $('#browse-q').value = '';
  openDialog(dlg);
  loadDirectory();
}

/**
 * Lists the directory (names containing the search box's text) from its first page; "Load
 * more" appends the next page (`next` cursor), so every public room can be reached.
 */
async function loadDirectory() {
  const dlg = $('#browse-dialog');
  const list = $('#browse-list');
  const q = $('#browse-q').value.trim();
  const load = ++browseLoad;
  dlg.querySelector('.form-error').textContent = '';
  list.replaceChildren(h('li', { class: 'muted' }, 'Loading…'));
  let after = null;
  let first = true;
  const more = async () => {
    const params = new URLSearchParams({ limit: '50' });
    if (q) params.set('q', q);
    if (after) params.set('after', after);
    try {
      const page = await api('GET', `/rooms/public?${params}`);
      if (load !== browseLoad) return;
      if (first) list.replaceChildren();
      first = false;
      list.querySelector('[data-testid="directory-more"]')?.closest('li')?.remove();
      if (!page.rooms.length && !list.children.length) {
        list.append(h('li', { class: 'muted' }, q ? 'No public room matches.' : 'No public rooms yet.'));
      }
      for (const r of page.rooms) list.append(directoryItem(r));
      after = page.next;
      if (after) {
        list.append(h('li', null, h('button', {
          type: 'button', class: 'ghost small block', 'data-testid': 'directory-more', onclick: more,
        }, 'Load more')));
      }
    } catch (e) {
      if (load !== browseLoad) return;
      if (first) list.replaceChildren();
      dlg.querySelector('.form-error').textContent = e.message;
    }
  };
  await more();
}

/** One room of the directory, with Join (or Open, for a member). */
function directoryItem(r) {
  const member = state.rooms.has(r.id);
  return h('li', { class: 'browse-item', 'data-testid': 'directory-room', 'data-room-name': r.name },
    h('div', null,
      h('strong', null, `# ${r.name}`),
      h('span', { class: 'muted small' }, ` · ${r.member_count} member${r.member_count === 1 ? '' : 's'}`),
      r.topic ? h('div', { class: 'muted small' }, r.topic) : null),
    h('button', {
      type: 'button',
      class: member ? 'ghost small' : 'primary small',
      'data-testid': member ? 'directory-open' : 'directory-join',
      'aria-label': `${member ? 'Open' : 'Join'} ${r.name}`,
      onclick: () => joinRoom(r.id),
    }, member ? 'Open' : 'Join'));
}

async function joinRoom(roomId) {
  const dlg = $('#browse-dialog');
  try {
    if (!state.rooms.has(roomId)) {
      await api('POST', `/rooms/${roomId}/join`);
      await refreshRoom(roomId);
    }
    dlg.close();
    navigate(roomId);
  } catch (e) {
    dlg.querySelector('.form-error').textContent = e.message;
  }
}

let userPick = null; // what picking a user in the dialog does
let searchTimer = null;
let searchSeq = 0;

export function openUserDialog(title, onPick) {
  userPick = onPick;
  $('#user-dialog-title').textContent = title;
  $('#user-search').value = '';
  $('#user-results').replaceChildren();
  openDialog($('#user-dialog'));
  $('#user-search').focus();
}

export function onUserSearch() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    const q = $('#user-search').value.trim().toLowerCase();
    const list = $('#user-results');
    const mySeq = ++searchSeq;
    if (!q) {
      list.replaceChildren();
      return;
    }
    try {
      const { users } = await api('GET', `/users?q=${enc(q)}&limit=10`);
      if (mySeq !== searchSeq) return;
      list.replaceChildren();
      const others = users.filter((u) => u.id !== state.me?.id);
      if (!others.length) list.append(h('li', { class: 'muted' }, 'Nobody by that name.'));
      for (const u of others) {
        list.append(h('li', null, h('button', {
          type: 'button', class: 'user-result', 'data-testid': 'user-result', 'data-username': u.username,
          onclick: () => userPick?.(u),
        }, avatar(u.username), h('span', null, u.username), u.display_name ? h('span', { class: 'muted small' }, ` ${u.display_name}`) : null)));
      }
    } catch (e) {
      $('#user-dialog .form-error').textContent = e.message;
    }
  }, 200);
}

export async function startDm(user) {
  try {
    const room = await api('POST', '/dms', { body: { user_id: user.id } });
    upsertRoom(room);
    state.dmPeer.set(room.id, { user_id: user.id, username: user.username });
    loadPresence(user.id);
    await refreshRoom(room.id);
    $('#user-dialog').close();
    navigate(room.id);
  } catch (e) {
    $('#user-dialog .form-error').textContent = e.message;
  }
}

export async function leaveRoom() {
  const room = state.rooms.get(view.roomId);
  if (!room || !window.confirm(`Leave ${room.name}?${room.visibility === 'private' ? ' You will need a new invitation to come back.' : ''}`)) return;
  try {
    await api('POST', `/rooms/${room.id}/leave`);
    forgetRoom(room.id);
  } catch (e) {
    toast(`Could not leave: ${e.message}`, 'error');
  }
}

export async function inviteUser(user) {
  const roomId = view.roomId;
  try {
    await api('POST', `/rooms/${roomId}/invitations`, { body: { user_id: user.id } });
    $('#user-dialog').close();
    toast(`Invited ${user.username}.`);
  } catch (e) {
    const msg = e.code === 'conflict' ? `${user.username} is already a member.` : e.message;
    $('#user-dialog .form-error').textContent = msg;
  }
}
