// The message box: send, typing notifications, reply, attach; editing, deleting and
// reacting to messages.

import { api, enc } from './api.js';
import { $, h, humanSize, icon, toast } from './dom.js';
import { showMessage } from './messages.js';
import { queueMessage } from './outbox.js';
import { request } from './socket.js';
import { state, storeMessage, view } from './state.js';
import { serverInfo, uploadProblem } from './server-info.js';

const TYPING_IDLE_MS = 4000; // stop typing after this long without a keystroke
const TYPING_RESEND_MS = 2500; // the server relays at most one `active: true` per 2 s

let typingActive = false;
let typingSentAt = 0;
let typingIdle = null;
let typingDeferred = null;
const typingTrueAt = new Map(); // room id -> when we last sent `active: true`

/**
 * Sends `typing {active: true}`. The server relays at most one per 2 s per user and room,
 * and drops the others even after an `active: false` (typing again right after sending a
 * message): such a start is held back until the window has passed.
 */
function sendTypingStart(roomId) {
  const wait = (typingTrueAt.get(roomId) || 0) + 2100 - Date.now();
  if (wait > 0) {
    clearTimeout(typingDeferred);
    typingDeferred = setTimeout(() => {
      typingDeferred = null;
      if (typingActive && view.roomId === roomId) sendTypingStart(roomId);
    }, wait);
    return;
  }
  typingTrueAt.set(roomId, Date.now());
  request('typing', { room_id: roomId, active: true }).catch(() => {});
}

export function onComposerInput() {
  const input = $('#composer-input');
  autoGrow(input);
  if (!view.roomId) return;
  if (!input.value.trim()) {
    stopTyping();
    return;
  }
  const now = Date.now();
  if (!typingActive || now - typingSentAt > TYPING_RESEND_MS) {
    typingActive = true;
    typingSentAt = now;
    sendTypingStart(view.roomId);
  }
  clearTimeout(typingIdle);
  typingIdle = setTimeout(stopTyping, TYPING_IDLE_MS);
}

export function stopTyping() {
  clearTimeout(typingIdle);
  clearTimeout(typingDeferred);
  typingDeferred = null;
  if (!typingActive) return;
  typingActive = false;
  if (view.roomId) request('typing', { room_id: view.roomId, active: false }).catch(() => {});
}

function autoGrow(el) {
  el.style.height = 'auto';
  el.style.height = `${Math.min(el.scrollHeight, 200)}px`;
}

export function submitComposer(e) {
  e?.preventDefault();
  const input = $('#composer-input');
  const content = input.value.trim();
  if (!view.roomId || (!content && !view.file)) return;
  // The server counts Unicode scalar values (code points), as [...s] does.
  const max = serverInfo()?.limits.message_max_chars;
  if (max && [...content].length > max) {
    toast(`A message can be at most ${max} characters.`, 'error');
    return;
  }
  stopTyping();
  queueMessage(view.roomId, content, { replyTo: view.replyTo?.id || null, file: view.file });
  input.value = '';
  autoGrow(input);
  view.replyTo = null;
  view.file = null;
  $('#file-input').value = '';
  renderComposerBars();
  input.focus();
}

export function renderComposerBars() {
  const rb = $('#reply-bar');
  rb.hidden = !view.replyTo;
  if (view.replyTo) {
    const m = view.replyTo;
    $('#reply-text').textContent = `Replying to ${m.sender.username}: ${(m.content || m.attachment?.filename || '').slice(0, 80)}`;
  }
  const ab = $('#attach-bar');
  ab.hidden = !view.file;
  if (view.file) $('#attach-text').replaceChildren(icon('clip'), ` ${view.file.name} (${humanSize(view.file.size)})`);
}

/**
 * Attaches `file` to the next message, unless the server would refuse it (too large, a
 * type it does not take): then says why and attaches nothing.
 */
export function attachFile(file) {
  const problem = uploadProblem(file);
  if (problem) {
    toast(problem, 'error');
    view.file = null;
    $('#file-input').value = '';
  } else view.file = file;
  renderComposerBars();
  $('#composer-input').focus();
}

export function startReply(m) {
  view.replyTo = m;
  renderComposerBars();
  $('#composer-input').focus();
}

export function startEdit(m) {
  if (view.editing) cancelEdit();
  const el = view.els.get(m.id);
  if (!el) return;
  view.editing = m.id;
  const body = el.querySelector('.msg-body');
  const ta = h('textarea', {
    class: 'edit-input', 'aria-label': 'Edit the message', 'data-testid': 'edit-input', maxlength: serverInfo()?.limits.message_max_chars,
  });
  ta.value = m.content;
  const form = h('form', { class: 'edit-form', 'data-testid': 'edit-form' }, ta,
    h('div', { class: 'edit-actions' },
      h('span', { class: 'hint' }, 'Enter to save, Esc to cancel'),
      h('button', { type: 'button', class: 'ghost small', onclick: cancelEdit }, 'Cancel'),
      h('button', { type: 'submit', class: 'primary small', 'data-testid': 'edit-save' }, 'Save')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const content = ta.value.trim();
    if (!content || content === m.content) {
      cancelEdit();
      return;
    }
    try {
      const updated = await api('PATCH', `/rooms/${m.room_id}/messages/${m.id}`, { body: { content } });
      view.editing = null;
      storeMessage(updated);
      showMessage(updated);
      $('#composer-input').focus();
    } catch (err) {
      toast(`Could not edit: ${err.message}`, 'error');
    }
  });
  ta.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    } else if (e.key === 'Escape') {
      e.preventDefault();
      cancelEdit();
    }
  });
  if (body) body.replaceWith(form);
  else el.querySelector('.msg-main').append(form);
  ta.focus();
  ta.setSelectionRange(ta.value.length, ta.value.length);
}

function cancelEdit() {
  const id = view.editing;
  view.editing = null;
  const m = state.msgs.get(view.roomId)?.byId.get(id);
  if (m) showMessage(m);
  $('#composer-input').focus();
}

export async function deleteMessage(m) {
  if (!window.confirm('Delete this message for everyone?')) return;
  try {
    const tomb = await api('DELETE', `/rooms/${m.room_id}/messages/${m.id}`);
    storeMessage(tomb);
    if (view.roomId === m.room_id) showMessage(tomb);
  } catch (err) {
    toast(`Could not delete: ${err.message}`, 'error');
  }
}

export async function toggleReaction(m, emoji, { add = false } = {}) {
  const current = state.msgs.get(m.room_id)?.byId.get(m.id) || m;
  const mine = !add && current.reactions?.find((r) => r.emoji === emoji)?.user_ids.includes(state.me?.id);
  if (add && current.reactions?.find((r) => r.emoji === emoji)?.user_ids.includes(state.me?.id)) return;
  try {
    const updated = await api(mine ? 'DELETE' : 'PUT', `/rooms/${m.room_id}/messages/${m.id}/reactions/${enc(emoji)}`);
    storeMessage(updated);
    if (view.roomId === m.room_id) showMessage(updated);
  } catch (err) {
    toast(`Could not react: ${err.message}`, 'error');
  }
}
