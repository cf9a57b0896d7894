// Mentions (docs/protocol.md, "Mentions"): `@username`, `@room` and `@here`.
//
// - Rendering: `mentionDecorator(m)` is the Markdown renderer's `decorate` hook for a
//   message; it wraps the names the server resolved (`m.mentions`) in
//   <span class="mention">, `mention mention-me` for the reader's own name, `mention all` for
//   @room and @here; a name the server did not resolve (not a member) stays plain text.
//   `mentionsMe(m)` tells whether the message is for the reader (the whole message is
//   marked).
// - Counting: the `mention` event raises the room's `mention_count` (the sidebar's "@"
//   badge) unless the room is being read; reading clears it (outbox.js, events.js).
// - Autocomplete: typing `@` in the message box lists the room's members (by username or
//   display name) and @room / @here; ArrowUp/ArrowDown move, Enter or Tab insert,
//   Escape closes.

import { $, avatar, h } from './dom.js';
import { state, view } from './state.js';

const NAME_CHAR = /[A-Za-z0-9_.-]/;
const WORDISH = /[\p{L}\p{N}_.@-]/u;
const MAX_OPTIONS = 8;

/** The lower-cased usernames of the users `m` mentions, as far as this page knows them. */
function mentionedNames(m) {
  const names = new Set();
  for (const id of m.mentions?.user_ids || []) {
    if (id === state.me?.id) names.add(state.me.username.toLowerCase());
    const member = state.members.get(m.room_id)?.get(id);
    if (member) names.add(member.username.toLowerCase());
    for (const [roomId, peer] of state.dmPeer) if (roomId === m.room_id && peer.user_id === id) names.add(peer.username.toLowerCase());
  }
  return names;
}

/** Whether `m` mentions the reader: by name, or with @room / @here (not their own). */
export function mentionsMe(m) {
  if (!m.mentions || m.sender.id === state.me?.id || m.deleted_at) return false;
  return m.mentions.room || m.mentions.here || (m.mentions.user_ids || []).includes(state.me?.id);
}

/**
 * The `decorate` hook of renderMarkdown for message `m`: plain text runs with the resolved
 * mentions wrapped in spans. Without mentions, the text as it is.
 */
export function mentionDecorator(m) {
  if (!m.mentions) return undefined;
  const names = mentionedNames(m);
  const mine = state.me?.username.toLowerCase();
  return (text) => {
    const out = [];
    let plain = '';
    let i = 0;
    while (i < text.length) {
      const c = text[i];
      if (c === '@' && !(i > 0 && WORDISH.test(text[i - 1]))) {
        let end = i + 1;
        while (end < text.length && NAME_CHAR.test(text[end])) end++;
        let name = text.slice(i + 1, end);
        while (name.endsWith('.') || name.endsWith('-')) name = name.slice(0, -1);
        const lower = name.toLowerCase();
        const all = (lower === 'room' && m.mentions.room) || (lower === 'here' && m.mentions.here);
        if (name.length >= 3 && name.length <= 32 && (all || names.has(lower))) {
          if (plain) out.push(plain);
          plain = '';
          const me = lower === mine;
          out.push(h('span', {
            class: `mention${me ? ' mention-me' : ''}${all ? ' all' : ''}`,
            'data-testid': 'mention',
            'data-mention': lower,
          }, `@${name}`));
          i += 1 + name.length;
          continue;
        }
      }
      plain += c;
      i++;
    }
    if (plain) out.push(plain);
    return out;
  };
}

// ---------------------------------------------------------------------------------------
// Autocomplete in the message box

const ac = {
  open: false,
  start: 0, // index of the `@` in the box's value
  options: [], // [{insert, label, detail}]
  active: 0,
};

/** The `@word` being typed at the caret, as {start, query}, or null. */
function tokenAtCaret(input) {
  const caret = input.selectionStart;
  if (caret !== input.selectionEnd) return null;
  const before = input.value.slice(0, caret);
  const m = /(^|[^\p{L}\p{N}_.@-])@([A-Za-z0-9_.-]{0,32})$/u.exec(before);
  if (!m) return null;
  return { start: caret - m[2].length - 1, query: m[2].toLowerCase() };
}

/** Whether the reader may use @room in `room` (`room_mentions` and their role). */
function mayMentionRoom(room) {
  return room.room_mentions !== 'admins' || room.my_role === 'owner' || room.my_role === 'admin';
}

function candidates(query) {
  const room = state.rooms.get(view.roomId);
  if (!room) return [];
  const members = [...(state.members.get(room.id)?.values() || [])].filter((mb) => mb.user_id !== state.me?.id);
  const hits = [];
  for (const mb of members) {
    const user = mb.username.toLowerCase();
    const display = (mb.display_name || '').toLowerCase();
    const byName = user.startsWith(query);
    const byDisplay = display && display.split(/\s+/).some((w) => w.startsWith(query));
    if (byName || byDisplay) hits.push({ rank: byName ? 0 : 1, insert: mb.username, label: mb.username, detail: mb.display_name || '' });
  }
  hits.sort((a, b) => a.rank - b.rank || a.label.localeCompare(b.label));
  const out = hits.slice(0, MAX_OPTIONS);
  if (room.kind !== 'dm') {
    if ('room'.startsWith(query) && mayMentionRoom(room)) out.push({ insert: 'room', label: 'room', detail: 'Notify everyone in the room' });
    if ('here'.startsWith(query)) out.push({ insert: 'here', label: 'here', detail: 'Notify everyone online' });
  }
  return out;
}

function listEl() {
  return $('#mention-list');
}

function render() {
  const list = listEl();
  const input = $('#composer-input');
  if (!ac.open) {
    list.hidden = true;
    list.replaceChildren();
    input.removeAttribute('aria-activedescendant');
    return;
  }
  list.replaceChildren(...ac.options.map((o, i) => {
    const li = h('li', {
      id: `mention-option-${i}`,
      role: 'option',
      class: `mention-option${i === ac.active ? ' active' : ''}`,
      'aria-selected': i === ac.active ? 'true' : 'false',
      'data-testid': 'mention-option',
      'data-insert': o.insert,
    }, o.insert === 'room' || o.insert === 'here' ? h('span', { class: 'avatar', 'aria-hidden': 'true' }, '@') : avatar(o.label),
    h('span', { class: 'mention-label' }, `@${o.label}`),
    o.detail ? h('span', { class: 'muted small' }, ` ${o.detail}`) : null);
    // mousedown, not click: the box keeps the focus.
    li.addEventListener('mousedown', (e) => {
      e.preventDefault();
      ac.active = i;
      accept();
    });
    return li;
  }));
  list.hidden = false;
  input.setAttribute('aria-activedescendant', `mention-option-${ac.active}`);
  list.children[ac.active]?.scrollIntoView({ block: 'nearest' });
}

/** Closes the list. */
export function closeMentions() {
  if (!ac.open) return;
  ac.open = false;
  render();
}

/** The box's text or caret changed: opens, filters or closes the list. */
export function updateMentions() {
  const input = $('#composer-input');
  const token = view.roomId ? tokenAtCaret(input) : null;
  if (!token) {
    closeMentions();
    return;
  }
  const options = candidates(token.query);
  if (!options.length) {
    closeMentions();
    return;
  }
  const keep = ac.open && ac.start === token.start ? ac.options[ac.active]?.insert : null;
  ac.open = true;
  ac.start = token.start;
  ac.options = options;
  const at = options.findIndex((o) => o.insert === keep);
  ac.active = at >= 0 ? at : 0;
  render();
}

/** Puts the chosen name in place of the `@word` being typed, with a space after it. */
function accept() {
  const input = $('#composer-input');
  const o = ac.options[ac.active];
  if (!o) return;
  const caret = input.selectionStart;
  const rest = input.value.slice(caret);
  const insert = `@${o.insert}${rest.startsWith(' ') ? '' : ' '}`;
  input.value = input.value.slice(0, ac.start) + insert + rest;
  const at = ac.start + insert.length + (rest.startsWith(' ') ? 1 : 0);
  input.setSelectionRange(at, at);
  closeMentions();
  input.dispatchEvent(new Event('input', { bubbles: true }));
  input.focus();
}

/**
 * The message box's keydown while the list is open: returns true if the key was the
 * list's (and must not send the message or do anything else).
 */
export function mentionKeydown(e) {
  if (!ac.open || e.isComposing) return false;
  const n = ac.options.length;
  switch (e.key) {
    case 'ArrowDown':
      ac.active = (ac.active + 1) % n;
      break;
    case 'ArrowUp':
      ac.active = (ac.active - 1 + n) % n;
      break;
    case 'Enter':
    case 'Tab':
      if (e.shiftKey) return false;
      accept();
      break;
    case 'Escape':
      closeMentions();
      break;
    default:
      return false;
  }
  e.preventDefault();
  e.stopPropagation();
  if (ac.open) render();
  return true;
}

/** Wires the list to the message box (index.html's #mention-list). */
export function wireMentions() {
  const input = $('#composer-input');
  input.addEventListener('click', updateMentions);
  input.addEventListener('keyup', (e) => {
    if (e.key === 'ArrowLeft' || e.key === 'ArrowRight' || e.key === 'Home' || e.key === 'End') updateMentions();
  });
  input.addEventListener('blur', () => setTimeout(() => {
    if (document.activeElement !== input) closeMentions();
  }, 0));
}
