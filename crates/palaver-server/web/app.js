// Palaver's web client: one ES module, no build step, no dependencies. It speaks the
// protocol in docs/protocol.md: REST under /api/v1 for accounts, rooms and history, one
// WebSocket for everything live (messages, typing, receipts, presence, calls), and
// WebRTC (one RTCPeerConnection per remote participant) for the media of calls.

const API = '/api/v1';
const SESSION_KEY = 'palaver.session';
const QUICK_REACTIONS = ['👍', '❤️', '😂', '🎉', '😮'];
const PAGE = 50;
const TYPING_RESEND_MS = 2500; // the server relays at most one `active: true` per 2 s
const TYPING_IDLE_MS = 4000; // stop typing after this long without a keystroke
const PING_EVERY_MS = 25000;
const PING_TIMEOUT_MS = 10000;
const GROUP_WINDOW_MS = 5 * 60 * 1000;

// ---------------------------------------------------------------------------------------
// Small DOM helpers

const $ = (sel, root = document) => root.querySelector(sel);

/** Creates an element: `h('button', {class: 'x', onclick: fn, 'aria-label': 'y'}, 'text')`. */
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// Line icons (drawn as inline SVG: no image requests, no emoji font needed).
const ICONS = {
  phone: [['path', { d: 'M22 16.9v3a2 2 0 0 1-2.2 2 19.8 19.8 0 0 1-8.6-3.1 19.5 19.5 0 0 1-6-6A19.8 19.8 0 0 1 2.1 4.2 2 2 0 0 1 4.1 2h3a2 2 0 0 1 2 1.7c.1 1 .4 1.9.7 2.8a2 2 0 0 1-.5 2.1L8.1 9.9a16 16 0 0 0 6 6l1.3-1.3a2 2 0 0 1 2.1-.4c.9.3 1.8.6 2.8.7a2 2 0 0 1 1.7 2z' }]],
  video: [['path', { d: 'M23 7l-7 5 7 5V7z' }], ['rect', { x: '1', y: '5', width: '15', height: '14', rx: '2' }]],
  clip: [['path', { d: 'M21.4 11.1l-9.2 9.2a6 6 0 0 1-8.5-8.5l9.2-9.2a4 4 0 0 1 5.7 5.7l-9.2 9.2a2 2 0 0 1-2.8-2.8l8.5-8.5' }]],
  file: [['path', { d: 'M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8z' }], ['path', { d: 'M14 2v6h6' }]],
  missed: [['path', { d: 'M23 1l-6 6M17 1l6 6' }], ['path', { d: 'M22 16.9v3a2 2 0 0 1-2.2 2 19.8 19.8 0 0 1-8.6-3.1 19.5 19.5 0 0 1-6-6A19.8 19.8 0 0 1 2.1 4.2 2 2 0 0 1 4.1 2h3a2 2 0 0 1 2 1.7c.1 1 .4 1.9.7 2.8a2 2 0 0 1-.5 2.1L8.1 9.9a16 16 0 0 0 6 6l1.3-1.3a2 2 0 0 1 2.1-.4c.9.3 1.8.6 2.8.7a2 2 0 0 1 1.7 2z' }]],
  lock: [['rect', { x: '4', y: '11', width: '16', height: '10', rx: '2' }], ['path', { d: 'M8 11V7a4 4 0 0 1 8 0v4' }]],
  mic: [['path', { d: 'M12 2a3 3 0 0 0-3 3v7a3 3 0 0 0 6 0V5a3 3 0 0 0-3-3z' }], ['path', { d: 'M19 10v2a7 7 0 0 1-14 0v-2M12 19v4' }]],
  hangup: [['path', { d: 'M3.6 14.6c4.7-4.2 12.1-4.2 16.8 0l-1.6 2.6-3.3-1.1-.4-2.5a9.7 9.7 0 0 0-6.2 0l-.4 2.5-3.3 1.1z' }]],
};

function icon(name) {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  for (const [k, v] of Object.entries({ viewBox: '0 0 24 24', width: '16', height: '16', fill: 'none', stroke: 'currentColor',
    'stroke-width': '2', 'stroke-linecap': 'round', 'stroke-linejoin': 'round', 'aria-hidden': 'true', focusable: 'false', class: 'icon' })) {
    svg.setAttribute(k, v);
  }
  for (const [tag, attrs] of ICONS[name] || []) {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    svg.append(el);
  }
  return svg;
}

for (const el of document.querySelectorAll('[data-icon]')) el.replaceWith(icon(el.dataset.icon));

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayTimeFmt = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
});
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

function shortTime(iso) {
  const d = new Date(iso);
  const now = new Date();
  return d.toDateString() === now.toDateString() ? timeFmt.format(d) : dayTimeFmt.format(d);
}

function hueOf(text) {
  let x = 0;
  for (const ch of text) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return x % 360;
}

function avatar(name, cls = 'avatar') {
  const el = h('span', { class: cls, 'aria-hidden': 'true' }, (name || '?').slice(0, 1).toUpperCase());
  el.style.setProperty('--hue', String(hueOf(name || '?')));
  return el;
}

/** Text with http(s) links turned into anchors. */
function linkify(text) {
  const out = [];
  const re = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    out.push(h('a', { href: m[0], target: '_blank', rel: 'noopener noreferrer' }, m[0]));
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

function humanSize(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function toast(text, kind = 'info') {
  const el = h('div', { class: `toast ${kind}` }, text);
  $('#toasts').append(el);
  setTimeout(() => el.remove(), 5000);
}

function announce(text) {
  const el = $('#announcer');
  if (el) el.textContent = text;
}

// ---------------------------------------------------------------------------------------
// Session. The access token (short-lived) is kept per tab in sessionStorage; the refresh
// token never reaches this page: the server keeps it in the HttpOnly `palaver_refresh`
// cookie (`?refresh=cookie`), one per browser, which page scripts cannot read.

let session = loadSession();

function loadSession() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY));
  } catch {
    return null;
  }
}

function saveSession(s) {
  session = s;
  if (s) sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
  else sessionStorage.removeItem(SESSION_KEY);
}

/** Seconds since the epoch at which the access token expires (from its `exp` claim). */
function tokenExpiry(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(payload)).exp || 0;
  } catch {
    return 0;
  }
}

/** The session id (`sid` claim) of an access token. */
function sessionIdOf(token) {
  try {
    return JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sid || null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------
// REST

class ApiError extends Error {
  constructor(status, body, fallback) {
    super(body?.error?.message || fallback || `request failed (${status})`);
    this.status = status;
    this.code = body?.error?.code || (status ? `http_${status}` : 'error');
    this.field = body?.error?.field;
  }
}

/** The WebSocket is not open (or closed while a request waited for its reply). */
class Disconnected extends Error {
  constructor() {
    super('not connected');
    this.code = 'disconnected';
  }
}

let refreshing = null;

/**
 * A new access token from the browser's refresh cookie (the cookie is rotated by the
 * answer); one refresh at a time. Two tabs refreshing at once: the second one's cookie was
 * just spent (409), and the first's answer set the next one, so it tries once more.
 */
function refreshTokens() {
  if (refreshing) return refreshing;
  refreshing = (async () => {
    for (let attempt = 0; ; attempt++) {
      const res = await fetch(`${API}/auth/refresh?refresh=cookie`, { method: 'POST', credentials: 'same-origin' });
      const body = await res.json().catch(() => null);
      if (res.ok) {
        if (session?.user && body.user && body.user.id !== session.user.id) {
          // The browser's sign-in is someone else's now (another tab logged in).
          signOut('This browser was signed in to another account in another tab. Please log in again.', { remote: false });
          throw new ApiError(401, null, 'signed in as someone else');
        }
        saveSession({ ...(session || {}), access_token: body.access_token, user: body.user || session?.user });
        return;
      }
      if (res.status === 409 && attempt === 0) {
        await new Promise((resolve) => setTimeout(resolve, 300));
        continue;
      }
      const err = new ApiError(res.status, body);
      // 401 (expired, revoked, reused, no cookie) and 409 cannot be recovered here.
      if (session && (res.status === 401 || res.status === 403 || res.status === 409)) {
        signOut('Your session has ended. Please log in again.', { remote: false });
      }
      throw err;
    }
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

/** Refreshes the access token if it expires within `marginSecs`. */
async function ensureFreshToken(marginSecs = 60) {
  if (!session) throw new ApiError(401, null, 'not signed in');
  if (tokenExpiry(session.access_token) - Date.now() / 1000 < marginSecs) await refreshTokens();
}

/** A REST call with the access token; refreshes once and retries on 401. */
async function api(method, path, { body, form, raw = false, auth = true } = {}, retried = false) {
  if (auth) await ensureFreshToken(10);
  const headers = {};
  if (auth && session) headers.authorization = `Bearer ${session.access_token}`;
  let payload;
  if (form) payload = form;
  else if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const res = await fetch(API + path, { method, headers, body: payload });
  if (res.status === 401 && auth && !retried && session) {
    await refreshTokens();
    return api(method, path, { body, form, raw, auth }, true);
  }
  if (!res.ok) {
    const b = await res.json().catch(() => null);
    throw new ApiError(res.status, b);
  }
  if (raw) return res;
  if (res.status === 204) return null;
  return res.json();
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------------------------------
// State

const state = {
  me: null,
  rooms: new Map(), // room id -> Room (with my_role, last_read_seq, unread_count, ...)
  msgs: new Map(), // room id -> {byId, order (by seq), hasMore, loaded, loading, loadingOlder}
  roomSeq: new Map(), // room id -> highest change seq seen (what `since` presents)
  presence: new Map(), // user id -> {status, status_text, last_seen}
  dmPeer: new Map(), // DM room id -> {user_id, username}
  members: new Map(), // room id -> Map(user id -> Member)
  receipts: new Map(), // room id -> Map(user id -> read seq)
  typing: new Map(), // room id -> Map(user id -> timer)
  invitations: new Map(), // invitation id -> Invitation
  pending: new Map(), // client_id -> outgoing message not yet acknowledged
  readSent: new Map(), // room id -> seq of the last `read` sent
};

function roomMsgs(roomId) {
  let rm = state.msgs.get(roomId);
  if (!rm) {
    rm = { byId: new Map(), order: [], hasMore: true, loaded: false, loading: false, loadingOlder: false, buffer: [] };
    state.msgs.set(roomId, rm);
  }
  return rm;
}

function noteSeq(roomId, seq) {
  if (typeof seq === 'number' && seq > (state.roomSeq.get(roomId) || 0)) state.roomSeq.set(roomId, seq);
}

/** Stores (or replaces, by id) a message. Returns true if it was new. */
function storeMessage(m) {
  if (m.message_type === 'call' && ['missed', 'declined', 'ended'].includes(m.call?.event)) endedCalls.add(m.call.call_id);
  const rm = roomMsgs(m.room_id);
  const old = rm.byId.get(m.id);
  rm.byId.set(m.id, m);
  if (old) {
    const i = rm.order.indexOf(old);
    if (i >= 0) rm.order[i] = m;
    return false;
  }
  let lo = 0;
  let hi = rm.order.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (rm.order[mid].seq < m.seq) lo = mid + 1;
    else hi = mid;
  }
  rm.order.splice(lo, 0, m);
  return true;
}

function memberName(roomId, userId) {
  if (userId === state.me?.id) return state.me.username;
  const m = state.members.get(roomId)?.get(userId);
  if (m) return m.display_name || m.username;
  for (const [, peer] of state.dmPeer) if (peer.user_id === userId) return peer.username;
  return 'someone';
}

function roomLabel(room) {
  if (room.kind === 'dm') return state.dmPeer.get(room.id)?.username || room.name;
  return room.name;
}

function upsertRoom(r) {
  const old = state.rooms.get(r.id);
  const room = { ...(old || { unread_count: 0, last_read_seq: 0 }), ...r };
  if (room.unread_count == null) room.unread_count = 0;
  if (room.last_read_seq == null) room.last_read_seq = 0;
  state.rooms.set(r.id, room);
  if (room.kind === 'dm' && !state.dmPeer.has(room.id)) loadMembers(room.id).catch(() => {});
  return room;
}

function forgetRoom(roomId, why) {
  const room = state.rooms.get(roomId);
  state.rooms.delete(roomId);
  state.msgs.delete(roomId);
  state.roomSeq.delete(roomId);
  state.members.delete(roomId);
  state.receipts.delete(roomId);
  state.typing.delete(roomId);
  state.dmPeer.delete(roomId);
  state.readSent.delete(roomId);
  for (const [cid, p] of state.pending) if (p.room_id === roomId) state.pending.delete(cid);
  if (view.roomId === roomId) {
    if (why && room) toast(`${why}: ${roomLabel(room)}`);
    navigate(null);
  }
  renderSidebar();
}

async function loadMembers(roomId) {
  const { members } = await api('GET', `/rooms/${roomId}/members`);
  state.members.set(roomId, new Map(members.map((m) => [m.user_id, m])));
  // Read markers as of now (live ones arrive as receipt.updated): "seen by" after a reload.
  let receipts = state.receipts.get(roomId);
  if (!receipts) state.receipts.set(roomId, (receipts = new Map()));
  for (const m of members) {
    if (m.user_id !== state.me?.id && m.last_read_seq > (receipts.get(m.user_id) || 0)) {
      receipts.set(m.user_id, m.last_read_seq);
    }
  }
  const room = state.rooms.get(roomId);
  if (room?.kind === 'dm') {
    const peer = members.find((m) => m.user_id !== state.me?.id);
    if (peer) {
      state.dmPeer.set(roomId, { user_id: peer.user_id, username: peer.username });
      if (!state.presence.has(peer.user_id)) loadPresence(peer.user_id);
    }
  }
  renderSidebar();
  if (view.roomId === roomId) {
    renderRoomHeader();
    renderSeenBy();
  }
}

async function loadPresence(userId) {
  try {
    const p = await api('GET', `/users/${userId}/presence`);
    state.presence.set(userId, p);
    renderSidebar();
  } catch {
    // not visible to us (no shared room); leave it unknown
  }
}

// ---------------------------------------------------------------------------------------
// WebSocket: connect, resume, reconnect with jittered exponential backoff

const conn = {
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

async function connect() {
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
function socketGone(code) {
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

function reconnectNow() {
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
function request(type, data, timeoutMs = 15000) {
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

function startHeartbeat() {
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

function setConnState(s) {
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

// ---------------------------------------------------------------------------------------
// Server events

const handlers = {
  ready(d) {
    conn.ready = true;
    conn.attempt = 0;
    conn.failedBeforeOpen = false;
    setConnState('online');
    startHeartbeat();
    state.me = d.user;
    saveSession({ ...session, user: d.user });
    renderMe();
    const fresh = new Set(d.rooms.map((r) => r.id));
    for (const id of [...state.rooms.keys()]) if (!fresh.has(id)) forgetRoom(id, 'You are no longer in');
    for (const r of d.rooms) {
      const room = upsertRoom(r);
      const rm = state.msgs.get(r.id);
      // Rooms without history in memory start from the snapshot; the others were resumed
      // with `since` and move forward with the replay.
      if (!rm?.loaded) state.roomSeq.set(r.id, Math.max(state.roomSeq.get(r.id) || 0, r.last_seq));
      if (view.roomId === r.id) room.unread_count = 0;
    }
    renderSidebar();
    // Presence may have changed while we were away.
    for (const peer of state.dmPeer.values()) loadPresence(peer.user_id);
    loadInvitations();
    routeFromHash();
    if (view.roomId) {
      const rm = roomMsgs(view.roomId);
      if (!rm.loaded && !rm.loading) loadInitial(view.roomId);
      if (!state.members.has(view.roomId)) loadMembers(view.roomId).catch(() => {});
    }
    flushPending();
    maybeMarkRead();
  },

  'message.created'(m, f) {
    applyLiveMessage(m, f.seq ?? m.seq, true);
  },
  'message.updated'(m, f) {
    applyLiveMessage(m, f.seq ?? m.seq, false);
  },
  'message.deleted'(m, f) {
    applyLiveMessage(m, f.seq ?? m.seq, false);
    const room = state.rooms.get(m.room_id);
    if (room && room.unread_count > 0 && view.roomId !== m.room_id) refreshRoom(m.room_id);
  },

  'reaction.added'(d, f) {
    applyReaction(d, f.seq ?? d.seq, true);
  },
  'reaction.removed'(d, f) {
    applyReaction(d, f.seq ?? d.seq, false);
  },

  'receipt.updated'(d) {
    if (d.user_id === state.me?.id) {
      // Read on another device or tab.
      const room = state.rooms.get(d.room_id);
      if (room && d.seq > (room.last_read_seq || 0)) {
        room.last_read_seq = d.seq;
        const rm = state.msgs.get(d.room_id);
        const latest = rm?.order.at(-1)?.seq || 0;
        if (rm?.loaded && d.seq >= latest) room.unread_count = 0;
        else refreshRoom(d.room_id);
        renderSidebar();
      }
      return;
    }
    let r = state.receipts.get(d.room_id);
    if (!r) state.receipts.set(d.room_id, (r = new Map()));
    if (d.seq > (r.get(d.user_id) || 0)) r.set(d.user_id, d.seq);
    if (view.roomId === d.room_id) renderSeenBy();
  },

  'member.joined'(d) {
    if (d.user_id === state.me?.id) {
      if (!state.rooms.has(d.room_id)) refreshRoom(d.room_id);
      return;
    }
    const room = state.rooms.get(d.room_id);
    const members = state.members.get(d.room_id);
    if (members && !members.has(d.user_id)) {
      members.set(d.user_id, { user_id: d.user_id, username: d.username, display_name: null, role: 'member' });
      if (room) room.member_count = members.size;
    } else if (room && !members) room.member_count = (room.member_count || 0) + 1;
    if (!state.presence.has(d.user_id)) loadPresence(d.user_id);
    if (view.roomId === d.room_id) renderRoomHeader();
  },

  'member.left'(d) {
    if (d.user_id === state.me?.id) {
      const why = d.reason === 'kicked' ? 'You were removed from' : d.reason === 'banned' ? 'You were banned from' : 'You left';
      forgetRoom(d.room_id, why);
      return;
    }
    const room = state.rooms.get(d.room_id);
    const members = state.members.get(d.room_id);
    if (members?.delete(d.user_id) && room) room.member_count = members.size;
    else if (room && !members) room.member_count = Math.max(0, (room.member_count || 1) - 1);
    clearTyping(d.room_id, d.user_id);
    if (view.roomId === d.room_id) renderRoomHeader();
  },

  'member.updated'(d) {
    const m = state.members.get(d.room_id)?.get(d.user_id);
    if (m) m.role = d.role;
    if (d.user_id === state.me?.id) {
      const room = state.rooms.get(d.room_id);
      if (room) room.my_role = d.role;
    }
  },

  'room.updated'(r) {
    if (!state.rooms.has(r.id)) return;
    upsertRoom(r);
    renderSidebar();
    if (view.roomId === r.id) renderRoomHeader();
  },

  'room.deleted'(d) {
    forgetRoom(d.room_id, 'The room was deleted');
  },

  'invitation.created'(inv) {
    state.invitations.set(inv.id, inv);
    renderInvitations();
    toast(`${inv.inviter.username} invited you to ${inv.room_name}`);
  },

  'presence.updated'(d) {
    state.presence.set(d.user_id, d);
    renderSidebar();
    if (view.roomId) renderRoomHeader();
  },

  typing(d) {
    if (d.user_id === state.me?.id) return;
    if (!d.active) {
      clearTyping(d.room_id, d.user_id);
      return;
    }
    let m = state.typing.get(d.room_id);
    if (!m) state.typing.set(d.room_id, (m = new Map()));
    clearTimeout(m.get(d.user_id));
    m.set(d.user_id, setTimeout(() => clearTyping(d.room_id, d.user_id), d.expires_in_ms || 6000));
    if (view.roomId === d.room_id) renderTyping();
  },

  error(d) {
    console.warn('palaver: server error event', d);
  },

  // Calls
  'call.incoming'(d) {
    onIncomingCall(d);
  },
  'call.answered_elsewhere'(d) {
    if (incoming?.call_id === d.call_id) hideIncoming();
  },
  'call.missed'(d) {
    if (incoming?.call_id === d.call_id) {
      const who = incoming.caller?.username || 'someone';
      hideIncoming();
      toast(`Missed call from ${who}`);
    }
  },
  'call.declined'(d) {
    if (incoming?.call_id === d.call_id && d.user_id === state.me?.id) hideIncoming();
    if (call?.id === d.call_id && d.user_id !== state.me?.id) {
      toast(`${memberName(call.roomId, d.user_id)} declined the call`);
    }
  },
  'call.participant_joined'(d) {
    if (call?.id !== d.call_id) return;
    call.participants.set(d.participant.participant_id, d.participant);
    call.state = 'active';
    // The joiner sends the offer; prepare the tile meanwhile.
    ensurePeer(d.participant.participant_id);
    renderCall();
  },
  'call.participant_left'(d) {
    if (call?.id !== d.call_id) return;
    call.participants.delete(d.participant_id);
    closePeer(d.participant_id);
    renderCall();
    if (call.state === 'active' && call.participants.size <= 1) {
      // Everyone else hung up: leave too, which ends the call.
      hangUp();
    }
  },
  'call.host_changed'(d) {
    if (call?.id !== d.call_id) return;
    call.host = d.host;
    renderCall();
  },
  'call.ended'(d) {
    if (incoming?.call_id === d.call_id) hideIncoming();
    if (call?.id === d.call_id) {
      const why = { missed: 'No answer.', declined: 'The call was declined.', removed: 'You left the room.', room_closed: 'The room was deleted.' };
      teardownCall(why[d.reason] || 'The call ended.');
    }
    markCallEnded(d.call_id);
  },
  'rtc.signal'(d) {
    onSignal(d);
  },
};

async function refreshRoom(roomId) {
  try {
    const r = await api('GET', `/rooms/${roomId}`);
    const room = upsertRoom(r);
    if (view.roomId === roomId) room.unread_count = 0;
    renderSidebar();
  } catch (e) {
    if (e.status === 403 || e.status === 404) forgetRoom(roomId);
  }
}

/**
 * Applies a message from a frame (`changeSeq` = the frame's seq) or, with `fromReply`, from
 * the reply to our own send. Only frames move the resume point: a reply can overtake the
 * events of other messages before it, and resuming after its seq would skip them.
 */
function applyLiveMessage(m, changeSeq, created, fromReply = false) {
  const room = state.rooms.get(m.room_id);
  if (!room) return;
  const visible = view.roomId === m.room_id && document.visibilityState === 'visible' && view.stick;
  // Only changes after the room's snapshot count: earlier ones are already in
  // `unread_count` (the events right after `ready`, or a replay).
  if (!fromReply && changeSeq > (room.last_seq || 0)) {
    room.last_seq = changeSeq;
    if (created && m.message_type !== 'call' && !m.deleted_at && m.sender.id !== state.me?.id
        && m.seq > (room.last_read_seq || 0) && !visible) {
      room.unread_count = (room.unread_count || 0) + 1;
    }
  }
  if (created && (!room.last_message || room.last_message.seq <= m.seq)) room.last_message = m;
  if (!fromReply) noteSeq(m.room_id, changeSeq);
  if (created) clearTyping(m.room_id, m.sender.id);
  if (m.client_id && m.sender.id === state.me?.id) dropPending(m.client_id);
  const rm = roomMsgs(m.room_id);
  if (rm.loading) rm.buffer.push({ m, created });
  else keepMessage(m, created);
  if (m.message_type === 'call' && ['missed', 'declined', 'ended'].includes(m.call?.event)) markCallEnded(m.call.call_id);
  renderSidebar();
  maybeMarkRead();
}

/**
 * Keeps a message from an event in the room's history if that history is loaded and the
 * message falls inside it. A room whose history is not loaded keeps nothing (its first
 * page comes by REST), and an update to a message older than the loaded pages is left for
 * the page that holds it: storing either would leave a gap that paging skips.
 */
function keepMessage(m, created, render = true) {
  const rm = state.msgs.get(m.room_id);
  if (!rm?.loaded) return;
  const inside = created || !rm.hasMore || (rm.order.length && m.seq >= rm.order[0].seq);
  if (!inside) return;
  const isNew = storeMessage(m);
  if (render && view.roomId === m.room_id) {
    showMessage(m);
    if (isNew && created && m.sender.id !== state.me?.id) {
      announce(`${m.sender.username}: ${m.content || m.attachment?.filename || ''}`);
    }
  }
}

function applyReaction(d, changeSeq, added) {
  noteSeq(d.room_id, changeSeq);
  const room = state.rooms.get(d.room_id);
  if (room && changeSeq > (room.last_seq || 0)) room.last_seq = changeSeq;
  const rm = state.msgs.get(d.room_id);
  // While the first page is on its way, apply once it is stored.
  if (rm?.loading) rm.buffer.push({ d, added });
  else applyReactionTo(d, added, true);
}

function applyReactionTo(d, added, render) {
  const rm = state.msgs.get(d.room_id);
  const m = rm?.byId.get(d.message_id);
  if (!m) return;
  const reactions = (m.reactions || []).map((r) => ({ ...r, user_ids: [...r.user_ids] }));
  let group = reactions.find((r) => r.emoji === d.emoji);
  if (added) {
    if (!group) reactions.push((group = { emoji: d.emoji, count: 0, user_ids: [] }));
    if (!group.user_ids.includes(d.user_id)) group.user_ids.push(d.user_id);
  } else if (group) {
    group.user_ids = group.user_ids.filter((u) => u !== d.user_id);
  }
  for (const r of reactions) r.count = r.user_ids.length;
  const next = { ...m, reactions: reactions.filter((r) => r.count > 0) };
  storeMessage(next);
  if (render && view.roomId === d.room_id) showMessage(next);
}

function clearTyping(roomId, userId) {
  const m = state.typing.get(roomId);
  if (!m || !m.has(userId)) return;
  clearTimeout(m.get(userId));
  m.delete(userId);
  if (view.roomId === roomId) renderTyping();
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') maybeMarkRead();
  renderSidebar();
});
window.addEventListener('focus', () => maybeMarkRead());

// ---------------------------------------------------------------------------------------
// Sending messages (queued while offline; `client_id` makes retries idempotent)

function newClientId() {
  return `web-${crypto.randomUUID ? crypto.randomUUID() : Date.now() + Math.random().toString(16).slice(2)}`;
}

function queueMessage(roomId, content, { replyTo = null, file = null } = {}) {
  const p = {
    client_id: newClientId(),
    room_id: roomId,
    content,
    reply_to: replyTo,
    file,
    attachment_id: null,
    status: 'queued',
    error: null,
    inflight: false,
    created_at: new Date().toISOString(),
  };
  state.pending.set(p.client_id, p);
  if (view.roomId === roomId) {
    showPending(p);
    scrollToBottom();
  }
  trySend(p);
}

function flushPending() {
  for (const p of state.pending.values()) if (p.status !== 'failed') trySend(p);
}

async function trySend(p) {
  if (p.inflight || !conn.ready) {
    if (!conn.ready) updatePending(p);
    return;
  }
  p.inflight = true;
  try {
    if (p.file && !p.attachment_id) {
      p.status = 'uploading';
      updatePending(p);
      const form = new FormData();
      form.append('file', p.file, p.file.name);
      const att = await api('POST', '/attachments', { form });
      p.attachment_id = att.id;
    }
    p.status = 'sending';
    updatePending(p);
    const data = { room_id: p.room_id, client_id: p.client_id };
    if (p.content) data.content = p.content;
    if (p.reply_to) data.reply_to = p.reply_to;
    if (p.attachment_id) data.attachment_id = p.attachment_id;
    const m = await request('message.send', data);
    if (state.pending.has(p.client_id)) {
      // The reply can come before (or, after a retry, instead of) the live event.
      applyLiveMessage(m, m.seq, true, true);
    }
  } catch (e) {
    if (!state.pending.has(p.client_id)) return;
    if (e instanceof Disconnected || e instanceof TypeError) p.status = 'queued';
    else {
      p.status = 'failed';
      p.error = e.message;
    }
    updatePending(p);
  } finally {
    p.inflight = false;
  }
}

function dropPending(clientId) {
  if (!state.pending.delete(clientId)) return;
  view.pendingEls.get(clientId)?.remove();
  view.pendingEls.delete(clientId);
}

// ---------------------------------------------------------------------------------------
// Reading: `read` for the newest message while the room is on screen

function maybeMarkRead() {
  const roomId = view.roomId;
  if (!roomId || !conn.ready || document.visibilityState !== 'visible' || !view.stick) return;
  const rm = state.msgs.get(roomId);
  const room = state.rooms.get(roomId);
  if (!rm?.loaded || !room) return;
  const latest = rm.order.at(-1)?.seq || 0;
  if (room.unread_count) {
    room.unread_count = 0;
    renderSidebar();
  }
  if (!latest || latest <= (room.last_read_seq || 0) || latest <= (state.readSent.get(roomId) || 0)) return;
  state.readSent.set(roomId, latest);
  request('read', { room_id: roomId, seq: latest })
    .then((r) => {
      room.last_read_seq = Math.max(room.last_read_seq || 0, r.last_read_seq);
      room.unread_count = view.roomId === roomId ? 0 : r.unread_count;
      renderSidebar();
    })
    .catch(() => state.readSent.delete(roomId));
}

// ---------------------------------------------------------------------------------------
// History

async function loadInitial(roomId) {
  const rm = roomMsgs(roomId);
  if (rm.loading || rm.loaded) return;
  rm.loading = true;
  if (view.roomId === roomId) setHistoryStatus('Loading messages…');
  try {
    const { messages, has_more } = await api('GET', `/rooms/${roomId}/messages?limit=${PAGE}`);
    for (const m of messages) storeMessage(m);
    rm.hasMore = has_more;
    rm.loaded = true;
  } catch (e) {
    rm.buffer.length = 0;
    if (view.roomId === roomId) setHistoryStatus(`Could not load messages: ${e.message}`);
    if (e.status === 403 || e.status === 404) forgetRoom(roomId);
    return;
  } finally {
    rm.loading = false;
  }
  // Events that came while the page was on its way, in their order (by id, so nothing
  // doubles up with the page).
  for (const b of rm.buffer.splice(0)) {
    if (b.m) keepMessage(b.m, b.created, false);
    else applyReactionTo(b.d, b.added, false);
  }
  if (view.roomId === roomId) {
    renderMessageList();
    scrollToBottom();
    fillViewport();
    maybeMarkRead();
  }
}

async function loadOlder(roomId) {
  const rm = state.msgs.get(roomId);
  if (!rm?.loaded || !rm.hasMore || rm.loadingOlder) return;
  const oldest = rm.order[0]?.seq;
  if (!oldest) {
    rm.hasMore = false;
    return;
  }
  rm.loadingOlder = true;
  if (view.roomId === roomId) setHistoryStatus('Loading older messages…');
  try {
    const { messages, has_more } = await api('GET', `/rooms/${roomId}/messages?before=${oldest}&limit=${PAGE}`);
    rm.hasMore = has_more;
    if (view.roomId !== roomId) {
      for (const m of messages) storeMessage(m);
      return;
    }
    const box = $('#messages');
    const before = box.scrollHeight - box.scrollTop;
    for (const m of messages) {
      storeMessage(m);
      showMessage(m, { quiet: true });
    }
    box.scrollTop = box.scrollHeight - before;
    renderSeenBy();
  } catch (e) {
    if (view.roomId === roomId) toast(`Could not load older messages: ${e.message}`, 'error');
  } finally {
    rm.loadingOlder = false;
    if (view.roomId === roomId) updateHistoryStatus();
  }
  if (view.roomId === roomId) fillViewport();
}

/** Loads older pages until the list can scroll (so scrolling up can load more). */
function fillViewport() {
  const box = $('#messages');
  const rm = state.msgs.get(view.roomId);
  if (rm?.hasMore && box.scrollHeight <= box.clientHeight + 50) loadOlder(view.roomId);
}

function setHistoryStatus(text) {
  $('#history-status').textContent = text;
}

function updateHistoryStatus() {
  const rm = state.msgs.get(view.roomId);
  if (!rm?.loaded) return;
  const room = state.rooms.get(view.roomId);
  if (rm.hasMore) setHistoryStatus('Scroll up for older messages');
  else if (!rm.order.length) setHistoryStatus('No messages yet. Say hello!');
  else setHistoryStatus(room ? `This is the beginning of ${room.kind === 'dm' ? 'your conversation with ' : ''}${roomLabel(room)}.` : '');
}

// ---------------------------------------------------------------------------------------
// Room view

const view = {
  roomId: null,
  els: new Map(), // message id -> <li>
  pendingEls: new Map(), // client_id -> <li>
  stick: true, // scrolled to the bottom: follow new messages
  replyTo: null, // message being replied to
  file: null, // file chosen for the next message
  editing: null, // message id being edited
};

function navigate(roomId) {
  const hash = roomId ? `#/room/${roomId}` : '#/';
  if (location.hash !== hash) location.hash = hash;
  else routeFromHash();
}

function routeFromHash() {
  if (!state.me) return;
  const m = /^#\/room\/([\w-]+)$/.exec(location.hash);
  const roomId = m && state.rooms.has(m[1]) ? m[1] : null;
  if (roomId !== view.roomId) openRoom(roomId);
}
window.addEventListener('hashchange', routeFromHash);

function openRoom(roomId) {
  stopTyping();
  view.roomId = roomId;
  view.replyTo = null;
  view.editing = null;
  view.file = null;
  renderComposerBars();
  $('#room-view').hidden = !roomId;
  $('#empty-state').hidden = !!roomId;
  renderSidebar();
  if (!roomId) return;
  const room = state.rooms.get(roomId);
  room.unread_count = 0;
  renderRoomHeader();
  renderMessageList();
  renderTyping();
  scrollToBottom();
  const rm = roomMsgs(roomId);
  if (!rm.loaded) loadInitial(roomId);
  else {
    fillViewport();
    maybeMarkRead();
  }
  if (!state.members.has(roomId)) loadMembers(roomId).catch(() => {});
  const input = $('#composer-input');
  input.placeholder = room.kind === 'dm' ? `Message ${roomLabel(room)}` : `Message #${room.name}`;
  if (!matchMedia('(pointer: coarse)').matches) input.focus();
}

function renderRoomHeader() {
  const room = state.rooms.get(view.roomId);
  if (!room) return;
  const title = $('#room-title');
  title.replaceChildren();
  if (room.kind === 'dm') {
    const peer = state.dmPeer.get(room.id);
    const status = peer ? presenceOf(peer.user_id) : 'offline';
    title.append(h('span', { class: `dot ${status}`, 'aria-hidden': 'true' }), roomLabel(room),
      h('span', { class: 'sr-only' }, ` (${status})`));
  } else {
    title.append(h('span', { class: 'hash', 'aria-hidden': 'true' }, room.visibility === 'private' ? icon('lock') : '#'), room.name);
    if (room.visibility === 'private') title.append(h('span', { class: 'sr-only' }, ' (private)'));
  }
  $('#room-topic').textContent = room.topic || (room.kind === 'dm' ? 'Direct message' : '');
  const members = state.members.get(room.id);
  const count = members ? members.size : room.member_count;
  $('#room-members').textContent = count ? `${count} member${count === 1 ? '' : 's'}` : '';
  if (members) {
    $('#room-members').title = [...members.values()].map((m) => `${m.username} (${presenceOf(m.user_id)})`).join('\n');
  }
  $('#invite-btn').hidden = room.kind === 'dm';
  $('#leave-btn').hidden = room.kind === 'dm';
  renderRoomActions();
}

function renderRoomActions() {
  const busy = !!call || conn.state !== 'online';
  for (const id of ['#call-audio-btn', '#call-video-btn']) {
    const b = $(id);
    if (b) b.disabled = busy || !view.roomId;
  }
}

function presenceOf(userId) {
  if (userId === state.me?.id) return conn.state === 'online' ? 'online' : 'offline';
  return state.presence.get(userId)?.status || 'offline';
}

function renderMessageList() {
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
function showMessage(m, { quiet = false } = {}) {
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
  const li = h('li', {
    class: `msg${own ? ' own' : ''}${deleted ? ' deleted' : ''}`,
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
    if (m.content) main.append(h('div', { class: 'msg-body', 'data-testid': 'message-body' }, linkify(m.content)));
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

const endedCalls = new Set(); // call ids with a closing log entry or a call.ended
const JOINABLE_MS = 12 * 3600 * 1000; // older "started" lines without an end are stale

/** Re-renders the call log lines of the open room (their "Join" buttons). */
function refreshJoinButtons() {
  const rm = state.msgs.get(view.roomId);
  if (!rm) return;
  for (const m of rm.order) if (m.message_type === 'call' && m.call?.event === 'started' && view.els.has(m.id)) showMessage(m);
}
function markCallEnded(callId) {
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
  for (const e of QUICK_REACTIONS) {
    bar.append(h('button', {
      type: 'button', class: 'icon-btn', 'aria-label': `React with ${e}`, title: `React with ${e}`,
      'data-testid': 'react', onclick: () => toggleReaction(m, e),
    }, e));
  }
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
const blobUrls = new Map(); // attachment id -> Promise<url>

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

function showPending(p) {
  const list = $('#message-list');
  let el = view.pendingEls.get(p.client_id);
  const fresh = h('li', {
    class: `msg own pending ${p.status}`,
    'data-testid': 'pending-message',
    'data-client-id': p.client_id,
    'data-kind': 'pending',
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

function updatePending(p) {
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
function renderSeenBy() {
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

function renderTyping() {
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

function isAtBottom() {
  const box = $('#messages');
  return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
}

function scrollToBottom() {
  const box = $('#messages');
  box.scrollTop = box.scrollHeight;
  view.stick = true;
}

// ---------------------------------------------------------------------------------------
// Composer: send, typing, reply, attach, edit

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

function onComposerInput() {
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

function stopTyping() {
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

function submitComposer(e) {
  e?.preventDefault();
  const input = $('#composer-input');
  const content = input.value.trim();
  if (!view.roomId || (!content && !view.file)) return;
  if (content.length > 4000) {
    toast('A message can be at most 4000 characters.', 'error');
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

function renderComposerBars() {
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

function startReply(m) {
  view.replyTo = m;
  renderComposerBars();
  $('#composer-input').focus();
}

function startEdit(m) {
  if (view.editing) cancelEdit();
  const el = view.els.get(m.id);
  if (!el) return;
  view.editing = m.id;
  const body = el.querySelector('.msg-body');
  const ta = h('textarea', { class: 'edit-input', 'aria-label': 'Edit the message', 'data-testid': 'edit-input', maxlength: '4000' });
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

async function deleteMessage(m) {
  if (!window.confirm('Delete this message for everyone?')) return;
  try {
    const tomb = await api('DELETE', `/rooms/${m.room_id}/messages/${m.id}`);
    storeMessage(tomb);
    if (view.roomId === m.room_id) showMessage(tomb);
  } catch (err) {
    toast(`Could not delete: ${err.message}`, 'error');
  }
}

async function toggleReaction(m, emoji) {
  const current = state.msgs.get(m.room_id)?.byId.get(m.id) || m;
  const mine = current.reactions?.find((r) => r.emoji === emoji)?.user_ids.includes(state.me?.id);
  try {
    const updated = await api(mine ? 'DELETE' : 'PUT', `/rooms/${m.room_id}/messages/${m.id}/reactions/${enc(emoji)}`);
    storeMessage(updated);
    if (view.roomId === m.room_id) showMessage(updated);
  } catch (err) {
    toast(`Could not react: ${err.message}`, 'error');
  }
}

// ---------------------------------------------------------------------------------------
// Sidebar

function renderMe() {
  $('#me-name').textContent = state.me?.username || session?.user?.username || '';
  const av = $('#me-avatar');
  const name = state.me?.username || '?';
  av.textContent = name.slice(0, 1).toUpperCase();
  av.style.setProperty('--hue', String(hueOf(name)));
}

function renderSidebar() {
  const focusedId = document.activeElement?.closest?.('.room-item')?.dataset.roomId;
  const channels = [];
  const dms = [];
  for (const room of state.rooms.values()) (room.kind === 'dm' ? dms : channels).push(room);
  channels.sort((a, b) => a.name.localeCompare(b.name));
  dms.sort((a, b) => roomLabel(a).localeCompare(roomLabel(b)));
  $('#room-list').replaceChildren(...channels.map(roomItem));
  $('#dm-list').replaceChildren(...dms.map(roomItem));
  if (!channels.length) $('#room-list').append(h('li', { class: 'muted small empty' }, 'No rooms yet'));
  if (!dms.length) $('#dm-list').append(h('li', { class: 'muted small empty' }, 'No conversations yet'));
  if (focusedId) document.querySelector(`.room-item[data-room-id="${focusedId}"]`)?.focus();
  if (incoming) return; // the title shows the ringing
  const total = [...state.rooms.values()].reduce((n, r) => n + (r.unread_count || 0), 0);
  document.title = total ? `(${total}) Palaver` : 'Palaver';
}

function roomItem(room) {
  const active = room.id === view.roomId;
  const unread = room.unread_count || 0;
  const a = h('a', {
    href: `#/room/${room.id}`,
    class: `room-item${active ? ' active' : ''}${unread ? ' unread' : ''}`,
    'data-testid': 'room-item',
    'data-room-id': room.id,
    'data-room-name': roomLabel(room),
    'aria-current': active ? 'page' : null,
  });
  if (room.kind === 'dm') {
    const peer = state.dmPeer.get(room.id);
    const status = peer ? presenceOf(peer.user_id) : 'offline';
    a.append(h('span', { class: `dot ${status}`, 'data-testid': 'presence-dot', 'data-status': status, 'aria-hidden': 'true' }),
      h('span', { class: 'room-name' }, roomLabel(room)),
      h('span', { class: 'sr-only' }, ` (${status})`));
  } else {
    a.append(h('span', { class: 'hash', 'aria-hidden': 'true' }, room.visibility === 'private' ? icon('lock') : '#'),
      h('span', { class: 'room-name' }, room.name));
  }
  if (unread) {
    a.append(h('span', { class: 'badge', 'data-testid': 'unread-badge' }, unread > 99 ? '99+' : String(unread)),
      h('span', { class: 'sr-only' }, ` ${unread} unread`));
  }
  return h('li', null, a);
}

async function loadInvitations() {
  try {
    const { invitations } = await api('GET', '/invitations');
    state.invitations = new Map(invitations.map((i) => [i.id, i]));
    renderInvitations();
  } catch {
    // shown again at the next ready
  }
}

function renderInvitations() {
  const list = $('#invite-list');
  list.replaceChildren();
  for (const inv of state.invitations.values()) {
    list.append(h('li', { class: 'invite', 'data-testid': 'invitation' },
      h('span', null, h('strong', null, inv.room_name), h('span', { class: 'muted small' }, ` from ${inv.inviter.username}`)),
      h('span', { class: 'invite-actions' },
        h('button', { type: 'button', class: 'primary small', 'data-testid': 'invitation-accept', onclick: () => answerInvitation(inv, true) }, 'Accept'),
        h('button', { type: 'button', class: 'ghost small', 'data-testid': 'invitation-decline', onclick: () => answerInvitation(inv, false) }, 'Decline'))));
  }
  $('#invites-section').hidden = state.invitations.size === 0;
}

async function answerInvitation(inv, accept) {
  try {
    if (accept) {
      const room = await api('POST', `/invitations/${inv.id}/accept`);
      upsertRoom(room);
      await refreshRoom(room.id);
      navigate(room.id);
    } else {
      await api('POST', `/invitations/${inv.id}/decline`);
    }
    state.invitations.delete(inv.id);
    renderInvitations();
  } catch (e) {
    toast(`Could not answer the invitation: ${e.message}`, 'error');
    if (e.status === 404) {
      state.invitations.delete(inv.id);
      renderInvitations();
    }
  }
}

// ---------------------------------------------------------------------------------------
// Dialogs: create a room, public directory, find a user (DM, invitation)

function openDialog(dlg) {
  const err = dlg.querySelector('.form-error');
  if (err) err.textContent = '';
  dlg.showModal();
}

for (const dlg of document.querySelectorAll('dialog')) {
  dlg.addEventListener('click', (e) => {
    if (e.target.closest('[data-close]')) dlg.close();
  });
}

async function createRoom(e) {
  e.preventDefault();
  const form = e.currentTarget;
  const data = new FormData(form);
  const body = { name: String(data.get('name')).trim(), visibility: data.get('visibility') };
  const topic = String(data.get('topic') || '').trim();
  if (topic) body.topic = topic;
  if (!body.name) {
    form.querySelector('.form-error').textContent = 'Give the room a name.';
    return;
  }
  try {
    const room = await api('POST', '/rooms', { body });
    upsertRoom(room);
    renderSidebar();
    form.reset();
    $('#new-room-dialog').close();
    navigate(room.id);
  } catch (err) {
    form.querySelector('.form-error').textContent = err.message;
  }
}

let browseSearch = null; // debounce timer of the directory's search box
let browseLoad = 0; // bumped per (re)load, so a stale page is not shown

/** Opens the public directory: the newest rooms first, a page at a time. */
function openDirectory() {
  const dlg = $('#browse-dialog');
  $('#browse-q').value = '';
  openDialog(dlg);
  loadDirectory();
}

/**
 * Lists the directory (names containing the search box's text) from its first page; "Load
 * more" appends the next page (`next` cursor), so every public room can be reached.
 */
async function loadDirectory() {
  const dlg = $('#browse-dialog');
  const list = $('#browse-list');
  const q = $('#browse-q').value.trim();
  const load = ++browseLoad;
  dlg.querySelector('.form-error').textContent = '';
  list.replaceChildren(h('li', { class: 'muted' }, 'Loading…'));
  let after = null;
  let first = true;
  const more = async () => {
    const params = new URLSearchParams({ limit: '50' });
    if (q) params.set('q', q);
    if (after) params.set('after', after);
    try {
      const page = await api('GET', `/rooms/public?${params}`);
      if (load !== browseLoad) return;
      if (first) list.replaceChildren();
      first = false;
      list.querySelector('[data-testid="directory-more"]')?.closest('li')?.remove();
      if (!page.rooms.length && !list.children.length) {
        list.append(h('li', { class: 'muted' }, q ? 'No public room matches.' : 'No public rooms yet.'));
      }
      for (const r of page.rooms) list.append(directoryItem(r));
      after = page.next;
      if (after) {
        list.append(h('li', null, h('button', {
          type: 'button', class: 'ghost small block', 'data-testid': 'directory-more', onclick: more,
        }, 'Load more')));
      }
    } catch (e) {
      if (load !== browseLoad) return;
      if (first) list.replaceChildren();
      dlg.querySelector('.form-error').textContent = e.message;
    }
  };
  await more();
}

/** One room of the directory, with Join (or Open, for a member). */
function directoryItem(r) {
  const member = state.rooms.has(r.id);
  return h('li', { class: 'browse-item', 'data-testid': 'directory-room', 'data-room-name': r.name },
    h('div', null,
      h('strong', null, `# ${r.name}`),
      h('span', { class: 'muted small' }, ` · ${r.member_count} member${r.member_count === 1 ? '' : 's'}`),
      r.topic ? h('div', { class: 'muted small' }, r.topic) : null),
    h('button', {
      type: 'button',
      class: member ? 'ghost small' : 'primary small',
      'data-testid': member ? 'directory-open' : 'directory-join',
      'aria-label': `${member ? 'Open' : 'Join'} ${r.name}`,
      onclick: () => joinRoom(r.id),
    }, member ? 'Open' : 'Join'));
}

async function joinRoom(roomId) {
  const dlg = $('#browse-dialog');
  try {
    if (!state.rooms.has(roomId)) {
      await api('POST', `/rooms/${roomId}/join`);
      await refreshRoom(roomId);
    }
    dlg.close();
    navigate(roomId);
  } catch (e) {
    dlg.querySelector('.form-error').textContent = e.message;
  }
}

let userPick = null; // what picking a user in the dialog does
let searchTimer = null;
let searchSeq = 0;

function openUserDialog(title, onPick) {
  userPick = onPick;
  $('#user-dialog-title').textContent = title;
  $('#user-search').value = '';
  $('#user-results').replaceChildren();
  openDialog($('#user-dialog'));
  $('#user-search').focus();
}

function onUserSearch() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    const q = $('#user-search').value.trim().toLowerCase();
    const list = $('#user-results');
    const mySeq = ++searchSeq;
    if (!q) {
      list.replaceChildren();
      return;
    }
    try {
      const { users } = await api('GET', `/users?q=${enc(q)}&limit=10`);
      if (mySeq !== searchSeq) return;
      list.replaceChildren();
      const others = users.filter((u) => u.id !== state.me?.id);
      if (!others.length) list.append(h('li', { class: 'muted' }, 'Nobody by that name.'));
      for (const u of others) {
        list.append(h('li', null, h('button', {
          type: 'button', class: 'user-result', 'data-testid': 'user-result', 'data-username': u.username,
          onclick: () => userPick?.(u),
        }, avatar(u.username), h('span', null, u.username), u.display_name ? h('span', { class: 'muted small' }, ` ${u.display_name}`) : null)));
      }
    } catch (e) {
      $('#user-dialog .form-error').textContent = e.message;
    }
  }, 200);
}

async function startDm(user) {
  try {
    const room = await api('POST', '/dms', { body: { user_id: user.id } });
    upsertRoom(room);
    state.dmPeer.set(room.id, { user_id: user.id, username: user.username });
    loadPresence(user.id);
    await refreshRoom(room.id);
    $('#user-dialog').close();
    navigate(room.id);
  } catch (e) {
    $('#user-dialog .form-error').textContent = e.message;
  }
}

async function leaveRoom() {
  const room = state.rooms.get(view.roomId);
  if (!room || !window.confirm(`Leave ${room.name}?${room.visibility === 'private' ? ' You will need a new invitation to come back.' : ''}`)) return;
  try {
    await api('POST', `/rooms/${room.id}/leave`);
    forgetRoom(room.id);
  } catch (e) {
    toast(`Could not leave: ${e.message}`, 'error');
  }
}

async function inviteUser(user) {
  const roomId = view.roomId;
  try {
    await api('POST', `/rooms/${roomId}/invitations`, { body: { user_id: user.id } });
    $('#user-dialog').close();
    toast(`Invited ${user.username}.`);
  } catch (e) {
    const msg = e.code === 'conflict' ? `${user.username} is already a member.` : e.message;
    $('#user-dialog .form-error').textContent = msg;
  }
}

// ---------------------------------------------------------------------------------------
// Calls: signaling over the WebSocket, media over WebRTC (a mesh: one RTCPeerConnection
// per remote participant; the joiner offers to everyone already in the call).

let call = null;
let incoming = null;

function newCall({ id = null, roomId, kind }) {
  return {
    id,
    roomId,
    kind,
    myPid: null,
    host: null,
    state: 'starting', // starting | ringing | active
    participants: new Map(), // participant id -> {participant_id, user_id, username}
    peers: new Map(), // participant id -> peer
    localStream: null,
    iceServers: [],
    muted: false,
    cameraOff: false,
  };
}

async function getIceServers() {
  try {
    const { ice_servers } = await api('GET', '/rtc/ice-servers');
    return ice_servers || [];
  } catch {
    return [];
  }
}

async function getLocalMedia(kind) {
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video: kind === 'video' });
  } catch (e) {
    if (kind === 'video') {
      try {
        const s = await navigator.mediaDevices.getUserMedia({ audio: true });
        toast('No camera available: joining with audio only.');
        return s;
      } catch {
        // fall through
      }
    }
    toast(`No microphone or camera (${e.name}): you can listen and watch only.`);
    return null;
  }
}

async function startCall(kind) {
  const roomId = view.roomId;
  if (call || !roomId) return;
  call = newCall({ roomId, kind });
  renderCall();
  const mine = call;
  try {
    const [ice, stream] = await Promise.all([getIceServers(), getLocalMedia(kind)]);
    if (call !== mine) {
      stream?.getTracks().forEach((t) => t.stop());
      return;
    }
    call.iceServers = ice;
    call.localStream = stream;
    renderCall();
    const r = await request('call.start', { room_id: roomId, kind });
    if (call !== mine) {
      // Hung up while the call was being set up.
      request('call.leave', { call_id: r.call.call_id }).catch(() => {});
      return;
    }
    call.id = r.call.call_id;
    call.myPid = r.participant_id;
    applyCallSnapshot(r.call);
    renderCall();
    refreshJoinButtons();
  } catch (e) {
    if (call === mine) teardownCall();
    toast(e.code === 'conflict' ? 'A call is already going on in this room: join it from its line in the chat.' : `Could not start the call: ${e.message}`, 'error');
  }
}

function applyCallSnapshot(c) {
  call.kind = c.kind;
  call.host = c.host;
  call.state = c.state === 'active' ? 'active' : 'ringing';
  call.participants = new Map(c.participants.map((p) => [p.participant_id, p]));
}

function onIncomingCall(d) {
  if (call?.id === d.call_id) return;
  incoming = d;
  const room = state.rooms.get(d.room_id);
  const where = room && room.kind !== 'dm' ? ` in #${room.name}` : '';
  $('#incoming-title').textContent = `${d.caller.username} is calling${where}`;
  $('#incoming-desc').textContent = d.kind === 'video' ? 'Video call' : 'Audio call';
  const box = $('#incoming-call');
  box.dataset.callId = d.call_id;
  box.hidden = false;
  $('#incoming-accept').focus();
  document.title = `📞 ${d.caller.username} is calling`;
}

function hideIncoming() {
  incoming = null;
  const box = $('#incoming-call');
  if (!box.hidden) {
    box.hidden = true;
    renderSidebar();
  }
}

async function acceptIncoming() {
  const inc = incoming;
  hideIncoming();
  if (inc) await joinCall(inc);
}

async function declineIncoming() {
  const inc = incoming;
  hideIncoming();
  if (inc) request('call.decline', { call_id: inc.call_id }).catch(() => {});
}

/** Accepts a call (rung or not): media first, then `call.accept`, then offers to everyone. */
async function joinCall(inc) {
  if (call) {
    if (call.id === inc.call_id) return;
    await hangUp();
  }
  if (state.rooms.has(inc.room_id) && view.roomId !== inc.room_id) navigate(inc.room_id);
  call = newCall({ id: inc.call_id, roomId: inc.room_id, kind: inc.kind });
  const mine = call;
  renderCall();
  refreshJoinButtons();
  try {
    const [ice, stream] = await Promise.all([getIceServers(), getLocalMedia(inc.kind)]);
    if (call !== mine) {
      stream?.getTracks().forEach((t) => t.stop());
      return;
    }
    call.iceServers = ice;
    call.localStream = stream;
    const r = await request('call.accept', { call_id: inc.call_id });
    if (call !== mine) {
      request('call.leave', { call_id: inc.call_id }).catch(() => {});
      return;
    }
    call.myPid = r.participant_id;
    applyCallSnapshot(r.call);
    call.state = 'active';
    renderCall();
    for (const p of r.call.participants) {
      if (p.participant_id === call.myPid) continue;
      const peer = ensurePeer(p.participant_id);
      queuePeer(peer, async () => {
        await peer.pc.setLocalDescription();
        await sendDescription(peer);
      });
    }
  } catch (e) {
    if (call === mine) teardownCall();
    if (e.code === 'not_found') {
      markCallEnded(inc.call_id);
      toast('That call has ended.');
    } else toast(`Could not join the call: ${e.message}`, 'error');
  }
}

function ensurePeer(pid) {
  let peer = call.peers.get(pid);
  if (peer) return peer;
  const pc = new RTCPeerConnection({ iceServers: call.iceServers });
  peer = {
    pid,
    pc,
    chain: Promise.resolve(),
    remoteCandidates: [], // candidates that came before the remote description
    localCandidates: [], // candidates found before our description was sent
    descriptionSent: false,
    stream: new MediaStream(),
  };
  call.peers.set(pid, peer);
  const local = call.localStream;
  if (local) for (const t of local.getTracks()) pc.addTrack(t, local);
  // Without a track of a kind we still want to receive it.
  if (!local?.getAudioTracks().length) pc.addTransceiver('audio', { direction: 'recvonly' });
  if (call.kind === 'video' && !local?.getVideoTracks().length) pc.addTransceiver('video', { direction: 'recvonly' });
  const callId = call.id;
  pc.onicecandidate = (e) => {
    if (!e.candidate || !e.candidate.candidate) return;
    const c = e.candidate.toJSON();
    if (!peer.descriptionSent) peer.localCandidates.push(c);
    else signal(callId, pid, { candidate: c });
  };
  pc.ontrack = (e) => {
    if (!peer.stream.getTracks().includes(e.track)) peer.stream.addTrack(e.track);
    e.track.onunmute = () => renderCall();
    renderCall();
  };
  pc.onconnectionstatechange = () => {
    renderCall();
    if (pc.connectionState === 'failed') pc.restartIce?.();
  };
  return peer;
}

function queuePeer(peer, fn) {
  peer.chain = peer.chain.then(fn).catch((e) => console.warn('palaver: webrtc', e));
  return peer.chain;
}

async function sendDescription(peer) {
  const d = peer.pc.localDescription;
  await signal(call.id, peer.pid, { description: { type: d.type, sdp: d.sdp } });
  peer.descriptionSent = true;
  for (const c of peer.localCandidates.splice(0)) signal(call.id, peer.pid, { candidate: c });
}

function signal(callId, to, payload) {
  return request('rtc.signal', { call_id: callId, to, ...payload }).catch((e) => {
    console.warn('palaver: rtc.signal', e.code, e.message);
  });
}

function onSignal(d) {
  if (!call || call.id !== d.call_id) return;
  if (!call.participants.has(d.from)) {
    call.participants.set(d.from, { participant_id: d.from, user_id: d.from_user, username: memberName(call.roomId, d.from_user) });
  }
  const peer = ensurePeer(d.from);
  queuePeer(peer, async () => {
    const pc = peer.pc;
    if (d.description) {
      await pc.setRemoteDescription(d.description);
      if (d.description.type === 'offer') {
        await pc.setLocalDescription();
        await sendDescription(peer);
      }
      for (const c of peer.remoteCandidates.splice(0)) await pc.addIceCandidate(c).catch(() => {});
    } else if (d.candidate) {
      if (!pc.remoteDescription) peer.remoteCandidates.push(d.candidate);
      else await pc.addIceCandidate(d.candidate).catch((e) => console.warn('palaver: candidate', e));
    }
  });
  renderCall();
}

function closePeer(pid) {
  const peer = call?.peers.get(pid);
  if (!peer) return;
  peer.pc.close();
  call.peers.delete(pid);
}

async function hangUp() {
  const c = call;
  if (!c) return;
  teardownCall();
  if (c.id) await request('call.leave', { call_id: c.id }).catch(() => {});
}

function teardownCall(message) {
  const c = call;
  if (!c) return;
  call = null;
  for (const peer of c.peers.values()) peer.pc.close();
  c.localStream?.getTracks().forEach((t) => t.stop());
  renderCall();
  if (message) toast(message);
  // Let the call's log lines offer "Join" again if it goes on.
  if (view.roomId === c.roomId) refreshJoinButtons();
}

function toggleMute() {
  if (!call?.localStream) return;
  call.muted = !call.muted;
  for (const t of call.localStream.getAudioTracks()) t.enabled = !call.muted;
  renderCall();
}

function toggleCamera() {
  if (!call?.localStream) return;
  call.cameraOff = !call.cameraOff;
  for (const t of call.localStream.getVideoTracks()) t.enabled = !call.cameraOff;
  renderCall();
}

const tiles = new Map(); // participant id (or 'local') -> element

function renderCall() {
  const viewEl = $('#call-view');
  renderRoomActions();
  if (!call) {
    viewEl.hidden = true;
    for (const t of tiles.values()) t.remove();
    tiles.clear();
    return;
  }
  viewEl.hidden = false;
  viewEl.dataset.callState = call.state;
  const room = state.rooms.get(call.roomId);
  $('#call-title').textContent = `${call.kind === 'video' ? 'Video' : 'Audio'} call${room ? ` · ${roomLabel(room)}` : ''}`;
  const others = [...call.participants.values()].filter((p) => p.participant_id !== call.myPid);
  let status;
  if (call.state === 'starting') status = 'Starting…';
  else if (call.state === 'ringing' && !others.length) status = 'Ringing…';
  else {
    const connected = [...call.peers.values()].filter((p) => p.pc.connectionState === 'connected').length;
    status = `${others.length + 1} in the call${connected < others.length ? ' · connecting…' : ''}`;
  }
  $('#call-status').textContent = status;
  const grid = $('#call-grid');
  const wanted = new Set(['local', ...call.peers.keys()]);
  for (const [key, el] of tiles) {
    if (!wanted.has(key)) {
      el.remove();
      tiles.delete(key);
    }
  }
  // The local tile
  let local = tiles.get('local');
  if (!local) {
    local = makeTile(true);
    tiles.set('local', local);
    grid.prepend(local);
  }
  const lv = local.querySelector('video');
  if (call.localStream && lv.srcObject !== call.localStream) lv.srcObject = call.localStream;
  local.querySelector('figcaption').textContent = `${state.me?.username || 'You'} (you)${call.muted ? ' · muted' : ''}`;
  local.dataset.video = call.localStream?.getVideoTracks().length && !call.cameraOff ? 'on' : 'off';
  setTileInitial(local, state.me?.username);
  for (const [pid, peer] of call.peers) {
    let tile = tiles.get(pid);
    if (!tile) {
      tile = makeTile(false);
      tile.dataset.participantId = pid;
      tiles.set(pid, tile);
      grid.append(tile);
    }
    const v = tile.querySelector('video');
    if (v.srcObject !== peer.stream) v.srcObject = peer.stream;
    const p = call.participants.get(pid);
    const name = p?.username || 'Connecting…';
    tile.dataset.connectionState = peer.pc.connectionState;
    tile.dataset.video = peer.stream.getVideoTracks().some((t) => !t.muted) ? 'on' : 'off';
    const host = call.host === pid ? ' · host' : '';
    const cs = peer.pc.connectionState === 'connected' ? '' : ` · ${peer.pc.connectionState}`;
    tile.querySelector('figcaption').textContent = `${name}${host}${cs}`;
    setTileInitial(tile, p?.username);
  }
  grid.dataset.count = String(tiles.size);
  const mute = $('#mute-btn');
  mute.querySelector('.label').textContent = call.muted ? 'Unmute' : 'Mute';
  mute.setAttribute('aria-pressed', String(call.muted));
  mute.disabled = !call.localStream?.getAudioTracks().length;
  const cam = $('#camera-btn');
  cam.hidden = call.kind !== 'video';
  cam.querySelector('.label').textContent = call.cameraOff ? 'Camera on' : 'Camera off';
  cam.setAttribute('aria-pressed', String(call.cameraOff));
  cam.disabled = !call.localStream?.getVideoTracks().length;
}

function makeTile(isLocal) {
  const video = h('video', { autoplay: true, playsinline: true, 'data-testid': isLocal ? 'local-video' : 'remote-video' });
  if (isLocal) video.muted = true;
  return h('figure', { class: `tile${isLocal ? ' local' : ''}`, 'data-testid': isLocal ? 'local-tile' : 'remote-tile' },
    video, h('span', { class: 'tile-initial', 'aria-hidden': 'true' }), h('figcaption'));
}

function setTileInitial(tile, name) {
  const el = tile.querySelector('.tile-initial');
  el.textContent = (name || '?').slice(0, 1).toUpperCase();
  el.style.setProperty('--hue', String(hueOf(name || '?')));
}

// ---------------------------------------------------------------------------------------
// Sign in, sign up, sign out

function showAuth(message) {
  $('#app-view').hidden = true;
  $('#auth-view').hidden = false;
  selectTab('login');
  $('#login-code-row').hidden = true;
  loadProviders();
  if (message) $('#login-form .form-error').textContent = message;
  $('#login-form [name=login]').focus();
}

function selectTab(which) {
  const login = which === 'login';
  for (const id of ['#forgot-form', '#reset-form', '#link-form']) $(id).hidden = true;
  $('.tabs').hidden = false;
  $('#tab-login').setAttribute('aria-selected', String(login));
  $('#tab-signup').setAttribute('aria-selected', String(!login));
  $('#tab-login').tabIndex = login ? 0 : -1;
  $('#tab-signup').tabIndex = login ? -1 : 0;
  $('#login-form').hidden = !login;
  $('#signup-form').hidden = login;
}

async function submitAuth(e, kind) {
  e.preventDefault();
  const form = e.currentTarget;
  const err = form.querySelector('.form-error');
  err.textContent = '';
  const data = Object.fromEntries(new FormData(form));
  if (kind === 'register') data.username = data.username.trim().toLowerCase();
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  if (kind === 'login' && !data.code) delete data.code;
  try {
    const body = await api('POST', `/auth/${kind}?refresh=cookie`, { body: data, auth: false });
    if (body.status === 'check_your_inbox') {
      form.reset();
      selectTab('login');
      notice('Check your inbox: we sent a link to confirm your e-mail address. Then log in.');
      return;
    }
    saveSession({ access_token: body.access_token, user: body.user });
    form.reset();
    if (kind === 'login') $('#login-code-row').hidden = true;
    startApp();
  } catch (ex) {
    let msg = ex.message;
    if (ex.code === 'rate_limited') msg = 'Too many attempts. Please wait a little and try again.';
    if (ex.code === 'email_not_verified') msg = 'Confirm your e-mail address first: we just sent you a new link.';
    if (ex.code === 'two_factor_required' || ex.code === 'invalid_two_factor_code') {
      $('#login-code-row').hidden = false;
      form.querySelector('[name=code]').value = '';
      form.querySelector('[name=code]').focus();
      msg = ex.code === 'two_factor_required'
        ? 'Enter the code from your authenticator app.'
        : 'That code is wrong or already used. Try the next one.';
    }
    err.textContent = msg;
  } finally {
    button.disabled = false;
  }
}

function startApp() {
  if (pendingToast) {
    toast(pendingToast);
    pendingToast = '';
  }
  $('#auth-view').hidden = true;
  $('#app-view').hidden = false;
  state.me = session.user || null;
  renderMe();
  renderSidebar();
  openRoom(null);
  conn.stopped = false;
  conn.attempt = 0;
  conn.failedBeforeOpen = false;
  connect();
}

function resetState() {
  for (const key of ['rooms', 'msgs', 'roomSeq', 'presence', 'dmPeer', 'members', 'receipts', 'invitations', 'pending', 'readSent']) state[key].clear();
  for (const m of state.typing.values()) for (const t of m.values()) clearTimeout(t);
  state.typing.clear();
  state.me = null;
  for (const p of blobUrls.values()) p.then((u) => URL.revokeObjectURL(u)).catch(() => {});
  blobUrls.clear();
  endedCalls.clear();
  view.roomId = null;
}

function signOut(message, { remote = true } = {}) {
  if (!session) return;
  const token = session.access_token;
  conn.stopped = true;
  clearTimeout(conn.timer);
  if (call) hangUp();
  hideIncoming();
  if (conn.ws) socketGone(1000);
  if (remote) {
    fetch(`${API}/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${token}` } }).catch(() => {});
  }
  saveSession(null);
  resetState();
  $('#message-list').replaceChildren();
  setConnState('idle');
  if (location.hash) history.replaceState(null, '', location.pathname);
  showAuth(message);
}

// ---------------------------------------------------------------------------------------
// Sign-in providers, mailed links, password reset

/** A message on the sign-in page (not an error). */
function notice(text) {
  $('#auth-notice').textContent = text;
}

/** Shows one of the auth page's extra forms instead of the log in / sign up tabs. */
function showAuthForm(id) {
  for (const f of ['#login-form', '#signup-form', '#forgot-form', '#reset-form', '#link-form']) $(f).hidden = f !== id;
  $('.tabs').hidden = true;
  const first = $(`${id} input`);
  if (first) first.focus();
}

let providers = null;

/** The "Sign in with ..." buttons, from `GET /auth/providers`. */
async function loadProviders() {
  try {
    providers = providers || (await api('GET', '/auth/providers', { auth: false }));
  } catch {
    providers = [];
  }
  const box = $('#providers');
  box.replaceChildren(...providers.map((p) => h('a', {
    class: 'button', href: p.start_url, 'data-testid': 'provider-sign-in', 'data-provider': p.id,
  }, `Sign in with ${p.display_name}`)));
  box.hidden = providers.length === 0;
}

const AUTH_ERRORS = {
  oauth_state_invalid: 'That sign-in link is stale or was opened in another browser. Please try again.',
  oauth_provider_error: 'The provider did not sign you in.',
  provider_unavailable: 'The sign-in provider cannot be reached right now. Please try again later.',
  identity_already_linked: 'That provider account is already linked to another Palaver account.',
  account_disabled: 'This account is disabled.',
};

/**
 * What the address says on arrival: a sign-in callback's outcome (`?auth_error=`,
 * `?link=`, `?linked=`) or a mailed link (`#verify-email=`, `#reset-password=`). Returns
 * what to do next: `'link'` or `'reset'` (a form is waiting), or null.
 */
async function handleArrival() {
  const query = new URLSearchParams(location.search);
  const hash = new URLSearchParams(location.hash.slice(1));
  const clean = () => history.replaceState(null, '', location.pathname);
  if (query.has('auth_error')) {
    const code = query.get('auth_error');
    clean();
    pendingNotice = AUTH_ERRORS[code] || `Sign-in failed (${code}).`;
  } else if (query.has('link')) {
    linkToken = query.get('link');
    clean();
    return 'link';
  } else if (query.has('linked')) {
    const provider = query.get('linked');
    clean();
    pendingToast = `${provider} is linked to your account.`;
  } else if (hash.has('verify-email')) {
    const token = hash.get('verify-email');
    clean();
    try {
      const done = await api('POST', '/auth/verify-email', { body: { token }, auth: false });
      pendingNotice = `${done.email} is verified.`;
    } catch (e) {
      pendingNotice = e.code === 'token_expired' ? 'That link has expired: log in to get a new one.' : 'That link does not work (already used?).';
    }
  } else if (hash.has('reset-password')) {
    resetToken = hash.get('reset-password');
    clean();
    return 'reset';
  }
  return null;
}

let pendingNotice = '';
let pendingToast = '';
let linkToken = null;
let resetToken = null;

async function submitForgot(e) {
  e.preventDefault();
  const form = e.currentTarget;
  const err = form.querySelector('.form-error');
  err.textContent = '';
  try {
    await api('POST', '/auth/password-reset', { body: { email: form.email.value.trim() }, auth: false });
    form.reset();
    selectTab('login');
    notice('If that address belongs to a verified account, a link to choose a new password is on its way.');
  } catch (ex) {
    err.textContent = ex.code === 'email_disabled' ? 'This server does not send e-mail: ask its administrator to reset your password.' : ex.message;
  }
}

async function submitReset(e) {
  e.preventDefault();
  const form = e.currentTarget;
  const err = form.querySelector('.form-error');
  err.textContent = '';
  try {
    await api('POST', '/auth/password-reset/confirm', { body: { token: resetToken, new_password: form.new_password.value }, auth: false });
    form.reset();
    resetToken = null;
    selectTab('login');
    notice('Your password is changed. Log in with it.');
  } catch (ex) {
    err.textContent = ex.code === 'token_expired' ? 'That link has expired: ask for a new one.' : ex.message;
  }
}

async function submitLink(e) {
  e.preventDefault();
  const form = e.currentTarget;
  const err = form.querySelector('.form-error');
  err.textContent = '';
  try {
    const body = await api('POST', '/auth/link/confirm?refresh=cookie', { body: { token: linkToken, password: form.password.value }, auth: false });
    form.reset();
    linkToken = null;
    saveSession({ access_token: body.access_token, user: body.user });
    pendingToast = 'The provider is linked to your account.';
    startApp();
  } catch (ex) {
    if (ex.code === 'link_token_invalid') {
      selectTab('login');
      notice('That link request is used up: sign in with the provider again.');
    } else err.textContent = ex.code === 'invalid_credentials' ? 'That password is wrong. Sign in with the provider again to retry.' : ex.message;
  }
}

// ---------------------------------------------------------------------------------------
// Security: two-factor codes and signed-in sessions

async function openSecurity() {
  const dlg = $('#security-dialog');
  for (const id of ['#tf-begin-form', '#tf-confirm-form', '#tf-recovery', '#tf-disable-form']) $(id).hidden = true;
  $('#tf-status').textContent = 'Loading…';
  openDialog(dlg);
  try {
    await Promise.all([renderTwoFactor(), renderSessions(), renderEmailState(), renderIdentities()]);
  } catch (e) {
    $('#security-dialog .form-error').textContent = e.message;
  }
}

async function renderTwoFactor() {
  const st = await api('GET', '/users/me/two-factor');
  $('#tf-status').textContent = st.enabled
    ? `On: password logins need a code. ${st.recovery_codes_left} recovery codes left.`
    : 'Off: your password alone signs you in.';
  $('#tf-begin-form').hidden = st.enabled;
  $('#tf-disable-form').hidden = !st.enabled;
  $('#tf-confirm-form').hidden = true;
}

async function beginTwoFactor(e) {
  e.preventDefault();
  const form = e.currentTarget;
  const err = $('#security-dialog .form-error');
  err.textContent = '';
  try {
    const setup = await api('POST', '/users/me/two-factor', { body: { password: form.password.value } });
    form.reset();
    // The server's SVG as an image: shown, never parsed into the page.
    $('#tf-qr').src = `data:image/svg+xml;base64,${btoa(setup.qr_svg)}`;
    $('#tf-secret').textContent = setup.secret;
    form.hidden = true;
    $('#tf-confirm-form').hidden = false;
    $('#tf-confirm-form [name=code]').focus();
  } catch (ex) {
    err.textContent = ex.code === 'invalid_credentials' ? 'That password is wrong.' : ex.message;
  }
}

async function confirmTwoFactor(e) {
  e.preventDefault();
  const form = e.currentTarget;
  const err = $('#security-dialog .form-error');
  err.textContent = '';
  try {
    const { recovery_codes: codes } = await api('POST', '/users/me/two-factor/confirm', { body: { code: form.code.value.trim() } });
    form.reset();
    $('#tf-recovery-list').replaceChildren(...codes.map((c) => h('li', null, h('code', null, c))));
    $('#tf-recovery').hidden = false;
    await renderTwoFactor();
    toast('Two-factor codes are on.');
  } catch (ex) {
    err.textContent = ex.code === 'invalid_two_factor_code' ? 'That code is wrong. Try the one the app shows now.' : ex.message;
  }
}

async function disableTwoFactor(e) {
  e.preventDefault();
  const form = e.currentTarget;
  const err = $('#security-dialog .form-error');
  err.textContent = '';
  try {
    await api('POST', '/users/me/two-factor/disable', { body: { code: form.code.value.trim() } });
    form.reset();
    $('#tf-recovery').hidden = true;
    await renderTwoFactor();
    toast('Two-factor codes are off.');
  } catch (ex) {
    err.textContent = ex.code === 'invalid_two_factor_code' ? 'That code is wrong or already used.' : ex.message;
  }
}

async function renderEmailState() {
  const me = await api('GET', '/users/me');
  $('#email-state').textContent = `${me.email}${me.email_verified ? ' (verified)' : ' (not verified)'}`;
}

async function renderIdentities() {
  const list = await api('GET', '/users/me/identities');
  const known = providers || (await api('GET', '/auth/providers', { auth: false }).catch(() => []));
  const name = (id) => known.find((p) => p.id === id)?.display_name || id;
  $('#identity-list').replaceChildren(...list.map((i) => {
    const label = `${name(i.provider)}${i.email ? ` · ${i.email}` : ''}`;
    const unlink = h('button', { type: 'button', class: 'ghost small', 'data-testid': 'identity-unlink' }, 'Unlink');
    unlink.setAttribute('aria-label', `Unlink ${label}`);
    unlink.addEventListener('click', async () => {
      try {
        await api('DELETE', `/users/me/identities/${enc(i.id)}`);
        await renderIdentities();
      } catch (ex) {
        $('#security-dialog .form-error').textContent = ex.code === 'last_sign_in_method'
          ? 'This is your only way to sign in: set a password or link another provider first.'
          : ex.message;
      }
    });
    return h('li', { class: 'session', 'data-testid': 'identity' }, h('span', null, label), unlink);
  }));
  $('#link-buttons').replaceChildren(...known.map((p) => {
    const b = h('button', { type: 'button', class: 'ghost small', 'data-testid': 'identity-link', 'data-provider': p.id }, `Link ${p.display_name}`);
    b.addEventListener('click', async () => {
      try {
        const { url } = await api('POST', `/auth/oidc/${enc(p.id)}/link-start`);
        location.href = url;
      } catch (ex) {
        $('#security-dialog .form-error').textContent = ex.message;
      }
    });
    return b;
  }));
}

async function renderSessions() {
  const { sessions } = await api('GET', '/users/me/sessions');
  const list = $('#session-list');
  list.replaceChildren(...sessions.map((s) => {
    const label = `${s.device_name || 'Unknown device'}${s.ip ? ` · ${s.ip}` : ''}`;
    const item = h('li', { class: 'session', 'data-testid': 'session' },
      h('span', null, label, h('small', { class: 'hint' }, ` · last active ${shortTime(s.last_used_at)}`)));
    if (s.current) {
      item.append(h('span', { class: 'badge' }, 'this device'));
    } else {
      const out = h('button', { type: 'button', class: 'ghost small', 'data-testid': 'session-end' }, 'Sign out');
      out.setAttribute('aria-label', `Sign out ${label}`);
      out.addEventListener('click', async () => {
        try {
          await api('DELETE', `/users/me/sessions/${enc(s.id)}`);
          await renderSessions();
        } catch (ex) {
          $('#security-dialog .form-error').textContent = ex.message;
        }
      });
      item.append(out);
    }
    return item;
  }));
}

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
  $('#browse-q').addEventListener('input', () => {
    clearTimeout(browseSearch);
    browseSearch = setTimeout(loadDirectory, 250);
  });
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
  input.addEventListener('input', onComposerInput);
  input.addEventListener('blur', () => setTimeout(() => {
    if (document.activeElement !== input) stopTyping();
  }, 0));
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submitComposer();
    } else if (e.key === 'Escape') {
      if (view.replyTo) {
        view.replyTo = null;
        renderComposerBars();
      }
    } else if (e.key === 'ArrowUp' && !input.value) {
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
    view.file = e.target.files[0] || null;
    renderComposerBars();
    input.focus();
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
      view.file = f;
      renderComposerBars();
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
      view.file = f;
      renderComposerBars();
      input.focus();
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
  connection: () => ({ state: conn.state, ready: conn.ready, attempt: conn.attempt }),
  roomSeq: () => Object.fromEntries(state.roomSeq),
  state,
};

wire();
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
