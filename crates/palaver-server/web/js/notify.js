// Notifications (docs/notifications.md):
//
// - Settings per room (the bell in the room header): the level (`all`: every new
//   message; `mentions`: mentions and direct messages; `none`) and a mute (1 h, 8 h,
//   24 h, until unmuted), through GET/PUT /api/v1/rooms/{room_id}/notifications. The
//   server pushes only direct messages and mentions, whatever the level; `all` adds what
//   this open client shows.
// - Browser notifications while the tab is hidden (Notification permission granted):
//   shown through the service worker's registration when there is one (so a click is
//   handled the same way as a push's), else with `new Notification`.
// - Web Push on this device: "Enable notifications" asks the permission, registers the
//   service worker (/sw.js, scope "/"), subscribes with the server's VAPID key and posts
//   the subscription; every start posts it again (harmless, keeps the keys current). When
//   the browser cannot subscribe (no push service, blocked), the dialog says so plainly.

import { ApiError, api } from './api.js';
import { $, toast } from './dom.js';
import { openDialog } from './dialogs.js';
import { jumpToMessage } from './history.js';
import { navigate } from './room-view.js';
import { roomLabel, state, view } from './state.js';

const FOREVER = '9999-12-31T23:59:59Z'; // "until I unmute it"
const MUTES = { '1h': 3600e3, '8h': 8 * 3600e3, '24h': 24 * 3600e3 };

/** room id -> {level, muted_until}, as last read from or written to the server. */
const settings = new Map();
const notified = new Set(); // message ids already notified (a DM that also mentions)

export function forgetNotificationSettings() {
  settings.clear();
  notified.clear();
}

/** The caller's settings for `roomId` (cached; `all`, not muted, if they cannot be read). */
export async function roomSettings(roomId) {
  if (!settings.has(roomId)) {
    try {
      const s = await api('GET', `/rooms/${roomId}/notifications`);
      settings.set(roomId, { level: s.level, muted_until: s.muted_until });
    } catch {
      return { level: 'all', muted_until: null };
    }
  }
  return settings.get(roomId);
}

export function isMuted(s) {
  return !!s.muted_until && Date.parse(s.muted_until) > Date.now();
}

// ---------------------------------------------------------------------------------------
// The dialog: this room's settings, and this device's notifications

const timeFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short', hour: '2-digit', minute: '2-digit' });

function muteText(s) {
  if (!isMuted(s)) return 'Not muted.';
  if (s.muted_until.startsWith('9999')) return 'Muted until you unmute it.';
  return `Muted until ${timeFmt.format(new Date(s.muted_until))}.`;
}

/** Opens the notification settings of the open room. */
export async function openNotifySettings() {
  const room = state.rooms.get(view.roomId);
  if (!room) return;
  const dlg = $('#notify-dialog');
  const form = $('#notify-form');
  $('#notify-title').textContent = `Notifications for ${room.kind === 'dm' ? roomLabel(room) : `#${room.name}`}`;
  form.dataset.roomId = room.id;
  form.dataset.loaded = 'false';
  $('#notify-mute-state').textContent = '';
  openDialog(dlg);
  renderDeviceState();
  settings.delete(room.id); // read afresh: another device may have changed them
  const s = await roomSettings(room.id);
  if (form.dataset.roomId !== room.id) return;
  form.elements.level.value = s.level;
  const keep = form.querySelector('option[value=keep]');
  keep.hidden = !isMuted(s) || s.muted_until.startsWith('9999');
  keep.textContent = isMuted(s) ? `Keep: ${muteText(s)}` : '';
  form.elements.mute.value = !isMuted(s) ? '' : s.muted_until.startsWith('9999') ? 'forever' : 'keep';
  $('#notify-mute-state').textContent = muteText(s);
  form.dataset.loaded = 'true';
}

async function saveNotifySettings(e) {
  e.preventDefault();
  const form = e.currentTarget;
  const roomId = form.dataset.roomId;
  const err = $('#notify-dialog .form-error');
  err.textContent = '';
  const old = settings.get(roomId) || { level: 'all', muted_until: null };
  const mute = form.elements.mute.value;
  let mutedUntil = null;
  if (mute === 'keep') mutedUntil = old.muted_until;
  else if (mute === 'forever') mutedUntil = FOREVER;
  else if (MUTES[mute]) mutedUntil = new Date(Date.now() + MUTES[mute]).toISOString();
  try {
    const s = await api('PUT', `/rooms/${roomId}/notifications`, { body: { level: form.elements.level.value, muted_until: mutedUntil } });
    settings.set(roomId, { level: s.level, muted_until: s.muted_until });
    $('#notify-mute-state').textContent = muteText(s);
    $('#notify-dialog').close();
    toast('Notification settings saved.');
  } catch (ex) {
    err.textContent = ex.message;
  }
}

/** The "This device" part: what the browser allows and whether push is on. */
async function renderDeviceState(message) {
  const status = $('#push-status');
  const enable = $('#push-enable');
  const disable = $('#push-disable');
  let text;
  let st;
  if (!('Notification' in window)) {
    text = 'This browser cannot show notifications.';
    st = 'unsupported';
  } else if (Notification.permission === 'denied') {
    text = 'Notifications are blocked for this site: allow them in the browser\'s site settings.';
    st = 'denied';
  } else if (Notification.permission !== 'granted') {
    text = 'Notifications are off on this device.';
    st = 'off';
  } else {
    const sub = await currentSubscription().catch(() => null);
    text = sub ? 'Notifications are on, with push messages while Palaver is closed.'
      : 'Notifications are on while Palaver is open in a tab.';
    st = sub ? 'push-on' : 'on';
  }
  if (message) {
    text = message.text;
    st = message.state;
  }
  status.textContent = text;
  status.dataset.state = st;
  enable.hidden = st === 'push-on' || st === 'unsupported' || st === 'denied';
  disable.hidden = st !== 'push-on';
}

// ---------------------------------------------------------------------------------------
// Service worker and Web Push

let registration = null;

/** Registers /sw.js (scope "/") once; resolves with the active registration, or null. */
export async function serviceWorker() {
  if (registration) return registration;
  if (!('serviceWorker' in navigator)) return null;
  await navigator.serviceWorker.register('/sw.js', { scope: '/' });
  registration = await navigator.serviceWorker.ready;
  return registration;
}

async function currentSubscription() {
  const reg = await serviceWorker();
  if (!reg || !('pushManager' in reg)) return null;
  return reg.pushManager.getSubscription();
}

/** How long the browser's push service may take to subscribe (it may never answer). */
const SUBSCRIBE_TIMEOUT_MS = 20_000;

function withTimeout(promise, ms) {
  return Promise.race([promise, new Promise((_, reject) => setTimeout(() => {
    const e = new Error(`the browser's push service did not answer within ${ms / 1000} s`);
    e.name = 'TimeoutError';
    reject(e);
  }, ms))]);
}

/** base64url (no padding) to bytes: the VAPID key as `applicationServerKey`. */
function b64urlBytes(s) {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(s.length / 4) * 4, '=');
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

/**
 * Turns notifications on for this device: the permission, the service worker, the push
 * subscription posted to the server. Each step that fails says why in the dialog; the
 * steps before it stay (notifications while a tab is open need only the permission).
 */
export async function enablePush() {
  const say = (text, st) => renderDeviceState({ text, state: st });
  renderDeviceState({ text: 'Turning notifications on…', state: 'working' });
  if (!('Notification' in window)) return say('This browser cannot show notifications.', 'unsupported');
  const permission = await Notification.requestPermission();
  if (permission !== 'granted') {
    return say('Notifications were not allowed. To turn them on, allow them in the browser\'s site settings.', permission === 'denied' ? 'denied' : 'off');
  }
  let reg;
  try {
    reg = await serviceWorker();
  } catch (e) {
    return say(`Notifications are on while Palaver is open, but the service worker could not start (${e.message}), so there are no push messages.`, 'push-failed');
  }
  if (!reg || !('PushManager' in window)) {
    return say('Notifications are on while Palaver is open. This browser cannot receive push messages.', 'push-failed');
  }
  let key;
  try {
    key = (await api('GET', '/push/vapid-public-key')).public_key;
  } catch (e) {
    const why = e instanceof ApiError && e.code === 'push_disabled' ? 'this server does not send push messages' : e.message;
    return say(`Notifications are on while Palaver is open; ${why}.`, 'push-failed');
  }
  let sub;
  try {
    sub = (await reg.pushManager.getSubscription())
      || (await withTimeout(reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64urlBytes(key) }), SUBSCRIBE_TIMEOUT_MS));
  } catch (e) {
    return say(`This browser could not subscribe to push messages (${e.name}: ${e.message}). You are notified while Palaver is open in a tab.`, 'push-failed');
  }
  try {
    await api('POST', '/push/subscriptions', { body: sub.toJSON() });
  } catch (e) {
    return say(`The server refused this browser's push subscription (${e.message}). You are notified while Palaver is open in a tab.`, 'push-failed');
  }
  return say('Notifications are on, with push messages while Palaver is closed.', 'push-on');
}

/** Turns push off on this device: unsubscribes and deletes the server's subscription. */
async function disablePush() {
  try {
    const sub = await currentSubscription();
    if (sub) {
      const { subscriptions } = await api('GET', '/push/subscriptions');
      const mine = subscriptions.find((s) => s.endpoint === sub.endpoint);
      if (mine) await api('DELETE', `/push/subscriptions/${mine.id}`);
      await sub.unsubscribe();
    }
    renderDeviceState();
  } catch (e) {
    renderDeviceState({ text: `Could not turn push off: ${e.message}`, state: 'push-on' });
  }
}

/**
 * At sign-in: if notifications are allowed, registers the service worker and posts the
 * push subscription again (the server keeps one per endpoint).
 */
export async function resumeNotifications() {
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  try {
    const sub = await currentSubscription();
    if (sub) await api('POST', '/push/subscriptions', { body: sub.toJSON() });
  } catch {
    // notifications still work while the tab is open
  }
}

// ---------------------------------------------------------------------------------------
// Notifications from the open client

/** The title of a notification for a message (the service worker's is the same). */
export function notificationTitle({ sender, roomName, dm, mention }) {
  if (dm) return sender;
  return mention ? `${sender} mentioned you in #${roomName}` : `${sender} in #${roomName}`;
}

/**
 * Notifies of message `m` (`why`: `dm`, `mention` or `message`) if the tab is hidden, the
 * permission is granted, and the room's settings allow it.
 */
export async function maybeNotify(m, why) {
  if (document.visibilityState !== 'hidden' || notified.has(m.id)) return;
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  const room = state.rooms.get(m.room_id);
  if (!room || m.sender.id === state.me?.id) return;
  notified.add(m.id);
  const s = await roomSettings(m.room_id);
  if (s.level === 'none' || isMuted(s)) return;
  if (why === 'message' && s.level !== 'all') return;
  const title = notificationTitle({ sender: m.sender.username, roomName: room.name, dm: room.kind === 'dm', mention: why === 'mention' });
  const body = (m.content || m.attachment?.filename || '').slice(0, 200);
  const data = { room_id: m.room_id, message_id: m.id, seq: m.seq };
  const options = { body, tag: m.id, data };
  try {
    const reg = registration || (await navigator.serviceWorker?.getRegistration('/'));
    if (reg?.active) {
      // The worker shows it, as it shows pushes (and handles the click the same way).
      reg.active.postMessage({ type: 'show-notification', title, options });
      return;
    }
    const n = new Notification(title, options);
    n.onclick = () => {
      window.focus();
      openFromNotification(data);
      n.close();
    };
  } catch {
    // the browser refused: nothing to show
  }
}

/** Opens the room (at the message) a notification was about. */
function openFromNotification(d) {
  if (!d?.room_id || !state.rooms.has(d.room_id)) return;
  if (d.message_id) jumpToMessage(d.room_id, d.message_id, d.seq || 0);
  else navigate(d.room_id);
}

/** Wires the dialog (index.html's #notify-dialog) and the service worker's messages. */
export function wireNotify() {
  $('#notify-btn').addEventListener('click', openNotifySettings);
  $('#notify-form').addEventListener('submit', saveNotifySettings);
  $('#push-enable').addEventListener('click', () => enablePush());
  $('#push-disable').addEventListener('click', () => disablePush());
  // A click on a notification (the service worker's notificationclick) in this tab.
  navigator.serviceWorker?.addEventListener('message', (e) => {
    if (e.data?.type === 'open-room') openFromNotification(e.data);
  });
}
