// What this server accepts, from `GET /api/v1/server` (public): message and name lengths,
// the largest upload and its types, sign-up and e-mail, the sign-in providers. Loaded
// once per page; the forms take their limits from here, never from constants.

import { api } from './api.js';
import { humanSize } from './dom.js';

let info = null;
let loading = null;

/** Loads the server's description (once; later calls share the first answer). */
export function loadServerInfo() {
  if (info) return Promise.resolve(info);
  if (!loading) {
    loading = api('GET', '/server', { auth: false })
      .then((i) => {
        info = i;
        applyToForms(i);
        return i;
      })
      .finally(() => {
        loading = null;
      });
  }
  return loading;
}

/** The server's description, or null before it has loaded. */
export function serverInfo() {
  return info;
}

// Browsers name some types differently from the server's sniffer.
const TYPE_ALIASES = {
  'audio/wav': 'audio/x-wav',
  'audio/wave': 'audio/x-wav',
  'audio/vnd.wave': 'audio/x-wav',
  'application/x-zip-compressed': 'application/zip',
};

/**
 * Why the server would refuse `file` as an attachment (too large, or a type it does not
 * take), or null. A type the browser does not know is left to the server, which sniffs
 * the bytes anyway.
 */
export function uploadProblem(file) {
  if (!info) return null;
  const { max_bytes: max, allowed_types: types } = info.uploads;
  if (file.size > max) return `${file.name} is too large: files can be at most ${humanSize(max)}.`;
  const type = TYPE_ALIASES[file.type] || file.type;
  if (type && !types.includes(type)) return `${file.name}: this server does not take ${file.type} files.`;
  return null;
}

/**
 * Sets the page's length limits and hints from the server's description (index.html has
 * none of its own: until this has loaded, the server's answers are the only check).
 */
function applyToForms(i) {
  const l = i.limits;
  const set = (sel, attrs) => {
    const el = document.querySelector(sel);
    if (el) for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  };
  set('#composer-input', { maxlength: l.message_max_chars });
  set('#signup-form [name=username]', { minlength: l.username_min_chars, maxlength: l.username_max_chars });
  set('#signup-form [name=password]', { minlength: l.password_min_chars, maxlength: l.password_max_chars });
  set('#reset-form [name=new_password]', { minlength: l.password_min_chars, maxlength: l.password_max_chars });
  set('#password-form [name=new_password]', { minlength: l.password_min_chars, maxlength: l.password_max_chars });
  for (const form of ['#new-room-form', '#room-settings-form']) {
    set(`${form} [name=name]`, { maxlength: l.room_name_max_chars });
    set(`${form} [name=topic]`, { maxlength: l.room_topic_max_chars });
  }
  const uh = document.querySelector('#username-hint');
  if (uh) {
    uh.replaceChildren(`${l.username_min_chars}–${l.username_max_chars} characters: lower-case letters, digits, `);
    const code = document.createElement('code');
    code.textContent = '_ . -';
    uh.append(code);
  }
  const ph = document.querySelector('#password-hint');
  if (ph) ph.textContent = `At least ${l.password_min_chars} characters.`;
  const attach = document.querySelector('#attach-btn');
  if (attach) attach.title = `Attach a file (up to ${humanSize(i.uploads.max_bytes)})`;
}
