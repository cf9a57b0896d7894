// The WebSocket (docs/protocol.md): connect with `since` to resume, reconnect with
// jittered backoff, heartbeats, and requests matched to their replies.

import { API, ApiError, Disconnected, api, ensureFreshToken, session } from './api.js';
import { signOut } from './auth.js';
import { call, hideIncoming, teardownCall } from './calls.js';
import { $ } from './dom.js';
import { handlers } from './events.js';
import { renderTyping } from './messages.js';
import { renderRoomActions } from './room-view.js';
import { state } from './state.js';

const PING_TIMEOUT_MS = 10000;
const PING_EVERY_MS = 25000;

export const conn = {
  ws: null,
  ready: false, // `ready` received on the current socket
  state: 'idle', // idle | connecting | online | reconnecting | offline
  attempt: 0,
  timer: null,
  retryAt: 0,
  nextId: 1,
  waiting: new Map(), // request id -> {resolve, reject, timer}
  pingTimer: null,
  failedBeforeOpen: false,
  stopped: true,
};

function sinceParam() {
  // Every room whose history we hold: the replay fills what we missed, with no duplicate.
  const parts = [];
  for (const [roomId, rm] of state.msgs) {
    if (!rm.loaded || !state.rooms.has(roomId)) continue;
    parts.push(`${roomId}:${state.roomSeq.get(roomId) || 0}`);
  }
  return parts.join(',');
}

export async function connect() {
  clearTimeout(conn.timer);
  conn.timer = null;
  if (conn.stopped || !session) return;
  if (conn.ws) return;
  setConnState(conn.attempt ? 'reconnecting' : 'connecting');
  try {
    // A socket refused before the upgrade (e.g. 401 for an expired token) is invisible to
    // the browser: after such a failure, check the credentials over REST, which refreshes.
    if (conn.failedBeforeOpen) await api('GET', '/users/me');
    await ensureFreshToken(60);
  } catch (e) {
    if (!session) return;
    scheduleReconnect();
    return;
  }
  if (conn.stopped || !session || conn.ws) return;
  const params = new URLSearchParams({ access_token: session.access_token });
  const since = sinceParam();
  if (since) params.set('since', since);
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${scheme}//${location.host}${API}/ws?${params}`);
  conn.ws = ws;
  conn.ready = false;
  let opened = false;
  ws.onopen = () => {
    opened = true;
  };
  ws.onmessage = (e) => {
    if (ws === conn.ws) onFrame(e.data);
  };
  ws.onclose = (e) => {
    if (ws !== conn.ws) return;
    conn.failedBeforeOpen = !opened;
    socketGone(e.code);
  };
  ws.onerror = () => {};
}

/** Forgets the current socket (closed or considered dead) and decides what comes next. */
export function socketGone(code) {
  const ws = conn.ws;
  conn.ws = null;
  conn.ready = false;
  clearInterval(conn.pingTimer);
  if (ws && ws.readyState <= 1) {
    ws.onclose = null;
    try {
      ws.close();
    } catch {
      // already closing
    }
  }
  for (const w of conn.waiting.values()) {
    clearTimeout(w.timer);
    w.reject(new Disconnected());
  }
  conn.waiting.clear();
  // The server drops a closed connection from its call and stops ringing it.
  if (call) teardownCall('The call was interrupted: the connection dropped.');
  hideIncoming();
  for (const [roomId, m] of state.typing) {
    for (const t of m.values()) clearTimeout(t);
    state.typing.delete(roomId);
  }
  renderTyping();
  if (code === 4001) {
    signOut('Your session has ended. Please log in again.', { remote: false });
    return;
  }
  if (conn.stopped) return;
  scheduleReconnect();
}

function scheduleReconnect() {
  clearTimeout(conn.timer);
  // Full jitter: random(0, min(30 s, 0.5 s × 2^attempt)).
  const cap = Math.min(30000, 500 * 2 ** Math.min(conn.attempt, 16));
  const delay = Math.random() * cap;
  conn.attempt += 1;
  conn.retryAt = Date.now() + delay;
  setConnState(navigator.onLine === false ? 'offline' : 'reconnecting');
  conn.timer = setTimeout(connect, delay);
}

export function reconnectNow() {
  if (conn.ws || conn.stopped) return;
  conn.attempt = Math.max(0, conn.attempt - 1);
  connect();
}

function onFrame(text) {
  let f;
  try {
    f = JSON.parse(text);
  } catch {
    return;
  }
  if (f.type === 'reply') {
    const w = conn.waiting.get(f.id);
    if (!w) return;
    conn.waiting.delete(f.id);
    clearTimeout(w.timer);
    if (f.ok) w.resolve(f.data);
    else w.reject(new ApiError(0, { error: f.error }));
    return;
  }
  const handler = handlers[f.type];
  if (!handler) return;
  try {
    handler(f.data || {}, f);
  } catch (e) {
    console.error('palaver: handling', f.type, e);
  }
}

/** A request over the WebSocket; resolves with the reply's data. */
export function request(type, data, timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    const ws = conn.ws;
    if (!ws || !conn.ready || ws.readyState !== WebSocket.OPEN) {
      reject(new Disconnected());
      return;
    }
    const id = conn.nextId++;
    const timer = setTimeout(() => {
      conn.waiting.delete(id);
      reject(new ApiError(0, null, `no reply to ${type}`));
    }, timeoutMs);
    conn.waiting.set(id, { resolve, reject, timer });
    ws.send(JSON.stringify({ id, type, data }));
  });
}

export function startHeartbeat() {
  clearInterval(conn.pingTimer);
  conn.pingTimer = setInterval(() => {
    const ws = conn.ws;
    if (!ws || !conn.ready) return;
    request('ping', {}, PING_TIMEOUT_MS).catch((e) => {
      // No answer end to end: treat the socket as dead and reconnect (the browser can take
      // minutes to notice a silently dropped connection).
      if (ws === conn.ws && !(e instanceof Disconnected)) socketGone(4002);
    });
  }, PING_EVERY_MS);
}

export function setConnState(s) {
  conn.state = s;
  const el = $('#conn-status');
  el.dataset.state = s;
  const retry = $('#conn-retry');
  retry.hidden = !(s === 'reconnecting' || s === 'offline');
  const text = $('#conn-text');
  if (s === 'online') text.textContent = 'Connected';
  else if (s === 'connecting') text.textContent = 'Connecting…';
  else if (s === 'offline') text.textContent = 'Offline: waiting for the network…';
  else {
    const secs = Math.max(0, Math.round((conn.retryAt - Date.now()) / 1000));
    text.textContent = secs > 0 ? `Connection lost. Retrying in ${secs} s…` : 'Reconnecting…';
  }
  renderRoomActions();
}

setInterval(() => {
  if (conn.state === 'reconnecting' && conn.timer) setConnState('reconnecting');
}, 1000);

window.addEventListener('online', () => reconnectNow());
window.addEventListener('offline', () => {
  if (conn.state !== 'online') setConnState('offline');
});
