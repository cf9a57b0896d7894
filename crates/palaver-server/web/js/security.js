// The Security dialog: two-factor codes, the e-mail address, linked sign-in providers and
// the signed-in sessions.

import { api, enc } from './api.js';
import { providers } from './auth.js';
import { openDialog } from './dialogs.js';
import { $, h, shortTime, toast } from './dom.js';

export async function openSecurity() {
  const dlg = $('#security-dialog');
  for (const id of ['#tf-begin-form', '#tf-confirm-form', '#tf-recovery', '#tf-disable-form']) $(id).hidden = true;
  $('#tf-status').textContent = 'Loading…';
  openDialog(dlg);
  try {
    await Promise.all([renderTwoFactor(), renderSessions(), renderEmailState(), renderIdentities()]);
  } catch (e) {
    $('#security-dialog .form-error').textContent = e.message;
  }
}

async function renderTwoFactor() {
  const st = await api('GET', '/users/me/two-factor');
  $('#tf-status').textContent = st.enabled
    ? `On: password logins need a code. ${st.recovery_codes_left} recovery codes left.`
    : 'Off: your password alone signs you in.';
  $('#tf-begin-form').hidden = st.enabled;
  $('#tf-disable-form').hidden = !st.enabled;
  $('#tf-confirm-form').hidden = true;
}

export async function beginTwoFactor(e) {
  e.preventDefault();
  const form = e.currentTarget;
  const err = $('#security-dialog .form-error');
  err.textContent = '';
  try {
    const setup = await api('POST', '/users/me/two-factor', { body: { password: form.password.value } });
    form.reset();
    // The server's SVG as an image: shown, never parsed into the page.
    $('#tf-qr').src = `data:image/svg+xml;base64,${btoa(setup.qr_svg)}`;
    $('#tf-secret').textContent = setup.secret;
    form.hidden = true;
    $('#tf-confirm-form').hidden = false;
    $('#tf-confirm-form [name=code]').focus();
  } catch (ex) {
    err.textContent = ex.code === 'invalid_credentials' ? 'That password is wrong.' : ex.message;
  }
}

export async function confirmTwoFactor(e) {
  e.preventDefault();
  const form = e.currentTarget;
  const err = $('#security-dialog .form-error');
  err.textContent = '';
  try {
    const { recovery_codes: codes } = await api('POST', '/users/me/two-factor/confirm', { body: { code: form.code.value.trim() } });
    form.reset();
    $('#tf-recovery-list').replaceChildren(...codes.map((c) => h('li', null, h('code', null, c))));
    $('#tf-recovery').hidden = false;
    await renderTwoFactor();
    toast('Two-factor codes are on.');
  } catch (ex) {
    err.textContent = ex.code === 'invalid_two_factor_code' ? 'That code is wrong. Try the one the app shows now.' : ex.message;
  }
}

export async function disableTwoFactor(e) {
  e.preventDefault();
  const form = e.currentTarget;
  const err = $('#security-dialog .form-error');
  err.textContent = '';
  try {
    await api('POST', '/users/me/two-factor/disable', { body: { code: form.code.value.trim() } });
    form.reset();
    $('#tf-recovery').hidden = true;
    await renderTwoFactor();
    toast('Two-factor codes are off.');
  } catch (ex) {
    err.textContent = ex.code === 'invalid_two_factor_code' ? 'That code is wrong or already used.' : ex.message;
  }
}

async function renderEmailState() {
  const me = await api('GET', '/users/me');
  $('#email-state').textContent = `${me.email}${me.email_verified ? ' (verified)' : ' (not verified)'}`;
}

async function renderIdentities() {
  const list = await api('GET', '/users/me/identities');
  const known = providers || (await api('GET', '/auth/providers', { auth: false }).catch(() => []));
  const name = (id) => known.find((p) => p.id === id)?.display_name || id;
  $('#identity-list').replaceChildren(...list.map((i) => {
    const label = `${name(i.provider)}${i.email ? ` · ${i.email}` : ''}`;
    const unlink = h('button', { type: 'button', class: 'ghost small', 'data-testid': 'identity-unlink' }, 'Unlink');
    unlink.setAttribute('aria-label', `Unlink ${label}`);
    unlink.addEventListener('click', async () => {
      try {
        await api('DELETE', `/users/me/identities/${enc(i.id)}`);
        await renderIdentities();
      } catch (ex) {
        $('#security-dialog .form-error').textContent = ex.code === 'last_sign_in_method'
          ? 'This is your only way to sign in: set a password or link another provider first.'
          : ex.message;
      }
    });
    return h('li', { class: 'session', 'data-testid': 'identity' }, h('span', null, label), unlink);
  }));
  $('#link-buttons').replaceChildren(...known.map((p) => {
    const b = h('button', { type: 'button', class: 'ghost small', 'data-testid': 'identity-link', 'data-provider': p.id }, `Link ${p.display_name}`);
    b.addEventListener('click', async () => {
      try {
        const { url } = await api('POST', `/auth/oidc/${enc(p.id)}/link-start`);
        location.href = url;
      } catch (ex) {
        $('#security-dialog .form-error').textContent = ex.message;
      }
    });
    return b;
  }));
}

async function renderSessions() {
  const { sessions } = await api('GET', '/users/me/sessions');
  const list = $('#session-list');
  list.replaceChildren(...sessions.map((s) => {
    const label = `${s.device_name || 'Unknown device'}${s.ip ? ` · ${s.ip}` : ''}`;
    const item = h('li', { class: 'session', 'data-testid': 'session' },
      h('span', null, label, h('small', { class: 'hint' }, ` · last active ${shortTime(s.last_used_at)}`)));
    if (s.current) {
      item.append(h('span', { class: 'badge' }, 'this device'));
    } else {
      const out = h('button', { type: 'button', class: 'ghost small', 'data-testid': 'session-end' }, 'Sign out');
      out.setAttribute('aria-label', `Sign out ${label}`);
      out.addEventListener('click', async () => {
        try {
          await api('DELETE', `/users/me/sessions/${enc(s.id)}`);
          await renderSessions();
        } catch (ex) {
          $('#security-dialog .form-error').textContent = ex.message;
        }
      });
      item.append(out);
    }
    return item;
  }));
}
