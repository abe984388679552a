// Per-member policy through the real gateway: a denied tool never reaches Omni, tools/list is
// filtered for a restricted member (SSE and JSON replies alike) and not for an unrestricted one,
// pinned model/topic headers arrive upstream on every request, requested models and topics are
// forwarded inside the allowed set and refused outside it, and X-MCP-Query-All-Views is dropped
// for a member without the right. Every test checks what the upstream (the fake Omni) received.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OMNI, TestEnv, assertNothingUpstream, assertRpcError } from './lib/harness.mjs';
import { getDataMessage, rawSession, responseMessage, rpc, sdkConnect, toolJson } from './lib/mcp.mjs';
import { startHeaderProxy } from './lib/proxy.mjs';

const SALES = '6f1c2a8e-5b3d-4c71-9a0e-1d2b3c4d5e01';
const FINANCE = '6f1c2a8e-5b3d-4c71-9a0e-1d2b3c4d5e02';
const ALL_TOOLS = ['askOmni', 'checkStatus', 'getData', 'pickModel', 'pickTopic', 'searchOmniDocs'];
const INTERN_TOOLS = ['pickModel', 'pickTopic', 'searchOmniDocs'];

const GROUPS = {
  interns: { tools: { allow: ['pick*', 'searchOmniDocs'] } },
  finance: { models: [FINANCE], model: FINANCE, topics: ['invoices'], topic: 'invoices' },
  sales: { models: [SALES], topics: ['ord*'] },
  modelers: { query_all_views: true },
};
// Every member reaches Omni as alice (a Querier who can reach both models), so that only the
// gateway's policy tells them apart.
const asAlice = (name, more = {}) => ({ name, pat: OMNI.users.alice.pat, userId: OMNI.users.alice.id, ...more });
const asBob = (name, more = {}) => ({ name, pat: OMNI.users.bob.pat, userId: OMNI.users.bob.id, ...more });
const MEMBERS = [
  asAlice('ivan', { groups: ['interns'] }),
  asAlice('nina'),
  asAlice('fiona', { groups: ['finance'] }),
  asAlice('sam', { groups: ['sales'] }),
  asAlice('mona', { groups: ['modelers'] }),
  asAlice('dora', { rule: { tools: { deny: ['pickModel'] } } }),
  asBob('iris', { groups: ['interns'] }),
  asBob('vic'),
];
// The metadata cache (issue 4) would answer repeated tools/list and pickModel without asking
// the upstream; these gateways run without it, so that the upstream's log shows every decision.
// The cache's interplay with the policy has its own gateway below.
const CONFIG = { groups: GROUPS, cache: { enabled: false } };

const env = new TestEnv('policy');
let fake;
let gw;      // the fake answers SSE (its default)
let proxy;   // adds X-Fake-Json: 1, so that every session behind it answers application/json
let gwJson;  // the same policy in front of the proxy
let gwCache; // the same policy with the metadata cache on (its default)

before(async () => {
  // upstream: the fake Omni; a second path to it through the JSON-forcing proxy
  fake = await env.startFake();
  proxy = await startHeaderProxy(fake.mcpUrl, { 'X-Fake-Json': '1' });
  // config: four groups; members in them, with a rule of their own, or with neither
  gw = await env.startGateway({ upstreamUrl: fake.mcpUrl, members: MEMBERS, config: CONFIG });
  gwJson = await env.startGateway({ upstreamUrl: proxy.url, members: MEMBERS, config: CONFIG, name: 'gateway-json' });
  gwCache = await env.startGateway({ upstreamUrl: fake.mcpUrl, members: MEMBERS, config: { groups: GROUPS, cache: { topic_tools: false } }, name: 'gateway-cache' });
});
after(async () => {
  await proxy?.stop();
  await env.cleanup();
});
beforeEach(async () => {
  await fake.reset();
  proxy.responses.length = 0;
});

/** A raw session of member on g, with the upstream's log cleared after its set-up. */
async function session(g, member, opts = {}) {
  const s = await rawSession(g.url, { ca: g.ca, headers: g.auth(member), ...opts });
  await fake.clearRequests();
  return s;
}

/** Asserts a gateway-made policy refusal (HTTP 200, JSON-RPC -32030) whose message matches every pattern. */
function assertRefused(res, id, patterns, context) {
  const body = assertRpcError(res, { status: 200, code: -32030, id }, context);
  for (const p of patterns) assert.match(body.error.message, p, `${context}: message`);
  return body;
}

/** The names of the tools/call requests the upstream received. */
async function upstreamToolCalls() {
  return (await fake.rpcRequests('tools/call')).map((r) => r.body.params?.name);
}

describe('tools: a denied tool never reaches Omni', () => {
  it('ivan (interns) calling getData gets a JSON-RPC error naming the rule and the tool; pickModel works in the same session (SDK client)', async () => {
    const c = await sdkConnect(gw, 'ivan');
    let picked;
    try {
      await assert.rejects(
        c.client.callTool({ name: 'getData', arguments: { prompt: 'revenue by region' } }),
        (err) => {
          assert.equal(err.code, -32030, `error code: ${err.message}`);
          assert.match(err.message, /getData/, 'the message names the tool');
          assert.match(err.message, /group:interns/, 'the message names the rule');
          return true;
        },
      );
      picked = await c.client.callTool({ name: 'pickModel', arguments: {} });
    } finally {
      await c.close();
    }

    assert.notEqual(picked.isError, true, JSON.stringify(picked));
    assert.equal(toolJson(picked).runAs, OMNI.users.alice.id);
    assert.deepEqual(await upstreamToolCalls(), ['pickModel'], 'upstream received only the allowed tools/call');
  });

  it('the refusal is HTTP 200 with the request\'s id; a denied notification is dropped with 202 (raw)', async () => {
    const s = await session(gw, 'ivan');

    const res = await s.post(rpc('req-7', 'tools/call', { name: 'askOmni', arguments: { prompt: 'why' } }));
    assertRefused(res, 'req-7', [/askOmni/, /ivan/, /group:interns/], 'tools/call askOmni');
    const note = await s.post({ jsonrpc: '2.0', method: 'tools/call', params: { name: 'getData', arguments: { prompt: 'x' } } });
    assert.equal(note.status, 202, `denied notification: ${note.status} ${note.body}`);
    await assertNothingUpstream(fake);
  });
});

for (const framing of ['SSE', 'JSON']) {
  describe(`tools/list is filtered for a restricted member (upstream answers ${framing})`, () => {
    const g = () => (framing === 'SSE' ? gw : gwJson);
    const contentType = framing === 'SSE' ? /text\/event-stream/ : /application\/json/;

    async function sdkToolNames(member) {
      const c = await sdkConnect(g(), member);
      try {
        return (await c.client.listTools()).tools.map((t) => t.name).sort();
      } finally {
        await c.close();
      }
    }

    /** Asserts the upstream got the member's tools/list and answered it with this framing. */
    async function assertUpstreamListed() {
      assert.ok((await fake.rpcRequests('tools/list')).length >= 1, 'upstream received tools/list');
      if (framing === 'JSON') {
        const posts = proxy.responses.filter((r) => r.method === 'POST' && r.status === 200);
        assert.ok(posts.length > 0, 'the upstream answered through the proxy');
        for (const r of posts) assert.match(r.contentType, /application\/json/, `upstream framing of ${JSON.stringify(r)}`);
      }
    }

    it('ivan (interns) sees only pickModel, pickTopic and searchOmniDocs (SDK listTools)', async () => {
      const names = await sdkToolNames('ivan');

      assert.deepEqual(names, INTERN_TOOLS);
      await assertUpstreamListed();
    });

    it('nina (no rule) sees all six tools (SDK listTools)', async () => {
      const names = await sdkToolNames('nina');

      assert.deepEqual(names, ALL_TOOLS);
      await assertUpstreamListed();
    });

    it(`the raw reply keeps its ${framing} framing and lists only the allowed tools`, async () => {
      const s = await rawSession(g().url, { ca: g().ca, headers: g().auth('ivan') });
      const res = await s.post(rpc(5, 'tools/list'));

      assert.equal(res.status, 200, res.body);
      assert.match(String(res.headers['content-type']), contentType);
      const names = responseMessage(res, 5).result.tools.map((t) => t.name).sort();
      assert.deepEqual(names, INTERN_TOOLS);
      await assertUpstreamListed();
    });
  });
}

describe('models and topics', () => {
  it('pinned: upstream receives the pinned X-MCP-Model-ID and X-MCP-Topic-Name on every request, and getData runs on the pinned model (SDK client)', async () => {
    const c = await sdkConnect(gw, 'fiona');
    let result;
    try {
      await c.client.listTools();
      // Without the pin, this prompt would run on Sales/orders (its best match).
      result = await c.client.callTool({ name: 'getData', arguments: { prompt: 'revenue by region' } });
    } finally {
      await c.close();
    }

    const data = toolJson(result);
    assert.equal(data.modelId, FINANCE, `getData result: ${JSON.stringify(data)}`);
    assert.equal(data.topic, 'invoices');
    const reqs = await fake.mcpRequests();
    assert.ok(reqs.length >= 4, `upstream requests: ${reqs.map((r) => `${r.method} ${r.body?.method}`)}`);
    for (const r of reqs) {
      const where = `upstream ${r.method} ${r.body?.method ?? ''} #${r.seq}`;
      assert.equal(r.headers['x-mcp-model-id'], FINANCE, `${where}: X-MCP-Model-ID`);
      assert.equal(r.headers['x-mcp-topic-name'], 'invoices', `${where}: X-MCP-Topic-Name`);
    }
  });

  it('pinned: a client asking for another model or topic (header or argument, POST or GET) is refused and nothing reaches Omni', async () => {
    const s = await session(gw, 'fiona');

    assertRefused(await s.post(getDataMessage(21), { 'X-MCP-Model-ID': SALES }), 21, [new RegExp(SALES), /group:finance/], 'X-MCP-Model-ID header');
    assertRefused(await s.post(getDataMessage(22), { 'X-MCP-Topic-Name': 'orders' }), 22, [/orders/, /group:finance/], 'X-MCP-Topic-Name header');
    assertRefused(await s.post(getDataMessage(23, 'revenue', { modelId: SALES })), 23, [/modelId/, /group:finance/], 'modelId argument');
    assertRefused(await s.post(getDataMessage(24, 'revenue', { topicName: 'orders' })), 24, [/topicName/, /group:finance/], 'topicName argument');
    assertRefused(await s.post(rpc(25, 'tools/list'), { 'X-MCP-Model-ID': SALES }), 25, [/group:finance/], 'any message with the header');
    const get = await gw.request({ method: 'GET', member: 'fiona', headers: { Accept: 'text/event-stream', 'Mcp-Session-Id': s.sessionId, 'X-MCP-Model-ID': SALES } });
    assertRpcError(get, { status: 403, code: -32030 }, 'GET with X-MCP-Model-ID');
    await assertNothingUpstream(fake);
  });

  it('pinned: the SDK client asking for another model cannot even initialize, and nothing reaches Omni', async () => {
    await assert.rejects(sdkConnect(gw, 'fiona', { headers: { 'X-MCP-Model-ID': SALES } }), (err) => {
      assert.match(String(err.message), /group:finance|-32030/, err.message);
      return true;
    });
    await assertNothingUpstream(fake);
  });

  it('pinned: a client asking for the pinned values is served, and upstream receives each value once', async () => {
    const s = await session(gw, 'fiona');

    const res = await s.post(getDataMessage(26, 'amounts due', { topicName: 'invoices' }), { 'X-MCP-Model-ID': FINANCE, 'X-MCP-Topic-Name': 'invoices' });
    const data = toolJson(responseMessage(res, 26).result);
    assert.equal(data.modelId, FINANCE);
    const [up] = await fake.rpcRequests('tools/call', 26);
    assert.ok(up, 'upstream received the tools/call');
    assert.equal(up.headers['x-mcp-model-id'], FINANCE, 'one X-MCP-Model-ID, the pin');
    assert.equal(up.headers['x-mcp-topic-name'], 'invoices', 'one X-MCP-Topic-Name, the pin');
  });

  it('listed models: a requested model inside the set is forwarded as the gateway\'s header; outside it is refused (sam: models [Sales])', async () => {
    const s = await session(gw, 'sam');

    const res = await s.post(getDataMessage(31), { 'X-MCP-Model-ID': SALES });
    assert.equal(toolJson(responseMessage(res, 31).result).modelId, SALES);
    const [up] = await fake.rpcRequests('tools/call', 31);
    assert.ok(up, 'upstream received the allowed tools/call');
    assert.equal(up.headers['x-mcp-model-id'], SALES, 'the allowed model went upstream');

    await fake.clearRequests();
    assertRefused(await s.post(getDataMessage(32), { 'X-MCP-Model-ID': FINANCE }), 32, [new RegExp(FINANCE), /group:sales/], 'Finance in the header');
    assertRefused(await s.post(getDataMessage(33, 'revenue', { modelId: FINANCE })), 33, [/modelId/, /group:sales/], 'Finance as modelId');
    await assertNothingUpstream(fake);
  });

  it('listed models: without a pin nothing is added when the client asks for nothing', async () => {
    const s = await session(gw, 'sam');

    await s.post(rpc(34, 'tools/call', { name: 'pickModel', arguments: {} }));
    const [up] = await fake.rpcRequests('tools/call', 34);
    assert.ok(up, 'upstream received the tools/call');
    assert.equal(up.headers['x-mcp-model-id'], undefined);
    assert.equal(up.headers['x-mcp-topic-name'], undefined);
  });

  it('topic globs: a topicName argument outside ord* is refused and nothing reaches Omni; inside it is forwarded', async () => {
    const s = await session(gw, 'sam');

    assertRefused(await s.post(getDataMessage(41, 'amounts due', { topicName: 'invoices' })), 41, [/invoices/, /topicName/, /group:sales/], 'topicName invoices');
    assertRefused(await s.post(getDataMessage(42), { 'X-MCP-Topic-Name': 'invoices' }), 42, [/invoices/, /group:sales/], 'X-MCP-Topic-Name invoices');
    await assertNothingUpstream(fake);

    const res = await s.post(getDataMessage(43, 'revenue', { topicName: 'orders' }));
    assert.equal(toolJson(responseMessage(res, 43).result).topic, 'orders');
    const [up] = await fake.rpcRequests('tools/call', 43);
    assert.ok(up, 'upstream received the allowed tools/call');
    assert.equal(up.body.params.arguments.topicName, 'orders', 'the argument reached upstream unchanged');

    const viaHeader = await s.post(getDataMessage(44), { 'X-MCP-Topic-Name': 'orders' });
    assert.equal(toolJson(responseMessage(viaHeader, 44).result).topic, 'orders');
    const [up2] = await fake.rpcRequests('tools/call', 44);
    assert.equal(up2?.headers['x-mcp-topic-name'], 'orders', 'the allowed topic header went upstream as the gateway\'s');
  });

  it('no rule: nina\'s requested model and topic are passed on as the gateway\'s headers', async () => {
    const s = await session(gw, 'nina');

    const res = await s.post(getDataMessage(51), { 'X-MCP-Model-ID': FINANCE, 'X-MCP-Topic-Name': 'invoices' });
    assert.equal(toolJson(responseMessage(res, 51).result).modelId, FINANCE);
    const [up] = await fake.rpcRequests('tools/call', 51);
    assert.equal(up?.headers['x-mcp-model-id'], FINANCE);
    assert.equal(up?.headers['x-mcp-topic-name'], 'invoices');
  });
});

describe('X-MCP-Query-All-Views', () => {
  /** Lists the tools and calls pickModel as member with extra headers; returns the upstream requests. */
  async function sessionWith(member, headers) {
    const c = await sdkConnect(gw, member, { headers });
    try {
      await c.client.listTools();
      const r = await c.client.callTool({ name: 'pickModel', arguments: {} });
      assert.notEqual(r.isError, true, JSON.stringify(r));
    } finally {
      await c.close();
    }
    const reqs = await fake.mcpRequests();
    assert.ok(reqs.length >= 4, `upstream requests: ${reqs.length}`);
    return reqs;
  }

  it('nina (no right) is served, but her "true" never reaches Omni', async () => {
    const reqs = await sessionWith('nina', { 'X-MCP-Query-All-Views': 'true' });

    for (const r of reqs) assert.equal(r.headers['x-mcp-query-all-views'], undefined, `upstream ${r.method} #${r.seq}`);
  });

  it('mona (modelers) gets it through on every request', async () => {
    const reqs = await sessionWith('mona', { 'X-MCP-Query-All-Views': 'true' });

    for (const r of reqs) assert.equal(r.headers['x-mcp-query-all-views'], 'true', `upstream ${r.method} #${r.seq}`);
  });

  it('mona without asking: the gateway does not add it', async () => {
    const reqs = await sessionWith('mona', {});

    for (const r of reqs) assert.equal(r.headers['x-mcp-query-all-views'], undefined, `upstream ${r.method} #${r.seq}`);
  });
});

describe('policy with the metadata cache on', () => {
  async function toolNames(member) {
    const c = await sdkConnect(gwCache, member);
    try {
      return (await c.client.listTools()).tools.map((t) => t.name).sort();
    } finally {
      await c.close();
    }
  }

  it('a tools/list answered from the cache is still filtered for ivan, and not for nina (same Omni identity)', async () => {
    assert.deepEqual(await toolNames('nina'), ALL_TOOLS, 'nina, first');
    assert.deepEqual(await toolNames('ivan'), INTERN_TOOLS, 'ivan, after nina');
    assert.deepEqual(await toolNames('nina'), ALL_TOOLS, 'nina, after ivan');
    // The premise: the later lists came from the cache (else this test shows nothing new).
    assert.equal((await fake.rpcRequests('tools/list')).length, 1, 'upstream tools/list calls');
  });

  it('a restricted member listing first does not narrow the cached list for the next one (iris, then vic)', async () => {
    assert.deepEqual(await toolNames('iris'), INTERN_TOOLS, 'iris (interns, Viewer)');
    assert.deepEqual(await toolNames('vic'), ['checkStatus', 'pickModel', 'pickTopic', 'searchOmniDocs'], 'vic (no rule, Viewer)');
    assert.equal((await fake.rpcRequests('tools/list')).length, 1, 'upstream tools/list calls');
  });

  it('a tool the rule denies is refused even when its answer is cached for the same Omni identity', async () => {
    const nina = await rawSession(gwCache.url, { ca: gwCache.ca, headers: gwCache.auth('nina') });
    const dora = await rawSession(gwCache.url, { ca: gwCache.ca, headers: gwCache.auth('dora') });
    const pick = (id) => rpc(id, 'tools/call', { name: 'pickModel', arguments: {} });

    assert.ok(responseMessage(await nina.post(pick(61)), 61).result, 'nina picks a model');
    assert.ok(responseMessage(await nina.post(pick(62)), 62).result, 'nina again (a cache hit)');
    assertRefused(await dora.post(pick(63)), 63, [/pickModel/, /user:dora/], 'dora');
    assert.deepEqual((await fake.rpcRequests('tools/call')).map((r) => r.body.id), [61], 'upstream tools/call: nina\'s first only');
  });
});
