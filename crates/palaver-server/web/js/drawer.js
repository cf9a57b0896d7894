// The rooms drawer of the phone layout: below 720 px the sidebar slides over the
// conversation, opened by the "Rooms" button and closed by picking a room, the scrim or
// Escape. On wider screens the sidebar is always there and these do nothing visible.

import { $ } from './dom.js';

const NARROW = '(max-width: 720px)';

/** Whether the drawer is open (on a narrow screen). */
export function drawerOpen() {
  return $('#app-view').classList.contains('drawer-open') && matchMedia(NARROW).matches;
}

export function openDrawer() {
  $('#app-view').classList.add('drawer-open');
  $('#drawer-btn').setAttribute('aria-expanded', 'true');
  const first = $('#sidebar .room-item.active') || $('#sidebar .room-item') || $('#sidebar button');
  first?.focus();
}

export function closeDrawer({ focus = true } = {}) {
  const wasOpen = drawerOpen();
  $('#app-view').classList.remove('drawer-open');
  $('#drawer-btn').setAttribute('aria-expanded', 'false');
  if (wasOpen && focus) $('#drawer-btn').focus();
}

export function wireDrawer() {
  $('#drawer-btn').addEventListener('click', () => (drawerOpen() ? closeDrawer() : openDrawer()));
  $('#drawer-scrim').addEventListener('click', () => closeDrawer());
  // Picking a room closes it (the room's view takes the focus).
  $('#sidebar').addEventListener('click', (e) => {
    if (e.target.closest('.room-item')) closeDrawer({ focus: false });
  });
}
