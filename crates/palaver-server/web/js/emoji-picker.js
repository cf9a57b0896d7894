// The emoji picker for reactions: every emoji the server accepts (emoji-data.js, generated
// from the same Unicode data), searchable by name and shortcode, usable from the
// keyboard: type to search, ArrowDown into the grid, arrows to move, Enter to pick,
// Escape to close. The most recently picked emoji become the quick reactions.

import { $, h } from './dom.js';

const RECENT_KEY = 'palaver.recentEmoji';
const DEFAULT_QUICK = ['👍', '❤️', '😂', '🎉', '😮'];
const MAX_RESULTS = 400;

let data = null; // {GROUPS, EMOJIS}, loaded on first use
let resolvePick = null;

/** The quick reactions: the last ones picked, then the defaults; `n` of them. */
export function quickReactions(n = 5) {
  let recent = [];
  try {
    recent = JSON.parse(localStorage.getItem(RECENT_KEY)) || [];
  } catch {
    recent = [];
  }
  const out = [];
  for (const e of [...recent, ...DEFAULT_QUICK]) if (typeof e === 'string' && !out.includes(e)) out.push(e);
  return out.slice(0, n);
}

/** Remembers `emoji` as the most recently used reaction. */
export function noteUsed(emoji) {
  const recent = [emoji, ...quickReactions(8).filter((e) => e !== emoji)].slice(0, 8);
  try {
    localStorage.setItem(RECENT_KEY, JSON.stringify(recent));
  } catch {
    // not remembered
  }
}

async function loadData() {
  if (!data) {
    const mod = await import('./emoji-data.js');
    data = {
      groups: mod.GROUPS,
      emojis: mod.EMOJIS.map(([emoji, name, group, codes]) => ({
        emoji, name, group, haystack: ` ${name} ${codes.replace(/_/g, ' ')} ${codes}`.toLowerCase(),
      })),
    };
  }
  return data;
}

/** The emojis matching `q` (every word must start a word of the name or a shortcode). */
export function searchEmoji(q, all) {
  const words = q.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return all;
  const hits = all.filter((e) => words.every((w) => e.haystack.includes(` ${w}`)));
  // Names that start with the query first.
  const first = words.join(' ');
  return hits.sort((a, b) => (b.name.startsWith(first) ? 1 : 0) - (a.name.startsWith(first) ? 1 : 0));
}

/**
 * Opens the picker; resolves with the chosen emoji, or null if it was closed. `label`
 * names what the reaction is for (announced as the dialog's description).
 */
export async function pickEmoji(label) {
  const dlg = $('#emoji-dialog');
  const input = $('#emoji-q');
  $('#emoji-for').textContent = label || '';
  input.value = '';
  if (resolvePick) resolvePick(null);
  const chosen = new Promise((resolve) => {
    resolvePick = resolve;
  });
  dlg.showModal();
  input.focus();
  try {
    await loadData();
    render();
  } catch (e) {
    $('#emoji-status').textContent = `Could not load the emoji list: ${e.message}`;
  }
  return chosen;
}

function finish(emoji) {
  const resolve = resolvePick;
  resolvePick = null;
  const dlg = $('#emoji-dialog');
  if (dlg.open) dlg.close();
  if (emoji) noteUsed(emoji);
  resolve?.(emoji);
}

function render() {
  if (!data) return;
  const grid = $('#emoji-grid');
  const q = $('#emoji-q').value.trim();
  const found = searchEmoji(q, data.emojis);
  const shown = found.slice(0, MAX_RESULTS);
  const buttons = shown.map((e, i) => h('button', {
    type: 'button',
    class: 'emoji-option',
    title: e.name,
    'aria-label': e.name,
    'data-emoji': e.emoji,
    'data-testid': 'emoji-option',
    tabindex: i === 0 ? '0' : '-1',
    onclick: () => finish(e.emoji),
  }, e.emoji));
  grid.replaceChildren(...buttons);
  let status;
  if (!found.length) status = 'No emoji matches.';
  else if (found.length > shown.length) status = `${found.length} emoji; showing the first ${shown.length}: search to narrow.`;
  else status = `${found.length} emoji`;
  $('#emoji-status').textContent = status;
}

/** How many buttons one row of the grid holds (from the layout). */
function columns(buttons) {
  if (buttons.length < 2) return 1;
  const top = buttons[0].offsetTop;
  const i = buttons.findIndex((b) => b.offsetTop !== top);
  return i < 0 ? buttons.length : i;
}

function onGridKey(e) {
  const buttons = [...$('#emoji-grid').querySelectorAll('.emoji-option')];
  const at = buttons.indexOf(document.activeElement);
  if (at < 0) return;
  const cols = columns(buttons);
  const moves = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -cols, ArrowDown: cols, Home: -at, End: buttons.length - 1 - at };
  if (e.key in moves) {
    e.preventDefault();
    const next = at + moves[e.key];
    if (next < 0 && e.key === 'ArrowUp') {
      $('#emoji-q').focus();
      return;
    }
    focusOption(buttons, Math.max(0, Math.min(buttons.length - 1, next)));
  } else if (e.key.length === 1 && !e.ctrlKey && !e.metaKey && !e.altKey && e.key !== ' ') {
    // Typing goes on in the search box.
    $('#emoji-q').focus();
  }
}

function focusOption(buttons, i) {
  for (const b of buttons) b.tabIndex = -1;
  buttons[i].tabIndex = 0;
  buttons[i].focus();
}

/** Wires the picker's dialog (index.html's #emoji-dialog). */
export function wireEmojiPicker() {
  const dlg = $('#emoji-dialog');
  const input = $('#emoji-q');
  input.addEventListener('input', render);
  input.addEventListener('keydown', (e) => {
    const buttons = [...$('#emoji-grid').querySelectorAll('.emoji-option')];
    if (e.key === 'ArrowDown' && buttons.length) {
      e.preventDefault();
      focusOption(buttons, 0);
    } else if (e.key === 'Enter') {
      e.preventDefault();
      if (buttons.length) finish(buttons[0].dataset.emoji);
    }
  });
  $('#emoji-grid').addEventListener('keydown', onGridKey);
  dlg.addEventListener('close', () => {
    if (resolvePick) finish(null);
  });
}
