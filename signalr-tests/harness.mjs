// The harness of the SignalR suite: a real `palaver` process per test file, REST helpers,
// the official @microsoft/signalr client, a raw SignalR client speaking the JSON hub
// protocol by hand over `ws`, a native WebSocket client and a Socket.IO client (for mixed
// rooms), and inboxes that record every event a client receives so tests can wait for one
// or assert that one did not arrive.
//
//   PALAVER_BIN=/path/to/palaver npm test
//
// Env: PALAVER_BIN (required), RUST_LOG (the server's, default "info"). Server logs go to
// artifacts/<label>.log, the official clients' own logs to artifacts/<label>.clients.log.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { HubConnectionBuilder, HttpTransportType, JsonHubProtocol, LogLevel } from '@microsoft/signalr';
import { io } from 'socket.io-client';
import WebSocket from 'ws';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = path.join(HERE, 'artifacts');

/** The SignalR record separator (ASCII RS) that ends every JSON hub protocol record. */
export const RS = '\x1e';

export { HttpTransportType };

import { TIMEOUT_MS, QUIET_MS, PASSWORD, waitUntil, within, Inbox, Server } from '../test-support/common.mjs';
export { TIMEOUT_MS, QUIET_MS, PASSWORD, sleep, waitUntil, within, Inbox } from '../test-support/common.mjs';

let userCounter = 0;

export class Palaver extends Server {
  /** Starts a server labelled `label` (its log: artifacts/<label>.log); `env`: extra config. */
  static async start(label, { env } = {}) {
    const p = new Palaver(label);
    p.extraEnv = env ?? {};
    await p.start(0);
    return p;
  }

  constructor(label) {
    super({ label, logFile: path.join(ARTIFACTS, `${label}.log`), dataDirPrefix: `palaver-sr-${label}-` });
    this.closeables = new Set();
    this.clientLog = fs.createWriteStream(path.join(ARTIFACTS, `${label}.clients.log`));
  }

  // stop, startAgain({env}), restart({env}): test-support/common.mjs's Server.

  /** Closes every client opened through this server, stops it, removes its data. */
  async close() {
    const closing = [];
    for (const c of this.closeables) {
      try {
        closing.push(c.close());
      } catch {
        // already closed
      }
    }
    this.closeables.clear();
    await within(Promise.allSettled(closing), 10_000, 'closing the clients').catch(() => {});
    await this.stop();
    this.clientLog.end();
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
    return { status: res.status, body: await bodyOf(res) };
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

  /** Logs `user` in again: a new session, as a second device (`{...user, token, refreshToken}`). */
  async login(user) {
    const r = await this.rest('POST', '/auth/login', null, { login: user.username, password: PASSWORD });
    return { ...user, token: r.access_token, refreshToken: r.refresh_token };
  }

  /** A new API key of `user` (`plv_<id>_<secret>`). */
  async apiKey(user) {
    const r = await this.rest('POST', '/users/me/api-keys', user.token, { name: `key ${Math.random().toString(36).slice(2, 6)}` });
    return r.key;
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

  /** A private room owned by `owner` with every one of `others` a member (invited, accepted). */
  async privateRoomWith(owner, ...others) {
    const room = await this.createRoom(owner, { visibility: 'private' });
    for (const u of others) {
      const inv = await this.rest('POST', `/rooms/${room.id}/invitations`, owner.token, { user_id: u.id });
      await this.rest('POST', `/invitations/${inv.id}/accept`, u.token);
    }
    return room;
  }

  /** The DM between `user` and `other` (created once). */
  dm(user, other) {
    return this.rest('POST', '/dms', user.token, { user_id: other.id });
  }

  /** The user ids of the members of `roomId`, as `viewer` sees them. */
  async memberIds(viewer, roomId) {
    const r = await this.rest('GET', `/rooms/${roomId}/members`, viewer.token);
    return r.members.map((m) => m.user_id);
  }

  /** Sends a message over REST; the stored Message (snake_case, as REST speaks). */
  post(user, roomId, content, clientId) {
    return this.rest('POST', `/rooms/${roomId}/messages`, user.token, { content, ...(clientId ? { client_id: clientId } : {}) });
  }

  edit(user, roomId, messageId, content) {
    return this.rest('PATCH', `/rooms/${roomId}/messages/${messageId}`, user.token, { content });
  }

  remove(user, roomId, messageId) {
    return this.rest('DELETE', `/rooms/${roomId}/messages/${messageId}`, user.token);
  }

  // -------------------------------------------------------------------------------------
  // SignalR

  /** The URL of hub `hub` ("chat" or "webrtc"), over HTTP (the client turns it into ws://). */
  hubUrl(hub = 'chat') {
    return `${this.url}/hubs/${hub}`;
  }

  /**
   * `POST {hub}/negotiate?negotiateVersion=1` by hand: `{status, body}`. `token` goes in
   * `Authorization: Bearer` unless `headers` or `query` carry the credential instead.
   */
  async negotiate({ hub = 'chat', token, stateful = false, headers = {}, query = {} } = {}) {
    const q = new URLSearchParams({ negotiateVersion: '1', ...(stateful ? { useStatefulReconnect: 'true' } : {}), ...query });
    const res = await fetch(`${this.hubUrl(hub)}/negotiate?${q}`, {
      method: 'POST',
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    });
    return { status: res.status, body: await bodyOf(res) };
  }

  /**
   * An official HubConnection as `user` (or with `opts.token`, or no credential when
   * `opts.token === null`), not started: call `start()` (for refusals and custom flows).
   *
   * opts: `hub` ("chat"), `skipNegotiation` (WebSockets without negotiate), `stateful`
   * (`withStatefulReconnect()`), `reconnect` (`withAutomaticReconnect()`, default delays),
   * `gate` (a Gate the access-token factory waits at: the test decides when a (re)connect
   * may proceed), `url` (another base URL, e.g. through a proxy), `label`.
   */
  signalrConnection(user, opts = {}) {
    const { hub = 'chat', skipNegotiation = false, stateful = false, reconnect = false, gate, url, label } = opts;
    const token = 'token' in opts ? opts.token : user?.token;
    const client = new SrClient(label ?? `sr-${hub}(${user?.username ?? 'anonymous'})`, this.clientLog);
    const httpOptions = {};
    if (token !== null && token !== undefined) {
      httpOptions.accessTokenFactory = async () => {
        client.tokenCalls += 1;
        if (gate) await gate.passed();
        return token;
      };
    }
    if (skipNegotiation) {
      httpOptions.skipNegotiation = true;
      httpOptions.transport = HttpTransportType.WebSockets;
    }
    let b = new HubConnectionBuilder()
      .withUrl(url ?? this.hubUrl(hub), httpOptions)
      .withHubProtocol(client.protocol)
      .configureLogging(client.logger);
    if (stateful) b = b.withStatefulReconnect();
    if (reconnect) b = b.withAutomaticReconnect();
    client.attach(b.build());
    this.closeables.add(client);
    return client;
  }

  /** An official HubConnection as `user`, started (see `signalrConnection` for `opts`). */
  async signalr(user, opts = {}) {
    const client = this.signalrConnection(user, opts);
    await within(client.start(), TIMEOUT_MS, `${client.label}: start()`);
    return client;
  }

  /**
   * A raw WebSocket to hub `hub`, speaking the JSON hub protocol by hand. `id`: the
   * connection token to use (default: negotiate one as `user`; `null`: no `?id=`, as with
   * skipNegotiation). `handshake`: the record to send first (default JSON version 1; null
   * for none); resolves after the handshake answer (or, when it is an error, with the
   * client in its error state: look at `handshakeResponse`).
   */
  async raw(user, { hub = 'chat', id, token = user?.token, handshake = { protocol: 'json', version: 1 }, label, stateful = false } = {}) {
    if (id === undefined) {
      const n = await this.negotiate({ hub, token, stateful });
      assert.equal(n.status, 200, `negotiate: ${n.status} ${JSON.stringify(n.body)}`);
      id = n.body.connectionToken;
    }
    const url = `${this.hubUrl(hub).replace(/^http/, 'ws')}${id !== null ? `?id=${encodeURIComponent(id)}` : ''}`;
    const client = new RawHub(url, { authorization: `Bearer ${token}` }, label ?? `raw-${hub}(${user?.username})`);
    client.connectionToken = id;
    this.closeables.add(client);
    await client.opened();
    if (handshake) await client.handshake(handshake);
    return client;
  }

  /**
   * Tries a WebSocket upgrade of `urlPath` (e.g. "/hubs/chat?id=…") with `headers`;
   * resolves `{status}` (101 when it opened, then closes it) or the refusal's status and body.
   */
  upgrade(urlPath, headers = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${this.url.replace(/^http/, 'ws')}${urlPath}`, { headers });
      ws.once('open', () => {
        ws.close();
        resolve({ status: 101 });
      });
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => {
          let json = body;
          try {
            json = JSON.parse(body);
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode, body: json });
        });
        res.on('error', () => resolve({ status: res.statusCode, body }));
      });
      ws.once('error', (e) => {
        if (ws.readyState !== WebSocket.CLOSED) reject(e);
      });
    });
  }

  // -------------------------------------------------------------------------------------
  // The other protocols (mixed rooms)

  /** A native WebSocket (`/api/v1/ws?access_token=`) as `user`, once `ready` arrived. */
  async ws(user, { label } = {}) {
    const q = new URLSearchParams({ access_token: user.token });
    const client = new WsClient(`${this.url.replace(/^http/, 'ws')}/api/v1/ws?${q}`, label ?? `ws(${user.username})`);
    this.closeables.add(client);
    await client.opened();
    await client.inbox.waitFor('ready');
    return client;
  }

  /** A socket.io-client socket as `user` (`auth: {token}`), once `ready` arrived. */
  async sio(user, { label } = {}) {
    const socket = io(this.url, { reconnection: false, forceNew: true, timeout: TIMEOUT_MS, auth: { token: user.token } });
    const client = new SioClient(socket, label ?? `sio(${user.username})`);
    this.closeables.add(client);
    await client.inbox.decide(
      (e) => {
        if (e.name === 'ready') return { value: e.payload };
        if (e.name === '$connect_error') return { error: new Error(`${client.label}: connect_error ${e.payload}`) };
        return null;
      },
      { what: '"ready"' },
    );
    return client;
  }
}

async function bodyOf(res) {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// ---------------------------------------------------------------------------------------
// The official SignalR client

/** The client events of /hubs/chat (docs: the spec's "Client events"). */
export const CHAT_EVENTS = [
  'ReceiveMessage',
  'ReceivePrivateMessage',
  'MessageEdited',
  'MessageDeleted',
  'UserTyping',
  'UserPresenceUpdate',
  'UserConnected',
  'UserDisconnected',
  'UserJoinedChannel',
  'UserLeftChannel',
];
/** The client events of /hubs/webrtc. */
export const WEBRTC_EVENTS = ['IncomingCall', 'CallAccepted', 'ReceiveSignal', 'CallRejected', 'CallEnded', 'NewMessage'];

/** A gate a (re)connect waits at (see `signalrConnection`'s `gate`); open when made. */
export class Gate {
  constructor() {
    this.promise = Promise.resolve();
    this.release = () => {};
  }

  close() {
    this.promise = new Promise((r) => (this.release = r));
  }

  open() {
    this.release();
  }

  passed() {
    return this.promise;
  }
}

/**
 * The JSON hub protocol of the official client, also reporting every record it parses
 * (before the client's stateful-reconnect deduplication), so tests can see the server's
 * Ping, Close, Ack and Sequence records.
 */
class RecordingProtocol extends JsonHubProtocol {
  constructor(onRecord) {
    super();
    this.onRecord = onRecord;
  }

  parseMessages(input, logger) {
    const messages = super.parseMessages(input, logger);
    for (const m of messages) this.onRecord(m);
    return messages;
  }
}

/**
 * An official HubConnection with an inbox. Server-to-client invocations arrive under
 * their target's name with the argument array as payload (`([channelId, message]) => …`);
 * the client's own events are `$close` (payload: the error message or null),
 * `$reconnecting` (the error message), `$reconnected` (the connection id), `$log`
 * (`{level, message}` of the client's warnings and errors, e.g. an invocation of a target
 * nobody listens to), and from the server's records `$closeRecord` (the Close record),
 * `$sequence` (a Sequence record). `pings` counts the server's Ping records.
 */
export class SrClient {
  constructor(label, logStream) {
    this.label = label;
    this.inbox = new Inbox(label);
    this.pings = 0;
    this.acks = 0;
    this.tokenCalls = 0;
    /** How many records of each type the server sent (before any deduplication). */
    this.recordCounts = {};
    this.protocol = new RecordingProtocol((m) => {
      this.recordCounts[m.type] = (this.recordCounts[m.type] ?? 0) + 1;
      if (m.type === 6) this.pings += 1;
      else if (m.type === 7) this.inbox.push('$closeRecord', m);
      else if (m.type === 8) this.acks += 1;
      else if (m.type === 9) this.inbox.push('$sequence', m);
    });
    this.logger = {
      log: (level, message) => {
        if (level >= LogLevel.Information) logStream.write(`${new Date().toISOString()} ${this.label} [${LogLevel[level]}] ${message}\n`);
        if (level >= LogLevel.Warning) this.inbox.push('$log', { level: LogLevel[level], message });
      },
    };
  }

  attach(connection) {
    this.connection = connection;
    for (const name of [...CHAT_EVENTS, ...WEBRTC_EVENTS]) {
      connection.on(name, (...args) => this.inbox.push(name, args));
    }
    connection.onclose((e) => this.inbox.push('$close', e ? e.message : null));
    connection.onreconnecting((e) => this.inbox.push('$reconnecting', e ? e.message : null));
    connection.onreconnected((id) => this.inbox.push('$reconnected', id ?? null));
  }

  start() {
    return this.connection.start();
  }

  get state() {
    return this.connection.state;
  }

  get connectionId() {
    return this.connection.connectionId;
  }

  /** `connection.invoke(method, ...args)`: the result, or rejects with the server's error. */
  invoke(method, ...args) {
    return within(this.connection.invoke(method, ...args), TIMEOUT_MS, `${this.label}: invoke ${method}`);
  }

  /** `connection.send(method, ...args)`: fire and forget (resolves once sent). */
  send(method, ...args) {
    return this.connection.send(method, ...args);
  }

  /** The error message `invoke(method, ...args)` rejects with (fails if it resolves). */
  async invokeError(method, ...args) {
    let result;
    try {
      result = await this.invoke(method, ...args);
    } catch (e) {
      return e.message;
    }
    assert.fail(`${this.label}: ${method} ${JSON.stringify(args)} must fail, resolved ${JSON.stringify(result)}`);
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
    return this.connection.stop();
  }
}

// ---------------------------------------------------------------------------------------
// A raw SignalR client (the JSON hub protocol by hand)

const RECORD_NAMES = { 1: 'Invocation', 2: 'StreamItem', 3: 'Completion', 4: 'StreamInvocation', 5: 'CancelInvocation', 6: 'Ping', 7: 'Close', 8: 'Ack', 9: 'Sequence' };

/**
 * A `ws` WebSocket speaking the JSON hub protocol by hand. The inbox holds each record
 * the server sent, by type name (`Invocation`, `Completion`, `Ping`, `Close`, …; the
 * handshake answer as `handshake`), `$wsclose` (`{code, reason}`) when the socket
 * closes, `$garbage` (text that is not a record) and `$error`.
 */
export class RawHub {
  constructor(url, headers, label) {
    this.label = label;
    this.inbox = new Inbox(label);
    this.buffer = '';
    this.nextId = 1;
    this.ws = new WebSocket(url, { headers });
    this.closed = new Promise((resolve) =>
      this.ws.on('close', (code, reason) => {
        const c = { code, reason: String(reason) };
        this.inbox.push('$wsclose', c);
        resolve(c);
      }),
    );
    this.ws.on('message', (data, isBinary) => {
      if (isBinary) {
        this.inbox.push('$garbage', `binary frame of ${data.length} bytes`);
        return;
      }
      this.buffer += String(data);
      let i;
      while ((i = this.buffer.indexOf(RS)) >= 0) {
        const rec = this.buffer.slice(0, i);
        this.buffer = this.buffer.slice(i + 1);
        let m;
        try {
          m = JSON.parse(rec);
        } catch {
          this.inbox.push('$garbage', rec);
          continue;
        }
        if (m && typeof m.type === 'number') this.inbox.push(RECORD_NAMES[m.type] ?? `type${m.type}`, m);
        else this.inbox.push('handshake', m);
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

  /** Sends the handshake request `req`; resolves with the server's answer record. */
  async handshake(req) {
    this.sendRaw(JSON.stringify(req) + RS);
    this.handshakeResponse = await this.inbox.waitFor('handshake');
    return this.handshakeResponse;
  }

  /** Sends `text` as one WebSocket text frame, as it is. */
  sendRaw(text) {
    this.ws.send(text);
  }

  /** Sends every record in `records` in one frame, each ended by RS. */
  sendRecords(...records) {
    this.sendRaw(records.map((r) => JSON.stringify(r) + RS).join(''));
  }

  /** An Invocation record of `target` with `args` and a fresh invocationId. */
  invocation(target, args = []) {
    return { type: 1, invocationId: String(this.nextId++), target, arguments: args };
  }

  /** Sends an invocation; resolves with its Completion record. */
  async invoke(target, args = [], { timeout = TIMEOUT_MS } = {}) {
    const inv = this.invocation(target, args);
    const from = this.inbox.mark();
    this.sendRecords(inv);
    return this.completion(inv.invocationId, { timeout, from });
  }

  /** The Completion record of invocation `id`. */
  completion(id, { timeout = TIMEOUT_MS, from = 0 } = {}) {
    return this.inbox.waitFor('Completion', (c) => c.invocationId === id, { timeout, from });
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

  /** Drops the TCP connection without a close frame, as a network failure would. */
  terminate() {
    this.ws.terminate();
  }

  close() {
    this.ws.close();
  }
}

// ---------------------------------------------------------------------------------------
// Native WebSocket and Socket.IO clients (for mixed rooms)

/** A native WebSocket client: events (whole frames `{type, data, seq?}`) in its inbox. */
export class WsClient {
  constructor(url, label) {
    this.label = label;
    this.inbox = new Inbox(label);
    this.nextId = 1;
    this.pending = new Map();
    this.ws = new WebSocket(url);
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

/** A socket.io-client socket with an inbox (server events under their own names). */
export class SioClient {
  constructor(socket, label) {
    this.socket = socket;
    this.label = label;
    this.inbox = new Inbox(label);
    socket.onAny((name, ...args) => {
      const data = args.filter((a) => typeof a !== 'function');
      this.inbox.push(name, data.length <= 1 ? data[0] : data);
    });
    socket.on('connect_error', (err) => this.inbox.push('$connect_error', err.message));
  }

  /** Emits with an acknowledgement that must be `{ok: true, ...}`; resolves with it. */
  async ok(event, payload, { timeout = TIMEOUT_MS } = {}) {
    const res = await this.socket.timeout(timeout).emitWithAck(event, payload);
    assert.equal(res?.ok, true, `${this.label}: ${event} ${JSON.stringify(payload)} answered ${JSON.stringify(res)}`);
    return res;
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

// ---------------------------------------------------------------------------------------
// A TCP proxy whose connections the test can cut

/**
 * A TCP proxy from 127.0.0.1:<port> to `targetPort`. `cut()` destroys every connection
 * going through it (both sides, as a network failure would) and holds new ones until
 * `resume()`, so a test decides how long a client stays cut off.
 */
export class CutProxy {
  static async start(targetPort) {
    const p = new CutProxy(targetPort);
    await new Promise((resolve) => p.server.listen(0, '127.0.0.1', resolve));
    p.port = p.server.address().port;
    return p;
  }

  constructor(targetPort) {
    this.targetPort = targetPort;
    this.pairs = new Set();
    this.held = [];
    this.paused = false;
    this.accepted = 0;
    this.server = net.createServer((client) => {
      this.accepted += 1;
      client.on('error', () => {});
      if (this.paused) this.held.push(client);
      else this.#pipe(client);
    });
  }

  #pipe(client) {
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    const pair = { client, upstream };
    this.pairs.add(pair);
    const drop = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', drop);
    upstream.on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** The base URL of the proxy. */
  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Destroys every open connection and holds new ones until `resume()`. */
  cut() {
    this.paused = true;
    for (const { client, upstream } of [...this.pairs]) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  /** Lets held and new connections through. */
  resume() {
    this.paused = false;
    const held = this.held;
    this.held = [];
    for (const c of held) if (!c.destroyed) this.#pipe(c);
  }

  close() {
    this.resume();
    for (const { client, upstream } of [...this.pairs]) {
      client.destroy();
      upstream.destroy();
    }
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

// ---------------------------------------------------------------------------------------
// Small helpers

/** A unique text, so events can be matched by content. */
export function text(what = 'msg') {
  return `${what} ${Math.random().toString(36).slice(2, 10)}`;
}

/** An RFC 3339 UTC time, as the spec's message object carries. */
export const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

/** A syntactically valid UUIDv7 that names nothing. */
export const NO_SUCH_ID = '0193a000-0000-7000-8000-000000000001';

/** A plausible SDP offer / answer and ICE candidate for the signalling tests. */
export function sdp(type) {
  return {
    type,
    sdp: `v=0\r\no=- ${Math.floor(Math.random() * 1e9)} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=setup:${type === 'offer' ? 'actpass' : 'active'}\r\n`,
  };
}

export function candidate(n = 1) {
  return {
    candidate: {
      candidate: `candidate:${n} 1 udp 2122260223 192.168.1.${n} ${50000 + n} typ host`,
      sdpMid: '0',
      sdpMLineIndex: 0,
    },
  };
}
