// The harness of the Socket.IO suite: a real `palaver` process per test file, REST
// helpers, the official socket.io-client and a native WebSocket client, and inboxes that
// record every event a client receives so tests can wait for one or assert that one did
// not arrive.
//
//   PALAVER_BIN=/path/to/palaver npm test
//
// Env: PALAVER_BIN (required), RUST_LOG (the server's, default "info"). Server logs go to
// artifacts/<label>.log.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import WebSocket from 'ws';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = path.join(HERE, 'artifacts');

import { TIMEOUT_MS, QUIET_MS, PASSWORD, waitUntil, within, Inbox, Server } from '../test-support/common.mjs';
export { TIMEOUT_MS, QUIET_MS, PASSWORD, sleep, waitUntil, within, Inbox } from '../test-support/common.mjs';

let userCounter = 0;

export class Palaver extends Server {
  /** Starts a server labelled `label` (its log: artifacts/<label>.log). */
  static async start(label) {
    const p = new Palaver(label);
    await p.start(0);
    return p;
  }

  constructor(label) {
    super({ label, logFile: path.join(ARTIFACTS, `${label}.log`), dataDirPrefix: `palaver-sio-${label}-` });
    this.closeables = new Set();
  }

  // stop, startAgain, restart: test-support/common.mjs's Server.

  /** Closes every client opened through this server, stops it, removes its data. */
  async close() {
    for (const c of this.closeables) {
      try {
        c.close();
      } catch {
        // already closed
      }
    }
    this.closeables.clear();
    await super.close();
  }

  // -------------------------------------------------------------------------------------
  // REST

  /** A REST call; answers `{status, body}` whatever the status. */
  async api(method, p, { token, body, headers = {} } = {}) {
    const res = await fetch(`${this.url}/api/v1${p}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    let json = null;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        json = text;
      }
    }
    return { status: res.status, body: json };
  }

  /** A REST call that must succeed (2xx); answers the body. */
  async rest(method, p, token, body) {
    const { status, body: json } = await this.api(method, p, { token, body });
    if (status < 200 || status > 299) throw new Error(`${method} /api/v1${p}: ${status} ${JSON.stringify(json)}`);
    return json;
  }

  /** Registers a new user: `{id, username, token, refreshToken}`. */
  async user(prefix = 'u') {
    userCounter += 1;
    const username = `${prefix}_${process.pid % 10000}_${userCounter}_${Math.random().toString(36).slice(2, 6)}`
      .toLowerCase()
      .slice(0, 32);
    const r = await this.rest('POST', '/auth/register', null, {
      username,
      email: `${username}@example.com`,
      password: PASSWORD,
    });
    return { id: r.user.id, username, token: r.access_token, refreshToken: r.refresh_token };
  }

  /** Logs `user` in again: a new session (`{...user, token, refreshToken}`). */
  async login(user) {
    const r = await this.rest('POST', '/auth/login', null, { login: user.username, password: PASSWORD });
    return { ...user, token: r.access_token, refreshToken: r.refresh_token };
  }

  /** Uploads `bytes` as `filename` (multipart, part `file`); the Attachment. */
  async upload(user, filename, bytes, type = 'application/octet-stream') {
    const form = new FormData();
    form.append('file', new Blob([bytes], { type }), filename);
    const res = await fetch(`${this.url}/api/v1/attachments`, {
      method: 'POST',
      headers: { authorization: `Bearer ${user.token}` },
      body: form,
    });
    const body = await res.json();
    if (res.status !== 201) throw new Error(`upload ${filename}: ${res.status} ${JSON.stringify(body)}`);
    return body;
  }

  /** Creates a room owned by `user` (public unless told): the Room. */
  createRoom(user, { name, visibility = 'public', topic } = {}) {
    name ??= `room-${Math.random().toString(36).slice(2, 8)}`;
    return this.rest('POST', '/rooms', user.token, { name, visibility, ...(topic ? { topic } : {}) });
  }

  /** `user` joins the public room `roomId`. */
  join(user, roomId) {
    return this.rest('POST', `/rooms/${roomId}/join`, user.token);
  }

  /** A public room owned by `owner` with every one of `others` a member. */
  async roomWith(owner, ...others) {
    const room = await this.createRoom(owner);
    for (const u of others) await this.join(u, room.id);
    return room;
  }

  /** The DM between `user` and `other` (created once). */
  dm(user, other) {
    return this.rest('POST', '/dms', user.token, { user_id: other.id });
  }

  /** `user` invites `invitee` to `roomId`; the Invitation. */
  invite(user, roomId, invitee) {
    return this.rest('POST', `/rooms/${roomId}/invitations`, user.token, { user_id: invitee.id });
  }

  acceptInvitation(user, invitationId) {
    return this.rest('POST', `/invitations/${invitationId}/accept`, user.token);
  }

  /** Sends a message over REST; the stored Message (snake_case, as REST speaks). */
  post(user, roomId, content, clientId) {
    return this.rest('POST', `/rooms/${roomId}/messages`, user.token, { content, ...(clientId ? { client_id: clientId } : {}) });
  }

  edit(user, roomId, messageId, content) {
    return this.rest('PATCH', `/rooms/${roomId}/messages/${messageId}`, user.token, { content });
  }

  /** Ends `user`'s session (its token stops working). */
  async logout(user) {
    const { status, body } = await this.api('POST', '/auth/logout', { token: user.token });
    assert.equal(status, 204, `logout: ${status} ${JSON.stringify(body)}`);
  }

  // -------------------------------------------------------------------------------------
  // Live clients

  /**
   * An official socket.io-client socket, not awaited (for refusals and custom flows).
   * Reconnection is off unless `opts.reconnection` says otherwise.
   */
  sioSocket(opts = {}, label = 'sio') {
    const socket = io(this.url, { reconnection: false, forceNew: true, timeout: TIMEOUT_MS, ...opts });
    const client = new SioClient(socket, label);
    this.closeables.add(client);
    return client;
  }

  /**
   * A socket.io-client connected as `user` (`auth: {token}` unless `opts.auth` is given)
   * once its `ready` arrived.
   */
  async sio(user, opts = {}, label) {
    const client = this.sioSocket({ auth: { token: user.token }, ...opts }, label ?? `sio(${user.username})`);
    await client.ready();
    return client;
  }

  /** A native WebSocket (`/api/v1/ws?access_token=`) as `user`, once `ready` arrived. */
  async ws(user, { since, label } = {}) {
    const q = new URLSearchParams({ access_token: user.token });
    if (since) q.set('since', since);
    const client = new WsClient(`${this.url.replace(/^http/, 'ws')}/api/v1/ws?${q}`, label ?? `ws(${user.username})`);
    this.closeables.add(client);
    await client.opened();
    await client.inbox.waitFor('ready');
    return client;
  }
}

// ---------------------------------------------------------------------------------------
// Clients

/**
 * A socket.io-client socket with an inbox: server events under their own names,
 * `$connect`, `$disconnect` (payload: the reason) and `$connect_error` (payload: the
 * message) for the client's own.
 */
export class SioClient {
  constructor(socket, label) {
    this.socket = socket;
    this.label = label;
    this.inbox = new Inbox(label);
    socket.onAny((name, ...args) => {
      const data = args.filter((a) => typeof a !== 'function');
      this.inbox.push(name, data.length <= 1 ? data[0] : data);
    });
    socket.on('connect', () => this.inbox.push('$connect', socket.id));
    socket.on('disconnect', (reason) => this.inbox.push('$disconnect', reason));
    socket.on('connect_error', (err) => this.inbox.push('$connect_error', err.message));
  }

  /** Resolves with the `ready` payload arriving after `from`; rejects on a final `connect_error`. */
  ready({ from = 0, timeout = TIMEOUT_MS } = {}) {
    return this.inbox.decide(
      (e) => {
        if (e.name === 'ready') return { value: e.payload };
        // A refusal by the server ends the attempts (the socket is no longer active);
        // a transport error is retried when reconnection is on.
        if (e.name === '$connect_error' && (!this.socket.active || !this.socket.io.reconnection())) {
          return { error: new Error(`${this.label}: connect_error ${e.payload}`) };
        }
        return null;
      },
      { from, timeout, what: '"ready"' },
    );
  }

  /** The `connect_error` message (the connection must be refused, never `ready`). */
  refused({ timeout = TIMEOUT_MS } = {}) {
    return this.inbox.decide(
      (e) => {
        if (e.name === '$connect_error') return { value: e.payload };
        if (e.name === 'ready') return { error: new Error(`${this.label}: expected connect_error, got ready ${JSON.stringify(e.payload)}`) };
        return null;
      },
      { timeout, what: '"connect_error"' },
    );
  }

  /** Emits with an acknowledgement; resolves with the ack's argument. */
  ack(event, payload, { timeout = TIMEOUT_MS } = {}) {
    return this.socket.timeout(timeout).emitWithAck(event, payload).catch((e) => {
      throw new Error(`${this.label}: no ack for ${event} ${JSON.stringify(payload)} within ${timeout} ms (${e.message}); received:\n${this.inbox.summary()}`);
    });
  }

  /** Emits with an acknowledgement that must be `{ok: true, ...}`; resolves with it. */
  async ok(event, payload, opts) {
    const res = await this.ack(event, payload, opts);
    assert.equal(res?.ok, true, `${this.label}: ${event} ${JSON.stringify(payload)} answered ${JSON.stringify(res)}`);
    return res;
  }

  /** Emits without an acknowledgement. */
  emit(event, ...args) {
    this.socket.emit(event, ...args);
  }

  waitFor(name, pred, opts) {
    return this.inbox.waitFor(name, pred, opts);
  }

  none(name, pred, opts) {
    return this.inbox.none(name, pred, opts);
  }

  mark() {
    return this.inbox.mark();
  }

  close() {
    this.socket.disconnect();
  }
}

/** A native WebSocket client: events (whole frames `{type, data, seq?}`) in its inbox. */
export class WsClient {
  constructor(url, label) {
    this.label = label;
    this.inbox = new Inbox(label);
    this.nextId = 1;
    this.pending = new Map();
    this.ws = new WebSocket(url);
    this.closed = new Promise((resolve) => this.ws.on('close', (code) => resolve(code)));
    this.ws.on('message', (data) => {
      const frame = JSON.parse(String(data));
      if (frame.type === 'reply' && this.pending.has(frame.id)) {
        const { resolve, timer } = this.pending.get(frame.id);
        this.pending.delete(frame.id);
        clearTimeout(timer);
        resolve(frame);
      } else {
        this.inbox.push(frame.type, frame);
      }
    });
    this.ws.on('error', (e) => this.inbox.push('$error', e.message));
  }

  opened() {
    return new Promise((resolve, reject) => {
      if (this.ws.readyState === WebSocket.OPEN) return resolve();
      this.ws.once('open', resolve);
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`${this.label}: upgrade refused with ${res.statusCode}`)));
      this.ws.once('error', reject);
    });
  }

  /** Sends a request; resolves with its reply frame. */
  request(type, data, { timeout = TIMEOUT_MS } = {}) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.label}: no reply to ${type} within ${timeout} ms`));
      }, timeout);
      this.pending.set(id, { resolve, timer });
      this.ws.send(JSON.stringify({ id, type, data }));
    });
  }

  /** A request whose reply must be ok; resolves with the reply's data. */
  async ok(type, data, opts) {
    const r = await this.request(type, data, opts);
    assert.equal(r.ok, true, `${this.label}: ${type} ${JSON.stringify(data)} answered ${JSON.stringify(r)}`);
    return r.data;
  }

  waitFor(type, pred = () => true, opts) {
    return this.inbox.waitFor(type, pred, opts);
  }

  none(type, pred, opts) {
    return this.inbox.none(type, pred, opts);
  }

  mark() {
    return this.inbox.mark();
  }

  close() {
    this.ws.close();
  }
}

// ---------------------------------------------------------------------------------------
// Small helpers

/** A unique text, so events can be matched by content. */
export function text(what = 'msg') {
  return `${what} ${Math.random().toString(36).slice(2, 10)}`;
}

/** The user id of a `ready.user` (seed 004 calls it `_id`; Palaver also `id`). */
export function userIdOf(u) {
  return u?.id ?? u?._id;
}

/** A syntactically valid UUIDv7 that names nothing. */
export const NO_SUCH_ID = '0193a000-0000-7000-8000-000000000001';
