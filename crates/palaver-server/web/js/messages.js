// The message list of the open room: messages, call log lines, replies, reactions,
// attachments, pending sends, "seen by" markers and the typing line.

import { api } from './api.js';
import { call, joinCall } from './calls.js';
import { deleteMessage, startEdit, startReply, toggleReaction } from './composer.js';
import { $, avatar, fullFmt, h, humanSize, icon, shortTime, toast } from './dom.js';
import { setHistoryStatus, updateHistoryStatus } from './history.js';
import { dropPending, trySend } from './outbox.js';
import { conn } from './socket.js';
import { endedCalls, memberName, state, view } from './state.js';
import { renderMarkdown } from './markdown.js';
import { pickEmoji, quickReactions } from './emoji-picker.js';
import { mentionDecorator, mentionsMe } from './mentions.js';

const GROUP_WINDOW_MS = 5 * 60 * 1000;

export function renderMessageList() {
  const list = $('#message-list');
  list.replaceChildren();
  view.els.clear();
  view.pendingEls.clear();
  const rm = state.msgs.get(view.roomId);
  if (rm) {
    for (const m of rm.order) {
      const el = renderMessage(m);
      view.els.set(m.id, el);
      list.append(el);
    }
    for (const el of list.children) regroup(el);
  }
  for (const p of state.pending.values()) if (p.room_id === view.roomId) showPending(p);
  if (rm?.loaded) updateHistoryStatus();
  else setHistoryStatus('Loading messages…');
  renderSeenBy();
}

/** Inserts or replaces a message of the current room in the list, in seq order. */
export function showMessage(m, { quiet = false } = {}) {
  const list = $('#message-list');
  const old = view.els.get(m.id);
  if (old && view.editing === m.id && !m.deleted_at) return; // keep the edit box; re-render on close
  const wasAtBottom = isAtBottom();
  const el = renderMessage(m);
  view.els.set(m.id, el);
  if (old) {
    const seen = old.querySelector('.seen-by');
    old.replaceWith(el);
    if (seen) el.append(seen);
    if (view.editing === m.id) view.editing = null;
  } else {
    const rm = state.msgs.get(m.room_id);
    const i = rm.order.indexOf(m);
    let next = null;
    for (let j = i + 1; j < rm.order.length && !next; j++) next = view.els.get(rm.order[j].id) || null;
    if (!next) next = list.querySelector('.pending');
    list.insertBefore(el, next);
  }
  regroup(el);
  regroup(el.nextElementSibling);
  if (!old && !quiet) {
    updateHistoryStatus();
    renderSeenBy();
    if (wasAtBottom || m.sender.id === state.me?.id) scrollToBottom();
  }
}

function regroup(el) {
  if (!el || el.dataset.kind !== 'msg') return;
  const prev = el.previousElementSibling;
  const same = prev && prev.dataset.kind === 'msg' && prev.dataset.sender === el.dataset.sender
    && Number(el.dataset.ts) - Number(prev.dataset.ts) < GROUP_WINDOW_MS;
  el.classList.toggle('continued', !!same);
}

function renderMessage(m) {
  if (m.message_type === 'call') return renderCallLog(m);
  const own = m.sender.id === state.me?.id;
  const deleted = !!m.deleted_at;
  const forMe = mentionsMe(m);
  const li = h('li', {
    class: `msg${own ? ' own' : ''}${deleted ? ' deleted' : ''}${forMe ? ' mentions-me' : ''}`,
    'data-mentions-me': forMe ? 'true' : null,
    id: `msg-${m.id}`,
    'data-testid': 'message',
    'data-id': m.id,
    'data-seq': m.seq,
    'data-sender': m.sender.id,
    'data-ts': Date.parse(m.created_at),
    'data-kind': 'msg',
    tabindex: '-1',
  });
  li.append(avatar(m.sender.username));
  const main = h('div', { class: 'msg-main' });
  main.append(h('div', { class: 'msg-head' },
    h('span', { class: 'msg-author', 'data-testid': 'message-author' }, m.sender.username),
    h('time', { datetime: m.created_at, title: fullFmt.format(new Date(m.created_at)) }, shortTime(m.created_at)),
    m.edited_at && !deleted ? h('span', { class: 'msg-edited', title: `Edited ${fullFmt.format(new Date(m.edited_at))}` }, '(edited)') : null));
  if (m.reply_to && !deleted) main.append(renderReplyQuote(m));
  if (deleted) {
    main.append(h('div', { class: 'msg-body tomb', 'data-testid': 'message-body' }, 'This message was deleted.'));
  } else {
    if (m.content) main.append(h('div', { class: 'msg-body', 'data-testid': 'message-body' }, renderMarkdown(m.content, { decorate: mentionDecorator(m) })));
    if (m.attachment) main.append(renderAttachment(m.attachment));
    if (m.reactions?.length) main.append(renderReactions(m));
  }
  li.append(main);
  if (!deleted) li.append(renderActions(m, own));
  return li;
}

function renderCallLog(m) {
  const c = m.call || {};
  const iconName = c.event === 'missed' || c.event === 'declined' ? 'missed' : c.kind === 'video' ? 'video' : 'phone';
  const li = h('li', {
    class: 'msg system',
    id: `msg-${m.id}`,
    'data-testid': 'call-log',
    'data-id': m.id,
    'data-seq': m.seq,
    'data-kind': 'system',
    'data-call-event': c.event || '',
    tabindex: '-1',
  },
  h('span', { class: 'system-icon', 'aria-hidden': 'true' }, icon(iconName)),
  h('span', { class: 'system-text' }, m.content || 'Call'),
  h('span', { class: 'system-by' }, ` · ${m.sender.username} · `),
  h('time', { datetime: m.created_at, title: fullFmt.format(new Date(m.created_at)) }, shortTime(m.created_at)));
  // A call that started and has not ended yet can be joined from its log line.
  if (c.event === 'started' && c.call_id && !endedCalls.has(c.call_id) && call?.roomId !== m.room_id
      && Date.now() - Date.parse(m.created_at) < JOINABLE_MS) {
    li.append(h('button', {
      type: 'button', class: 'link small join-call', 'data-testid': 'join-call',
      onclick: () => joinCall({ call_id: c.call_id, room_id: m.room_id, kind: c.kind, caller: m.sender }),
    }, 'Join'));
  }
  return li;
}

const JOINABLE_MS = 12 * 3600 * 1000; // older "started" lines without an end are stale

/** Re-renders the call log lines of the open room (their "Join" buttons). */
export function refreshJoinButtons() {
  const rm = state.msgs.get(view.roomId);
  if (!rm) return;
  for (const m of rm.order) if (m.message_type === 'call' && m.call?.event === 'started' && view.els.has(m.id)) showMessage(m);
}
export function markCallEnded(callId) {
  endedCalls.add(callId);
  for (const btn of document.querySelectorAll('.join-call')) {
    const li = btn.closest('li');
    const m = state.msgs.get(view.roomId)?.byId.get(li?.dataset.id);
    if (m?.call?.call_id === callId) btn.remove();
  }
}

function renderReplyQuote(m) {
  const target = state.msgs.get(m.room_id)?.byId.get(m.reply_to);
  const text = target ? (target.deleted_at ? 'a deleted message' : target.content || target.attachment?.filename || '') : 'an earlier message';
  return h('button', {
    type: 'button',
    class: 'msg-reply',
    'data-testid': 'reply-quote',
    onclick: () => {
      const el = view.els.get(m.reply_to);
      if (!el) return;
      el.scrollIntoView({ block: 'center', behavior: 'smooth' });
      el.classList.add('flash');
      el.focus({ preventScroll: true });
      setTimeout(() => el.classList.remove('flash'), 1500);
    },
  },
  h('span', { class: 'sr-only' }, 'In reply to '),
  target ? h('strong', null, target.sender.username, ': ') : null,
  text.length > 140 ? `${text.slice(0, 140)}…` : text);
}

function renderReactions(m) {
  const box = h('div', { class: 'msg-reactions', role: 'group', 'aria-label': 'Reactions' });
  for (const r of m.reactions) {
    const mine = r.user_ids.includes(state.me?.id);
    const names = r.user_ids.map((u) => memberName(m.room_id, u)).join(', ');
    box.append(h('button', {
      type: 'button',
      class: `reaction${mine ? ' mine' : ''}`,
      'aria-pressed': mine ? 'true' : 'false',
      'aria-label': `${r.emoji} ${r.count}: ${names}`,
      title: names,
      'data-testid': 'reaction',
      onclick: () => toggleReaction(m, r.emoji),
    }, h('span', { 'aria-hidden': 'true' }, r.emoji), ' ', h('span', { 'aria-hidden': 'true' }, String(r.count))));
  }
  return box;
}

function renderActions(m, own) {
  const bar = h('div', { class: 'msg-actions', role: 'group', 'aria-label': `Actions for the message from ${m.sender.username}` });
  for (const e of quickReactions(3)) {
    bar.append(h('button', {
      type: 'button', class: 'icon-btn', 'aria-label': `React with ${e}`, title: `React with ${e}`,
      'data-testid': 'react', onclick: () => toggleReaction(m, e),
    }, e));
  }
  bar.append(h('button', {
    type: 'button', class: 'icon-btn', 'aria-label': 'Add a reaction', title: 'Add a reaction', 'data-testid': 'react-more',
    onclick: async () => {
      const emoji = await pickEmoji(`To the message from ${m.sender.username}`);
      if (emoji) toggleReaction(m, emoji, { add: true });
      else view.els.get(m.id)?.focus();
    },
  }, '+'));
  bar.append(h('button', { type: 'button', class: 'icon-btn text', 'data-testid': 'reply', onclick: () => startReply(m) }, 'Reply'));
  if (own && m.message_type === 'text') {
    bar.append(h('button', { type: 'button', class: 'icon-btn text', 'data-testid': 'edit', onclick: () => startEdit(m) }, 'Edit'));
  }
  if (own) {
    bar.append(h('button', { type: 'button', class: 'icon-btn text danger', 'data-testid': 'delete', onclick: () => deleteMessage(m) }, 'Delete'));
  }
  return bar;
}

// Attachments: downloads need the Authorization header, so they are fetched and shown
// through blob URLs.
export const blobUrls = new Map(); // attachment id -> Promise<url>

function attachmentUrl(att) {
  if (!blobUrls.has(att.id)) {
    const p = api('GET', `/attachments/${att.id}`, { raw: true })
      .then((res) => res.blob())
      .then((b) => URL.createObjectURL(b));
    p.catch(() => blobUrls.delete(att.id));
    blobUrls.set(att.id, p);
  }
  return blobUrls.get(att.id);
}

function renderAttachment(att) {
  const box = h('div', { class: 'msg-attachment', 'data-testid': 'attachment' });
  if (att.content_type.startsWith('image/')) {
    const img = h('img', { alt: att.filename, class: 'attachment-image', 'data-testid': 'attachment-image' });
    const link = h('a', { href: '#', class: 'attachment-image-link', 'aria-label': `Open ${att.filename}` }, img);
    attachmentUrl(att).then((url) => {
      img.src = url;
      link.href = url;
      link.target = '_blank';
      img.addEventListener('load', () => {
        if (view.stick) scrollToBottom();
      }, { once: true });
    }).catch(() => {
      img.alt = `${att.filename} (could not load)`;
    });
    box.append(link);
  } else {
    box.append(h('a', {
      href: '#',
      class: 'attachment-file',
      download: att.filename,
      'data-testid': 'attachment-link',
      onclick: async (e) => {
        const a = e.currentTarget;
        if (a.dataset.ready) return;
        e.preventDefault();
        try {
          a.href = await attachmentUrl(att);
          a.dataset.ready = '1';
          a.click();
        } catch (err) {
          toast(`Could not download ${att.filename}: ${err.message}`, 'error');
        }
      },
    }, icon('file'), ' ', att.filename, h('span', { class: 'muted' }, ` · ${humanSize(att.size)}`)));
  }
  return box;
}

export function showPending(p) {
  const list = $('#message-list');
  let el = view.pendingEls.get(p.client_id);
  const fresh = h('li', {
    class: `msg own pending ${p.status}`,
    'data-testid': 'pending-message',
    'data-client-id': p.client_id,
    'data-kind': 'pending',
    tabindex: '-1',
  });
  fresh.append(avatar(state.me?.username || '?'));
  const main = h('div', { class: 'msg-main' });
  main.append(h('div', { class: 'msg-head' }, h('span', { class: 'msg-author' }, state.me?.username || ''),
    h('span', { class: 'pending-status', 'data-testid': 'pending-status' }, pendingLabel(p))));
  if (p.content) main.append(h('div', { class: 'msg-body' }, p.content));
  if (p.file) main.append(h('div', { class: 'msg-attachment' }, icon('clip'), ` ${p.file.name}`));
  if (p.status === 'failed') {
    main.append(h('div', { class: 'pending-actions' },
      h('button', { type: 'button', class: 'link small', onclick: () => { p.status = 'queued'; trySend(p); } }, 'Retry'),
      h('button', { type: 'button', class: 'link small', onclick: () => dropPending(p.client_id) }, 'Discard')));
  }
  fresh.append(main);
  if (el) el.replaceWith(fresh);
  else list.append(fresh);
  el = fresh;
  view.pendingEls.set(p.client_id, el);
}

export function updatePending(p) {
  if (view.roomId === p.room_id && state.pending.has(p.client_id)) showPending(p);
}

function pendingLabel(p) {
  switch (p.status) {
    case 'uploading': return 'Uploading…';
    case 'sending': return 'Sending…';
    case 'failed': return `Not sent: ${p.error || 'error'}`;
    default: return conn.ready ? 'Sending…' : 'Waiting for the connection…';
  }
}

/** "Seen by" under the newest message each other member has read. */
export function renderSeenBy() {
  for (const el of document.querySelectorAll('#message-list .seen-by')) el.remove();
  const roomId = view.roomId;
  const receipts = state.receipts.get(roomId);
  const rm = state.msgs.get(roomId);
  if (!receipts || !rm?.order.length) return;
  const byMsg = new Map();
  for (const [userId, seq] of receipts) {
    // The newest message of someone else that this member has read.
    let target = null;
    for (let i = rm.order.length - 1; i >= 0; i--) {
      if (rm.order[i].seq <= seq && rm.order[i].sender.id !== userId) {
        target = rm.order[i];
        break;
      }
    }
    if (!target) continue;
    if (!byMsg.has(target.id)) byMsg.set(target.id, []);
    byMsg.get(target.id).push(memberName(roomId, userId));
  }
  for (const [id, names] of byMsg) {
    const el = view.els.get(id);
    if (!el) continue;
    names.sort();
    el.append(h('div', { class: 'seen-by', 'data-testid': 'seen-by' }, `Seen by ${names.join(', ')}`));
  }
}

export function renderTyping() {
  const box = $('#typing');
  const m = state.typing.get(view.roomId);
  const names = m ? [...m.keys()].map((u) => memberName(view.roomId, u)) : [];
  let text = '';
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = 'Several people are typing…';
  box.textContent = text;
  box.dataset.active = names.length ? 'true' : 'false';
}

export function isAtBottom() {
  const box = $('#messages');
  return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
}

export function scrollToBottom() {
  const box = $('#messages');
  box.scrollTop = box.scrollHeight;
  view.stick = true;
}

/** Re-renders the open room's messages that mention someone (once names are known). */
export function refreshMentions(roomId) {
  const rm = state.msgs.get(roomId);
  if (view.roomId !== roomId || !rm) return;
  for (const m of rm.order) if (m.mentions?.user_ids?.length && view.els.has(m.id)) showMessage(m, { quiet: true });
}
