// Palaver's web client: ES modules, no build step, no dependencies. It speaks the
// protocol in docs/protocol.md: REST under /api/v1 for accounts, rooms and history, one
// WebSocket for everything live (messages, typing, receipts, presence, calls), and
// WebRTC (one RTCPeerConnection per remote participant) for the media of calls.
//
// This module is the entry point (index.html loads it): it wires the static page's
// controls to the modules that own them and signs the tab in. One concern per module:
//   dom.js        element builder, icons, formatting, toasts
//   api.js        the session (access token) and REST calls with refresh
//   state.js      the client's model: rooms, messages, members, the open room (`view`)
//   socket.js     the WebSocket: connect, resume, reconnect, requests and replies
//   events.js     the server's events applied to the model
//   rooms.js      rooms and members loaded and forgotten; presence
//   sidebar.js    the rooms list, direct messages and invitations
//   room-view.js  routing (#/room/<id>) and the open room's header
//   history.js    a room's history: first page, older pages on scroll
//   messages.js   the message list: messages, reactions, attachments, read markers
//   outbox.js     sending (queued while offline, idempotent) and read markers sent
//   composer.js   the message box: typing, reply, attach, edit, delete, react
//   dialogs.js    create a room, the public directory, find a user
//   calls.js      calls: ringing, WebRTC peers, the call view
//   auth.js       sign in, sign up, sign out, providers, mailed links
//   security.js   the Security dialog (two-factor codes, sessions, providers)
//   server-info.js the server's limits and options (GET /api/v1/server)
//   markdown.js   the safe Markdown of message bodies
//   theme.js, drawer.js, keyboard.js   themes, the phone drawer, keyboard navigation
//   emoji-picker.js (+ emoji-data.js, generated)   reactions with any emoji
//   room-settings.js, account.js, admin.js   the room, account and admin dialogs
//   ring.js       the incoming call's ring (WebAudio)
//   search.js     the message search dialog (Ctrl+K, "/")
//   mentions.js   @mentions: highlighting, the composer's autocomplete
//   notify.js     notification settings per room, browser notifications, Web Push
//                 (with ../sw.js, the service worker)
//
// Extension points for what is built elsewhere: highlighting (e.g. mentions) plugs into
// renderMarkdown's `decorate` hook, called from messages.js's renderMessage; a panel
// (e.g. search) gets a <dialog> in index.html, a module of its own with a wire*()
// function called below, and a button in the sidebar's .me-actions; a new server event
// gets a handler in events.js.

import { refreshTokens, session } from './api.js';
import { handleArrival, notice, pendingNotice, selectTab, showAuth, showAuthForm, signOut, startApp, submitAuth, submitForgot, submitLink, submitReset } from './auth.js';
import { acceptIncoming, call, declineIncoming, hangUp, startCall, toggleCamera, toggleMute, toggleScreenShare } from './calls.js';
import { attachFile, onComposerInput, renderComposerBars, startEdit, stopTyping, submitComposer } from './composer.js';
import { createRoom, inviteUser, leaveRoom, onBrowseInput, onUserSearch, openDialog, openDirectory, openUserDialog, startDm } from './dialogs.js';
import { $, h, icon, toast } from './dom.js';
import { loadOlder } from './history.js';
import { isAtBottom } from './messages.js';
import { maybeMarkRead } from './outbox.js';
import { beginTwoFactor, confirmTwoFactor, disableTwoFactor, openSecurity } from './security.js';
import { conn, reconnectNow, request } from './socket.js';
import { state, view } from './state.js';
import { loadServerInfo } from './server-info.js';
import { initTheme } from './theme.js';
import { wireDrawer } from './drawer.js';
import { wireKeyboard } from './keyboard.js';
import { wireEmojiPicker } from './emoji-picker.js';
import { wireRoomSettings } from './room-settings.js';
import { wireAccount } from './account.js';
import { wireAdmin } from './admin.js';
import { ringLevel, ringing } from './ring.js';
import { wireSearch } from './search.js';
import { closeMentions, mentionKeydown, updateMentions, wireMentions } from './mentions.js';
import { forgetNotificationSettings, wireNotify } from './notify.js';

for (const el of document.querySelectorAll('[data-icon]')) el.replaceWith(icon(el.dataset.icon));

// ---------------------------------------------------------------------------------------
// Wiring

function wire() {
  $('#tab-login').addEventListener('click', () => selectTab('login'));
  $('#tab-signup').addEventListener('click', () => selectTab('signup'));
  for (const tab of document.querySelectorAll('[role=tab]')) {
    tab.addEventListener('keydown', (e) => {
      if (e.key !== 'ArrowLeft' && e.key !== 'ArrowRight') return;
      const next = tab.id === 'tab-login' ? 'signup' : 'login';
      selectTab(next);
      $(`#tab-${next}`).focus();
    });
  }
  $('#login-form').addEventListener('submit', (e) => submitAuth(e, 'login'));
  $('#signup-form').addEventListener('submit', (e) => submitAuth(e, 'register'));
  $('#logout-btn').addEventListener('click', () => signOut());
  $('#security-btn').addEventListener('click', openSecurity);
  $('#forgot-btn').addEventListener('click', () => showAuthForm('#forgot-form'));
  $('#forgot-form').addEventListener('submit', submitForgot);
  $('#reset-form').addEventListener('submit', submitReset);
  $('#link-form').addEventListener('submit', submitLink);
  for (const b of document.querySelectorAll('[data-back-to-login]')) b.addEventListener('click', () => selectTab('login'));
  $('#tf-begin-form').addEventListener('submit', beginTwoFactor);
  $('#tf-confirm-form').addEventListener('submit', confirmTwoFactor);
  $('#tf-disable-form').addEventListener('submit', disableTwoFactor);
  $('#conn-retry').addEventListener('click', reconnectNow);

  $('#new-room-btn').addEventListener('click', () => openDialog($('#new-room-dialog')));
  $('#empty-new-room').addEventListener('click', () => openDialog($('#new-room-dialog')));
  $('#new-room-form').addEventListener('submit', createRoom);
  $('#browse-btn').addEventListener('click', openDirectory);
  $('#browse-q').addEventListener('input', onBrowseInput);
  $('#empty-browse').addEventListener('click', openDirectory);
  $('#new-dm-btn').addEventListener('click', () => openUserDialog('Start a direct message', startDm));
  $('#invite-btn').addEventListener('click', () => {
    const room = state.rooms.get(view.roomId);
    if (room) openUserDialog(`Invite someone to ${room.name}`, inviteUser);
  });
  $('#user-search').addEventListener('input', onUserSearch);
  $('#leave-btn').addEventListener('click', leaveRoom);

  const input = $('#composer-input');
  $('#composer').addEventListener('submit', submitComposer);
  input.addEventListener('input', () => {
    onComposerInput();
    updateMentions();
  });
  input.addEventListener('blur', () => setTimeout(() => {
    if (document.activeElement !== input) stopTyping();
  }, 0));
  input.addEventListener('keydown', (e) => {
    // The mention list, when open, takes the arrows, Enter, Tab and Escape.
    if (mentionKeydown(e)) return;
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      closeMentions();
      submitComposer();
    } else if (e.key === 'Escape') {
      if (view.replyTo) {
        view.replyTo = null;
        renderComposerBars();
      }
    } else if (e.key === 'ArrowUp' && !input.value && !e.altKey && !e.ctrlKey && !e.metaKey && !e.shiftKey) {
      // Up in an empty box edits one's last message.
      const rm = state.msgs.get(view.roomId);
      const mine = rm?.order.findLast((m) => m.sender.id === state.me?.id && m.message_type === 'text' && !m.deleted_at);
      if (mine) {
        e.preventDefault();
        startEdit(mine);
      }
    }
  });
  $('#reply-cancel').addEventListener('click', () => {
    view.replyTo = null;
    renderComposerBars();
    input.focus();
  });
  $('#attach-btn').addEventListener('click', () => $('#file-input').click());
  $('#file-input').addEventListener('change', (e) => {
    const f = e.target.files[0];
    if (f) attachFile(f);
  });
  $('#attach-cancel').addEventListener('click', () => {
    view.file = null;
    $('#file-input').value = '';
    renderComposerBars();
    input.focus();
  });
  // Paste or drop a file to attach it.
  input.addEventListener('paste', (e) => {
    const f = e.clipboardData?.files?.[0];
    if (f) {
      e.preventDefault();
      attachFile(f);
    }
  });
  const roomView = $('#room-view');
  roomView.addEventListener('dragover', (e) => {
    if (e.dataTransfer?.types?.includes('Files')) e.preventDefault();
  });
  roomView.addEventListener('drop', (e) => {
    const f = e.dataTransfer?.files?.[0];
    if (f) {
      e.preventDefault();
      attachFile(f);
    }
  });

  const box = $('#messages');
  box.addEventListener('scroll', () => {
    view.stick = isAtBottom();
    if (box.scrollTop < 200 && view.roomId) loadOlder(view.roomId);
    if (view.stick) maybeMarkRead();
  }, { passive: true });

  $('#call-audio-btn').addEventListener('click', () => startCall('audio'));
  $('#call-video-btn').addEventListener('click', () => startCall('video'));
  $('#hangup-btn').addEventListener('click', hangUp);
  $('#mute-btn').addEventListener('click', toggleMute);
  $('#camera-btn').addEventListener('click', toggleCamera);
  $('#share-btn').addEventListener('click', toggleScreenShare);
  $('#incoming-accept').addEventListener('click', acceptIncoming);
  $('#incoming-decline').addEventListener('click', declineIncoming);
  $('#incoming-call').addEventListener('keydown', (e) => {
    if (e.key === 'Escape') declineIncoming();
  });
  window.addEventListener('beforeunload', () => {
    if (call?.id) request('call.leave', { call_id: call.id }).catch(() => {});
  });
}

// A hidden live region announcing new messages from others in the open room.
document.body.append(h('div', { id: 'announcer', class: 'sr-only', 'aria-live': 'polite', 'data-testid': 'announcer' }));

// Hooks for tests and debugging.
window.__palaver = {
  peerConnections: () => (call ? [...call.peers.values()].map((p) => p.pc) : []),
  call: () => (call ? { id: call.id, roomId: call.roomId, kind: call.kind, state: call.state, participants: [...call.participants.values()] } : null),
  ringing: () => ({ on: ringing(), level: ringLevel() }),
  connection: () => ({ state: conn.state, ready: conn.ready, attempt: conn.attempt }),
  roomSeq: () => Object.fromEntries(state.roomSeq),
  forgetNotificationSettings, // read each room's settings from the server again
  state,
};

initTheme();
wire();
wireDrawer();
wireKeyboard();
wireEmojiPicker();
wireRoomSettings();
wireAccount();
wireAdmin();
wireSearch();
wireMentions();
wireNotify();
// The server's limits and options, for the forms (they work without: the server checks).
await loadServerInfo().catch(() => {});
const arrival = await handleArrival();
if (arrival === 'link') {
  showAuth();
  showAuthForm('#link-form');
} else if (arrival === 'reset') {
  showAuth();
  showAuthForm('#reset-form');
} else if (session?.access_token) {
  startApp();
} else {
  // A new tab, or back from a sign-in provider: the browser's refresh cookie, if any,
  // signs this tab in.
  try {
    await refreshTokens();
    startApp();
  } catch {
    showAuth();
    if (pendingNotice) notice(pendingNotice);
  }
}
if (pendingNotice && $('#auth-view').hidden) toast(pendingNotice);
