// Bad input: oversize bodies, foreign Origins, wrong methods and paths, malformed and slow
// requests. Each gets a JSON-RPC error, nothing reaches Omni, and the gateway keeps serving.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestEnv, assertNothingUpstream, assertRpcError, rawConnect, curl } from './lib/harness.mjs';
import { initializeMessage } from './lib/mcp.mjs';

const env = new TestEnv('bad-input');
let fake;
let gw;
const MAX_BODY = 1024;
const CLIENT_TIMEOUT_MS = 1000;

before(async () => {
  fake = await env.startFake();
  gw = await env.startGateway({
    upstreamUrl: fake.mcpUrl,
    config: { max_body_bytes: MAX_BODY, allowed_origins: ['https://app.example'], client_timeout_ms: CLIENT_TIMEOUT_MS },
  });
});
after(() => env.cleanup());
beforeEach(() => fake.reset());

/** An initialize request whose JSON is exactly `size` bytes. */
function initializeOfSize(id, size) {
  const msg = initializeMessage(id);
  msg.params.clientInfo.name = '';
  const pad = size - Buffer.byteLength(JSON.stringify(msg));
  assert.ok(pad >= 0);
  msg.params.clientInfo.name = 'p'.repeat(pad);
  const text = JSON.stringify(msg);
  assert.equal(Buffer.byteLength(text), size);
  return text;
}

/** Parses a raw HTTP/1.1 response text into { status, headers, body }. */
function parseRawResponse(text) {
  const end = text.indexOf('\r\n\r\n');
  const head = end < 0 ? text : text.slice(0, end);
  const [statusLine, ...lines] = head.split('\r\n');
  const headers = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let body = end < 0 ? '' : text.slice(end + 4);
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    let out = '';
    for (let rest = body; ;) {
      const nl = rest.indexOf('\r\n');
      const size = parseInt(rest.slice(0, nl), 16);
      if (!size) break;
      out += rest.slice(nl + 2, nl + 2 + size);
      rest = rest.slice(nl + 2 + size + 2);
    }
    body = out;
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body };
}

describe('body size', () => {
  it('a body over max_body_bytes (Content-Length) → 413 -32006, nothing upstream', async () => {
    const res = await gw.request({ member: 'alice', body: initializeOfSize(1, 4 * MAX_BODY) });

    assertRpcError(res, { status: 413, code: -32006, ids: [1, null] });
    await assertNothingUpstream(fake, 'oversize body');
  });

  it('a chunked body over max_body_bytes → 413 -32006, nothing upstream', async () => {
    const res = await gw.request({ member: 'alice', body: initializeOfSize(2, 4 * MAX_BODY), chunked: true });

    assertRpcError(res, { status: 413, code: -32006, ids: [2, null] });
    await assertNothingUpstream(fake, 'oversize chunked body');
  });

  it('a body of exactly max_body_bytes is forwarded', async () => {
    const res = await gw.request({ member: 'alice', body: initializeOfSize(3, MAX_BODY) });

    assert.equal(res.status, 200, res.body);
    const [up] = await fake.mcpRequests();
    assert.equal(up.body.params.clientInfo.name.length > 0, true);
  });
});

describe('Origin', () => {
  for (const origin of ['https://evil.example', 'https://app.example.evil.example', 'http://app.example', 'null']) {
    it(`foreign Origin ${origin} → 403 -32003, nothing upstream`, async () => {
      const res = await gw.request({ member: 'alice', headers: { Origin: origin }, body: initializeMessage(4) });

      assertRpcError(res, { status: 403, code: -32003, id: 4 });
      await assertNothingUpstream(fake, `Origin ${origin}`);
    });
  }

  it('an allowed Origin passes', async () => {
    const res = await gw.request({ member: 'alice', headers: { Origin: 'https://app.example' }, body: initializeMessage(5) });

    assert.equal(res.status, 200, res.body);
    assert.equal((await fake.mcpRequests()).length, 1);
  });

  it('no Origin (a non-browser client) passes', async () => {
    const res = await gw.request({ member: 'alice', body: initializeMessage(6) });
    assert.equal(res.status, 200, res.body);
  });
});

describe('methods and paths', () => {
  for (const method of ['PUT', 'PATCH']) {
    it(`${method} → 405 with Allow, nothing upstream`, async () => {
      const res = await gw.request({ method, member: 'alice', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(initializeMessage(7)) });

      assertRpcError(res, { status: 405, code: -32005, ids: [7, null] });
      const allow = String(res.headers.allow ?? '').split(',').map((m) => m.trim()).sort();
      assert.deepEqual(allow, ['DELETE', 'GET', 'POST'], `Allow: ${res.headers.allow}`);
      await assertNothingUpstream(fake, method);
    });
  }

  it('curl -X PUT gets the same 405', async () => {
    const res = await curl(gw.url, { ca: gw.caFile, args: ['-X', 'PUT', '-H', `Authorization: ${gw.auth('alice').Authorization}`] });
    assert.equal(res.status, 405);
    assert.match(res.headers.allow ?? '', /POST/);
  });

  for (const path of ['/other', '/mcp/extra', '/mcpx', '/', '/mcp/https']) {
    it(`path ${path} → 404 -32004, nothing upstream`, async () => {
      const res = await gw.request({ path, member: 'alice', body: initializeMessage(8) });

      assertRpcError(res, { status: 404, code: -32004, ids: [8, null] });
      await assertNothingUpstream(fake, path);
    });
  }
});

describe('malformed and slow requests', () => {
  it('a malformed request head → 400 -32600, and the gateway keeps serving', async () => {
    for (const head of ['GARBAGE\r\n\r\n', 'POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nNo colon here\r\n\r\n']) {
      const conn = await rawConnect(gw.port, { ca: gw.ca });
      conn.socket.write(head);
      const { data } = await withDeadline(conn.closed, 10000, `the gateway to answer ${JSON.stringify(head)} and close`, () => conn.socket.destroy());
      const res = parseRawResponse(data);
      assertRpcError(res, { status: 400, code: -32600, id: null }, JSON.stringify(head));
    }
    await assertNothingUpstream(fake, 'malformed');
    const ok = await gw.request({ member: 'alice', body: initializeMessage(9) });
    assert.equal(ok.status, 200, ok.body);
  });

  it('half a request head: 408 (or close) after client_timeout_ms, while another connection is served', async () => {
    const slow = await rawConnect(gw.port, { ca: gw.ca });
    slow.socket.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nContent-Type: application/json\r\n`);

    const ok = await gw.request({ member: 'alice', body: initializeMessage(10) });
    assert.equal(ok.status, 200, ok.body);
    assert.equal(slow.isClosed(), false, 'the slow connection was dropped before its time-out');

    const { data } = await withDeadline(slow.closed, 10 * CLIENT_TIMEOUT_MS, 'the gateway to give up on the slow client', () => slow.socket.destroy());
    if (data) assertRpcError(parseRawResponse(data), { status: 408, code: -32008, id: null }, 'slow head');
    assert.equal((await fake.mcpRequests()).length, 1, 'only the normal request reached upstream');
  });

  it('a body that stops half-way: 408 (or close) after client_timeout_ms, nothing upstream', async () => {
    const slow = await rawConnect(gw.port, { ca: gw.ca });
    const body = JSON.stringify(initializeMessage(11));
    slow.socket.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nAuthorization: ${gw.auth('alice').Authorization}\r\n`
      + `Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`);

    const { data } = await withDeadline(slow.closed, 10 * CLIENT_TIMEOUT_MS, 'the gateway to give up on the slow body', () => slow.socket.destroy());
    if (data) assertRpcError(parseRawResponse(data), { status: 408, code: -32008, ids: [11, null] }, 'slow body');
    await assertNothingUpstream(fake, 'slow body');
  });

  it('a TCP connection that never starts TLS is closed after the time-out', async () => {
    const idle = await rawConnect(gw.port, { handshake: false });
    const ok = await gw.request({ member: 'alice', body: initializeMessage(12) });
    assert.equal(ok.status, 200, ok.body);

    await withDeadline(idle.closed, 10 * CLIENT_TIMEOUT_MS, 'the gateway to close a connection without TLS handshake', () => idle.socket.destroy());
  });
});

/** Resolves with promise, or rejects after ms (calling onTimeout first). */
function withDeadline(promise, ms, what, onTimeout) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => { onTimeout?.(); reject(new Error(`timed out after ${ms} ms waiting for ${what}`)); }, ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
