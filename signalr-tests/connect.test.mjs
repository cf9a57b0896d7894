// Connecting: negotiate, skipNegotiation, credentials, the connection token's rules, the
// handshake, and what the hub refuses (stream invocations) — the spec's "Connecting".

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Palaver, text, NO_SUCH_ID } from './harness.mjs';

describe('connecting to /hubs/chat', () => {
  let srv, alice, bob, room;
  before(async () => {
    srv = await Palaver.start('connect');
    alice = await srv.user('alice');
    bob = await srv.user('bob');
    room = await srv.roomWith(alice, bob);
  });
  after(async () => {
    await srv?.close();
  });

  it('the official client connects with negotiate (the default) and can invoke', async () => {
    const a = await srv.signalr(alice);
    assert.equal(a.state, 'Connected');
    assert.equal(typeof a.connectionId, 'string', 'negotiate gave a connection id');
    assert.ok(a.connectionId.length > 0);
    const m = await a.invoke('SendMessage', room.id, text('over negotiate'));
    assert.equal(m.channelId, room.id);
    assert.equal(m.senderId, alice.id);
    await a.close();
  });

  it('the official client connects with skipNegotiation over WebSockets and can invoke', async () => {
    const a = await srv.signalr(alice, { skipNegotiation: true });
    assert.equal(a.state, 'Connected');
    const content = text('skip negotiation');
    const m = await a.invoke('SendMessage', room.id, content);
    assert.equal(m.text, content);
    await a.waitFor('ReceiveMessage', ([ch, x]) => ch === room.id && x.id === m.id);
    await a.close();
  });

  it('connects with an API key as the access token', async () => {
    const key = await srv.apiKey(alice);
    const a = await srv.signalr(alice, { token: key, label: 'alice-api-key' });
    const m = await a.invoke('SendMessage', room.id, text('api key'));
    assert.equal(m.senderId, alice.id);
    await a.close();
  });

  it('a bad token is refused: start() rejects, with negotiate and without', async () => {
    const bad = `${alice.token.slice(0, -4)}AAAA`;
    const c1 = srv.signalrConnection(alice, { token: bad, label: 'bad-token' });
    await assert.rejects(c1.start(), /401|Unauthorized/i);
    assert.equal(c1.state, 'Disconnected');
    const c2 = srv.signalrConnection(alice, { token: 'not-a-token', skipNegotiation: true, label: 'bad-token-skip' });
    await assert.rejects(c2.start());
    assert.equal(c2.state, 'Disconnected');
  });

  it('a missing token is refused: start() rejects, with negotiate and without', async () => {
    const c1 = srv.signalrConnection(null, { token: null, label: 'no-token' });
    await assert.rejects(c1.start(), /401|Unauthorized/i);
    const c2 = srv.signalrConnection(null, { token: null, skipNegotiation: true, label: 'no-token-skip' });
    await assert.rejects(c2.start());
    assert.equal(c2.state, 'Disconnected');
  });

  it('a logged-out session is refused', async () => {
    const session = await srv.login(alice);
    const { status } = await srv.api('POST', '/auth/logout', { token: session.token });
    assert.equal(status, 204);
    const c = srv.signalrConnection(session, { label: 'logged-out' });
    await assert.rejects(c.start(), /401|Unauthorized/i);
  });

  it('POST negotiate?negotiateVersion=1 answers the documented JSON: a connection token, WebSockets/Text only', async () => {
    const { status, body } = await srv.negotiate({ token: alice.token });
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(typeof body.connectionId, 'string');
    assert.ok(body.connectionId.length > 0);
    assert.equal(typeof body.connectionToken, 'string');
    assert.ok(body.connectionToken.length > 0);
    assert.notEqual(body.connectionToken, body.connectionId, 'the token is the secret, the id is public');
    assert.equal(body.negotiateVersion, 1);
    assert.deepEqual(body.availableTransports, [{ transport: 'WebSockets', transferFormats: ['Text'] }]);
    assert.ok(!body.useStatefulReconnect, `useStatefulReconnect only when asked: ${JSON.stringify(body)}`);

    const again = await srv.negotiate({ token: alice.token });
    assert.notEqual(again.body.connectionToken, body.connectionToken, 'every negotiate gives a new token');
    assert.notEqual(again.body.connectionId, body.connectionId);

    const stateful = await srv.negotiate({ token: alice.token, stateful: true });
    assert.equal(stateful.status, 200);
    assert.equal(stateful.body.useStatefulReconnect, true);
  });

  it('negotiate takes the credential as X-API-Key or ?access_token= too', async () => {
    const key = await srv.apiKey(alice);
    const byHeader = await srv.negotiate({ headers: { 'x-api-key': key } });
    assert.equal(byHeader.status, 200, JSON.stringify(byHeader.body));
    const byQuery = await srv.negotiate({ query: { access_token: alice.token } });
    assert.equal(byQuery.status, 200, JSON.stringify(byQuery.body));
  });

  it('negotiate without a credential or with a bad one is 401 {error: {code, message}}', async () => {
    for (const token of [undefined, 'garbage']) {
      const { status, body } = await srv.negotiate({ token });
      assert.equal(status, 401, JSON.stringify(body));
      assert.equal(body?.error?.code, 'unauthorized', JSON.stringify(body));
      assert.equal(typeof body.error.message, 'string');
    }
  });

  it('a browser-style upgrade with ?access_token= (no header) works', async () => {
    const n = await srv.negotiate({ token: alice.token });
    const q = new URLSearchParams({ id: n.body.connectionToken, access_token: alice.token });
    const r = await srv.upgrade(`/hubs/chat?${q}`);
    assert.equal(r.status, 101, JSON.stringify(r.body));
  });

  it('a connection token is single-use: a second WebSocket with the same id is 404', async () => {
    const n = await srv.negotiate({ token: alice.token });
    const id = n.body.connectionToken;
    const first = await srv.raw(alice, { id, label: 'first-use' });
    assert.deepEqual(first.handshakeResponse, {});
    const completion = await first.invoke('SendMessage', [room.id, text('first use')]);
    assert.equal(completion.error, undefined, JSON.stringify(completion));
    const second = await srv.upgrade(`/hubs/chat?id=${encodeURIComponent(id)}`, { authorization: `Bearer ${alice.token}` });
    assert.equal(second.status, 404, JSON.stringify(second.body));
    first.close();
    await first.closed;
    // Also after the first socket closed.
    const third = await srv.upgrade(`/hubs/chat?id=${encodeURIComponent(id)}`, { authorization: `Bearer ${alice.token}` });
    assert.equal(third.status, 404, JSON.stringify(third.body));
  });

  it('a connection token is bound to its user: another user presenting it gets 404', async () => {
    const n = await srv.negotiate({ token: alice.token });
    const id = n.body.connectionToken;
    const r = await srv.upgrade(`/hubs/chat?id=${encodeURIComponent(id)}`, { authorization: `Bearer ${bob.token}` });
    assert.equal(r.status, 404, JSON.stringify(r.body));
  });

  it('an unknown id is 404, a bad token on the upgrade 401, a foreign Origin 403', async () => {
    const auth = { authorization: `Bearer ${alice.token}` };
    const unknown = await srv.upgrade(`/hubs/chat?id=${NO_SUCH_ID}`, auth);
    assert.equal(unknown.status, 404, JSON.stringify(unknown.body));
    const n = await srv.negotiate({ token: alice.token });
    const badToken = await srv.upgrade(`/hubs/chat?id=${encodeURIComponent(n.body.connectionToken)}`, { authorization: 'Bearer nope' });
    assert.equal(badToken.status, 401, JSON.stringify(badToken.body));
    const noToken = await srv.upgrade('/hubs/chat');
    assert.equal(noToken.status, 401, JSON.stringify(noToken.body));
    const n2 = await srv.negotiate({ token: alice.token });
    const origin = await srv.upgrade(`/hubs/chat?id=${encodeURIComponent(n2.body.connectionToken)}`, { ...auth, origin: 'https://evil.example' });
    assert.equal(origin.status, 403, JSON.stringify(origin.body));
  });

  it('a handshake asking for messagepack gets a handshake error and the socket closes', async () => {
    const c = await srv.raw(alice, { handshake: { protocol: 'messagepack', version: 1 }, label: 'messagepack' });
    assert.equal(typeof c.handshakeResponse.error, 'string', `handshake error: ${JSON.stringify(c.handshakeResponse)}`);
    assert.ok(c.handshakeResponse.error.length > 0);
    const closed = await c.closed;
    assert.ok(closed.code >= 1000, `closed: ${JSON.stringify(closed)}`);
  });

  it('a JSON handshake of an unknown version gets a handshake error and the socket closes', async () => {
    const c = await srv.raw(alice, { handshake: { protocol: 'json', version: 99 }, label: 'json-v99' });
    assert.equal(typeof c.handshakeResponse.error, 'string', `handshake error: ${JSON.stringify(c.handshakeResponse)}`);
    await c.closed;
  });

  it('a raw client completing the handshake gets {} then its invocations answered, the record separator after each', async () => {
    const c = await srv.raw(alice, { id: null, label: 'raw-no-negotiate' });
    assert.deepEqual(c.handshakeResponse, {});
    const done = await c.invoke('SendMessage', [room.id, text('raw')]);
    assert.equal(done.type, 3);
    assert.equal(done.error, undefined, JSON.stringify(done));
    assert.equal(done.result.channelId, room.id);
    assert.equal(c.inbox.all('$garbage').length, 0, 'everything the server sent parsed as records');
    assert.equal(c.buffer, '', 'no partial record left over: every record ended with RS');
    c.close();
  });

  it('a stream invocation completes with a "not supported" error; the connection stays usable', async () => {
    const a = await srv.signalr(alice);
    const err = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the stream neither errored nor completed')), 20_000);
      a.connection.stream('SendMessage', room.id, text('as a stream')).subscribe({
        next: (item) => {
          clearTimeout(timer);
          reject(new Error(`a stream item arrived: ${JSON.stringify(item)}`));
        },
        complete: () => {
          clearTimeout(timer);
          reject(new Error('the stream completed without an error'));
        },
        error: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
    assert.match(err.message, /^bad_request: .*not supported/);
    const m = await a.invoke('SendMessage', room.id, text('after the stream'));
    assert.equal(m.channelId, room.id);
    assert.equal(a.state, 'Connected');
    await a.close();
  });
});
