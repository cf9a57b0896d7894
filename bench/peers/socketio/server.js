// The Socket.IO 4 peer for palaver-bench: what many chat backends are built on today.
// WebSocket transport only (no long-polling), no per-message compression. A client joins
// the room named in its handshake query (`?room=`); `send` {room, content} is emitted as
// `message` to everyone in the room (the sender included) and acknowledged.
// No authentication and no storage: Palaver does both on top of this.
"use strict";
const http = require("http");
const { Server } = require("socket.io");

// Small frames must not wait for Nagle's algorithm (as Palaver and the baseline set).
const httpServer = http.createServer({ noDelay: true });
const io = new Server(httpServer, {
  transports: ["websocket"],
  serveClient: false,
  perMessageDeflate: false,
  maxHttpBufferSize: 1e6,
});

io.on("connection", (socket) => {
  const room = socket.handshake.query.room;
  if (typeof room === "string" && room.length > 0) socket.join(room);
  socket.on("send", (msg, ack) => {
    if (msg && typeof msg.room === "string") io.to(msg.room).emit("message", msg);
    if (typeof ack === "function") ack({ ok: true });
  });
});

httpServer.listen(Number(process.env.PORT || 0), "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${httpServer.address().port}`);
});
