// Identity: every member reaches Omni with their own credential and user ID, whatever the client
// sends; unknown or missing member tokens are refused before anything reaches Omni.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OMNI, TestEnv, assertNothingUpstream, assertRpcError, curl } from './lib/harness.mjs';
import { initializeMessage, sdkConnect, toolJson } from './lib/mcp.mjs';

const env = new TestEnv('identity');
let fake;
let gw;

before(async () => {
  // upstream: the fake Omni on a free port
  fake = await env.startFake();
  // config: alice and bob with their PATs and user ids, carol through the org key and her user id
  // Every upstream call is counted below: answers from the cache (tests in cache.test.mjs)
  // would hide calls, so this gateway runs without one.
  gw = await env.startGateway({ upstreamUrl: fake.mcpUrl, config: { cache: { enabled: false } } });
});
after(() => env.cleanup());
beforeEach(() => fake.reset());

/** Asserts that every upstream request carried exactly this identity and the upstream's Host. */
function assertUpstreamIdentity(reqs, { authorization, userId }) {
  assert.ok(reqs.length > 0, 'upstream received nothing');
  for (const r of reqs) {
    const where = `upstream ${r.method} #${r.seq}`;
    assert.equal(r.headers.authorization, authorization, `${where}: Authorization`);
    assert.equal(r.headers['x-mcp-user-id'], userId, `${where}: X-MCP-User-ID`);
    assert.equal(r.headers.host, `127.0.0.1:${fake.port}`, `${where}: Host must be the upstream's authority`);
    for (const [m, t] of Object.entries(gw.tokens)) {
      assert.ok(!JSON.stringify(r.headers).includes(t), `${where}: member token of ${m} reached upstream`);
    }
  }
}

async function getDataAs(member, headers) {
  const c = await sdkConnect(gw, member, { headers });
  try {
    const tools = (await c.client.listTools()).tools.map((t) => t.name);
    const result = await c.client.callTool({ name: 'getData', arguments: { prompt: 'revenue by region' } });
    return { tools, result };
  } finally {
    await c.close();
  }
}

describe('members reach Omni as themselves (official SDK client over TLS)', () => {
  it('alice reaches Omni with her own PAT and user id', async () => {
    const { tools, result } = await getDataAs('alice');

    assert.ok(tools.includes('getData'), `alice's tools: ${tools}`);
    assert.notEqual(result.isError, true, JSON.stringify(result));
    assert.equal(toolJson(result).runAs, OMNI.users.alice.id);
    const reqs = await fake.mcpRequests();
    assertUpstreamIdentity(reqs, { authorization: `Bearer ${OMNI.users.alice.pat}`, userId: OMNI.users.alice.id });
    assert.equal((await fake.rpcRequests('tools/call')).length, 1, 'upstream saw one tools/call');
  });

  it('carol reaches Omni through the org key with her user id', async () => {
    const { tools, result } = await getDataAs('carol');

    assert.ok(tools.includes('getData'), `carol's tools: ${tools}`);
    assert.equal(toolJson(result).runAs, OMNI.users.carol.id);
    const reqs = await fake.mcpRequests();
    assertUpstreamIdentity(reqs, { authorization: `Bearer ${OMNI.orgKey}`, userId: OMNI.users.carol.id });
  });

  it('bob (Viewer) is offered no getData: the tool list is his own', async () => {
    const c = await sdkConnect(gw, 'bob');
    let tools;
    try {
      tools = (await c.client.listTools()).tools.map((t) => t.name);
    } finally {
      await c.close();
    }

    assert.ok(!tools.includes('getData'), `bob's tools: ${tools}`);
    assert.ok(tools.includes('pickModel'), `bob's tools: ${tools}`);
    assertUpstreamIdentity(await fake.mcpRequests(), { authorization: `Bearer ${OMNI.users.bob.pat}`, userId: OMNI.users.bob.id });
  });
});

describe('members at the same time', () => {
  it('concurrent calls of alice, bob and carol each run as their own member', async () => {
    const members = ['alice', 'bob', 'carol'];
    const clients = await Promise.all(members.map((m) => sdkConnect(gw, m)));
    try {
      const rounds = 4;
      const calls = [];
      for (let i = 0; i < rounds; i++) {
        clients.forEach((c, k) => calls.push(c.client.callTool({ name: 'pickModel', arguments: {} })
          .then((r) => ({ member: members[k], runAs: toolJson(r).runAs }))));
      }
      const results = await Promise.all(calls);
      for (const r of results) assert.equal(r.runAs, OMNI.users[r.member].id, `${r.member}'s call ran as ${r.runAs}`);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
    const calls = await fake.rpcRequests('tools/call');
    assert.equal(calls.length, 12);
    const byAuth = {};
    for (const r of calls) byAuth[`${r.headers.authorization} ${r.headers['x-mcp-user-id']}`] = (byAuth[`${r.headers.authorization} ${r.headers['x-mcp-user-id']}`] ?? 0) + 1;
    assert.deepEqual(byAuth, {
      [`Bearer ${OMNI.users.alice.pat} ${OMNI.users.alice.id}`]: 4,
      [`Bearer ${OMNI.users.bob.pat} ${OMNI.users.bob.id}`]: 4,
      [`Bearer ${OMNI.orgKey} ${OMNI.users.carol.id}`]: 4,
    });
  });
});

describe('client-sent identity headers never reach Omni', () => {
  const spoofed = {
    'X-MCP-User-ID': OMNI.users.admin.id,
    'X-MCP-Model-ID': '00000000-0000-0000-0000-000000000000',
    'X-MCP-Topic-Name': 'everything',
    'X-MCP-Query-All-Views': 'true',
    Cookie: 'omni_session=stolen',
    'Proxy-Authorization': 'Basic c3B5OnNweQ==',
  };
  // Model and topic are scope, not identity: with no policy rule they are allowed, and the
  // gateway sends them as its own headers (issue 3). Query-all-views needs a rule's permission.
  const stripped = ['cookie', 'proxy-authorization', 'x-mcp-query-all-views'];

  for (const member of ['alice', 'carol']) {
    it(`${member}'s client claims to be the admin: upstream sees only ${member}'s identity`, async () => {
      const { result } = await getDataAs(member, spoofed);

      assert.equal(toolJson(result).runAs, OMNI.users[member].id);
      const reqs = await fake.mcpRequests();
      const authorization = `Bearer ${member === 'carol' ? OMNI.orgKey : OMNI.users[member].pat}`;
      assertUpstreamIdentity(reqs, { authorization, userId: OMNI.users[member].id });
      for (const r of reqs) {
        for (const h of stripped) assert.equal(r.headers[h], undefined, `upstream #${r.seq} received client header ${h}`);
        assert.equal(r.headers['x-mcp-model-id'], spoofed['X-MCP-Model-ID'], 'one model header, re-issued after the policy check');
      }
    });
  }

  it('spoofed headers in any letter case and repeated are dropped (raw request)', async () => {
    const res = await gw.request({
      member: 'carol',
      headers: [
        ['x-mcp-user-id', OMNI.users.admin.id], ['X-Mcp-User-Id', OMNI.users.admin.id],
        ['X-MCP-USER-REQUIRED', 'false'], ['cookie', 'a=b'], ['COOKIE', 'c=d'], ['proxy-authorization', 'Bearer x'],
      ],
      body: initializeMessage(1),
    });

    assert.equal(res.status, 200, res.body);
    const [r] = await fake.mcpRequests();
    assert.equal(r.headers['x-mcp-user-id'], OMNI.users.carol.id, 'exactly one X-MCP-User-ID, carol\'s');
    assert.equal(r.headers.authorization, `Bearer ${OMNI.orgKey}`);
    assert.equal(r.headers.cookie, undefined);
    assert.equal(r.headers['proxy-authorization'], undefined);
    assert.notEqual(r.headers['x-mcp-user-required'], 'false', 'client X-MCP-* forwarded');
  });
});

describe('unknown or missing member token → 401, nothing upstream', () => {
  const wrong = env.secret('a wrong member token', 'gwt_this-token-is-not-in-the-config-0123456789');
  // Functions, because the gateway (and its config) exists only once before() has run.
  const cases = {
    'no Authorization': () => ({}),
    'unknown token': () => ({ Authorization: `Bearer ${wrong}` }),
    'Basic scheme': () => ({ Authorization: 'Basic YWxpY2U6c2VjcmV0' }),
    'Bearer without token': () => ({ Authorization: 'Bearer' }),
    "a member's token_sha256 as token": () => ({ Authorization: `Bearer ${gw.config.users[0].token_sha256}` }),
    "a member's token with a trailing character": () => ({ Authorization: `Bearer ${gw.tokens.alice}x` }),
  };

  for (const [name, headers] of Object.entries(cases)) {
    it(`${name} → 401 with WWW-Authenticate: Bearer and -32001`, async () => {
      const res = await gw.request({ headers: headers(), body: initializeMessage(41) });

      const body = assertRpcError(res, { status: 401, code: -32001, id: 41 }, name);
      assert.match(String(res.headers['www-authenticate'] ?? ''), /^Bearer\b/, 'WWW-Authenticate');
      assert.doesNotMatch(String(res.headers['www-authenticate']), /realm="omni"/, 'Omni\'s own challenge');
      assert.equal(body.result, undefined);
      await assertNothingUpstream(fake, name);
    });
  }

  it('curl with a wrong token gets the same 401', async () => {
    const res = await curl(gw.url, {
      ca: gw.caFile,
      args: ['-X', 'POST', '-H', `Authorization: Bearer ${wrong}`, '-H', 'Content-Type: application/json',
        '-H', 'Accept: application/json, text/event-stream', '--data-binary', JSON.stringify(initializeMessage(7))],
    });

    assertRpcError(res, { status: 401, code: -32001, id: 7 }, 'curl');
    assert.match(res.headers['www-authenticate'] ?? '', /^Bearer\b/);
    await assertNothingUpstream(fake, 'curl');
  });

  it('the SDK client with a wrong token fails to connect with 401', async () => {
    await assert.rejects(sdkConnect(gw, 'alice', { token: wrong }), (err) => {
      assert.equal(err.code, 401, `SDK error: ${err.message}`);
      return true;
    });
    await assertNothingUpstream(fake, 'SDK client');
  });

  it('GET and DELETE without a token are refused too', async () => {
    for (const method of ['GET', 'DELETE']) {
      const res = await gw.request({ method, headers: { Accept: 'text/event-stream', 'Mcp-Session-Id': 'x' } });
      assertRpcError(res, { status: 401, code: -32001, id: null }, method);
    }
    await assertNothingUpstream(fake, 'GET/DELETE');
  });
});
