// Signing in and out: log in, sign up, providers (OpenID Connect, GitHub), mailed links
// (verify e-mail, reset password), linking a provider account.

import { API, api, saveSession, session } from './api.js';
import { call, hangUp, hideIncoming } from './calls.js';
import { $, h, toast } from './dom.js';
import { blobUrls } from './messages.js';
import { landing, openRoom } from './room-view.js';
import { forgetNotificationSettings } from './notify.js';
import { renderMe, renderSidebar } from './sidebar.js';
import { conn, connect, setConnState, socketGone } from './socket.js';
import { endedCalls, state, view } from './state.js';
import { loadServerInfo } from './server-info.js';

export function showAuth(message) {
  $('#app-view').hidden = true;
  $('#auth-view').hidden = false;
  selectTab('login');
  $('#login-code-row').hidden = true;
  loadProviders();
  if (message) $('#login-form .form-error').textContent = message;
  $('#login-form [name=login]').focus();
}

export function selectTab(which) {
  const login = which === 'login';
  for (const id of ['#forgot-form', '#reset-form', '#link-form']) $(id).hidden = true;
  $('.tabs').hidden = false;
  $('#tab-login').setAttribute('aria-selected', String(login));
  $('#tab-signup').setAttribute('aria-selected', String(!login));
  $('#tab-login').tabIndex = login ? 0 : -1;
  $('#tab-signup').tabIndex = login ? -1 : 0;
  $('#login-form').hidden = !login;
  $('#signup-form').hidden = login;
}

export async function submitAuth(e, kind) {
  e.preventDefault();
  const form = e.currentTarget;
  const err = form.querySelector('.form-error');
  err.textContent = '';
  const data = Object.fromEntries(new FormData(form));
  if (kind === 'register') data.username = data.username.trim().toLowerCase();
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  if (kind === 'login' && !data.code) delete data.code;
  try {
    const body = await api('POST', `/auth/${kind}?refresh=cookie`, { body: data, auth: false });
    if (body.status === 'check_your_inbox') {
      form.reset();
      selectTab('login');
      notice('Check your inbox: we sent a link to confirm your e-mail address. Then log in.');
      return;
    }
    saveSession({ access_token: body.access_token, user: body.user });
    form.reset();
    if (kind === 'login') $('#login-code-row').hidden = true;
    startApp();
  } catch (ex) {
    let msg = ex.message;
    if (ex.code === 'rate_limited') msg = 'Too many attempts. Please wait a little and try again.';
    if (ex.code === 'email_not_verified') msg = 'Confirm your e-mail address first: we just sent you a new link.';
    if (ex.code === 'two_factor_required' || ex.code === 'invalid_two_factor_code') {
      $('#login-code-row').hidden = false;
      form.querySelector('[name=code]').value = '';
      form.querySelector('[name=code]').focus();
      msg = ex.code === 'two_factor_required'
        ? 'Enter the code from your authenticator app.'
        : 'That code is wrong or already used. Try the next one.';
    }
    err.textContent = msg;
  } finally {
    button.disabled = false;
  }
}

export function startApp() {
  if (pendingToast) {
    toast(pendingToast);
    pendingToast = '';
  }
  $('#auth-view').hidden = true;
  $('#app-view').hidden = false;
  state.me = session.user || null;
  renderMe();
  renderSidebar();
  openRoom(null);
  landing.done = false;
  conn.stopped = false;
  conn.attempt = 0;
  conn.failedBeforeOpen = false;
  connect();
}

function resetState() {
  for (const key of ['rooms', 'msgs', 'roomSeq', 'presence', 'dmPeer', 'members', 'receipts', 'invitations', 'pending', 'readSent']) state[key].clear();
  for (const m of state.typing.values()) for (const t of m.values()) clearTimeout(t);
  state.typing.clear();
  state.me = null;
  for (const p of blobUrls.values()) p.then((u) => URL.revokeObjectURL(u)).catch(() => {});
  blobUrls.clear();
  endedCalls.clear();
  forgetNotificationSettings();
  view.roomId = null;
}

export function signOut(message, { remote = true } = {}) {
  if (!session) return;
  const token = session.access_token;
  conn.stopped = true;
  clearTimeout(conn.timer);
  if (call) hangUp();
  hideIncoming();
  if (conn.ws) socketGone(1000);
  if (remote) {
    fetch(`${API}/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${token}` } }).catch(() => {});
  }
  saveSession(null);
  resetState();
  $('#message-list').replaceChildren();
  setConnState('idle');
  if (location.hash) history.replaceState(null, '', location.pathname);
  showAuth(message);
}

// ---------------------------------------------------------------------------------------
// Sign-in providers, mailed links, password reset

/** A message on the sign-in page (not an error). */
export function notice(text) {
  $('#auth-notice').textContent = text;
}

/** Shows one of the auth page's extra forms instead of the log in / sign up tabs. */
export function showAuthForm(id) {
  for (const f of ['#login-form', '#signup-form', '#forgot-form', '#reset-form', '#link-form']) $(f).hidden = f !== id;
  $('.tabs').hidden = true;
  const first = $(`${id} input`);
  if (first) first.focus();
}

export let providers = null;

/** The "Sign in with ..." buttons, from `GET /auth/providers`. */
async function loadProviders() {
  try {
    const info = await loadServerInfo();
    providers = info.providers;
    $('#tab-signup').hidden = !info.accounts.registration_open;
    $('#forgot-btn').hidden = !info.accounts.email_enabled;
  } catch {
    providers = providers || [];
  }
  const box = $('#providers');
  box.replaceChildren(...providers.map((p) => h('a', {
    class: 'button', href: p.start_url, 'data-testid': 'provider-sign-in', 'data-provider': p.id,
  }, `Sign in with ${p.display_name}`)));
  box.hidden = providers.length === 0;
}

const AUTH_ERRORS = {
  oauth_state_invalid: 'That sign-in link is stale or was opened in another browser. Please try again.',
  oauth_provider_error: 'The provider did not sign you in.',
  provider_unavailable: 'The sign-in provider cannot be reached right now. Please try again later.',
  identity_already_linked: 'That provider account is already linked to another Palaver account.',
  account_disabled: 'This account is disabled.',
};

/**
 * What the address says on arrival: a sign-in callback's outcome (`?auth_error=`,
 * `?link=`, `?linked=`) or a mailed link (`#verify-email=`, `#reset-password=`). Returns
 * what to do next: `'link'` or `'reset'` (a form is waiting), or null.
 */
export async function handleArrival() {
  const query = new URLSearchParams(location.search);
  const hash = new URLSearchParams(location.hash.slice(1));
  const clean = () => history.replaceState(null, '', location.pathname);
  if (query.has('auth_error')) {
    const code = query.get('auth_error');
    clean();
    pendingNotice = AUTH_ERRORS[code] || `Sign-in failed (${code}).`;
  } else if (query.has('link')) {
    linkToken = query.get('link');
    clean();
    return 'link';
  } else if (query.has('linked')) {
    const provider = query.get('linked');
    clean();
    pendingToast = `${provider} is linked to your account.`;
  } else if (hash.has('verify-email')) {
    const token = hash.get('verify-email');
    clean();
    try {
      const done = await api('POST', '/auth/verify-email', { body: { token }, auth: false });
      pendingNotice = `${done.email} is verified.`;
    } catch (e) {
      pendingNotice = e.code === 'token_expired' ? 'That link has expired: log in to get a new one.' : 'That link does not work (already used?).';
    }
  } else if (hash.has('reset-password')) {
    resetToken = hash.get('reset-password');
    clean();
    return 'reset';
  }
  return null;
}

export let pendingNotice = '';
let pendingToast = '';
let linkToken = null;
let resetToken = null;

export async function submitForgot(e) {
  e.preventDefault();
  const form = e.currentTarget;
  const err = form.querySelector('.form-error');
  err.textContent = '';
  try {
    await api('POST', '/auth/password-reset', { body: { email: form.email.value.trim() }, auth: false });
    form.reset();
    selectTab('login');
    notice('If that address belongs to a verified account, a link to choose a new password is on its way.');
  } catch (ex) {
    err.textContent = ex.code === 'email_disabled' ? 'This server does not send e-mail: ask its administrator to reset your password.' : ex.message;
  }
}

export async function submitReset(e) {
  e.preventDefault();
  const form = e.currentTarget;
  const err = form.querySelector('.form-error');
  err.textContent = '';
  try {
    await api('POST', '/auth/password-reset/confirm', { body: { token: resetToken, new_password: form.new_password.value }, auth: false });
    form.reset();
    resetToken = null;
    selectTab('login');
    notice('Your password is changed. Log in with it.');
  } catch (ex) {
    err.textContent = ex.code === 'token_expired' ? 'That link has expired: ask for a new one.' : ex.message;
  }
}

export async function submitLink(e) {
  e.preventDefault();
  const form = e.currentTarget;
  const err = form.querySelector('.form-error');
  err.textContent = '';
  try {
    const body = await api('POST', '/auth/link/confirm?refresh=cookie', { body: { token: linkToken, password: form.password.value }, auth: false });
    form.reset();
    linkToken = null;
    saveSession({ access_token: body.access_token, user: body.user });
    pendingToast = 'The provider is linked to your account.';
    startApp();
  } catch (ex) {
    if (ex.code === 'link_token_invalid') {
      selectTab('login');
      notice('That link request is used up: sign in with the provider again.');
    } else err.textContent = ex.code === 'invalid_credentials' ? 'That password is wrong. Sign in with the provider again to retry.' : ex.message;
  }
}
