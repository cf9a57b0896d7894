// A fan-out check of the Socket.IO peer with the OFFICIAL client (socket.io-client 4),
// to compare with palaver-bench's own Engine.IO/Socket.IO client (crates/palaver-bench,
// target.rs). Same shape as `palaver-bench fanout`: M members in one room, P of them
// sending R messages/s each (staggered over one period), content `b|conn|n|sent_us|xxx…`,
// latency = the receiver's wall clock minus sent_us, counted for messages sent in the
// window (after the warm-up), with a drain for late deliveries.
//
//   node official-client.js --url http://127.0.0.1:PORT [--members 100] [--senders 1]
//        [--rate 2] [--warmup-secs 2] [--duration-secs 10] [--drain-secs 2] [--padding 64]
//        [--no-stagger]
//
// --no-stagger starts every sender at the same instant (palaver-bench's method before its
// senders were staggered), so the room gets P messages at once each period.
//
// Prints one JSON line: sent, delivered, expected, latency and ack latency (p50/p99/max,
// ms). Note that all members share one Node event loop here, so receive-side handling
// (decoding 1 frame per member) is part of the measured latency.
"use strict";
const { io } = require("socket.io-client");
const { performance } = require("perf_hooks");

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}
const url = arg("url");
if (!url) {
  console.error("usage: node official-client.js --url http://127.0.0.1:PORT [options]");
  process.exit(2);
}
const members = Number(arg("members", 100));
const senders = Number(arg("senders", 1));
const rate = Number(arg("rate", 2));
const warmupMs = Number(arg("warmup-secs", 2)) * 1000;
const windowMs = Number(arg("duration-secs", 10)) * 1000;
const drainMs = Number(arg("drain-secs", 2)) * 1000;
const padding = "x".repeat(Number(arg("padding", 64)));
const stagger = !process.argv.includes("--no-stagger");
const room = `official-${process.pid}`;

/** Wall clock in µs (the same clock as the Rust generator's `now_us`). */
const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

const latencies = [];
const ackLatencies = [];
let sent = 0;
let windowStart = 0;
let windowEnd = 0;
const inWindow = (t) => t >= windowStart && t < windowEnd;

function connect(i) {
  return new Promise((resolve, reject) => {
    const socket = io(url, {
      transports: ["websocket"],
      query: { room },
      forceNew: true,
      reconnection: false,
    });
    socket.on("message", (msg) => {
      const now = nowUs();
      const parts = String(msg && msg.content).split("|");
      const sentUs = Number(parts[3]);
      if (parts[0] === "b" && inWindow(sentUs)) latencies.push((now - sentUs) / 1000);
    });
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (e) => reject(new Error(`member ${i}: ${e.message}`)));
  });
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const k = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return Math.round(sorted[Math.max(0, k)] * 1000) / 1000;
}

function summary(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return { count: s.length, p50_ms: percentile(s, 50), p99_ms: percentile(s, 99), max_ms: percentile(s, 100) };
}

async function main() {
  const sockets = [];
  for (let i = 0; i < members; i += 64) {
    const batch = [];
    for (let j = i; j < Math.min(members, i + 64); j++) batch.push(connect(j));
    sockets.push(...(await Promise.all(batch)));
  }
  const start = Date.now() + 200;
  windowStart = (start + warmupMs) * 1000;
  windowEnd = windowStart + windowMs * 1000;
  const period = 1000 / rate;
  // Senders are every (members / senders)-th member, staggered by rank / senders of a period.
  const step = Math.max(1, Math.floor(members / senders));
  for (let k = 0; k < senders; k++) {
    const i = k * step;
    const socket = sockets[i];
    let n = 0;
    const phase = stagger ? k / senders : 0;
    const sendOne = () => {
      const now = nowUs();
      if (now >= windowEnd) return;
      n += 1;
      const content = `b|${i}|${n}|${now}|${padding}`;
      if (inWindow(now)) sent += 1;
      socket.emit("send", { room, content }, () => {
        if (inWindow(now)) ackLatencies.push((nowUs() - now) / 1000);
      });
      // Open loop: schedule against the ideal send times, not the last one.
      const next = start + phase * period + n * period;
      setTimeout(sendOne, Math.max(0, next - Date.now()));
    };
    setTimeout(sendOne, Math.max(0, start + phase * period - Date.now()));
  }
  await new Promise((r) => setTimeout(r, start - Date.now() + warmupMs + windowMs + drainMs));
  for (const s of sockets) s.close();
  console.log(
    JSON.stringify({
      client: "socket.io-client",
      members,
      senders,
      rate,
      stagger,
      sent,
      expected: sent * members,
      delivered: latencies.length,
      latency: summary(latencies),
      ack_latency: summary(ackLatencies),
    }),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
