// Header forwarding of every MCP era: 2026-07-28 request headers (Mcp-Method, Mcp-Name, unknown
// Mcp-Param-*), trace context and Last-Event-ID arrive upstream unchanged; error bodies come back
// byte for byte (clients detect the era from them).
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OMNI, TestEnv, openStream, request, waitFor } from './lib/harness.mjs';
import { getDataMessage, rawSession } from './lib/mcp.mjs';

const env = new TestEnv('headers');
let fake;
let gw;

before(async () => {
  fake = await env.startFake();
  gw = await env.startGateway({ upstreamUrl: fake.mcpUrl });
});
after(() => env.cleanup());
beforeEach(() => fake.reset());

const HEADERS_2026 = {
  Accept: 'application/json, text/event-stream',
  'Content-Type': 'application/json',
  'MCP-Protocol-Version': '2026-07-28',
  'Mcp-Method': 'tools/call',
  'Mcp-Name': 'getData',
  'Mcp-Param-Region': 'eu',
  'Mcp-Param-Some-Future-Thing': 'x y;z=1',
  traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
  tracestate: 'omni=t61rcWkgMzE,other=00f067aa0ba902b7',
};

describe('2026-07-28 stateless requests', () => {
  it('MCP-Protocol-Version, Mcp-Method, Mcp-Name, Mcp-Param-*, traceparent, tracestate arrive unchanged', async () => {
    const body = JSON.stringify(getDataMessage(7, 'revenue in eu', { region: 'eu' }));
    const res = await gw.request({ member: 'alice', headers: HEADERS_2026, body });

    const [up] = await fake.mcpRequests();
    assert.ok(up, 'nothing reached upstream');
    for (const [name, value] of Object.entries(HEADERS_2026)) {
      assert.equal(up.headers[name.toLowerCase()], value, `upstream header ${name}`);
    }
    assert.equal(up.headers.authorization, `Bearer ${OMNI.users.alice.pat}`);
    assert.equal(up.headers.host, `127.0.0.1:${fake.port}`);
    assert.deepEqual(up.body, JSON.parse(body), 'body reached upstream unchanged');
    assert.ok(res.status >= 200, 'got an answer');
  });

  it('the upstream\'s error answer reaches the client byte for byte', async () => {
    const body = JSON.stringify(getDataMessage(8, 'revenue in eu', { region: 'eu' }));
    const viaGateway = await gw.request({ member: 'alice', headers: HEADERS_2026, body });
    const direct = await request(fake.mcpUrl, {
      method: 'POST', body, headers: { ...HEADERS_2026, Authorization: `Bearer ${OMNI.users.alice.pat}` },
    });

    assert.equal(direct.status, 400, `the fake (SDK 1.x) answers 2026-07-28 with 400: ${direct.body}`);
    assert.equal(viaGateway.status, direct.status, `gateway: ${viaGateway.status} ${viaGateway.body}`);
    assert.equal(viaGateway.body, direct.body, 'body byte for byte');
    assert.equal(viaGateway.headers['content-type'], direct.headers['content-type']);
  });
});

describe('session-era headers', () => {
  it('Last-Event-ID on a GET reaches upstream', async () => {
    const s = await rawSession(gw.url, { ca: gw.ca, headers: gw.auth('alice') });
    const get = await openStream(gw.url, {
      method: 'GET', ca: gw.ca,
      headers: { ...gw.auth('alice'), Accept: 'text/event-stream', 'Mcp-Session-Id': s.sessionId,
        'MCP-Protocol-Version': s.protocolVersion, 'Last-Event-ID': 'evt-42', traceparent: HEADERS_2026.traceparent },
    });
    try {
      const up = await waitFor(async () => (await fake.mcpRequests()).find((r) => r.method === 'GET'), { message: 'upstream GET' });
      assert.equal(up.headers['last-event-id'], 'evt-42');
      assert.equal(up.headers.traceparent, HEADERS_2026.traceparent);
      assert.equal(up.headers['mcp-session-id'], s.sessionId);
    } finally {
      get.close();
    }
  });

  it('a missing session id gets the upstream\'s 400 body unchanged', async () => {
    const body = JSON.stringify(getDataMessage(9));
    const headers = { Accept: HEADERS_2026.Accept, 'Content-Type': 'application/json', 'MCP-Protocol-Version': '2025-11-25' };
    const viaGateway = await gw.request({ member: 'alice', headers, body });
    const direct = await request(fake.mcpUrl, { method: 'POST', body, headers: { ...headers, Authorization: `Bearer ${OMNI.users.alice.pat}` } });

    assert.equal(direct.status, 400, direct.body);
    assert.equal(viaGateway.status, 400, viaGateway.body);
    assert.equal(viaGateway.body, direct.body);
  });

  it('the upstream\'s Mcp-Session-Id comes back unchanged and is what upstream sees next', async () => {
    const s = await rawSession(gw.url, { ca: gw.ca, headers: gw.auth('alice') });
    const sessions = JSON.parse((await request(`${fake.base}/_fake/sessions`)).body);
    assert.ok(sessions.some((x) => x.sessionId === s.sessionId), `gateway gave ${s.sessionId}, upstream has ${JSON.stringify(sessions)}`);
  });
});
