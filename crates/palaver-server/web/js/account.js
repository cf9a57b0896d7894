// The account dialog: the profile (display name, about, the picture: upload, remove), the
// presence status with its text (the socket's `presence.set`), the password, API keys
// (create, list, revoke) and deleting the account.

import { API, api, enc } from './api.js';
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

/** Avatar path -> Promise of a blob: URL (the picture needs the bearer token). */
const avatarUrls = new Map();

/**
 * A URL the page can show for `avatarUrl` (a user's `avatar_url`): a path of this
 * server's API is fetched with the access token into a blob: URL (cached per versioned
 * path); anything else is used as it is (the page's CSP may still refuse it).
 */
export function avatarSrc(avatarUrl) {
  if (!avatarUrl.startsWith(`${API}/`)) return Promise.resolve(avatarUrl);
  if (!avatarUrls.has(avatarUrl)) {
    const p = api('GET', avatarUrl.slice(API.length), { raw: true })
      .then((res) => res.blob())
      .then((b) => URL.createObjectURL(b));
    p.catch(() => avatarUrls.delete(avatarUrl));
    avatarUrls.set(avatarUrl, p);
  }
  return avatarUrls.get(avatarUrl);
}

/** Puts the picture of `avatarUrl` into the avatar element `el` once it loads. */
export function showAvatarImage(el, avatarUrl, testid) {
  if (!avatarUrl) return;
  avatarSrc(avatarUrl).then((src) => {
    const img = h('img', { alt: '', src, 'data-testid': testid });
    img.addEventListener('load', () => el.replaceChildren(img), { once: true });
  }).catch(() => {});
}

function fillProfile(me) {
  const form = $('#profile-form');
  form.elements.display_name.value = me.display_name || '';
  form.elements.bio.value = me.bio || '';
  $('#profile-username').textContent = `@${me.username}`;
  const av = $('#profile-avatar');
  av.replaceChildren();
  av.textContent = me.username.slice(0, 1).toUpperCase();
  showAvatarImage(av, me.avatar_url, 'profile-avatar-image');
  $('#avatar-remove').hidden = !me.avatar_url;
}

/** Uploads a new picture (PUT /users/me/avatar, multipart part `file`). */
async function uploadAvatar(file) {
  errorBox().textContent = '';
  const form = new FormData();
  form.append('file', file, file.name);
  try {
    const me = await api('PUT', '/users/me/avatar', { form });
    state.me = { ...state.me, ...me };
    renderMe();
    fillProfile(me);
    toast('Your picture is saved.');
  } catch (err) {
    errorBox().textContent = err.status === 413 ? 'That picture is too large (at most 1 MB).' : `Could not save the picture: ${err.message}`;
  } finally {
    $('#avatar-input').value = '';
  }
}

async function removeAvatar() {
  errorBox().textContent = '';
  try {
    const me = await api('DELETE', '/users/me/avatar');
    state.me = { ...state.me, ...me };
    renderMe();
    fillProfile(me);
  } catch (err) {
    errorBox().textContent = `Could not remove the picture: ${err.message}`;
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
  $('#avatar-change').addEventListener('click', () => $('#avatar-input').click());
  $('#avatar-input').addEventListener('change', (e) => {
    const f = e.target.files[0];
    if (f) uploadAvatar(f);
  });
  $('#avatar-remove').addEventListener('click', removeAvatar);
  $('#profile-form').addEventListener('submit', saveProfile);
  $('#status-form').addEventListener('submit', saveStatus);
  $('#password-form').addEventListener('submit', changePassword);
  $('#key-form').addEventListener('submit', createKey);
  $('#delete-account-form').addEventListener('submit', deleteAccount);
}
