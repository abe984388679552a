// The metadata cache (issue 4) with the in-process LRU (no `redis` key): a repeated tools/list or
// pickModel is answered without an upstream call, in the client's framing and with its id; the
// entry belongs to one Omni identity; getData is never cached; entries expire, are dropped on
// notifications/tools/list_changed, and are never served to a session that ended; concurrent
// misses make one upstream call. Every claim is checked by counting the calls in the fake's log.
// The gateway's own topic tools (listTopics, describeTopic: Omni's REST topic metadata, cached)
// are here too. The Redis flavour (shared entries, outages, purge) is in cache-redis.test.mjs.
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  OMNI, TestEnv, MCP_ACCEPT, openStream, parseSse, request, runGatewayCli, waitFor,
} from './lib/harness.mjs';
import { CRED, asks, cacheOutcome, cacheProbes, pickModel, ranAs, session, toolNames, toolsList } from './lib/cache.mjs';
import { getDataMessage, rawSession, responseMessage, rpc } from './lib/mcp.mjs';

const env = new TestEnv('cache');
let fake;
let gw; // the default cache config (on, LRU, tools/list and pickModel for 300 s)

// ---- helpers: who called upstream, and what the gateway's access log says ----

const { upstreamCalls, countUpstream } = cacheProbes(() => fake);

/** The one SSE event of a cached answer, parsed (asserts there is exactly one). */
function onlySseMessage(res) {
  const { events, rest } = parseSse(res.body);
  assert.equal(rest.trim(), '', `trailing bytes after the SSE events: ${JSON.stringify(res.body)}`);
  const data = events.filter((e) => e.data);
  assert.equal(data.length, 1, `one SSE event expected: ${res.body}`);
  return data[0].json();
}

function fakeControl(path, body) {
  return request(`${fake.base}/_fake/${path}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body ?? {}),
  }).then((res) => {
    assert.equal(res.status, 200, `fake /_fake/${path}: ${res.status} ${res.body}`);
    return JSON.parse(res.body);
  });
}

before(async () => {
  fake = await env.startFake();
  gw = await env.startGateway({ upstreamUrl: fake.mcpUrl });
});
after(() => env.cleanup());
beforeEach(() => fake.reset());

describe('hits', () => {
  it('a second tools/list from the same member is served without an upstream call, with the client\'s id and framing', async () => {
    const s = await session(gw, 'alice');
    const miss = await s.post(toolsList(11));
    assert.equal(miss.status, 200, miss.body);
    const first = responseMessage(miss, 11).result;
    assert.ok(toolNames(first).includes('getData'), `alice's list: ${toolNames(first)}`);
    assert.equal(await cacheOutcome(gw, miss), 'miss');
    assert.equal(await countUpstream('alice', 'tools/list'), 1, 'the first tools/list goes upstream');

    // Accept lists text/event-stream: an SSE answer, with this request's (string) id.
    const sse = await s.post(toolsList('second-list'), { Accept: MCP_ACCEPT });
    assert.equal(sse.status, 200, sse.body);
    assert.match(String(sse.headers['content-type']), /^text\/event-stream/);
    const sseMsg = onlySseMessage(sse);
    assert.equal(sseMsg.jsonrpc, '2.0');
    assert.equal(sseMsg.id, 'second-list');
    assert.deepEqual(sseMsg.result, first);
    assert.equal(await cacheOutcome(gw, sse), 'hit');

    // Accept application/json only: a JSON answer, with this request's id.
    const json = await s.post(toolsList(13), { Accept: 'application/json' });
    assert.equal(json.status, 200, json.body);
    assert.match(String(json.headers['content-type']), /^application\/json/);
    const jsonMsg = JSON.parse(json.body);
    assert.deepEqual(jsonMsg, { jsonrpc: '2.0', id: 13, result: first });
    assert.equal(await cacheOutcome(gw, json), 'hit');

    // The entry belongs to alice's Omni identity, not to the session: another session hits too.
    const s2 = await session(gw, 'alice');
    const other = await s2.post(toolsList(14));
    assert.deepEqual(responseMessage(other, 14).result, first);
    assert.equal(await cacheOutcome(gw, other), 'hit');

    assert.equal(await countUpstream('alice', 'tools/list'), 1, 'the three later tools/list never reached Omni');
  });

  it('a second pickModel from the same member is served without an upstream call, with the client\'s id and framing', async () => {
    const s = await session(gw, 'alice');
    const miss = await s.post(pickModel(21));
    const first = responseMessage(miss, 21).result;
    assert.match(first.content[0].text, /"runAs":"u-alice"/);
    assert.equal(await cacheOutcome(gw, miss), 'miss');
    assert.equal(await countUpstream('alice', 'pickModel'), 1);

    const sse = await s.post(pickModel(22));
    assert.match(String(sse.headers['content-type']), /^text\/event-stream/);
    const sseMsg = onlySseMessage(sse);
    assert.equal(sseMsg.id, 22);
    assert.deepEqual(sseMsg.result, first);
    assert.equal(await cacheOutcome(gw, sse), 'hit');

    const json = await s.post(pickModel('p-3'), { Accept: 'application/json' });
    assert.match(String(json.headers['content-type']), /^application\/json/);
    assert.deepEqual(JSON.parse(json.body), { jsonrpc: '2.0', id: 'p-3', result: first });
    assert.equal(await cacheOutcome(gw, json), 'hit');

    assert.equal(await countUpstream('alice', 'pickModel'), 1, 'the later pickModel calls never reached Omni');
  });
});

describe('entries belong to one Omni identity', () => {
  it('bob (Viewer) is not served alice\'s tools/list: his goes upstream and lacks getData; each one\'s entry serves only them', async () => {
    const alice = await session(gw, 'alice');
    const bob = await session(gw, 'bob');
    const carol = await session(gw, 'carol');
    await alice.post(toolsList(1)); // alice's list is cached (now, or by an earlier test)
    const aliceBefore = await countUpstream('alice', 'tools/list');

    const bob1 = await bob.post(toolsList(2));
    const bobList = responseMessage(bob1, 2).result;
    assert.equal(await countUpstream('bob', 'tools/list'), 1, 'bob\'s tools/list went upstream, as bob');
    assert.equal(await cacheOutcome(gw, bob1), 'miss');
    assert.ok(!toolNames(bobList).includes('getData'), `bob got getData: ${toolNames(bobList)}`);
    assert.ok(toolNames(bobList).includes('pickModel'), `bob's list: ${toolNames(bobList)}`);

    // carol runs as another Omni user (org key + her id) with the same role as alice: her own entry.
    const carol1 = await carol.post(toolsList(3));
    assert.ok(toolNames(responseMessage(carol1, 3).result).includes('getData'));
    assert.equal(await countUpstream('carol', 'tools/list'), 1, 'carol\'s tools/list went upstream, as carol');

    const alice2 = await alice.post(toolsList(4));
    assert.ok(toolNames(responseMessage(alice2, 4).result).includes('getData'), 'alice still has getData');
    assert.equal(await cacheOutcome(gw, alice2), 'hit');
    const bob2 = await bob.post(toolsList(5));
    assert.deepEqual(responseMessage(bob2, 5).result, bobList, 'bob\'s hit is bob\'s own list');
    assert.equal(await cacheOutcome(gw, bob2), 'hit');

    assert.equal(await countUpstream('alice', 'tools/list'), aliceBefore, 'alice was served from her entry');
    assert.equal(await countUpstream('bob', 'tools/list'), 1, 'bob was served from his entry');
  });
});

describe('data queries', () => {
  it('getData is never cached: two identical calls make two upstream calls', async () => {
    const s = await session(gw, 'alice');
    const call = (id) => getDataMessage(id, 'revenue by region', { topicName: 'orders' });
    const r1 = await s.post(call(31));
    const r2 = await s.post(call(32));
    assert.ok(responseMessage(r1, 31).result, r1.body);
    assert.ok(responseMessage(r2, 32).result, r2.body);
    assert.equal(await countUpstream('alice', 'getData'), 2, 'each getData reached Omni');
    assert.equal(await cacheOutcome(gw, r1), 'none', 'getData never looks in the cache');
    assert.equal(await cacheOutcome(gw, r2), 'none');
  });

  it('a ttl for a data query is a config error (check -c names cache.ttl_s.getData)', async () => {
    const { writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const file = join(env.dir, 'ttl-getdata.json');
    writeFileSync(file, JSON.stringify({ ...gw.config, cache: { ttl_s: { getData: 60 } } }));
    const res = await runGatewayCli(['check', '-c', file]);
    assert.equal(res.code, 1, `check accepted a ttl for getData: ${res.stdout}${res.stderr}`);
    assert.match(res.stdout + res.stderr, /cache\.ttl_s\.getData/);
  });
});

describe('invalidation', () => {
  it('TTL: with ttl_s {"tools/list": 1}, tools/list goes upstream again once the entry is older than 1 s; pickModel keeps its default', async () => {
    const g = await env.startGateway({ upstreamUrl: fake.mcpUrl, config: { cache: { ttl_s: { 'tools/list': 1 } } }, name: 'gateway-ttl' });
    const s = await session(g, 'alice');
    assert.equal(await cacheOutcome(g, await s.post(toolsList(1))), 'miss');
    assert.equal(await cacheOutcome(g, await s.post(pickModel(2))), 'miss');
    assert.equal(await cacheOutcome(g, await s.post(toolsList(3))), 'hit', 'within its second, the entry serves');
    assert.equal(await countUpstream('alice', 'tools/list'), 1);

    let id = 10;
    await waitFor(async () => {
      await s.post(toolsList(id++));
      return (await countUpstream('alice', 'tools/list')) === 2;
    }, { timeoutMs: 15000, intervalMs: 200, message: 'a tools/list to go upstream again after its 1 s ttl' });
    const [firstCall, secondCall] = await upstreamCalls('alice', 'tools/list');
    // Not a timing test: only that the entry did not expire early (it was stored after firstCall).
    assert.ok(secondCall.t - firstCall.t >= 1000, `refetched after ${secondCall.t - firstCall.t} ms, before its 1 s ttl`);

    const pick = await s.post(pickModel(99));
    assert.equal(await cacheOutcome(g, pick), 'hit', 'pickModel keeps the default 300 s');
    assert.equal(await countUpstream('alice', 'pickModel'), 1);
  });

  it('cache.enabled false: every tools/list goes upstream, and no topic tools are offered', async () => {
    const g = await env.startGateway({ upstreamUrl: fake.mcpUrl, config: { cache: { enabled: false } }, name: 'gateway-nocache' });
    const s = await session(g, 'alice');
    for (const id of [1, 2, 3]) {
      const names = toolNames(responseMessage(await s.post(toolsList(id)), id).result);
      assert.ok(!names.includes('listTopics'), `the topic tools need the cache: ${names}`);
    }
    assert.equal(await countUpstream('alice', 'tools/list'), 3);
  });

  it('notifications/tools/list_changed on the GET stream drops that identity\'s tool list (and nobody else\'s)', async () => {
    const s = await session(gw, 'alice');
    const bob = await session(gw, 'bob');
    await s.post(toolsList(1));
    await bob.post(toolsList(2));
    assert.equal(await cacheOutcome(gw, await s.post(toolsList(3))), 'hit', 'premise: alice\'s list is cached');
    assert.equal(await cacheOutcome(gw, await bob.post(toolsList(4))), 'hit', 'premise: bob\'s list is cached');
    await fake.clearRequests();

    const stream = await openStream(gw.url, { method: 'GET', headers: s.headers({ Accept: 'text/event-stream' }), ca: gw.ca });
    try {
      assert.equal(stream.status, 200, 'GET stream through the gateway');
      const { sent } = await fakeControl('list-changed', { runAs: OMNI.users.alice.id });
      assert.ok(sent >= 1, 'the fake told alice\'s sessions');
      const ev = await stream.nextEvent(10000);
      assert.equal(ev?.json().method, 'notifications/tools/list_changed', 'the notification reaches the client');

      const after1 = await s.post(toolsList(5));
      assert.ok(toolNames(responseMessage(after1, 5).result).includes('getData'));
      assert.equal(await countUpstream('alice', 'tools/list'), 1, 'the next tools/list went upstream');
      assert.equal(await cacheOutcome(gw, after1), 'miss');
      assert.equal(await cacheOutcome(gw, await s.post(toolsList(6))), 'hit', 'and is cached again');
      assert.equal(await countUpstream('alice', 'tools/list'), 1);

      assert.equal(await cacheOutcome(gw, await bob.post(toolsList(7))), 'hit', 'bob\'s entry is untouched');
      assert.equal(await countUpstream('bob', 'tools/list'), 0);
    } finally {
      stream.close();
    }
  });

  it('notifications/tools/list_changed on a POST\'s SSE stream (a held getData) drops that identity\'s tool list', async () => {
    const s = await session(gw, 'alice');
    await s.post(toolsList(1));
    assert.equal(await cacheOutcome(gw, await s.post(toolsList(2))), 'hit', 'premise: alice\'s list is cached');
    await fake.hold();
    const call = await s.stream(getDataMessage(3));
    try {
      assert.equal(call.status, 200);
      await waitFor(async () => (await fake.events()).some((e) => e.type === 'hold-waiting'), { message: 'getData held' });
      const { sent } = await fakeControl('list-changed', { runAs: OMNI.users.alice.id, on: 'held' });
      assert.equal(sent, 1);
      let ev;
      do ev = await call.nextEvent(10000); while (ev && ev.json().method !== 'notifications/tools/list_changed');
      assert.ok(ev, 'the notification reaches the client on the getData stream');
      await fake.release();
      assert.ok(responseMessage({ headers: call.headers, body: (await call.ended, call.text()) }, 3).result);
    } finally {
      await fake.release();
      call.close();
    }
    await fake.clearRequests();
    const next = await s.post(toolsList(4));
    assert.ok(responseMessage(next, 4).result);
    assert.equal(await countUpstream('alice', 'tools/list'), 1, 'the next tools/list went upstream');
    assert.equal(await cacheOutcome(gw, next), 'miss');
  });
});

describe('ended sessions', () => {
  it('after DELETE of a session, a tools/list on it is not served from the cache: it gets the upstream\'s 404', async () => {
    const s = await session(gw, 'alice');
    await s.post(toolsList(1));
    assert.equal(await cacheOutcome(gw, await s.post(toolsList(2))), 'hit', 'premise: alice\'s list is cached');
    const del = await request(gw.url, { method: 'DELETE', headers: s.headers(), ca: gw.ca });
    assert.equal(del.status, 200, `DELETE: ${del.status} ${del.body}`);
    await fake.clearRequests();

    const after1 = await s.post(toolsList(3));
    assert.equal(after1.status, 404, `a tools/list on the ended session: ${after1.status} ${after1.body}`);
    const upstream = await upstreamCalls('alice', 'tools/list');
    assert.equal(upstream.length, 1, 'it went upstream');
    assert.equal(upstream[0].headers['mcp-session-id'], s.sessionId);
    assert.notEqual(await cacheOutcome(gw, after1), 'hit');

    const live = await session(gw, 'alice');
    assert.equal(await cacheOutcome(gw, await live.post(toolsList(4))), 'hit', 'alice\'s other sessions still get the entry');
    assert.equal(await countUpstream('alice', 'tools/list'), 1);
  });

  it('a session Omni answered 404 for (Omni restarted) gets no cached answers afterwards', async () => {
    const s = await session(gw, 'alice');
    await s.post(toolsList(1));
    assert.equal(await cacheOutcome(gw, await s.post(toolsList(2))), 'hit', 'premise: alice\'s list is cached');
    await request(`${fake.base}/_fake/sessions`, { method: 'DELETE' });
    const ping = await s.post(rpc(3, 'ping'));
    assert.equal(ping.status, 404, `ping on a session Omni forgot: ${ping.status} ${ping.body}`);
    await fake.clearRequests();

    const after1 = await s.post(toolsList(4));
    assert.equal(after1.status, 404, `${after1.status} ${after1.body}`);
    assert.equal(await countUpstream('alice', 'tools/list'), 1, 'it went upstream');

    const live = await session(gw, 'alice');
    assert.equal(await cacheOutcome(gw, await live.post(toolsList(5))), 'hit', 'a new session of alice gets the entry');
    assert.equal(await countUpstream('alice', 'tools/list'), 1);
  });
});

describe('single flight', () => {
  it('concurrent tools/list of one member with a slow upstream make exactly one upstream call; another member\'s make their own', async () => {
    const g = await env.startGateway({ upstreamUrl: fake.mcpUrl, name: 'gateway-flight' }); // a cold cache
    const alice = await session(g, 'alice');
    const bob = await session(g, 'bob');
    const DELAY = 1000;
    await fake.setConfig({ delayMs: DELAY });
    const sentAt = [];
    const ask = (s, id) => { sentAt.push(Date.now()); return s.post(toolsList(id)); };
    const aliceIds = [101, 102, 103, 104, 105];
    const bobIds = [201, 202, 203];
    const results = await Promise.all([...aliceIds.map((id) => ask(alice, id)), ...bobIds.map((id) => ask(bob, id))]);
    const aliceRes = results.slice(0, aliceIds.length);
    const bobRes = results.slice(aliceIds.length);

    const aliceUp = await upstreamCalls('alice', 'tools/list');
    const bobUp = await upstreamCalls('bob', 'tools/list');
    assert.equal(aliceUp.length, 1, `alice's ${aliceIds.length} concurrent tools/list made ${aliceUp.length} upstream calls`);
    assert.equal(bobUp.length, 1, `bob's ${bobIds.length} concurrent tools/list made ${bobUp.length} upstream calls`);
    // The premise: every request was sent before Omni could have answered the first one.
    const answerableAt = Math.min(aliceUp[0].t, bobUp[0].t) + DELAY;
    assert.ok(Math.max(...sentAt) < answerableAt, 'the requests were not concurrent; the test shows nothing');

    const aliceList = responseMessage(aliceRes[0], aliceIds[0]).result;
    const bobList = responseMessage(bobRes[0], bobIds[0]).result;
    aliceIds.forEach((id, i) => assert.deepEqual(responseMessage(aliceRes[i], id).result, aliceList, `alice #${id}`));
    bobIds.forEach((id, i) => assert.deepEqual(responseMessage(bobRes[i], id).result, bobList, `bob #${id}`));
    assert.ok(toolNames(aliceList).includes('getData'));
    assert.ok(!toolNames(bobList).includes('getData'), 'a follower of bob never gets alice\'s answer');

    const outcomes = await Promise.all(results.map((r) => cacheOutcome(g, r)));
    assert.deepEqual(outcomes.slice(0, aliceIds.length).sort(), ['hit', 'hit', 'hit', 'hit', 'miss'], 'alice: one leader (miss), four followers');
    assert.deepEqual(outcomes.slice(aliceIds.length).sort(), ['hit', 'hit', 'miss'], 'bob: one leader, two followers');
  });
});

describe('topic tools served by the gateway', () => {
  const SALES = '6f1c2a8e-5b3d-4c71-9a0e-1d2b3c4d5e01';
  const FINANCE = '6f1c2a8e-5b3d-4c71-9a0e-1d2b3c4d5e02';
  const aliceAs = (name, rule) => ({ name, pat: OMNI.users.alice.pat, userId: OMNI.users.alice.id, rule });
  // pia and tina run as alice in Omni (her PAT), so they share her entries; only their rules differ.
  const MEMBERS = [
    { name: 'alice', pat: OMNI.users.alice.pat, userId: OMNI.users.alice.id },
    { name: 'bob', pat: OMNI.users.bob.pat, userId: OMNI.users.bob.id },
    { name: 'carol', userId: OMNI.users.carol.id },
    aliceAs('pia', { model: FINANCE, topics: ['invoices'] }),
    aliceAs('tina', { topics: ['invoices'] }),
  ];
  let g;
  before(async () => {
    g = await env.startGateway({ upstreamUrl: fake.mcpUrl, members: MEMBERS, name: 'gateway-topics' });
  });

  const topicCall = (id, tool, args) => rpc(id, 'tools/call', { name: tool, arguments: args });
  /** The JSON payload of a topic tool's answer, and whether it is an error. */
  const payload = (res, id) => {
    const result = responseMessage(res, id).result;
    assert.ok(result, `no result: ${res.body}`);
    return { ...JSON.parse(result.content[0].text), isError: result.isError === true };
  };
  /** REST topic requests the fake received as member (Authorization), for a path suffix. */
  const restCalls = async (member, suffix) => (await fake.requests()).filter((r) => r.path.startsWith('/api/v1/models/')
    && r.path.endsWith(suffix) && ranAs(r, member));
  const mcpToolCalls = async (tool) => (await fake.requests()).filter((r) => r.path.startsWith('/mcp') && asks(r.body, tool));

  it('tools/list offers listTopics and describeTopic to PAT members (on a hit too), not to carol (org key), not with topic_tools false', async () => {
    const a = await session(g, 'alice');
    for (const id of [1, 2]) {
      const res = await a.post(toolsList(id));
      const names = toolNames(responseMessage(res, id).result);
      assert.ok(names.includes('listTopics') && names.includes('describeTopic'), `alice's list #${id}: ${names}`);
      if (id === 2) assert.equal(await cacheOutcome(g, res), 'hit');
    }
    const c = await session(g, 'carol');
    const carolNames = toolNames(responseMessage(await c.post(toolsList(3)), 3).result);
    assert.ok(!carolNames.includes('listTopics') && !carolNames.includes('describeTopic'), `carol (org key): ${carolNames}`);

    const off = await env.startGateway({ upstreamUrl: fake.mcpUrl, config: { cache: { topic_tools: false } }, name: 'gateway-no-topic-tools' });
    const o = await session(off, 'alice');
    const offNames = toolNames(responseMessage(await o.post(toolsList(4)), 4).result);
    assert.ok(!offNames.includes('listTopics'), `topic_tools false: ${offNames}`);
  });

  it('listTopics and describeTopic ask Omni\'s REST API once with the member\'s own PAT, then answer from the cache; Omni\'s MCP endpoint never sees them', async () => {
    const a = await session(g, 'alice');
    const list1 = await a.post(topicCall(1, 'listTopics', { modelId: SALES }));
    const listed = payload(list1, 1);
    assert.equal(listed.isError, false, JSON.stringify(listed));
    assert.equal(listed.modelId, SALES);
    assert.deepEqual(listed.topics.map((t) => t.name), ['orders']);
    assert.equal(listed.topics[0].label, 'Orders');
    assert.match(listed.topics[0].description, /revenue/);
    assert.equal(await cacheOutcome(g, list1), 'miss');
    const rest = await restCalls('alice', `/models/${SALES}/topic`);
    assert.equal(rest.length, 1, 'one REST call for the topic list');
    assert.equal(rest[0].method, 'GET');

    const list2 = await a.post(topicCall('l2', 'listTopics', { modelId: SALES }), { Accept: 'application/json' });
    assert.match(String(list2.headers['content-type']), /^application\/json/);
    assert.deepEqual(payload(list2, 'l2'), listed);
    assert.equal(await cacheOutcome(g, list2), 'hit');
    assert.equal((await restCalls('alice', `/models/${SALES}/topic`)).length, 1, 'the second listTopics made no REST call');

    const desc1 = await a.post(topicCall(3, 'describeTopic', { modelId: SALES, topicName: 'orders' }));
    const described = payload(desc1, 3);
    assert.equal(described.isError, false, JSON.stringify(described));
    assert.equal(described.topic.name, 'orders');
    assert.deepEqual(described.topic.views.map((v) => v.name), ['order_items']);
    assert.equal((await restCalls('alice', `/models/${SALES}/topic/orders`)).length, 1);
    const desc2 = await a.post(topicCall(4, 'describeTopic', { modelId: SALES, topicName: 'orders' }));
    assert.deepEqual(payload(desc2, 4), described);
    assert.equal(await cacheOutcome(g, desc2), 'hit');
    assert.equal((await restCalls('alice', `/models/${SALES}/topic/orders`)).length, 1, 'the second describeTopic made no REST call');

    assert.equal((await mcpToolCalls('listTopics')).length + (await mcpToolCalls('describeTopic')).length, 0);
  });

  it('bob gets his own topic entries (REST with his PAT); a model he cannot reach is an error, and errors are not cached', async () => {
    const a = await session(g, 'alice');
    await a.post(topicCall(1, 'listTopics', { modelId: SALES })); // alice's entry exists
    const b = await session(g, 'bob');
    const mine = payload(await b.post(topicCall(2, 'listTopics', { modelId: SALES })), 2);
    assert.deepEqual(mine.topics.map((t) => t.name), ['orders']);
    assert.equal((await restCalls('bob', `/models/${SALES}/topic`)).length, 1, 'bob\'s listTopics went to REST as bob');

    for (const id of [3, 4]) {
      const denied = payload(await b.post(topicCall(id, 'listTopics', { modelId: FINANCE })), id);
      assert.equal(denied.isError, true, `bob on Finance: ${JSON.stringify(denied)}`);
    }
    assert.equal((await restCalls('bob', `/models/${FINANCE}/topic`)).length, 2, 'the refusal was asked twice: not cached');
  });

  it('the member\'s policy filters the topics when serving (a shared entry too); a refused topic and missing arguments never reach Omni', async () => {
    const a = await session(g, 'alice');
    await a.post(topicCall(1, 'listTopics', { modelId: SALES }));
    await fake.clearRequests();

    // tina runs as alice: alice's cached Sales list serves her, without "orders" (not in her topics).
    const t = await session(g, 'tina');
    const tinaRes = await t.post(topicCall(2, 'listTopics', { modelId: SALES }));
    assert.deepEqual(payload(tinaRes, 2).topics, [], 'orders is filtered out for tina');
    assert.equal(await cacheOutcome(g, tinaRes), 'hit');
    const refused = await t.post(topicCall(3, 'describeTopic', { modelId: SALES, topicName: 'orders' }));
    assertPolicyRefusal(refused, 3);

    // pia's pin is the default model.
    const p = await session(g, 'pia');
    const piaList = payload(await p.post(topicCall(4, 'listTopics', {})), 4);
    assert.equal(piaList.modelId, FINANCE);
    assert.deepEqual(piaList.topics.map((x) => x.name), ['invoices']);
    assert.equal((await restCalls('alice', `/models/${FINANCE}/topic`)).length, 1, 'pia asked REST with alice\'s PAT, for Finance');

    // No model: an error from the gateway. carol (org key): an error, no REST call with the org key.
    const noModel = payload(await a.post(topicCall(5, 'listTopics', {})), 5);
    assert.equal(noModel.isError, true);
    assert.match(noModel.error, /modelId/);
    const c = await session(g, 'carol');
    const carolRes = payload(await c.post(topicCall(6, 'listTopics', { modelId: FINANCE })), 6);
    assert.equal(carolRes.isError, true, JSON.stringify(carolRes));
    const rest = (await fake.requests()).filter((r) => r.path.startsWith('/api/'));
    assert.deepEqual(rest.map((r) => r.path), [`/api/v1/models/${FINANCE}/topic`], 'only pia\'s REST call reached Omni');
    assert.equal((await mcpToolCalls('listTopics')).length + (await mcpToolCalls('describeTopic')).length, 0);
  });
});

/** A policy refusal made by the gateway: HTTP 200 with JSON-RPC error -32030 and this id. */
function assertPolicyRefusal(res, id) {
  const msg = JSON.parse(res.headers['content-type']?.includes('event-stream')
    ? parseSse(res.body).events.find((e) => e.data).data : res.body);
  assert.equal(msg.id, id);
  assert.equal(msg.error?.code, -32030, `expected a -32030 refusal: ${res.status} ${res.body}`);
}
