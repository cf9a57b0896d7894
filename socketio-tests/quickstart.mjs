// The example of docs/socketio.md, runnable: seed 004's socket code, unchanged but for the
// URL and the token, against Palaver.
//
//   PALAVER_URL=http://127.0.0.1:8080 node quickstart.mjs
//
// Registers two users over REST, creates a public room, connects both with the official
// socket.io-client, joins, sends with an acknowledgement, receives new_message, edits,
// reacts, then disconnects one user, sends while it is away, and reconnects it with
// auth.since: it gets exactly what it missed. Exits non-zero on any failure.

import assert from "node:assert/strict";
import { io } from "socket.io-client";

const url = process.env.PALAVER_URL || "http://127.0.0.1:8080";
const suffix = Math.random().toString(36).slice(2, 8);

async function rest(method, path, token, body) {
  const res = await fetch(url + path, {
    method,
    headers: {
      "content-type": "application/json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function register(name) {
  const username = `${name}_${suffix}`;
  const r = await rest("POST", "/api/v1/auth/register", null, {
    username,
    email: `${username}@example.com`,
    password: "correct horse battery",
  });
  return { id: r.user.id, token: r.access_token };
}

const once = (socket, event, ms = 10_000) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    socket.once(event, (data) => {
      clearTimeout(timer);
      resolve(data);
    });
  });

const alice = await register("alice");
const bob = await register("bob");
const room = await rest("POST", "/api/v1/rooms", alice.token, {
  name: `general-${suffix}`,
  visibility: "public",
});

// Seed 004's client code: only the URL and the token are Palaver's.
const lastSeq = {}; // roomId -> highest changeSeq seen (what a reconnect passes back)
function track(socket) {
  socket.on("ready", ({ rooms }) => rooms.forEach((r) => (lastSeq[r.id] ??= r.lastSeq)));
  for (const e of ["new_message", "message_edited", "message_deleted"]) {
    socket.on(e, (m) => (lastSeq[m.roomId] = Math.max(lastSeq[m.roomId] ?? 0, m.changeSeq)));
  }
}
const a = io(url, { auth: { token: alice.token } });
const b = io(url, { auth: (cb) => cb({ token: bob.token, since: lastSeq }) });
track(b);
await Promise.all([once(a, "connect"), once(b, "ready")]);

// Bob joins the room: the ack, then the room's history.
const history = once(b, "message_history");
const joined = await b.emitWithAck("join_room", { roomId: room.id });
assert.equal(joined.ok, true);
assert.deepEqual(await history, []);

// Alice sends; the ack carries the stored message; Bob receives it live.
const incoming = once(b, "new_message");
const sent = await a.emitWithAck("send_message", {
  roomId: room.id,
  content: "Hello everyone!",
  clientId: "hello-1",
});
assert.equal(sent.ok, true);
const message = await incoming;
assert.equal(message._id, sent.message.id);
assert.equal(message.content, "Hello everyone!");
assert.equal(message.senderId, alice.id);

// Edit and react.
const edited = once(b, "message_edited");
a.emit("edit_message", { messageId: message._id, content: "Hello, everyone!" });
assert.equal((await edited).content, "Hello, everyone!");
const reacted = once(a, "reaction_added");
b.emit("add_reaction", { messageId: message._id, emoji: "👍" });
assert.equal((await reacted).userId, bob.id);

// Bob goes away; Alice sends two messages; Bob reconnects with auth.since and gets both,
// in order, once.
b.disconnect();
for (const content of ["while you were away", "and one more"]) {
  const r = await a.emitWithAck("send_message", { roomId: room.id, content });
  assert.equal(r.ok, true);
}
const missed = [];
b.on("new_message", (m) => missed.push(m.content));
b.connect();
await once(b, "connect");
const deadline = Date.now() + 10_000;
while (missed.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
await new Promise((r) => setTimeout(r, 300)); // nothing more may follow
assert.deepEqual(missed, ["while you were away", "and one more"]);

a.disconnect();
b.disconnect();
console.log("quickstart: ok");
