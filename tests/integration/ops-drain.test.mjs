// SIGTERM (issue 6): the gateway stops accepting connections, closes idle ones, says it is not
// ready (/readyz 503 "draining"), lets a stream in flight (a getData the fake holds) finish on
// its connection, and exits 0 once it has; with a stream that never ends it exits 0 after
// drain_timeout_ms; a second SIGTERM exits at once.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { OMNI, TestEnv, rawConnect, waitFor } from './lib/harness.mjs';
import { getDataMessage, rawSession, toolJson } from './lib/mcp.mjs';
import { adminGet, adminUrl } from './lib/prometheus.mjs';

const env = new TestEnv('ops-drain');
let fake;

before(async () => {
  fake = await env.startFake();
});
after(async () => {
  await fake?.release().catch(() => {});
  await env.cleanup();
});
beforeEach(() => fake.reset());

/** Resolves to the gateway's exit status, or throws if it is still running after timeoutMs. */
async function exitWithin(gw, timeoutMs) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`gateway ${gw.name} still running ${timeoutMs} ms after SIGTERM\n--- stderr ---\n${gw.stderr()}`)), timeoutMs);
  });
  try {
    return await Promise.race([gw.proc.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Tries a new TLS connection to port and resolves to what became of it within waitMs:
 * 'refused' (connect failed), 'closed' (closed or reset before the handshake completed),
 * 'handshake' (TLS completed: the gateway accepted it), or 'pending' (nothing happened).
 */
function tryConnect(port, ca, waitMs) {
  return new Promise((resolve) => {
    const tcp = net.connect({ host: '127.0.0.1', port });
    let done = false;
    const finish = (what) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      tcp.destroy();
      resolve(what);
    };
    const timer = setTimeout(() => finish('pending'), waitMs);
    tcp.on('error', (err) => finish(err.code === 'ECONNREFUSED' ? 'refused' : 'closed'));
    tcp.on('connect', () => {
      const s = tls.connect({ socket: tcp, ca, servername: 'localhost' });
      s.on('secureConnect', () => finish('handshake'));
      s.on('error', () => finish('closed'));
      s.on('close', () => finish('closed'));
    });
  });
}

/** A held getData of alice on its own SSE stream, with its first event ("getData started") in. */
async function heldGetData(gw, id) {
  const alice = await rawSession(gw.url, { ca: gw.ca, headers: gw.auth('alice') });
  await fake.hold();
  const held = await alice.stream(getDataMessage(id));
  assert.equal(held.status, 200);
  assert.equal((await held.nextEvent()).json().method, 'notifications/message');
  return held;
}

/** A connection that made one request and is now idle (kept alive). */
async function idleConnection(gw) {
  const c = await rawConnect(gw.port, { ca: gw.ca });
  c.socket.write('GET /not-mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n');
  await waitFor(() => /\r\n\r\n[\s\S]*\}/.test(c.received()), { message: 'the 404 on the idle connection' });
  assert.match(c.received(), /^HTTP\/1\.1 404/);
  assert.equal(c.isClosed(), false, 'kept alive');
  return c;
}

describe('SIGTERM during an open stream', () => {
  it('stops accepting, closes idle connections, /readyz 503; the held stream finishes when released; exit 0', async () => {
    const gw = await env.startGateway({ upstreamUrl: fake.mcpUrl, config: { admin: { listen: '127.0.0.1:0' }, drain_timeout_ms: 60000 }, name: 'gateway-drain' });
    try {
      const admin = await adminUrl(gw);
      await waitFor(async () => (await adminGet(admin, '/readyz')).status === 200, { timeoutMs: 10000, message: '/readyz 200 before the signal' });
      const held = await heldGetData(gw, 9);
      const idle = await idleConnection(gw);

      const mark = gw.stderr().length;
      gw.signal('SIGTERM');
      await gw.waitForLog(/no longer accepting; draining/, { since: mark });

      // Not ready any more, and it says why; alive still.
      const ready = await adminGet(admin, '/readyz');
      assert.equal(ready.status, 503, ready.body);
      assert.match(ready.body, /draining/);
      // The idle connection is closed; a new one is not served (asserted below, after the
      // stream, so that a failure here does not hide how the drain itself went).
      await waitFor(() => idle.isClosed(), { timeoutMs: 3000, message: 'the idle connection closed at SIGTERM' });
      const fresh = await tryConnect(gw.port, gw.ca, 3000);
      assert.notEqual(fresh, 'handshake', 'a new connection was accepted during the drain');
      assert.equal(held.isEnded(), false, `the held stream was cut at SIGTERM: ${held.text()}`);
      assert.equal(gw.proc.exitInfo(), null, 'the gateway waits for the stream');

      await fake.release();
      const events = await held.rest();
      const result = events.map((e) => e.json()).find((m) => m.id === 9);
      assert.ok(result?.result, `the held getData finished during the drain: ${held.text()}`);
      assert.equal(toolJson(result.result).runAs, OMNI.users.alice.id);
      assert.equal((await held.ended).error, null);

      const exit = await exitWithin(gw, 10000);
      assert.deepEqual(exit, { code: 0, signal: null }, gw.stderr());
      assert.match(gw.stderr().slice(mark), /stopped/);
      assert.doesNotMatch(gw.stderr().slice(mark), /drain time-out/);

      // Stopping to accept means a client (or a load balancer's health check) that connects
      // now learns it at once and goes to another replica; a connection left waiting in the
      // listen backlog hangs until the drain ends.
      assert.ok(['refused', 'closed'].includes(fresh), `a new connection during the drain must be refused or closed at once; it was ${fresh === 'pending' ? 'left pending (TCP connected, TLS handshake unanswered for 3 s)' : fresh}`);
    } finally {
      await fake.release();
      await gw.stop(); // it ended as asked (or is ended now): not a crash for cleanup
    }
  });

  it('a stream that never ends: exit 0 after drain_timeout_ms (500), the client\'s stream is closed', async () => {
    const gw = await env.startGateway({ upstreamUrl: fake.mcpUrl, config: { drain_timeout_ms: 500 }, name: 'gateway-drain-timeout' });
    const held = await heldGetData(gw, 10);

    const mark = gw.stderr().length;
    const t0 = Date.now();
    gw.signal('SIGTERM');
    const exit = await exitWithin(gw, 10000);
    const elapsed = Date.now() - t0;
    assert.deepEqual(exit, { code: 0, signal: null }, gw.stderr());
    assert.ok(elapsed >= 450, `exited after ${elapsed} ms, before the 500 ms drain time-out`);
    assert.match(gw.stderr().slice(mark), /drain time-out: closing 1 connection/);
    await held.ended;
    assert.equal(held.text().includes('"id":10,"result"'), false, 'no result: the stream was cut');
    await waitFor(async () => (await fake.events()).some((e) => e.type === 'response-closed-early'), { message: 'the upstream transfer was closed' });
    await gw.stop();
  });

  it('a second SIGTERM during the drain exits 0 at once', async () => {
    const gw = await env.startGateway({ upstreamUrl: fake.mcpUrl, config: { drain_timeout_ms: 60000 }, name: 'gateway-drain-twice' });
    const held = await heldGetData(gw, 11);
    const mark = gw.stderr().length;
    gw.signal('SIGTERM');
    await gw.waitForLog(/no longer accepting; draining/, { since: mark });
    gw.signal('SIGTERM');
    const exit = await exitWithin(gw, 5000);
    assert.deepEqual(exit, { code: 0, signal: null }, gw.stderr());
    await held.ended;
    await gw.stop();
  });
});
