// The account dialog: the profile (display name, about; the avatar when one is set), the
// presence status with its text (the socket's `presence.set`), the password, API keys
// (create, list, revoke) and deleting the account.

import { api, enc } from './api.js';
import { signOut } from './auth.js';
import { $, h, shortTime, toast } from './dom.js';
import { openDialog } from './dialogs.js';
import { renderMe, renderSidebar } from './sidebar.js';
import { request } from './socket.js';
import { state } from './state.js';

function errorBox() {
  return $('#account-dialog .form-error');
}

/** Opens the dialog with the account as the server has it now. */
export async function openAccount() {
  $('#key-created').hidden = true;
  // The form is filled before the dialog opens, so that nothing typed into it is
  // overwritten by the answer arriving later.
  let me;
  try {
    me = await api('GET', '/users/me');
  } catch (e) {
    openDialog($('#account-dialog'));
    errorBox().textContent = e.message;
    return;
  }
  state.me = { ...state.me, ...me };
  renderMe();
  fillProfile(me);
  const p = state.presence.get(me.id);
  const status = $('#status-form');
  status.elements.status.value = p?.status && p.status !== 'offline' ? p.status : 'online';
  status.elements.status_text.value = p?.status_text || '';
  openDialog($('#account-dialog'));
  try {
    await renderKeys();
  } catch (e) {
    errorBox().textContent = e.message;
  }
}

function fillProfile(me) {
  const form = $('#profile-form');
  form.elements.display_name.value = me.display_name || '';
  form.elements.bio.value = me.bio || '';
  $('#profile-username').textContent = `@${me.username}`;
  const av = $('#profile-avatar');
  av.replaceChildren();
  av.textContent = me.username.slice(0, 1).toUpperCase();
  if (me.avatar_url) {
    // Shown when the page may load it (this server's Content-Security-Policy allows its
    // own origin); otherwise the initial stays.
    const img = h('img', { alt: '', src: me.avatar_url, 'data-testid': 'profile-avatar-image' });
    img.addEventListener('load', () => av.replaceChildren(img), { once: true });
  }
}

async function saveProfile(e) {
  e.preventDefault();
  const form = e.currentTarget;
  errorBox().textContent = '';
  const value = (name) => form.elements[name].value.trim() || null;
  try {
    const me = await api('PATCH', '/users/me', { body: { display_name: value('display_name'), bio: value('bio') } });
    state.me = { ...state.me, ...me };
    renderMe();
    fillProfile(me);
    toast('Your profile is saved.');
  } catch (err) {
    errorBox().textContent = err.message;
  }
}

async function saveStatus(e) {
  e.preventDefault();
  const form = e.currentTarget;
  errorBox().textContent = '';
  const data = { status: form.elements.status.value };
  const text = form.elements.status_text.value.trim();
  if (text) data.status_text = text;
  try {
    const p = await request('presence.set', data);
    state.presence.set(state.me.id, { ...p, user_id: state.me.id, status: data.status, status_text: text || null });
    renderMe();
    renderSidebar();
    toast('Your status is set.');
  } catch (err) {
    errorBox().textContent = err.message;
  }
}

async function changePassword(e) {
  e.preventDefault();
  const form = e.currentTarget;
  errorBox().textContent = '';
  try {
    await api('PUT', '/users/me/password', {
      body: { current_password: form.elements.current_password.value, new_password: form.elements.new_password.value },
    });
    form.reset();
    toast('Your password is changed.');
  } catch (err) {
    errorBox().textContent = err.code === 'invalid_credentials' ? 'The current password is wrong.' : err.message;
  }
}

async function renderKeys() {
  const { api_keys: keys } = await api('GET', '/users/me/api-keys');
  const list = $('#key-list');
  if (!keys.length) {
    list.replaceChildren(h('li', { class: 'muted small' }, 'No API keys.'));
    return;
  }
  list.replaceChildren(...keys.map((k) => h('li', { class: 'session', 'data-testid': 'api-key', 'data-key-name': k.name },
    h('span', null, h('strong', null, k.name), h('small', { class: 'hint' },
      ` · ${k.prefix}… · made ${shortTime(k.created_at)}${k.last_used_at ? ` · used ${shortTime(k.last_used_at)}` : ' · never used'}`)),
    h('button', {
      type: 'button', class: 'ghost small', 'data-testid': 'api-key-revoke', 'aria-label': `Revoke the key ${k.name}`,
      onclick: async () => {
        if (!window.confirm(`Revoke the key ${k.name}? Whatever uses it stops working.`)) return;
        try {
          await api('DELETE', `/users/me/api-keys/${enc(k.id)}`);
          $('#key-created').hidden = true;
          await renderKeys();
        } catch (err) {
          errorBox().textContent = err.message;
        }
      },
    }, 'Revoke'))));
}

async function createKey(e) {
  e.preventDefault();
  const form = e.currentTarget;
  errorBox().textContent = '';
  try {
    const created = await api('POST', '/users/me/api-keys', { body: { name: form.elements.name.value.trim() } });
    form.reset();
    $('#key-value').textContent = created.key;
    $('#key-created').hidden = false;
    await renderKeys();
  } catch (err) {
    errorBox().textContent = err.message;
  }
}

async function deleteAccount(e) {
  e.preventDefault();
  const form = e.currentTarget;
  errorBox().textContent = '';
  if (!window.confirm('Delete your account for good?')) return;
  try {
    await api('DELETE', '/users/me', { body: { password: form.elements.password.value } });
    form.reset();
    $('#account-dialog').close();
    signOut('Your account is deleted.', { remote: false });
  } catch (err) {
    errorBox().textContent = err.code === 'invalid_credentials' ? 'That password is wrong.' : err.message;
  }
}

export function wireAccount() {
  $('#account-btn').addEventListener('click', openAccount);
  $('#profile-form').addEventListener('submit', saveProfile);
  $('#status-form').addEventListener('submit', saveStatus);
  $('#password-form').addEventListener('submit', changePassword);
  $('#key-form').addEventListener('submit', createKey);
  $('#delete-account-form').addEventListener('submit', deleteAccount);
}
