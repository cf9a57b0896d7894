// What the Socket.IO, SignalR and browser suites share: timeouts, waiting, the `palaver`
// binary and its environment, the inbox that records every event a client receives so a
// test can wait for one or assert that one did not arrive, and the `palaver serve`
// process itself (Server), and RFC 6238 two-factor codes (totp). No npm dependencies: each suite imports it by relative path.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** How long a test waits for something that must happen (generous: a busy 2-core box). */
export const TIMEOUT_MS = 20_000;
/** How long a test waits, after a positive control arrived, before asserting absence. */
export const QUIET_MS = 500;
export const PASSWORD = 'correct horse battery';
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value (returned), or throws after `timeout`. */
export async function waitUntil(what, fn, { timeout = TIMEOUT_MS, interval = 50 } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await sleep(interval);
  }
}

/** Rejects with a message naming `what` unless `promise` settles within `ms`. */
export function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function bin() {
  const b = process.env.PALAVER_BIN;
  if (!b) throw new Error('PALAVER_BIN must name the palaver binary (e.g. target/debug/palaver)');
  if (!fs.existsSync(b)) throw new Error(`PALAVER_BIN=${b}: no such file`);
  return path.resolve(b);
}

// The server's environment: ours, without PALAVER_BIN (the server warns about PALAVER_*
// variables that name no configuration key), with the per-account message limit and the
// per-IP registration and request budgets lifted: every test client comes from
// 127.0.0.1 and sends faster than a person (the limits have tests of their own). `extra`
// adds configuration of the test's own (e.g. PALAVER_SIGNALR__LOBBY_ROOM).
export function serverEnv(extra = {}) {
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info' };
  for (const k of Object.keys(env)) if (k.startsWith('PALAVER_')) delete env[k];
  env.PALAVER_USER_LIMITS__MESSAGES__MAX = '0';
  env.PALAVER_RATE_LIMITS__REGISTRATIONS_PER_IP__MAX = '0';
  env.PALAVER_RATE_LIMITS__REQUESTS_PER_IP__MAX = '0';
  // No default rooms (#general): test users share only the rooms a test makes; a test
  // of default rooms passes PALAVER_DEFAULT_ROOMS in `extra`.
  env.PALAVER_DEFAULT_ROOMS = '';
  return { ...env, ...extra };
}

// ---------------------------------------------------------------------------------------
// Inbox: everything a client received, in order.

/** Everything one client received, as `{name, payload, at}` in arrival order. */
export class Inbox {
  constructor(label) {
    this.label = label;
    this.events = [];
    this.waiters = new Set();
  }

  push(name, payload) {
    const e = { name, payload, at: Date.now() };
    this.events.push(e);
    for (const w of [...this.waiters]) w(e);
  }

  /** A position: pass it as `from` to look only at what arrives after now. */
  mark() {
    return this.events.length;
  }

  /** Payloads of the events named `name` matching `pred`, from position `from` on. */
  all(name, pred = () => true, from = 0) {
    return this.events.slice(from).filter((e) => e.name === name && safe(pred, e.payload)).map((e) => e.payload);
  }

  /** Resolves with the first event `name` matching `pred` (already received or to come). */
  waitFor(name, pred = () => true, { timeout = TIMEOUT_MS, from = 0 } = {}) {
    return this.decide((e) => (e.name === name && safe(pred, e.payload) ? { value: e.payload } : null), {
      timeout,
      from,
      what: `"${name}" event matching ${describe(pred)}`,
    });
  }

  /**
   * The general wait: `decide(event)` returns null to keep waiting, `{value}` to resolve
   * or `{error}` to reject. Looks at what arrived since `from`, then at what comes.
   */
  decide(decide, { timeout = TIMEOUT_MS, from = 0, what = 'an event' } = {}) {
    for (const e of this.events.slice(from)) {
      const d = decide(e);
      if (d) return d.error ? Promise.reject(d.error) : Promise.resolve(d.value);
    }
    return new Promise((resolve, reject) => {
      const w = (e) => {
        const d = decide(e);
        if (!d) return;
        clearTimeout(timer);
        this.waiters.delete(w);
        if (d.error) reject(d.error);
        else resolve(d.value);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`${this.label}: no ${what} within ${timeout} ms; received:\n${this.summary(from)}`));
      }, timeout);
      this.waiters.add(w);
    });
  }

  /** Waits until `count` events `name` matching `pred` have arrived; returns them. */
  async waitForCount(name, count, pred = () => true, { timeout = TIMEOUT_MS, from = 0 } = {}) {
    try {
      return await waitUntil(`${count} "${name}"`, () => {
        const got = this.all(name, pred, from);
        return got.length >= count ? got : null;
      }, { timeout });
    } catch (e) {
      throw new Error(`${this.label}: ${e.message}; got ${this.all(name, pred, from).length}; received:\n${this.summary(from)}`);
    }
  }

  /**
   * Asserts that no event `name` matching `pred` arrives: waits `ms` first (call it after
   * a positive control showed that delivery happened), then looks from `from` on.
   */
  async none(name, pred = () => true, { ms = QUIET_MS, from = 0 } = {}) {
    if (ms) await sleep(ms);
    const got = this.all(name, pred, from);
    assert.equal(got.length, 0, `${this.label}: expected no "${name}" matching ${describe(pred)}, got ${JSON.stringify(got)}`);
  }

  summary(from = 0) {
    const lines = this.events.slice(from).map((e) => `    ${e.name} ${truncate(JSON.stringify(e.payload), 300)}`);
    return lines.length ? lines.slice(-40).join('\n') : '    (nothing)';
  }
}

function safe(pred, payload) {
  try {
    return !!pred(payload);
  } catch {
    return false;
  }
}

function describe(pred) {
  const s = String(pred);
  return s === '() => true' ? '(any)' : truncate(s, 160);
}

function truncate(s, n) {
  s = String(s);
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

// ---------------------------------------------------------------------------------------
// The server

/**
 * One `palaver serve` process on a temporary data directory; restartable on one port.
 *
 * Options (what differs between the suites):
 * - `logFile` (required): where the server's stdout and stderr go; emptied here (its
 *   directory is made), appended to by every start.
 * - `dataDir`: the data directory; without it, a new temporary one named
 *   `<dataDirPrefix>XXXXXX`. `close` removes it either way.
 * - `bin`: the `palaver` binary (default: `bin()`, i.e. PALAVER_BIN).
 * - `env`: extra configuration (e.g. PALAVER_SIGNALR__LOBBY_ROOM), kept as `extraEnv`;
 *   `serverEnv(extraEnv)` gives the process's environment (default: `serverEnv` above).
 * - `startTimeoutMs`: how long a start waits for "palaver listening on <url>" (30 s).
 * - `stopTimeoutMs`: how long `stop` waits after SIGTERM before SIGKILL (20 s).
 * - `portRetries`: how often a start on a given port retries while the port of a
 *   just-stopped server is still taken, 250 ms apart (40).
 *
 * A test file that dies leaves no server behind (SIGKILL on the process's exit).
 */
export class Server {
  constructor({
    label,
    logFile,
    dataDir,
    dataDirPrefix = 'palaver-',
    bin: binary,
    env = {},
    serverEnv: makeEnv = serverEnv,
    startTimeoutMs = 30_000,
    stopTimeoutMs = 20_000,
    portRetries = 40,
  } = {}) {
    if (!logFile) throw new Error('Server: `logFile` is required');
    this.label = label;
    this.bin = binary ?? bin();
    this.dataDir = dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), dataDirPrefix));
    this.proc = null;
    this.url = null;
    this.port = 0;
    this.extraEnv = env;
    this.makeEnv = makeEnv;
    this.startTimeoutMs = startTimeoutMs;
    this.stopTimeoutMs = stopTimeoutMs;
    this.portRetries = portRetries;
    fs.mkdirSync(path.dirname(logFile), { recursive: true });
    this.logFile = logFile;
    fs.writeFileSync(this.logFile, '');
    this.onExit = () => this.proc?.kill('SIGKILL');
    process.on('exit', this.onExit);
  }

  /**
   * Starts the process on `port` (0: any free one) and waits until it listens; `url` and
   * `port` say where. On a given port, retries while that port is still taken.
   */
  async start(port = 0) {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#spawn(port);
        return;
      } catch (e) {
        // The port of a just-stopped server can take a moment to free up.
        if (port === 0 || attempt >= this.portRetries) throw e;
        await sleep(250);
      }
    }
  }

  #spawn(port) {
    return new Promise((resolve, reject) => {
      const proc = spawn(this.bin, ['serve', '--port', String(port), '--data-dir', this.dataDir], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: this.makeEnv(this.extraEnv),
      });
      const out = fs.createWriteStream(this.logFile, { flags: 'a' });
      let buf = '';
      let done = false;
      const timer = setTimeout(
        () => finish(new Error(`the server did not print its address within ${this.startTimeoutMs / 1000} s`)),
        this.startTimeoutMs,
      );
      const finish = (err) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) {
          proc.kill('SIGKILL');
          reject(err);
        } else resolve();
      };
      proc.stdout.on('data', (chunk) => {
        out.write(chunk);
        buf += chunk;
        const m = /palaver listening on (http:\/\/[\d.]+:(\d+))/.exec(buf);
        if (m) {
          this.proc = proc;
          this.url = m[1];
          this.port = Number(m[2]);
          finish();
        }
      });
      proc.stderr.on('data', (chunk) => out.write(chunk));
      proc.on('exit', (code, sig) => {
        if (!done) finish(new Error(`the server exited before listening (code ${code}, signal ${sig}); see ${this.logFile}`));
      });
    });
  }

  /** Stops the process (SIGTERM, then SIGKILL after `stopTimeoutMs`); the data directory stays. */
  async stop() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    this.proc = null;
    const exited = once(proc, 'exit');
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), this.stopTimeoutMs);
    await exited;
    clearTimeout(timer);
  }

  /**
   * Starts again on the same port and data directory (after `stop`); `env`, when given,
   * replaces the extra configuration of the earlier start.
   */
  async startAgain({ env } = {}) {
    assert.ok(this.port, 'startAgain needs a server that ran before');
    if (env) this.extraEnv = env;
    const url = this.url;
    await this.start(this.port);
    assert.equal(this.url, url, 'the restarted server listens where it did');
  }

  /** `stop` then `startAgain`. */
  async restart(opts) {
    await this.stop();
    await this.startAgain(opts);
  }

  /** Stops the process and removes its data directory. */
  async close() {
    await this.stop();
    process.off('exit', this.onExit);
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/**
 * The RFC 6238 code (HMAC-SHA-1, 6 digits, 30-second steps) of a base32 `secret` (RFC 4648)
 * for time step `step`: computed here, independently of the server's library.
 */
export function totp(secret, step) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secret.replace(/=+$/, '')) bits += alphabet.indexOf(c.toUpperCase()).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = crypto.createHmac('sha1', key).update(counter).digest();
  const offset = mac[19] & 0x0f;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}
