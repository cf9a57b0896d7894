// Administration, for the server's admins and moderators (the button shows only for
// them; the server refuses everyone else anyway): accounts (admins: search, role,
// disable and enable, /api/v1/admin/users) and open message reports (moderators and
// admins: resolve, /api/v1/moderation/reports).

import { api, enc } from './api.js';
import { $, avatar, h, shortTime } from './dom.js';
import { openDialog } from './dialogs.js';
import { state } from './state.js';

let searchTimer = null;
let searchSeq = 0;

/** Whether the signed-in user is a server admin or moderator. */
export function isStaff() {
  return state.me?.role === 'admin' || state.me?.role === 'moderator';
}

/** Shows the Administration button to admins and moderators only. */
export function renderAdminButton() {
  $('#admin-btn').hidden = !isStaff();
}

function errorBox() {
  return $('#admin-dialog .form-error');
}

export async function openAdmin() {
  const admin = state.me?.role === 'admin';
  $('#admin-users').hidden = !admin;
  $('#admin-q').value = '';
  openDialog($('#admin-dialog'));
  await Promise.all([admin ? loadUsers() : null, loadReports()]);
}

async function loadUsers() {
  const mySeq = ++searchSeq;
  const q = $('#admin-q').value.trim().toLowerCase();
  try {
    const { users } = await api('GET', `/admin/users?limit=50${q ? `&q=${enc(q)}` : ''}`);
    if (mySeq !== searchSeq) return;
    $('#admin-user-list').replaceChildren(...(users.length ? users.map(userRow) : [h('li', { class: 'muted' }, 'No account matches.')]));
  } catch (e) {
    errorBox().textContent = e.message;
  }
}

function userRow(u) {
  const me = u.id === state.me?.id;
  const role = h('select', { 'aria-label': `Role of ${u.username}`, 'data-testid': 'admin-role', disabled: me },
    ...['user', 'moderator', 'admin'].map((r) => h('option', { value: r }, r[0].toUpperCase() + r.slice(1))));
  role.value = u.role;
  role.addEventListener('change', () => update(`/admin/users/${u.id}/role`, 'PUT', { role: role.value }));
  const disabled = !!u.disabled_at;
  const toggle = h('button', {
    type: 'button', class: `ghost small${disabled ? '' : ' danger'}`, 'data-testid': disabled ? 'admin-enable' : 'admin-disable',
    'aria-label': `${disabled ? 'Enable' : 'Disable'} ${u.username}`, disabled: me,
    onclick: () => update(`/admin/users/${u.id}/${disabled ? 'enable' : 'disable'}`, 'POST'),
  }, disabled ? 'Enable' : 'Disable');
  return h('li', { class: 'member', 'data-testid': 'admin-user', 'data-username': u.username, 'data-disabled': disabled ? 'true' : 'false' },
    avatar(u.username),
    h('span', { class: 'member-name' }, u.username, h('small', { class: 'hint' }, ` · ${u.email}${disabled ? ' · disabled' : ''}`)),
    h('span', { class: 'member-actions' }, role, toggle));
}

async function update(path, method, body) {
  errorBox().textContent = '';
  try {
    await api(method, path, body ? { body } : {});
  } catch (e) {
    errorBox().textContent = e.message;
  }
  await loadUsers();
}

async function loadReports() {
  try {
    const { reports } = await api('GET', '/moderation/reports?status=open&limit=50');
    $('#report-list').replaceChildren(...(reports.length ? reports.map(reportRow) : [h('li', { class: 'muted' }, 'No open reports.')]));
  } catch (e) {
    errorBox().textContent = e.message;
  }
}

function reportRow(r) {
  return h('li', { class: 'report', 'data-testid': 'report' },
    h('div', null, h('strong', null, `#${r.room_name}`), h('small', { class: 'hint' }, ` · ${shortTime(r.created_at)} · reported by ${r.reporter.username}`)),
    h('blockquote', null, h('strong', null, `${r.author.username}: `), r.content),
    h('div', { class: 'hint' }, `Reason: ${r.reason}`),
    h('button', {
      type: 'button', class: 'ghost small', 'data-testid': 'report-resolve',
      onclick: async () => {
        try {
          await api('POST', `/moderation/reports/${enc(r.id)}/resolve`);
        } catch (e) {
          errorBox().textContent = e.message;
        }
        await loadReports();
      },
    }, 'Mark as resolved'));
}

export function wireAdmin() {
  $('#admin-btn').addEventListener('click', openAdmin);
  $('#admin-q').addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(loadUsers, 200);
  });
}
