// Per-member policy, message by message: in a 2025-03-26 batch each element is decided on its
// own (the upstream receives only the allowed ones; the client gets the gateway's answers merged
// into the upstream's, in SSE and JSON alike); 2026-07-28 Mcp-Method/Mcp-Name headers must agree
// with the body; a body the gateway cannot read as JSON-RPC is refused. Every test checks what
// the upstream (the fake Omni) received.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OMNI, TestEnv, assertNothingUpstream, assertRpcError, parseSse } from './lib/harness.mjs';
import { getDataMessage, rawSession, rpc } from './lib/mcp.mjs';
import { startHeaderProxy } from './lib/proxy.mjs';

const GROUPS = { interns: { tools: { allow: ['pick*', 'searchOmniDocs'] } } };
const asAlice = (name, more = {}) => ({ name, pat: OMNI.users.alice.pat, userId: OMNI.users.alice.id, ...more });
const MEMBERS = [asAlice('ivan', { groups: ['interns'] }), asAlice('nina')];
// Without the metadata cache, every allowed message shows up in the upstream's log.
const CONFIG = { groups: GROUPS, cache: { enabled: false } };

const env = new TestEnv('policy-messages');
let fake;
let proxy;
let gw;      // the fake answers SSE
let gwJson;  // through the proxy that makes each session answer application/json

before(async () => {
  fake = await env.startFake();
  proxy = await startHeaderProxy(fake.mcpUrl, { 'X-Fake-Json': '1' });
  gw = await env.startGateway({ upstreamUrl: fake.mcpUrl, members: MEMBERS, config: CONFIG });
  gwJson = await env.startGateway({ upstreamUrl: proxy.url, members: MEMBERS, config: CONFIG, name: 'gateway-json' });
});
after(async () => {
  await proxy?.stop();
  await env.cleanup();
});
beforeEach(async () => {
  await fake.reset();
  proxy.responses.length = 0;
});

/** A raw session; the upstream's log is cleared after its set-up. */
async function session(g, member, opts = {}) {
  const s = await rawSession(g.url, { ca: g.ca, headers: g.auth(member), ...opts });
  await fake.clearRequests();
  return s;
}

/** The JSON-RPC messages of a response body, in order (SSE events or a JSON value). */
function messagesOf(res) {
  if (String(res.headers['content-type']).includes('text/event-stream')) {
    return parseSse(res.body.endsWith('\n\n') ? res.body : `${res.body}\n\n`).events.filter((e) => e.data).map((e) => e.json());
  }
  const v = JSON.parse(res.body);
  return Array.isArray(v) ? v : [v];
}

const pickModel = (id) => rpc(id, 'tools/call', { name: 'pickModel', arguments: {} });
const cancelled = { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 999, reason: 'policy test' } };
// A tools/call without an id: a notification the policy denies (getData is not an intern's tool).
const deniedNote = { jsonrpc: '2.0', method: 'tools/call', params: { name: 'getData', arguments: { prompt: 'x' } } };

for (const framing of ['SSE', 'JSON']) {
  describe(`2025-03-26 batches (upstream answers ${framing})`, () => {
    const g = () => (framing === 'SSE' ? gw : gwJson);

    it('the upstream receives only the allowed elements; the client gets the allowed result and the gateway\'s error, with the right ids', async () => {
      const s = await session(g(), 'ivan', { protocolVersion: '2025-03-26' });
      assert.equal(s.protocolVersion, '2025-03-26');
      const batch = [pickModel(11), getDataMessage(12), cancelled, deniedNote];

      const res = await s.post(batch);

      const ups = await fake.mcpRequests();
      assert.equal(ups.length, 1, `upstream requests: ${JSON.stringify(ups.map((r) => r.body))}`);
      assert.deepEqual(ups[0].body, [batch[0], batch[2]], 'upstream batch: the allowed call and the allowed notification');
      assert.equal(res.status, 200, res.body);
      assert.match(String(res.headers['content-type']), framing === 'SSE' ? /text\/event-stream/ : /application\/json/);
      const msgs = messagesOf(res).filter((m) => 'result' in m || 'error' in m);
      assert.deepEqual(msgs.map((m) => m.id).sort(), [11, 12], `answers: ${res.body}`);
      const result = msgs.find((m) => m.id === 11);
      const error = msgs.find((m) => m.id === 12);
      assert.ok(result.result, `id 11: ${JSON.stringify(result)}`);
      assert.equal(JSON.parse(result.result.content[0].text).runAs, OMNI.users.alice.id);
      assert.equal(error.error?.code, -32030, `id 12: ${JSON.stringify(error)}`);
      assert.match(error.error.message, /getData/);
      assert.match(error.error.message, /group:interns/);
      if (framing === 'SSE') {
        assert.ok(msgs.indexOf(error) < msgs.indexOf(result), 'the gateway\'s answer comes first, before the upstream\'s events');
      } else {
        assert.ok(Array.isArray(JSON.parse(res.body)), 'a batch is answered with an array');
      }
    });

    it('only denied elements: the gateway answers alone and nothing reaches Omni', async () => {
      const s = await session(g(), 'ivan', { protocolVersion: '2025-03-26' });

      const res = await s.post([getDataMessage(21), deniedNote]);

      await assertNothingUpstream(fake);
      assert.equal(res.status, 200, res.body);
      const body = JSON.parse(res.body);
      assert.ok(Array.isArray(body), `a batch is answered with an array: ${res.body}`);
      assert.deepEqual(body.map((m) => [m.id, m.error?.code]), [[21, -32030]]);
    });

    it('an allowed notification beside a denied request: the upstream\'s 202 becomes a 200 carrying the gateway\'s answer', async () => {
      const s = await session(g(), 'ivan', { protocolVersion: '2025-03-26' });

      const res = await s.post([cancelled, getDataMessage(31)]);

      const ups = await fake.mcpRequests();
      assert.deepEqual(ups.map((r) => r.body), [[cancelled]], 'upstream batch: the notification only');
      assert.equal(res.status, 200, res.body);
      const body = JSON.parse(res.body);
      assert.ok(Array.isArray(body), `a batch is answered with an array: ${res.body}`);
      assert.deepEqual(body.map((m) => [m.id, m.error?.code]), [[31, -32030]]);
    });

    it('an unrestricted member\'s batch reaches the upstream whole', async () => {
      const s = await session(g(), 'nina', { protocolVersion: '2025-03-26' });
      const batch = [pickModel(41), getDataMessage(42), cancelled];

      const res = await s.post(batch);

      const ups = await fake.mcpRequests();
      assert.deepEqual(ups.map((r) => r.body), [batch]);
      assert.deepEqual(messagesOf(res).filter((m) => 'result' in m).map((m) => m.id).sort(), [41, 42], res.body);
    });
  });
}

describe('2026-07-28: Mcp-Method and Mcp-Name must agree with the body', () => {
  const v2026 = (extra) => ({ 'MCP-Protocol-Version': '2026-07-28', ...extra });

  it('Mcp-Method: tools/call on a tools/list body → 400 -32020, nothing reaches Omni', async () => {
    const s = await session(gw, 'nina');

    const res = await s.post(rpc(51, 'tools/list'), v2026({ 'Mcp-Method': 'tools/call' }));

    const body = assertRpcError(res, { status: 400, code: -32020, ids: [51, null] });
    assert.match(body.error.message, /Mcp-Method/);
    await assertNothingUpstream(fake);
  });

  it('a refused tool cannot hide behind a harmless Mcp-Name: pickModel on a getData body → 400 -32020, nothing reaches Omni', async () => {
    const s = await session(gw, 'ivan');

    const res = await s.post(getDataMessage(52), v2026({ 'Mcp-Method': 'tools/call', 'Mcp-Name': 'pickModel' }));

    const body = assertRpcError(res, { status: 400, code: -32020, ids: [52, null] });
    assert.match(body.error.message, /Mcp-Name/);
    await assertNothingUpstream(fake);
  });

  it('a missing Mcp-Method on a 2026-07-28 request → 400 -32020, nothing reaches Omni', async () => {
    const s = await session(gw, 'nina');

    const res = await s.post(pickModel(53), v2026({ 'Mcp-Name': 'pickModel' }));

    assertRpcError(res, { status: 400, code: -32020, ids: [53, null] });
    await assertNothingUpstream(fake);
  });

  it('agreeing headers (plain and =?base64?…?=) are forwarded unchanged', async () => {
    const s = await session(gw, 'ivan');

    await s.post(pickModel(54), v2026({ 'Mcp-Method': 'tools/call', 'Mcp-Name': 'pickModel' }));
    await s.post(pickModel(55), v2026({ 'Mcp-Method': 'tools/call', 'Mcp-Name': `=?base64?${Buffer.from('pickModel').toString('base64')}?=` }));

    const ups = await fake.mcpRequests();
    assert.deepEqual(ups.map((r) => r.body?.id), [54, 55], 'both reached the upstream');
    assert.equal(ups[0].headers['mcp-name'], 'pickModel');
    assert.equal(ups[1].headers['mcp-name'], '=?base64?cGlja01vZGVs?=');
    assert.equal(ups[0].headers['mcp-method'], 'tools/call');
  });
});

describe('bodies the gateway cannot decide on are never forwarded', () => {
  const bad = (body) => gw.request({ member: 'nina', body });

  it('malformed JSON → 400 -32700', async () => {
    for (const body of ['{"jsonrpc":"2.0","id":1,"method":', 'not json', '{"jsonrpc":"2.0",}']) {
      assertRpcError(await bad(body), { status: 400, code: -32700, id: null }, `body ${body}`);
    }
    await assertNothingUpstream(fake);
  });

  it('valid JSON that is not JSON-RPC → 400 -32600', async () => {
    const bodies = [
      '{"hello":"world"}',
      '42',
      '[]',
      '{"jsonrpc":"1.0","id":1,"method":"tools/list"}',
      '{"jsonrpc":"2.0","id":{"a":1},"method":"tools/list"}',
      '{"jsonrpc":"2.0","id":1,"method":7}',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{}}}',
      '[{"jsonrpc":"2.0","id":1,"method":"tools/list"},7]',
    ];
    for (const body of bodies) {
      assertRpcError(await bad(body), { status: 400, code: -32600 }, `body ${body}`);
    }
    await assertNothingUpstream(fake);
  });
});
