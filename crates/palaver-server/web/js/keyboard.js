// Keyboard navigation: Alt+ArrowUp/Alt+ArrowDown open the previous/next room of the
// sidebar; in the message list, ArrowUp/ArrowDown (Home/End) move between messages and
// Escape goes back to the message box; Escape also closes the rooms drawer (phone
// layout). Dialogs close on Escape by themselves (<dialog>).

import { $ } from './dom.js';
import { closeDrawer, drawerOpen } from './drawer.js';
import { navigate } from './room-view.js';
import { view } from './state.js';

/** The rooms of the sidebar in their order (rooms, then direct messages). */
function roomItems() {
  return [...document.querySelectorAll('#sidebar .room-item')];
}

/** Opens the room `step` places before (-1) or after (1) the open one. */
export function moveRoom(step) {
  const items = roomItems();
  if (!items.length) return;
  const at = items.findIndex((a) => a.dataset.roomId === view.roomId);
  let next;
  if (at < 0) next = step > 0 ? 0 : items.length - 1;
  else next = Math.max(0, Math.min(items.length - 1, at + step));
  if (next !== at) navigate(items[next].dataset.roomId);
}

/** The entries of the message list that take focus: messages, call lines, pending sends. */
function messageItems() {
  return [...document.querySelectorAll('#message-list > li[data-kind]')];
}

function focusMessage(el) {
  if (!el.hasAttribute('tabindex')) el.tabIndex = -1;
  el.focus();
  el.scrollIntoView({ block: 'nearest' });
}

function onMessagesKey(e) {
  if (e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) return;
  const box = $('#messages');
  const items = messageItems();
  const current = e.target.closest('#message-list > li');
  // Keys typed inside a message's controls (an edit box, a button) are theirs.
  if (e.target !== box && e.target !== current) return;
  const at = current ? items.indexOf(current) : -1;
  let next;
  switch (e.key) {
    case 'ArrowUp': next = at < 0 ? items.length - 1 : at - 1; break;
    case 'ArrowDown': next = at < 0 ? -1 : at + 1; break;
    case 'Home': next = at < 0 ? -1 : 0; break;
    case 'End': next = at < 0 ? -1 : items.length - 1; break;
    case 'Escape':
      if (current) {
        e.preventDefault();
        $('#composer-input').focus();
      }
      return;
    default: return;
  }
  e.preventDefault();
  if (next >= 0 && next < items.length) focusMessage(items[next]);
}

export function wireKeyboard() {
  document.addEventListener('keydown', (e) => {
    if (e.defaultPrevented) return;
    if (e.altKey && !e.ctrlKey && !e.metaKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown')) {
      if ($('#app-view').hidden || document.querySelector('dialog[open]')) return;
      e.preventDefault();
      moveRoom(e.key === 'ArrowUp' ? -1 : 1);
    } else if (e.key === 'Escape' && drawerOpen()) {
      closeDrawer();
    }
  });
  $('#messages').addEventListener('keydown', onMessagesKey);
}
