// Several replicas (issue 6): two gateway processes in front of one fake Omni, sharing one real
// redis-server. A member's tool_calls_per_minute holds across both (the calls alternate between
// them; the 5th is refused by whichever replica gets it, and Omni receives exactly 4), counted
// in Redis in one-minute windows ("omnigw:v1:rate:<member>:tool:<minute>"). And nothing needs
// session affinity: the official SDK client, with a fetch that sends each request to replica A
// or B in turn, completes initialize, tools/list and tools/call on one MCP session.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { OMNI, TestEnv, assertRpcError, newMemberToken, tlsFetch, waitFor } from './lib/harness.mjs';
import { getDataMessage, rawSession, responseMessage, toolJson } from './lib/mcp.mjs';
import { startRedis } from './lib/redis.mjs';
import { adminGet, adminUrl, scrape } from './lib/prometheus.mjs';

// Both replicas know the same members with the same tokens, as replicas of one deployment do.
const shared = (spec) => {
  const { token, sha256 } = newMemberToken();
  return { ...spec, token, tokenSha256: sha256 };
};
const asAlice = (name, more = {}) => shared({ name, pat: OMNI.users.alice.pat, userId: OMNI.users.alice.id, ...more });
const LIMIT = 4;
const limited = { rate: { tool_calls_per_minute: LIMIT, burst: LIMIT } };
// rita and rhea have the same limit: the second is for a retry when the minute turns mid-test.
const MEMBERS = [asAlice('alice'), asAlice('rita', { rule: limited }), asAlice('rhea', { rule: limited })];

const env = new TestEnv('ops-replicas');
let fake;
let redis;

before(async () => {
  fake = await env.startFake();
  redis = await startRedis();
});
after(async () => {
  try {
    await env.cleanup();
  } finally {
    await redis?.stop();
  }
});
beforeEach(() => fake.reset());

/** Two replicas on Redis db `db`, with `config` on top; both connected to Redis (unless waitRedis is false). */
async function replicas(db, config = {}, label = '', { waitRedis = true } = {}) {
  const cfg = { redis: { url: redis.url(db), timeout_ms: 1000 }, admin: { listen: '127.0.0.1:0' }, ...config };
  const a = await env.startGateway({ upstreamUrl: fake.mcpUrl, members: MEMBERS, config: cfg, name: `replica-a${label}` });
  const b = await env.startGateway({ upstreamUrl: fake.mcpUrl, members: MEMBERS, config: cfg, name: `replica-b${label}` });
  if (waitRedis) {
    await a.waitForLog(/redis: connected/);
    await b.waitForLog(/redis: connected/);
  }
  return [a, b];
}

const minuteNow = () => Math.floor(Date.now() / 60000);

/** When less than 10 s are left of this minute, waits for the next one (the windows are per minute). */
async function awayFromMinuteEnd() {
  const left = 60000 - (Date.now() % 60000);
  if (left < 10000) await new Promise((r) => setTimeout(r, left + 200));
}

/**
 * member's tool calls alternate between a and b: 1 on a, 2 on b, ... Returns null when the
 * minute turned during the calls (the counts split over two windows: try again), else
 * { responses, minute }.
 */
async function alternateCalls(a, b, member, n) {
  await awayFromMinuteEnd();
  const sa = await rawSession(a.url, { ca: a.ca, headers: a.auth(member) });
  const sb = await rawSession(b.url, { ca: b.ca, headers: b.auth(member) });
  await fake.clearRequests();
  const minute = minuteNow();
  const responses = [];
  for (let id = 1; id <= n; id++) responses.push(await (id % 2 ? sa : sb).post(getDataMessage(id)));
  return minuteNow() === minute ? { responses, minute } : null;
}

/** The whole check, on a pair of replicas; retried once with the second member if the minute turned. */
async function assertLimitAcross(a, b, db) {
  let run;
  let member;
  for (member of ['rita', 'rhea']) {
    run = await alternateCalls(a, b, member, LIMIT + 2);
    if (run) break;
  }
  assert.ok(run, 'the minute turned during both attempts');
  const { responses, minute } = run;
  const [ma, mb] = [await scrape(a.admin), await scrape(b.admin)];

  for (let i = 0; i < LIMIT; i++) {
    const res = responses[i];
    assert.equal(res.status, 200, `call ${i + 1} (replica ${i % 2 ? 'b' : 'a'}): ${res.status} ${res.body}`);
    assert.ok(responseMessage(res, i + 1).result, `call ${i + 1}: ${res.body}`);
  }
  // The 5th (on a) and the 6th (on b) are refused: each replica saw only 2 or 3 calls itself.
  for (const i of [LIMIT, LIMIT + 1]) {
    const res = responses[i];
    assertRpcError(res, { status: 429, code: -32029, id: i + 1 }, `call ${i + 1} (replica ${i % 2 ? 'b' : 'a'})`);
    const retry = Number(res.headers['retry-after']);
    assert.ok(retry >= 1 && retry <= 60, `Retry-After ${res.headers['retry-after']}`);
  }
  const calls = await fake.rpcRequests('tools/call');
  assert.deepEqual(calls.map((r) => r.body.id), [1, 2, 3, 4], 'Omni received exactly 4 tools/call');

  // The shared window in Redis: every call counted, refused ones included; it expires.
  const key = `omnigw:v1:rate:${member}:tool:${minute}`;
  assert.equal(await redis.commandIn(db, 'GET', key), String(LIMIT + 2), `${key}`);
  const ttl = await redis.commandIn(db, 'TTL', key);
  assert.ok(ttl > 0 && ttl <= 61, `TTL of ${key}: ${ttl}`);
  // Each replica counted its own refusal.
  assert.equal(ma.value('omni_gw_rate_limited_total', { member }), 1, 'refusals counted on replica a');
  assert.equal(mb.value('omni_gw_rate_limited_total', { member }), 1, 'refusals counted on replica b');
}

describe('a member\'s rate limit across two replicas on one Redis', () => {
  it('tool_calls_per_minute 4, calls alternating between the replicas: the 5th and 6th get 429 -32029, Omni received exactly 4', async () => {
    const [a, b] = await replicas(0);
    a.admin = await adminUrl(a);
    b.admin = await adminUrl(b);
    try {
      await assertLimitAcross(a, b, 0);
      // alice has no limit: she goes on through both.
      const s = await rawSession(b.url, { ca: b.ca, headers: b.auth('alice') });
      assert.equal((await s.post(getDataMessage(50))).status, 200);
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});

describe('the same with the metadata cache turned off (cache.enabled false, Redis configured)', () => {
  let a;
  let b;
  before(async () => {
    // The cache is off, so no cache client logs `redis: connected`: nothing to wait for.
    [a, b] = await replicas(1, { cache: { enabled: false } }, '-nocache', { waitRedis: false });
    a.admin = await adminUrl(a);
    b.admin = await adminUrl(b);
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
  });

  it('/readyz is 200: Redis is configured and connected', async () => {
    const ready = await waitFor(async () => {
      const r = await adminGet(a.admin, '/readyz');
      return r.status === 200 ? r : null;
    }, { timeoutMs: 5000, message: '/readyz 200 on a replica with Redis connected and the cache off' }).catch(async (err) => {
      const r = await adminGet(a.admin, '/readyz');
      assert.fail(`${err.message}: got ${r.status} ${JSON.stringify(r.body)}`);
    });
    assert.match(ready.body, /ready/);
  });

  it('the limit is still shared: the 5th and 6th calls get 429, Omni received exactly 4', async () => {
    await assertLimitAcross(a, b, 1);
  });
});

describe('no session affinity', () => {
  it('an SDK client whose requests alternate between replica A and B completes initialize, tools/list and tools/call on one session', async () => {
    const [a, b] = await replicas(2);
    const base = tlsFetch(a.ca);
    const sent = []; // [replica, HTTP method, JSON-RPC method]
    let turn = 0;
    const alternating = (input, init = {}) => {
      const target = turn++ % 2 === 0 ? a : b;
      const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
      const to = new URL(url.pathname + url.search, target.origin);
      let rpcMethod = null;
      try { rpcMethod = init.body ? JSON.parse(init.body).method ?? 'response' : null; } catch { rpcMethod = '?'; }
      sent.push([target.name, init.method ?? 'GET', rpcMethod]);
      return base(to, init);
    };
    const transport = new StreamableHTTPClientTransport(new URL(a.url), {
      fetch: alternating,
      requestInit: { headers: { Authorization: `Bearer ${a.tokens.alice}` } },
      reconnectionOptions: { maxRetries: 0, initialReconnectionDelay: 1000, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1 },
    });
    const client = new Client({ name: 'omni-gw-itest-replicas', version: '1.0.0' });
    client.onerror = () => {};
    try {
      await client.connect(transport);
      const sessionId = transport.sessionId;
      assert.ok(sessionId, 'a session id after initialize');

      const tools = await client.listTools();
      assert.ok(tools.tools.some((t) => t.name === 'getData'), JSON.stringify(tools));
      const data = await client.callTool({ name: 'getData', arguments: { prompt: 'revenue by region' } });
      assert.notEqual(data.isError, true, JSON.stringify(data));
      assert.equal(toolJson(data).runAs, OMNI.users.alice.id);
      const pick = await client.callTool({ name: 'pickModel', arguments: {} });
      assert.notEqual(pick.isError, true, JSON.stringify(pick));
      const again = await client.listTools();
      assert.equal(again.tools.length, tools.tools.length);

      // Both replicas carried the session's POSTs, and the JSON-RPC requests were split.
      const posts = sent.filter(([, m]) => m === 'POST');
      const on = (method) => new Set(posts.filter(([, , r]) => r === method).map(([g]) => g));
      assert.equal(on('initialize').size, 1);
      const calls = posts.filter(([, , r]) => ['tools/list', 'tools/call'].includes(r)).map(([g]) => g);
      assert.deepEqual([...new Set(calls)].sort(), [a.name, b.name].sort(), `requests by replica: ${JSON.stringify(sent)}`);

      // Omni saw one session: every request after initialize carried its id, and both gateways sent some.
      const ups = (await fake.mcpRequests()).filter((r) => r.headers['mcp-session-id'] === sessionId);
      assert.ok(ups.some((r) => r.body?.method === 'tools/call' && r.body.params?.name === 'getData'), 'getData reached Omni on the session');
      const sessions = (await fake.events()).filter((e) => e.type === 'session-created');
      assert.equal(sessions.length, 1, `one session created: ${JSON.stringify(sessions)}`);
      const served = (g) => g.stderr().split('\n').filter((l) => /access .*member=alice .*rpc=tools\/(list|call) .*status=200/.test(l)).length;
      assert.ok(served(a) >= 1 && served(b) >= 1, `access lines: a ${served(a)}, b ${served(b)}`);

      // Ending the session works from whichever replica the DELETE goes to.
      await transport.terminateSession();
      await waitFor(async () => (await fake.events()).some((e) => e.type === 'session-closed'), { message: 'Omni closed the session' });
    } finally {
      await client.close().catch(() => {});
      base.destroy();
      await a.stop();
      await b.stop();
    }
  });
});
