// Palaver's service worker (registered by js/notify.js at scope "/"): it shows the Web
// Push messages the server sends (docs/notifications.md, "The payload") as notifications,
// and opens the room on a click. It caches nothing and handles no fetch.
//
// Payload: {type: "message", room_id, room_name, room_kind: "dm" | "channel",
// message_id, seq, sender: {id, username}, body, mention}.

/* eslint-env serviceworker */

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

/** The notification for a payload: the same title the open page uses (js/notify.js). */
function notificationFor(p) {
  const sender = p.sender?.username || 'Someone';
  let title;
  if (p.room_kind === 'dm') title = sender;
  else if (p.mention) title = `${sender} mentioned you in #${p.room_name || 'a room'}`;
  else title = `${sender} in #${p.room_name || 'a room'}`;
  return {
    title,
    options: {
      body: p.body || 'New message',
      tag: p.message_id || undefined,
      data: { room_id: p.room_id, message_id: p.message_id, seq: p.seq },
    },
  };
}

/**
 * Shows a notification, then tells the open tabs which one (`notification-shown`, with its
 * title and tag): a signal for tests and debugging, since reading the list
 * (`getNotifications`) while one is being shown can miss it in Chromium.
 */
async function show(title, options) {
  await self.registration.showNotification(title, options);
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  for (const c of windows) c.postMessage({ type: 'notification-shown', title, tag: options.tag || null });
}

self.addEventListener('push', (event) => {
  let payload = {};
  try {
    payload = event.data ? event.data.json() : {};
  } catch {
    payload = { body: event.data ? event.data.text() : '' };
  }
  const { title, options } = notificationFor(payload);
  event.waitUntil(show(title, options));
});

// The open page asks for a notification (its tab is hidden): shown like a push's.
self.addEventListener('message', (event) => {
  const d = event.data;
  if (d?.type !== 'show-notification' || typeof d.title !== 'string') return;
  if (event.origin && event.origin !== self.location.origin) return;
  const o = d.options || {};
  event.waitUntil(show(d.title, {
    body: String(o.body || ''),
    tag: o.tag ? String(o.tag) : undefined,
    data: o.data || null,
  }));
});

// A click: focus an open Palaver tab and tell it which room (and message) to open, or
// open a new tab at the room.
self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const d = event.notification.data || {};
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    const tab = windows.find((c) => new URL(c.url).origin === self.location.origin);
    if (tab) {
      tab.postMessage({ type: 'open-room', room_id: d.room_id, message_id: d.message_id, seq: d.seq });
      return tab.focus();
    }
    return self.clients.openWindow(d.room_id ? `/#/room/${d.room_id}` : '/');
  })());
});
