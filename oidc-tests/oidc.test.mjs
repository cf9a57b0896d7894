// Sign-in with OpenID Connect and GitHub, end to end, against real HTTP on loopback:
//
// - a real OpenID provider: panva's oidc-provider (OpenID-certified), in this process,
//   driven through its own login and consent pages (its development interactions: any
//   login name is an account whose `sub` it is);
// - a small stand-in provider (discovery, JWKS, token endpoint signing RS256 ID tokens
//   with a test key from node:crypto) for the ID tokens a real provider will not make:
//   a wrong nonce, a wrong audience, an expired token, a wrong `iss` parameter, and a
//   rotated signing key;
// - a stand-in for GitHub, because GitHub itself cannot be reached from CI: it answers
//   with the response shapes GitHub documents for its OAuth endpoints, `GET /user` and
//   `GET /user/emails` (including an unverified primary address, which must be ignored).
//
// The browser is played by fetch with redirects followed by hand and a cookie jar; the last
// test drives the web client in Debian's Chromium through the real provider's pages.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import Provider from 'oidc-provider';
import { chromium } from 'playwright-core';

import { PASSWORD, Server, serverEnv, totp } from '../test-support/common.mjs';

const CLIENT_ID = 'palaver';
const CLIENT_SECRET = 'oidc-test-secret-of-some-length';

/** A free loopback port (bound, then released). */
async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** An HTTP server on a free loopback port; resolves to `{server, url}`. */
async function listen(handler) {
  const server = http.createServer(handler);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${server.address().port}` };
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString();
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

// ---------------------------------------------------------------------------------------
// A browser: a cookie jar per origin, redirects followed by hand.

class Browser {
  constructor() {
    this.jar = new Map(); // origin -> Map(name -> value)
  }

  cookies(origin) {
    if (!this.jar.has(origin)) this.jar.set(origin, new Map());
    return this.jar.get(origin);
  }

  /** The Set-Cookie headers of `res` (for `origin`), kept; returns them raw. */
  keep(origin, res) {
    const raw = res.headers.getSetCookie();
    for (const line of raw) {
      const [pair, ...attrs] = line.split(';');
      const at = pair.indexOf('=');
      const name = pair.slice(0, at).trim();
      const value = pair.slice(at + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a));
      if (expired || !value) this.cookies(origin).delete(name);
      else this.cookies(origin).set(name, value);
    }
    return raw;
  }

  async request(url, { method = 'GET', headers = {}, body } = {}) {
    const u = new URL(url);
    const jar = this.cookies(u.origin);
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(u, {
      method,
      redirect: 'manual',
      headers: { ...(cookie ? { cookie } : {}), ...headers },
      body,
    });
    const setCookies = this.keep(u.origin, res);
    return { res, setCookies };
  }

  /**
   * Navigates from `url`, following redirects and submitting every form of the OpenID
   * provider's pages (login as `login`, then consent), until a redirect leads to
   * `stopOrigin` with a path other than the callback's: returns that `Location` (as an
   * absolute URL), the last callback URL visited, and the Set-Cookie lines of the
   * callback's answer.
   */
  async signIn(url, { login = 'alice', stopOrigin, interceptCallback } = {}) {
    let next = url;
    let method = 'GET';
    let body;
    let headers = {};
    let callback = null;
    let callbackCookies = [];
    for (let hop = 0; hop < 30; hop++) {
      const u = new URL(next);
      if (u.origin === stopOrigin && u.pathname.endsWith('/callback')) {
        callback = next;
        if (interceptCallback) return { callback };
      }
      const { res, setCookies } = await this.request(next, { method, headers, body });
      if (callback === next) callbackCookies = setCookies;
      method = 'GET';
      body = undefined;
      headers = {};
      if ([301, 302, 303, 307].includes(res.status)) {
        const location = new URL(res.headers.get('location'), next).toString();
        await res.arrayBuffer();
        if (new URL(location).origin === stopOrigin && !new URL(location).pathname.endsWith('/callback')) {
          return { location, callback, callbackCookies };
        }
        next = location;
        continue;
      }
      const text = await res.text();
      assert.equal(res.status, 200, `${next}: ${res.status} ${text.slice(0, 500)}`);
      const form = /<form[^>]*action="([^"]+)"[^>]*method="post"/i.exec(text)
        || /<form[^>]*method="post"[^>]*action="([^"]+)"/i.exec(text);
      assert.ok(form, `a form on ${next}: ${text.slice(0, 500)}`);
      const fields = new URLSearchParams();
      for (const m of text.matchAll(/<input[^>]*>/gi)) {
        const name = /name="([^"]+)"/.exec(m[0])?.[1];
        if (!name) continue;
        const value = /value="([^"]*)"/.exec(m[0])?.[1] ?? '';
        fields.set(name, value);
      }
      if (fields.has('login')) fields.set('login', login);
      if (fields.has('password')) fields.set('password', 'any');
      next = new URL(form[1].replaceAll('&amp;', '&'), next).toString();
      method = 'POST';
      body = fields.toString();
      headers = { 'content-type': 'application/x-www-form-urlencoded' };
    }
    throw new Error('too many redirects');
  }
}

// ---------------------------------------------------------------------------------------
// The stand-in OpenID provider: signs what the test asks for.

function makeKey(kid) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' } };
}

function signJwt(key, claims) {
  const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: key.kid }));
  const payload = b64url(JSON.stringify(claims));
  const signature = crypto.sign('RSA-SHA256', Buffer.from(`${header}.${payload}`), key.privateKey);
  return `${header}.${payload}.${b64url(signature)}`;
}

async function standInProvider() {
  const key1 = makeKey('key-1');
  const key2 = makeKey('key-2');
  const fake = { mode: 'ok', subject: 'fake-subject-1', jwks: [key1.jwk], grants: new Map(), url: '', pkceChecked: 0 };
  const { server, url } = await listen(async (req, res) => {
    const u = new URL(req.url, fake.url);
    const json = (status, value) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(value));
    };
    if (u.pathname === '/.well-known/openid-configuration') {
      return json(200, {
        issuer: fake.url,
        authorization_endpoint: `${fake.url}/authorize`,
        token_endpoint: `${fake.url}/token`,
        jwks_uri: `${fake.url}/jwks`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
      });
    }
    if (u.pathname === '/jwks') return json(200, { keys: fake.jwks });
    if (u.pathname === '/authorize') {
      const code = crypto.randomUUID();
      fake.grants.set(code, {
        nonce: u.searchParams.get('nonce'),
        challenge: u.searchParams.get('code_challenge'),
        method: u.searchParams.get('code_challenge_method'),
        mode: fake.mode,
        subject: fake.subject,
      });
      const back = new URL(u.searchParams.get('redirect_uri'));
      back.searchParams.set('code', code);
      back.searchParams.set('state', u.searchParams.get('state'));
      back.searchParams.set('iss', fake.mode === 'wrong-iss' ? 'https://evil.example' : fake.url);
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (u.pathname === '/token' && req.method === 'POST') {
      const form = new URLSearchParams(await readBody(req));
      const grant = fake.grants.get(form.get('code'));
      fake.grants.delete(form.get('code'));
      if (!grant) return json(400, { error: 'invalid_grant' });
      // PKCE S256 (RFC 7636 §4.6): the verifier must hash to the challenge.
      const verifier = form.get('code_verifier') ?? '';
      const hashed = b64url(crypto.createHash('sha256').update(verifier).digest());
      if (grant.method !== 'S256' || hashed !== grant.challenge) return json(400, { error: 'invalid_grant' });
      fake.pkceChecked++;
      const now = Math.floor(Date.now() / 1000);
      const claims = {
        iss: fake.url,
        sub: grant.subject,
        aud: CLIENT_ID,
        iat: now,
        exp: now + 300,
        nonce: grant.nonce,
        email: 'fake-user@example.net',
        email_verified: true,
        preferred_username: 'Fake User',
      };
      let key = key1;
      if (grant.mode === 'wrong-nonce') claims.nonce = 'not-the-nonce';
      if (grant.mode === 'wrong-aud') claims.aud = 'someone-else';
      if (grant.mode === 'expired') {
        claims.iat = now - 7200;
        claims.exp = now - 3600;
      }
      if (grant.mode === 'rotated') {
        fake.jwks = [key1.jwk, key2.jwk];
        key = key2;
      }
      return json(200, {
        access_token: crypto.randomUUID(),
        token_type: 'Bearer',
        expires_in: 300,
        id_token: signJwt(key, claims),
      });
    }
    json(404, { error: 'not_found' });
  });
  fake.url = url;
  fake.server = server;
  return fake;
}

// ---------------------------------------------------------------------------------------
// The GitHub stand-in (GitHub's documented shapes; GitHub itself is not reachable from CI).

async function githubStandIn() {
  const gh = { url: '', codes: new Map(), tokens: new Set() };
  const { server, url } = await listen(async (req, res) => {
    const u = new URL(req.url, gh.url);
    const json = (status, value) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify(value));
    };
    if (u.pathname === '/login/oauth/authorize') {
      const code = crypto.randomUUID().replaceAll('-', '').slice(0, 20);
      gh.codes.set(code, u.searchParams.get('code_challenge'));
      const back = new URL(u.searchParams.get('redirect_uri'));
      back.searchParams.set('code', code);
      back.searchParams.set('state', u.searchParams.get('state'));
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (u.pathname === '/login/oauth/access_token' && req.method === 'POST') {
      const form = new URLSearchParams(await readBody(req));
      const challenge = gh.codes.get(form.get('code'));
      gh.codes.delete(form.get('code'));
      const verifier = form.get('code_verifier') ?? '';
      const ok = challenge !== undefined
        && form.get('client_id') === 'gh-client'
        && form.get('client_secret') === 'gh-secret'
        && b64url(crypto.createHash('sha256').update(verifier).digest()) === challenge;
      // GitHub answers a bad code with 200 and an error object.
      if (!ok) return json(200, { error: 'bad_verification_code', error_description: 'The code passed is incorrect or expired.' });
      const token = `gho_${crypto.randomUUID().replaceAll('-', '')}`;
      gh.tokens.add(token);
      return json(200, { access_token: token, token_type: 'bearer', scope: 'read:user,user:email' });
    }
    const auth = req.headers.authorization ?? '';
    if (!gh.tokens.has(auth.replace(/^Bearer /i, ''))) return json(401, { message: 'Requires authentication' });
    if (u.pathname === '/user') {
      return json(200, {
        login: 'octocat', id: 583231, node_id: 'MDQ6VXNlcjU4MzIzMQ==', type: 'User',
        name: 'The Octocat', email: 'octo-primary@example.org', site_admin: false,
      });
    }
    if (u.pathname === '/user/emails') {
      return json(200, [
        { email: 'octo-primary@example.org', primary: true, verified: false, visibility: 'public' },
        { email: 'octo@example.org', primary: false, verified: true, visibility: null },
      ]);
    }
    json(404, { message: 'Not Found' });
  });
  gh.url = url;
  gh.server = server;
  return gh;
}

// ---------------------------------------------------------------------------------------
// Setup: the real provider, the stand-ins, palaver.

let palaver;
let base;
let op;
let opServer;
let fake;
let gh;

before(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  // oidc-provider's issuer names its port: listen first, then hand requests over.
  let handler = (req, res) => res.end();
  const opListening = await listen((req, res) => handler(req, res));
  opServer = opListening.server;
  const accounts = {
    alice: { email: 'alice@example.org', email_verified: true, preferred_username: 'Alice' },
    bob: { email: 'bob@example.org', email_verified: true, preferred_username: 'bob' },
    mallory: { email: 'carol@example.org', email_verified: false, preferred_username: 'mallory' },
    frida: { email: 'frida@example.org', email_verified: true, preferred_username: 'frida' },
  };
  op = new Provider(opListening.url, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: [`${base}/api/v1/auth/oidc/local/callback`],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    pkce: { required: () => true },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['preferred_username', 'name'] },
    findAccount: async (ctx, sub) => ({
      accountId: sub,
      claims: async () => ({ sub, ...(accounts[sub] ?? {}) }),
    }),
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['oidc-tests-cookie-key'] },
  });
  handler = op.callback();
  fake = await standInProvider();
  gh = await githubStandIn();
  const oidc = [
    `{id="local", issuer="${opListening.url}", client_id="${CLIENT_ID}", client_secret="${CLIENT_SECRET}", display_name="Local OP"}`,
    `{id="fake", issuer="${fake.url}", client_id="${CLIENT_ID}", client_secret="${CLIENT_SECRET}"}`,
  ];
  palaver = new Server({
    label: 'palaver',
    logFile: path.join(process.cwd(), 'logs', 'palaver.log'),
    env: {
      PALAVER_PUBLIC_URL: base,
      PALAVER_AUTH__OIDC: `[${oidc.join(', ')}]`,
      PALAVER_AUTH__GITHUB: `{client_id="gh-client", client_secret="gh-secret", authorize_url="${gh.url}/login/oauth/authorize", token_url="${gh.url}/login/oauth/access_token", api_url="${gh.url}"}`,
    },
    serverEnv,
  });
  await palaver.start(port);
});

after(async () => {
  await palaver?.stop?.();
  opServer?.close();
  fake?.server.close();
  gh?.server.close();
});

// ---------------------------------------------------------------------------------------
// Helpers against palaver.

async function api(method, route, { token, body, headers = {} } = {}) {
  const res = await fetch(`${base}/api/v1${route}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, res };
}

/** Signs in at `provider` as `login` in a fresh browser; returns browser and landing. */
async function signIn(provider, login = 'alice', browser = new Browser()) {
  const landing = await browser.signIn(`${base}/api/v1/auth/oidc/${provider}/start`, { login, stopOrigin: base });
  return { browser, ...landing };
}

/** The access token a browser gets from its refresh cookie (what the web client does). */
async function accessToken(browser) {
  const { res } = await browser.request(`${base}/api/v1/auth/refresh?refresh=cookie`, { method: 'POST' });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.refresh_token, undefined, 'the refresh token stays in the cookie');
  return body.access_token;
}

const landed = (location) => new URL(location);

// ---------------------------------------------------------------------------------------

test('the providers are listed for the sign-in buttons, without secrets', async () => {
  const { status, body } = await api('GET', '/auth/providers');
  assert.equal(status, 200);
  assert.deepEqual(body, [
    { id: 'local', display_name: 'Local OP', start_url: '/api/v1/auth/oidc/local/start' },
    { id: 'fake', display_name: 'fake', start_url: '/api/v1/auth/oidc/fake/start' },
    { id: 'github', display_name: 'GitHub', start_url: '/api/v1/auth/oidc/github/start' },
  ]);
  assert.ok(!JSON.stringify(body).includes(CLIENT_SECRET));
});

test('a first sign-in at the real provider creates an account, the next one signs in to it', async () => {
  const first = await signIn('local', 'alice');
  assert.equal(first.location, `${base}/`, 'signed in: back to the web client');
  const cookie = first.callbackCookies.find((c) => c.startsWith('palaver_refresh='));
  assert.ok(cookie, `a refresh cookie: ${first.callbackCookies}`);
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  assert.match(cookie, /Path=\/api\/v1\/auth\/refresh;/);
  const token = await accessToken(first.browser);
  const me = await api('GET', '/users/me', { token });
  assert.equal(me.status, 200);
  assert.equal(me.body.username, 'alice');
  assert.equal(me.body.email, 'alice@example.org', 'the verified e-mail');

  const second = await signIn('local', 'alice');
  assert.equal(second.location, `${base}/`);
  const again = await api('GET', '/users/me', { token: await accessToken(second.browser) });
  assert.equal(again.body.id, me.body.id, 'the same subject is the same account');

  const identities = await api('GET', '/users/me/identities', { token });
  assert.equal(identities.status, 200);
  assert.equal(identities.body.length, 1);
  assert.equal(identities.body[0].provider, 'local');

  // The only way in of an account without a password cannot be unlinked.
  const unlink = await api('DELETE', `/users/me/identities/${identities.body[0].id}`, { token });
  assert.equal(unlink.status, 409);
  assert.equal(unlink.body.error.code, 'last_sign_in_method');
  // No password login either: the account has none.
  const login = await api('POST', '/auth/login', { body: { login: 'alice', password: '' } });
  assert.equal(login.status, 401);
});

test('a tampered state, a replayed callback and a replayed code are refused', async () => {
  const browser = new Browser();
  const { callback } = await browser.signIn(`${base}/api/v1/auth/oidc/local/start`, {
    login: 'alice', stopOrigin: base, interceptCallback: true,
  });
  assert.ok(callback, 'the provider sent the browser back with a code');
  const tampered = new URL(callback);
  tampered.searchParams.set('state', `${tampered.searchParams.get('state')}x`);
  const t = await browser.request(tampered.toString());
  assert.equal(t.res.status, 302);
  assert.equal(t.res.headers.get('location'), '/?auth_error=oauth_state_invalid');

  // The state is that of this browser only: another browser with the same URL is refused.
  const other = await new Browser().request(callback);
  assert.equal(other.res.headers.get('location'), '/?auth_error=oauth_state_invalid');

  // The genuine callback (a browser that had its flow cookie cleared above gets it again
  // from a fresh start, so start over with the same browser and keep the genuine one).
  const fresh = new Browser();
  const { callback: genuine } = await fresh.signIn(`${base}/api/v1/auth/oidc/local/start`, {
    login: 'alice', stopOrigin: base, interceptCallback: true,
  });
  const flowCookie = fresh.cookies(base).get('palaver_oidc');
  const ok = await fresh.request(genuine);
  assert.equal(ok.res.headers.get('location'), '/', 'positive control: the genuine callback signs in');

  // Replaying the same callback (with the flow cookie put back) finds the flow spent.
  fresh.cookies(base).set('palaver_oidc', flowCookie);
  const replay = await fresh.request(genuine);
  assert.equal(replay.res.headers.get('location'), '/?auth_error=oauth_state_invalid');

  // The spent code with a new, valid flow: the provider refuses it.
  const start = await fresh.request(`${base}/api/v1/auth/oidc/local/start`);
  const state = new URL(start.res.headers.get('location')).searchParams.get('state');
  const reused = new URL(genuine);
  reused.searchParams.set('state', state);
  const r = await fresh.request(reused.toString());
  assert.equal(r.res.headers.get('location'), '/?auth_error=oauth_code_rejected');
});

test('ID tokens with a wrong nonce, a wrong audience or an expiry in the past are refused', async () => {
  fake.mode = 'ok';
  const good = await signIn('fake', 'x');
  assert.equal(good.location, `${base}/`, 'positive control: a good ID token signs in');
  const checked = fake.pkceChecked;
  for (const [mode, code] of [
    ['wrong-nonce', 'oidc_nonce_mismatch'],
    ['wrong-aud', 'oidc_id_token_invalid'],
    ['expired', 'oidc_id_token_expired'],
    ['wrong-iss', 'oauth_issuer_mismatch'],
  ]) {
    fake.mode = mode;
    const { location } = await signIn('fake', 'x');
    assert.equal(location, `${base}/?auth_error=${code}`, mode);
  }
  assert.equal(fake.pkceChecked, checked + 3, 'the token requests carried the PKCE verifier');
  // A new signing key (unknown kid): the JWKS is fetched again and the token accepted.
  fake.mode = 'rotated';
  const rotated = await signIn('fake', 'x');
  assert.equal(rotated.location, `${base}/`, 'key rotation');
  fake.mode = 'ok';
});

test('a verified e-mail of an existing account links only after its password is confirmed', async () => {
  const reg = await api('POST', '/auth/register', { body: { username: 'bobby', email: 'bob@example.org', password: PASSWORD } });
  assert.equal(reg.status, 201);
  const first = await signIn('local', 'bob');
  const link = landed(first.location).searchParams.get('link');
  assert.ok(link, `a pending link, not a session: ${first.location}`);
  assert.ok(!first.browser.cookies(base).has('palaver_refresh'), 'not signed in');
  const wrong = await api('POST', '/auth/link/confirm', { body: { token: link, password: 'not the password' } });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.body.error.code, 'invalid_credentials');
  const spent = await api('POST', '/auth/link/confirm', { body: { token: link, password: PASSWORD } });
  assert.equal(spent.status, 400, 'a link token is spent by any attempt');
  assert.equal(spent.body.error.code, 'link_token_invalid');

  const second = await signIn('local', 'bob');
  const link2 = landed(second.location).searchParams.get('link');
  const confirmed = await api('POST', '/auth/link/confirm', { body: { token: link2, password: PASSWORD } });
  assert.equal(confirmed.status, 200, JSON.stringify(confirmed.body));
  assert.equal(confirmed.body.user.id, reg.body.user.id);
  const token = confirmed.body.access_token;
  const identities = await api('GET', '/users/me/identities', { token });
  assert.deepEqual(identities.body.map((i) => [i.provider, i.email]), [['local', 'bob@example.org']]);

  // Linked: the provider signs straight in to that account now.
  const third = await signIn('local', 'bob');
  assert.equal(third.location, `${base}/`);
  const me = await api('GET', '/users/me', { token: await accessToken(third.browser) });
  assert.equal(me.body.id, reg.body.user.id);

  // It has a password, so its only identity may go.
  const unlink = await api('DELETE', `/users/me/identities/${identities.body[0].id}`, { token });
  assert.equal(unlink.status, 204);
});

test('an unverified e-mail never links to the account that has it', async () => {
  const reg = await api('POST', '/auth/register', { body: { username: 'carol', email: 'carol@example.org', password: PASSWORD } });
  assert.equal(reg.status, 201);
  const { location, browser } = await signIn('local', 'mallory');
  assert.equal(location, `${base}/`, 'a new account, not a link');
  const me = await api('GET', '/users/me', { token: await accessToken(browser) });
  assert.notEqual(me.body.id, reg.body.user.id);
  assert.equal(me.body.username, 'mallory');
  assert.match(me.body.email, /@users\.invalid$/, 'the unverified address is not used');
});

test('a signed-in user links another provider, and may then unlink one but not both', async () => {
  const { browser } = await signIn('local', 'dave');
  const token = await accessToken(browser);
  const started = await browser.request(`${base}/api/v1/auth/oidc/fake/link-start`, {
    method: 'POST', headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(started.res.status, 200);
  const { url } = await started.res.json();
  fake.mode = 'ok';
  fake.subject = 'fake-subject-dave';
  const linked = await browser.signIn(url, { stopOrigin: base });
  assert.equal(linked.location, `${base}/?linked=fake`);
  const identities = await api('GET', '/users/me/identities', { token });
  assert.deepEqual(identities.body.map((i) => i.provider), ['local', 'fake']);
  const first = await api('DELETE', `/users/me/identities/${identities.body[0].id}`, { token });
  assert.equal(first.status, 204);
  const last = await api('DELETE', `/users/me/identities/${identities.body[1].id}`, { token });
  assert.equal(last.status, 409);
  assert.equal(last.body.error.code, 'last_sign_in_method');
  // The same provider account cannot be linked to a second Palaver account.
  const other = await signIn('local', 'erin');
  const otherToken = await accessToken(other.browser);
  const again = await other.browser.request(`${base}/api/v1/auth/oidc/fake/link-start`, {
    method: 'POST', headers: { authorization: `Bearer ${otherToken}` },
  });
  const taken = await other.browser.signIn((await again.res.json()).url, { stopOrigin: base });
  assert.equal(taken.location, `${base}/?auth_error=identity_already_linked`);
});

test('GitHub sign-in (a local stand-in: GitHub cannot be reached from CI) uses only a verified e-mail', async () => {
  const squatter = await api('POST', '/auth/register', { body: { username: 'squatter', email: 'octo-primary@example.org', password: PASSWORD } });
  assert.equal(squatter.status, 201);
  const { location, browser } = await signIn('github');
  assert.equal(location, `${base}/`, 'the unverified primary address does not link to its account');
  const me = await api('GET', '/users/me', { token: await accessToken(browser) });
  assert.equal(me.body.username, 'octocat');
  assert.equal(me.body.email, 'octo@example.org', 'the verified address');
  const again = await signIn('github');
  const me2 = await api('GET', '/users/me', { token: await accessToken(again.browser) });
  assert.equal(me2.body.id, me.body.id, 'the GitHub user id is the subject');
});

test('an unknown provider and a provider error end at the web client with a code', async () => {
  const unknown = await new Browser().request(`${base}/api/v1/auth/oidc/nope/start`);
  assert.equal(unknown.res.status, 302);
  assert.equal(unknown.res.headers.get('location'), '/?auth_error=unknown_provider');
  const browser = new Browser();
  const start = await browser.request(`${base}/api/v1/auth/oidc/local/start`);
  const state = new URL(start.res.headers.get('location')).searchParams.get('state');
  const denied = await browser.request(`${base}/api/v1/auth/oidc/local/callback?error=access_denied&state=${state}`);
  assert.equal(denied.res.headers.get('location'), '/?auth_error=oauth_provider_error');
  const linkStart = await api('POST', '/auth/oidc/local/link-start');
  assert.equal(linkStart.status, 401, 'linking needs a signed-in user');
});

test('the refresh cookie: asked for on login, accepted by refresh, cleared by logout', async () => {
  const reg = await api('POST', '/auth/register?refresh=cookie', { body: { username: 'frank', email: 'frank@example.org', password: PASSWORD } });
  assert.equal(reg.status, 201);
  assert.equal(reg.body.refresh_token, undefined, 'not in the body');
  const browser = new Browser();
  const login = await browser.request(`${base}/api/v1/auth/login?refresh=cookie`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login: 'frank', password: PASSWORD }),
  });
  const body = await login.res.json();
  assert.equal(login.res.status, 200);
  assert.equal(body.refresh_token, undefined);
  assert.ok(browser.cookies(base).has('palaver_refresh'));
  const token = await accessToken(browser);
  // The API client flow is unchanged: a body token, answered in the body.
  const plain = await api('POST', '/auth/login', { body: { login: 'frank', password: PASSWORD } });
  const rotated = await api('POST', '/auth/refresh', { body: { refresh_token: plain.body.refresh_token } });
  assert.equal(rotated.status, 200);
  assert.ok(rotated.body.refresh_token);
  const out = await browser.request(`${base}/api/v1/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  assert.equal(out.res.status, 204);
  assert.ok(out.setCookies.some((c) => /^palaver_refresh=;.*Max-Age=0/.test(c)), `${out.setCookies}`);
  assert.ok(!browser.cookies(base).has('palaver_refresh'));
  const none = await browser.request(`${base}/api/v1/auth/refresh?refresh=cookie`, { method: 'POST' });
  assert.equal(none.res.status, 401);
});

// ---------------------------------------------------------------------------------------
// The web client in Chromium: sign in through the provider's pages (linking to an
// existing password account), set up two-factor codes, sign out, sign in with a code.

test('the web client: sign in through the provider\'s pages, link, two-factor codes, sign out, sign in with a code', async () => {
  // Frida has a password account; the provider vouches for the same address.
  const made = await api('POST', '/auth/register', {
    body: { username: 'frida', email: 'frida@example.org', password: PASSWORD },
  });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: !process.env.HEADFUL,
    args: ['--no-sandbox'],
  });
  const problems = [];
  try {
    const context = await browser.newContext();
    context.setDefaultTimeout(20_000);
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy|Uncaught/i.test(m.text())) problems.push(m.text());
    });
    const tid = (id) => page.getByTestId(id);
    // Through the provider's own pages (oidc-provider's login and consent forms, or
    // none when its session and grant already exist) until back at Palaver.
    const throughProvider = async () => {
      for (let hop = 0; hop < 8 && !page.url().startsWith(base); hop++) {
        const login = page.locator('input[name=login]');
        if (await login.isVisible().catch(() => false)) {
          await login.fill('frida');
          await page.locator('input[name=password]').fill('any');
        }
        const submit = page.locator('button[type=submit]');
        if (await submit.isVisible().catch(() => false)) {
          await Promise.all([page.waitForNavigation(), submit.click()]);
        } else {
          await page.waitForNavigation({ timeout: 5_000 }).catch(() => {});
        }
      }
      assert.ok(page.url().startsWith(base), `back at Palaver: ${page.url()}`);
    };

    await page.goto(base);
    await Promise.all([page.waitForNavigation(), page.locator('[data-testid=provider-sign-in][data-provider=local]').click()]);
    await throughProvider();
    // Back at Palaver: the address belongs to Frida's account, which confirms by password.
    await tid('link-form').waitFor();
    await tid('link-password').fill(PASSWORD);
    await tid('link-submit').click();
    await page.locator('[data-testid=conn-status][data-state=online]').waitFor();
    assert.equal(await tid('me-name').textContent(), 'frida');
    // No refresh token where a script could read it.
    const stored = await page.evaluate(() => sessionStorage.getItem('palaver.session'));
    assert.ok(!stored.includes('refresh'), stored);
    assert.equal(await page.evaluate(() => document.cookie), '', 'the cookies are HttpOnly');

    // Two-factor codes, set up in Security.
    await tid('security').click();
    await page.locator('[data-testid=identity]', { hasText: 'Local OP' }).waitFor();
    await tid('tf-password').fill(PASSWORD);
    await tid('tf-begin').click();
    await tid('tf-confirm-form').waitFor();
    const secret = (await tid('tf-secret').textContent()).trim();
    const step = Math.floor(Date.now() / 30_000);
    await tid('tf-confirm-code').fill(totp(secret, step));
    await tid('tf-confirm').click();
    await tid('tf-recovery').waitFor();
    await page.keyboard.press('Escape');

    // Sign out; sign in again with the password and a code.
    await tid('logout').click();
    await tid('login-form').waitFor();
    await tid('login-username').fill('frida');
    await tid('login-password').fill(PASSWORD);
    await tid('login-submit').click();
    await tid('login-code').waitFor();
    await tid('login-code').fill(totp(secret, step + 1));
    await tid('login-submit').click();
    await page.locator('[data-testid=conn-status][data-state=online]').waitFor();
    assert.equal(await tid('me-name').textContent(), 'frida');

    // Signing in with the provider is not a password login: no code asked.
    await tid('logout').click();
    await tid('login-form').waitFor();
    await Promise.all([page.waitForNavigation(), page.locator('[data-testid=provider-sign-in][data-provider=local]').click()]);
    await throughProvider();
    await page.locator('[data-testid=conn-status][data-state=online]').waitFor();
    assert.equal(await tid('me-name').textContent(), 'frida');
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
