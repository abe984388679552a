// CORS for MCP clients in a browser: the gateway answers preflights itself (nothing reaches
// Omni), lets an allowed origin read its answers (relayed or its own errors) and the
// Mcp-Session-Id header, and refuses the preflight of any other origin. The OAuth endpoints are
// open to any origin (no ambient credential), so a browser client can register and get tokens.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestEnv, assertNothingUpstream, assertRpcError } from './lib/harness.mjs';
import { initializeMessage } from './lib/mcp.mjs';
import { request } from './lib/http.mjs';
import { startOAuthGateway, startOidcProvider } from './lib/oauth.mjs';

const APP = 'https://app.example';
const env = new TestEnv('cors');
let fake;
let gw;
before(async () => {
  fake = await env.startFake();
  gw = await env.startGateway({ upstreamUrl: fake.mcpUrl, config: { allowed_origins: [APP] } });
});
after(() => env.cleanup());
beforeEach(() => fake.reset());

const preflight = (origin, { path, method = 'POST', headers = 'authorization, content-type, mcp-protocol-version' } = {}) =>
  gw.request({
    method: 'OPTIONS', path,
    headers: { Origin: origin, 'Access-Control-Request-Method': method, ...(headers ? { 'Access-Control-Request-Headers': headers } : {}) },
  });

describe('CORS on the MCP endpoint', () => {
  it('a preflight from an allowed origin: 204 with the methods, the asked headers, and nothing upstream', async () => {
    const res = await preflight(APP);

    assert.equal(res.status, 204, res.body);
    assert.equal(res.headers['access-control-allow-origin'], APP);
    assert.deepEqual(String(res.headers['access-control-allow-methods']).split(/,\s*/).sort(), ['DELETE', 'GET', 'POST']);
    assert.equal(res.headers['access-control-allow-headers'], 'authorization, content-type, mcp-protocol-version');
    assert.equal(res.headers['access-control-max-age'], '600');
    assert.match(String(res.headers.vary), /Origin/);
    await assertNothingUpstream(fake, 'a preflight');
  });

  it('a preflight from another origin, or without one: 403, no CORS headers', async () => {
    for (const origin of ['https://evil.example', 'null']) {
      const res = await preflight(origin);
      assertRpcError(res, { status: 403, code: -32003 });
      assert.equal(res.headers['access-control-allow-origin'], undefined, origin);
    }
    const bare = await gw.request({ method: 'OPTIONS', headers: { 'Access-Control-Request-Method': 'POST' } });
    assert.equal(bare.status, 403);
    await assertNothingUpstream(fake, 'refused preflights');
  });

  it('an OPTIONS that is not a preflight is still 405', async () => {
    const res = await gw.request({ method: 'OPTIONS', member: 'alice' });
    assertRpcError(res, { status: 405, code: -32005 });
  });

  it('asked headers that are not header names are not echoed', async () => {
    const res = await preflight(APP, { headers: 'content-type; x=1' });
    assert.equal(res.status, 204);
    assert.equal(res.headers['access-control-allow-headers'], undefined);
  });

  it('an answer relayed from Omni names the origin and exposes Mcp-Session-Id', async () => {
    const res = await gw.request({ member: 'alice', headers: { Origin: APP }, body: initializeMessage(1) });

    assert.equal(res.status, 200, res.body);
    assert.ok(res.headers['mcp-session-id'], 'the fake gives a session');
    assert.equal(res.headers['access-control-allow-origin'], APP);
    assert.match(String(res.headers['access-control-expose-headers']), /Mcp-Session-Id/);
    const upstream = await fake.mcpRequests();
    assert.equal(upstream.length, 1);
    assert.equal(upstream[0].headers.origin, undefined, 'the browser Origin is not forwarded to Omni');
  });

  it("the gateway's own errors carry the headers too (a 401 the page must be able to read)", async () => {
    const res = await gw.request({ headers: { Origin: APP }, body: initializeMessage(2) });

    assertRpcError(res, { status: 401, code: -32001, id: 2 });
    assert.equal(res.headers['access-control-allow-origin'], APP);
    assert.match(String(res.headers['access-control-expose-headers']), /WWW-Authenticate/);
  });

  it('a request without Origin gets no CORS headers (non-browser clients see nothing new)', async () => {
    const res = await gw.request({ member: 'alice', body: initializeMessage(3) });

    assert.equal(res.status, 200);
    assert.equal(res.headers['access-control-allow-origin'], undefined);
  });
});

describe('CORS on the OAuth endpoints', () => {
  let ogw;
  before(async () => {
    const provider = await startOidcProvider(env);
    ogw = await startOAuthGateway(env, { provider, upstreamUrl: fake.mcpUrl });
  });

  it('discovery, registration and token endpoints are open to any origin', async () => {
    const base = ogw.baseUrl ?? ogw.publicUrl;
    const pre = await request(`${base}/oauth/token`, {
      method: 'OPTIONS', headers: { Origin: 'https://inspector.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
    });
    assert.equal(pre.status, 204, pre.body);
    assert.equal(pre.headers['access-control-allow-origin'], '*');
    assert.deepEqual(String(pre.headers['access-control-allow-methods']).split(/,\s*/).sort(), ['GET', 'POST']);

    const doc = await request(`${base}/.well-known/oauth-authorization-server`, { headers: { Origin: 'https://inspector.example' } });
    assert.equal(doc.status, 200);
    assert.equal(doc.headers['access-control-allow-origin'], '*');

    const reg = await request(`${base}/oauth/register`, {
      method: 'POST', headers: { Origin: 'https://inspector.example', 'Content-Type': 'application/json' },
      body: JSON.stringify({ redirect_uris: ['http://localhost:6274/oauth/callback'] }),
    });
    assert.equal(reg.status, 201, reg.body);
    assert.equal(reg.headers['access-control-allow-origin'], '*');
  });
});
