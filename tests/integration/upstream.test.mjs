// Upstream trouble: down, too slow, refusing the member's credential, TLS verified with ca_file.
// Each answer is a quick JSON-RPC error, and the gateway keeps serving afterwards.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { makeCerts } from './lib/certs.mjs';
import { OMNI, TestEnv, assertNothingUpstream, assertRpcError, closedPort, waitFor } from './lib/harness.mjs';
import { initializeMessage, sdkConnect, toolJson } from './lib/mcp.mjs';

const env = new TestEnv('upstream');
after(() => env.cleanup());

describe('upstream down', () => {
  let port;
  let gw;
  before(async () => {
    port = await closedPort();
    gw = await env.startGateway({ upstreamUrl: `http://127.0.0.1:${port}/mcp/https`, config: { upstream: { connect_timeout_ms: 2000 } } });
  });

  it('→ 502 -32011, and the gateway keeps answering', async () => {
    const res = await gw.request({ member: 'alice', body: initializeMessage(11), timeoutMs: 10000 });
    assertRpcError(res, { status: 502, code: -32011, id: 11 });

    const again = await gw.request({ member: 'carol', body: initializeMessage(12), timeoutMs: 10000 });
    assertRpcError(again, { status: 502, code: -32011, id: 12 }, 'second request');
    const noToken = await gw.request({ body: initializeMessage(13) });
    assertRpcError(noToken, { status: 401, code: -32001, id: 13 }, 'request without token');
  });

  it('once the upstream is back, the same gateway forwards again', async () => {
    const fake = await env.startFake({ port, name: 'fake-omni-late' });
    const c = await sdkConnect(gw, 'alice');
    try {
      const result = await c.client.callTool({ name: 'getData', arguments: { prompt: 'x' } });
      assert.equal(toolJson(result).runAs, OMNI.users.alice.id);
    } finally {
      await c.close();
    }
    assert.ok((await fake.rpcRequests('tools/call')).length === 1);
  });
});

describe('upstream too slow', () => {
  let fake;
  let gw;
  before(async () => {
    fake = await env.startFake({ name: 'fake-omni-slow' });
    gw = await env.startGateway({ upstreamUrl: fake.mcpUrl, config: { upstream: { idle_timeout_ms: 1000 } } });
  });

  it('no byte within idle_timeout_ms → 504 -32012, and the upstream transfer is closed', async () => {
    await fake.setConfig({ delayMs: 4000 });
    try {
      const res = await gw.request({ member: 'alice', body: initializeMessage(21), timeoutMs: 10000 });
      assertRpcError(res, { status: 504, code: -32012, id: 21 });
      const [up] = await fake.mcpRequests();
      assert.ok(up, 'the request did reach upstream');
      const ev = await waitFor(async () => (await fake.events()).find((e) => e.seq === up.seq && e.type.startsWith('response-')),
        { timeoutMs: 8000, message: 'upstream response to end' });
      assert.equal(ev.type, 'response-closed-early', 'the gateway closed the upstream transfer');
    } finally {
      await fake.reset();
    }
  });

  it('the gateway serves normally once the upstream is quick again', async () => {
    const res = await gw.request({ member: 'alice', body: initializeMessage(22) });
    assert.equal(res.status, 200, res.body);
  });
});

describe('upstream refuses the member\'s credential', () => {
  let fake;
  let gw;
  const badPat = env.secret('a PAT Omni does not know', 'pat-mallory-unknown-9999');
  before(async () => {
    fake = await env.startFake({ name: 'fake-omni-401' });
    gw = await env.startGateway({
      upstreamUrl: fake.mcpUrl,
      members: [{ name: 'mallory', pat: badPat, userId: 'u-mallory' }, { name: 'alice', pat: OMNI.users.alice.pat, userId: OMNI.users.alice.id }],
    });
  });

  it('upstream 401 → 502 -32010 without Omni\'s WWW-Authenticate', async () => {
    const res = await gw.request({ member: 'mallory', body: initializeMessage(31) });

    const body = assertRpcError(res, { status: 502, code: -32010, id: 31 });
    assert.equal(res.headers['www-authenticate'], undefined, `WWW-Authenticate passed on: ${res.headers['www-authenticate']}`);
    assert.equal(body.detail, undefined, 'upstream body passed on');
    const [up] = await fake.mcpRequests();
    assert.equal(up.headers.authorization, `Bearer ${badPat}`, 'upstream got mallory\'s PAT');
  });

  it('another member is served meanwhile', async () => {
    const res = await gw.request({ member: 'alice', body: initializeMessage(32) });
    assert.equal(res.status, 200, res.body);
  });
});

describe('HTTPS upstream', () => {
  let fake;
  before(async () => {
    fake = await env.startFake({ tls: true, name: 'fake-omni-tls' });
  });

  it('is reached when upstream.ca_file trusts its certificate', async () => {
    const gw = await env.startGateway({ upstreamUrl: fake.mcpUrl, config: { upstream: { ca_file: env.certs.caFile } } });
    const c = await sdkConnect(gw, 'carol');
    try {
      const result = await c.client.callTool({ name: 'getData', arguments: { prompt: 'x' } });
      assert.equal(toolJson(result).runAs, OMNI.users.carol.id);
    } finally {
      await c.close();
    }
    const [up] = await fake.rpcRequests('tools/call');
    assert.equal(up.headers.authorization, `Bearer ${OMNI.orgKey}`);
    assert.equal(up.headers.host, `127.0.0.1:${fake.port}`);
  });

  it('is refused (502 -32011) when its certificate is not trusted, and nothing is sent', async () => {
    const other = makeCerts(env.dir, 'other-');
    const gw = await env.startGateway({ upstreamUrl: fake.mcpUrl, config: { upstream: { ca_file: other.caFile } } });
    await fake.reset();
    const res = await gw.request({ member: 'alice', body: initializeMessage(41), timeoutMs: 10000 });

    assertRpcError(res, { status: 502, code: -32011, id: 41 });
    await assertNothingUpstream(fake, 'untrusted upstream');
  });
});
