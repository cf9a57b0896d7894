// Message search: the search dialog (Ctrl+K, or "/" outside a text box, or the Search
// button) over GET /api/v1/search/messages (docs/protocol.md, "Search"): a query, filters
// (room, sender, dates, attachments, order), results with their room and a snippet whose
// matched words are <mark>ed (text nodes only), "More results" through next_cursor, and a
// click that opens the room at the message (loading older history down to it if needed).

import { api, enc } from './api.js';
import { $, h, shortTime } from './dom.js';
import { openDialog } from './dialogs.js';
import { jumpToMessage } from './history.js';
import { roomLabel, state } from './state.js';

let searchRun = 0; // bumped per new search, so a stale page is not shown
let nextCursor = null;
let lastParams = null;

/** Opens the search dialog with the room select filled from the caller's rooms. */
export function openSearch() {
  const dlg = $('#search-dialog');
  if (dlg.open) {
    $('#search-q').focus();
    return;
  }
  const select = $('#search-room');
  const chosen = select.value;
  const rooms = [...state.rooms.values()].sort((a, b) => roomLabel(a).localeCompare(roomLabel(b)));
  select.replaceChildren(h('option', { value: '' }, 'All my rooms'),
    ...rooms.map((r) => h('option', { value: r.id }, r.kind === 'dm' ? `@${roomLabel(r)}` : `#${r.name}`)));
  if (state.rooms.has(chosen)) select.value = chosen;
  openDialog(dlg);
  $('#search-q').focus();
  $('#search-q').select();
}

/** The start of local day `yyyy-mm-dd` (an <input type=date> value) as RFC 3339 UTC. */
function dayStart(value, plusDays = 0) {
  const [y, m, d] = value.split('-').map(Number);
  return new Date(y, m - 1, d + plusDays).toISOString();
}

/** Who `username` is (an exact match of GET /users), or null. */
async function userIdOf(username) {
  const { users } = await api('GET', `/users?q=${enc(username)}&limit=10`);
  return users.find((u) => u.username === username)?.id || null;
}

/** Runs the search of the form from its first page. */
async function submitSearch(e) {
  e?.preventDefault();
  const form = $('#search-form');
  const err = $('#search-dialog .form-error');
  const list = $('#search-results');
  const status = $('#search-status');
  err.textContent = '';
  const q = form.elements.q.value.trim();
  if (!q) {
    err.textContent = 'Type what to look for.';
    return;
  }
  const params = new URLSearchParams({ q, limit: '20' });
  const f = form.elements;
  if (f.room_id.value) params.set('room_id', f.room_id.value);
  // "From" and "To" are whole local days, both included.
  if (f.after.value) params.set('after', dayStart(f.after.value));
  if (f.before.value) params.set('before', dayStart(f.before.value, 1));
  if (f.has_attachment.value) params.set('has_attachment', f.has_attachment.value);
  params.set('sort', f.sort.value || 'relevance');
  const run = ++searchRun;
  const sender = f.sender.value.trim().replace(/^@/, '').toLowerCase();
  status.textContent = 'Searching…';
  list.replaceChildren();
  $('#search-more').hidden = true;
  try {
    if (sender) {
      const id = await userIdOf(sender);
      if (run !== searchRun) return;
      if (!id) {
        status.textContent = '';
        err.textContent = `Nobody is called ${sender}.`;
        return;
      }
      params.set('sender_id', id);
    }
    lastParams = params;
    nextCursor = null;
    await loadPage(run, true);
  } catch (ex) {
    if (run !== searchRun) return;
    status.textContent = '';
    err.textContent = ex.message;
  }
}

/** Fetches a page of results (the first, or the one after `nextCursor`) and shows it. */
async function loadPage(run, first) {
  const params = new URLSearchParams(lastParams);
  if (!first && nextCursor) params.set('cursor', nextCursor);
  const page = await api('GET', `/search/messages?${params}`);
  if (run !== searchRun) return;
  const list = $('#search-results');
  for (const r of page.results) list.append(resultItem(r));
  nextCursor = page.next_cursor || null;
  const n = list.children.length;
  $('#search-status').textContent = n === 0 ? 'No message matches.' : `${n} result${n === 1 ? '' : 's'}${nextCursor ? ' so far' : ''}`;
  $('#search-more').hidden = !nextCursor;
}

async function loadMore() {
  const run = searchRun;
  const err = $('#search-dialog .form-error');
  err.textContent = '';
  try {
    await loadPage(run, false);
  } catch (ex) {
    err.textContent = ex.message;
  }
}

/** One result: the room, the author, the time, the snippet with its matches marked. */
function resultItem(r) {
  const m = r.message;
  const room = state.rooms.get(m.room_id);
  const where = room ? (room.kind === 'dm' ? `@${roomLabel(room)}` : `#${room.name}`) : `#${r.room_name}`;
  const snippet = h('span', { class: 'search-snippet', 'data-testid': 'search-snippet' });
  for (const part of r.snippet || []) {
    // Text only: the snippet is the user's words, never markup.
    snippet.append(part.highlight ? h('mark', null, part.text) : document.createTextNode(part.text));
  }
  if (!r.snippet?.length) snippet.append(m.content || m.attachment?.filename || '');
  return h('li', null, h('button', {
    type: 'button',
    class: 'search-result',
    'data-testid': 'search-result',
    'data-room-id': m.room_id,
    'data-message-id': m.id,
    'data-room-name': r.room_name,
    onclick: () => openResult(m),
  },
  h('span', { class: 'search-meta' },
    h('strong', { 'data-testid': 'search-room' }, where),
    h('span', { class: 'muted' }, ` · ${m.sender.username} · `),
    h('time', { datetime: m.created_at, class: 'muted' }, shortTime(m.created_at))),
  snippet));
}

async function openResult(m) {
  $('#search-dialog').close();
  await jumpToMessage(m.room_id, m.id, m.seq);
}

/** Wires the dialog (index.html's #search-dialog), its button and the shortcuts. */
export function wireSearch() {
  $('#search-btn').addEventListener('click', openSearch);
  $('#search-form').addEventListener('submit', submitSearch);
  $('#search-more').addEventListener('click', loadMore);
  document.addEventListener('keydown', (e) => {
    if (e.defaultPrevented || $('#app-view').hidden) return;
    const typing = e.target.closest?.('input, textarea, select, [contenteditable]');
    const ctrlK = (e.ctrlKey || e.metaKey) && !e.altKey && !e.shiftKey && e.key.toLowerCase() === 'k';
    const slash = e.key === '/' && !typing && !e.ctrlKey && !e.metaKey && !e.altKey;
    if (!ctrlK && !slash) return;
    if (document.querySelector('dialog[open]:not(#search-dialog)')) return;
    e.preventDefault();
    openSearch();
  });
}
