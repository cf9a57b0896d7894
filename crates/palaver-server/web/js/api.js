// The session and REST: the access token of this tab, refreshed from the HttpOnly
// refresh cookie, and `api()` for calls under /api/v1 with errors as ApiError.

import { signOut } from './auth.js';

const SESSION_KEY = 'palaver.session';
export const API = '/api/v1';
// token never reaches this page: the server keeps it in the HttpOnly `palaver_refresh`
// cookie (`?refresh=cookie`), one per browser, which page scripts cannot read.

export let session = loadSession();

function loadSession() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY));
  } catch {
    return null;
  }
}

export function saveSession(s) {
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

export class ApiError extends Error {
  constructor(status, body, fallback) {
    super(body?.error?.message || fallback || `request failed (${status})`);
    this.status = status;
    this.code = body?.error?.code || (status ? `http_${status}` : 'error');
    this.field = body?.error?.field;
  }
}

/** The WebSocket is not open (or closed while a request waited for its reply). */
export class Disconnected extends Error {
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
export function refreshTokens() {
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
export async function ensureFreshToken(marginSecs = 60) {
  if (!session) throw new ApiError(401, null, 'not signed in');
  if (tokenExpiry(session.access_token) - Date.now() / 1000 < marginSecs) await refreshTokens();
}

/** A REST call with the access token; refreshes once and retries on 401. */
export async function api(method, path, { body, form, raw = false, auth = true } = {}, retried = false) {
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

export const enc = encodeURIComponent;
