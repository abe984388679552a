// The metadata cache in a real Redis (started here, on a port chosen at run time): two gateway
// processes share entries; entries are namespaced, hold no secret and carry their TTL; getData
// never reaches Redis; `cache purge` drops one member's entries or all of the gateway's; a killed
// or frozen redis-server makes the cache step aside (requests go upstream and succeed, one log
// line per outage) and caching resumes once Redis is back. Upstream calls are counted in the
// fake's log. The in-process cache is covered by cache.test.mjs.
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OMNI, TestEnv, closedPort, merge, runGatewayCli, waitFor } from './lib/harness.mjs';
import { CRED, asks, cacheOutcome, cacheProbes, pickModel, ranAs, session, toolNames, toolsList } from './lib/cache.mjs';
import { getDataMessage, rawSession, responseMessage, rpc } from './lib/mcp.mjs';
import { startRedis } from './lib/redis.mjs';

const env = new TestEnv('cache-redis');
let fake;
let redis;
let gwA; // two gateway processes on one Redis (db 0)
let gwB;

const KEY_SHAPE = /^omnigw:v1:[0-9a-f]{32}:[0-9a-f]{64}$/;
// The gateways' timeout is generous so that a loaded machine never turns a hit into a miss;
// the frozen-Redis test has its own gateway with a short one.
const redisConfig = (db = 0, extra = {}) => ({ redis: { url: redis.url(db), timeout_ms: 1000, ...extra } });

// ---- helpers: who called upstream, and what the gateway's access log says ----

const { upstreamCalls, countUpstream } = cacheProbes(() => fake);
const gatewayKeys = (db = 0) => redis.keys('omnigw:*', db);

/** Writes happen after the answer (fire and forget): waits until db holds at least n of ours. */
const waitForKeys = (n, db = 0) => waitFor(async () => (await gatewayKeys(db)).length >= n, { message: `${n} cache keys in Redis db ${db}` });

/** Waits until db holds a gateway key that is not in `known` (a write after the answer landed). */
const waitForNewKey = (known, db = 0) => waitFor(async () => (await gatewayKeys(db)).find((k) => !known.includes(k)), { message: `a new cache key in Redis db ${db}` });

/** Lines of g's stderr from offset `since` that match re. */
const logLines = (g, re, since = 0) => g.stderr().slice(since).split('\n').filter((l) => re.test(l));

before(async () => {
  fake = await env.startFake();
  redis = await startRedis();
  gwA = await env.startGateway({ upstreamUrl: fake.mcpUrl, config: redisConfig(0), name: 'gateway-a' });
  gwB = await env.startGateway({ upstreamUrl: fake.mcpUrl, config: redisConfig(0), name: 'gateway-b' });
  await gwA.waitForLog(/redis: connected/);
  await gwB.waitForLog(/redis: connected/);
});
after(async () => {
  try {
    await env.cleanup();
  } finally {
    await redis?.stop();
  }
});
beforeEach(() => fake.reset());

describe('shared entries', () => {
  it('gateway A misses and stores; gateway B (another process, same Redis) hits without an upstream call', async () => {
    const a = await session(gwA, 'alice');
    const b = await session(gwB, 'alice');
    const known = await gatewayKeys();
    const missA = await a.post(toolsList(1));
    const list = responseMessage(missA, 1).result;
    assert.equal(await cacheOutcome(gwA, missA), 'miss');
    assert.equal(await countUpstream('alice', 'tools/list'), 1);
    known.push(await waitForNewKey(known));

    const hitB = await b.post(toolsList('from-b'), { Accept: 'application/json' });
    assert.equal(hitB.status, 200, hitB.body);
    assert.match(String(hitB.headers['content-type']), /^application\/json/);
    assert.deepEqual(JSON.parse(hitB.body), { jsonrpc: '2.0', id: 'from-b', result: list });
    assert.equal(await cacheOutcome(gwB, hitB), 'hit');
    assert.equal(await countUpstream('alice', 'tools/list'), 1, 'B\'s tools/list never reached Omni');

    // pickModel the other way round: B stores, A hits.
    const missB = await b.post(pickModel(2));
    const picked = responseMessage(missB, 2).result;
    await waitForNewKey(known);
    const hitA = await a.post(pickModel(3));
    assert.match(String(hitA.headers['content-type']), /^text\/event-stream/);
    assert.deepEqual(responseMessage(hitA, 3).result, picked);
    assert.equal(await cacheOutcome(gwA, hitA), 'hit');
    assert.equal(await countUpstream('alice', 'pickModel'), 1, 'A\'s pickModel never reached Omni');
  });

  it('bob (Viewer) is not served alice\'s entry through Redis: his list goes upstream, lacks getData, and is shared in turn', async () => {
    const aliceB = await session(gwB, 'alice');
    const bobB = await session(gwB, 'bob');
    const bobA = await session(gwA, 'bob');
    await aliceB.post(toolsList(1));
    await waitForKeys(1);
    const aliceBefore = await countUpstream('alice', 'tools/list');
    const known = await gatewayKeys();

    const bob1 = await bobB.post(toolsList(2));
    const bobList = responseMessage(bob1, 2).result;
    assert.ok(!toolNames(bobList).includes('getData'), `bob got getData: ${toolNames(bobList)}`);
    assert.equal(await countUpstream('bob', 'tools/list'), 1, 'bob\'s tools/list went upstream');
    await waitForNewKey(known); // bob's own entry, beside alice's
    const bob2 = await bobA.post(toolsList(3));
    assert.equal(await cacheOutcome(gwA, bob2), 'hit', 'gateway A serves bob\'s entry');
    assert.deepEqual(responseMessage(bob2, 3).result, bobList);
    assert.equal(await countUpstream('bob', 'tools/list'), 1);

    const alice2 = await aliceB.post(toolsList(4));
    assert.ok(toolNames(responseMessage(alice2, 4).result).includes('getData'), 'alice still has getData');
    assert.equal(await cacheOutcome(gwB, alice2), 'hit');
    assert.equal(await countUpstream('alice', 'tools/list'), aliceBefore);
  });

  it('keys are namespaced, hold no credential or user id, and expire (TTL set); values are the JSON-RPC results', async () => {
    const a = await session(gwA, 'alice');
    await a.post(toolsList(1));
    await waitForKeys(1);
    const keys = await gatewayKeys();
    const secrets = [OMNI.users.alice.pat, OMNI.users.bob.pat, OMNI.orgKey, OMNI.users.alice.id, OMNI.users.bob.id];
    for (const key of keys) {
      assert.match(key, KEY_SHAPE);
      for (const s of secrets) assert.ok(!key.includes(s), `key ${key} holds ${s}`);
      const ttl = await redis.command('TTL', key);
      assert.ok(ttl > 0 && ttl <= 300, `TTL of ${key}: ${ttl}`);
      const value = JSON.parse(await redis.command('GET', key));
      assert.ok(Array.isArray(value.tools) || Array.isArray(value.content), `value of ${key}: ${JSON.stringify(value).slice(0, 200)}`);
      assert.ok(!('id' in value) && !('jsonrpc' in value), 'the result is stored, not the whole message');
    }
  });

  it('getData is never cached: two identical calls go upstream and nothing is written to Redis', async () => {
    const a = await session(gwA, 'alice');
    const before = await gatewayKeys();
    const call = (id) => getDataMessage(id, 'revenue by region', { topicName: 'orders' });
    assert.ok(responseMessage(await a.post(call(1)), 1).result);
    assert.ok(responseMessage(await a.post(call(2)), 2).result);
    assert.equal(await countUpstream('alice', 'getData'), 2);
    assert.deepEqual(await gatewayKeys(), before, 'getData wrote to Redis');
  });
});

describe('single flight with Redis', () => {
  it('5 concurrent tools/list of one member (cold Redis db, slow upstream) make exactly one upstream call', async () => {
    const g = await env.startGateway({ upstreamUrl: fake.mcpUrl, config: redisConfig(3), name: 'gateway-flight' });
    await g.waitForLog(/redis: connected/);
    const s = await session(g, 'alice');
    const DELAY = 1000;
    await fake.setConfig({ delayMs: DELAY });
    const ids = [1, 2, 3, 4, 5];
    const sentAt = [];
    const results = await Promise.all(ids.map((id) => { sentAt.push(Date.now()); return s.post(toolsList(id)); }));
    const up = await upstreamCalls('alice', 'tools/list');
    assert.equal(up.length, 1, `${ids.length} concurrent tools/list made ${up.length} upstream calls`);
    assert.ok(Math.max(...sentAt) < up[0].t + DELAY, 'the requests were not concurrent; the test shows nothing');
    const list = responseMessage(results[0], 1).result;
    ids.forEach((id, i) => assert.deepEqual(responseMessage(results[i], id).result, list, `#${id}`));
    const outcomes = await Promise.all(results.map((r) => cacheOutcome(g, r)));
    assert.deepEqual(outcomes.sort(), ['hit', 'hit', 'hit', 'hit', 'miss']);
  });
});

describe('TTL in Redis', () => {
  it('ttl_s {"tools/list": 1}: the key carries it, and after it the next tools/list goes upstream again', async () => {
    const g = await env.startGateway({ upstreamUrl: fake.mcpUrl, config: { ...redisConfig(1), cache: { ttl_s: { 'tools/list': 1 } } }, name: 'gateway-ttl' });
    const s = await session(g, 'alice');
    assert.equal(await cacheOutcome(g, await s.post(toolsList(1))), 'miss');
    const [key] = await waitForKeys(1, 1).then(() => gatewayKeys(1));
    const pttl = await redis.commandIn(1, 'PTTL', key);
    assert.ok(pttl === -2 || (pttl > 0 && pttl <= 1000), `PTTL of ${key}: ${pttl}`);

    let id = 10;
    await waitFor(async () => {
      await s.post(toolsList(id++));
      return (await countUpstream('alice', 'tools/list')) === 2;
    }, { timeoutMs: 15000, intervalMs: 200, message: 'a tools/list to go upstream again after its 1 s ttl' });
    const [firstCall, secondCall] = await upstreamCalls('alice', 'tools/list');
    assert.ok(secondCall.t - firstCall.t >= 1000, `refetched after ${secondCall.t - firstCall.t} ms, before its 1 s ttl`);
  });
});

describe('cache purge', () => {
  // The member PATs and the org key, as the gateway's own environment has them.
  const cliEnv = () => ({ OMNI_PAT_ALICE: OMNI.users.alice.pat, OMNI_PAT_BOB: OMNI.users.bob.pat, OMNI_ORG_KEY: OMNI.orgKey });
  const purge = (args) => runGatewayCli(['cache', 'purge', '-c', gwA.configFile, ...args], { env: cliEnv() });
  let supported = true;
  before(async () => {
    const usage = await runGatewayCli(['--help']);
    supported = /cache purge/.test(usage.stdout + usage.stderr);
  });

  it('--user alice drops alice\'s entries only; without --user every gateway key goes and nothing else', async (t) => {
    if (!supported) return t.skip('this gateway has no `cache purge`');
    const a = await session(gwA, 'alice');
    const bob = await session(gwA, 'bob');
    await a.post(toolsList(1));
    await a.post(pickModel(2));
    await bob.post(toolsList(3));
    await waitForKeys(3);
    await redis.command('SET', 'other:app:key', 'keep me');
    await fake.clearRequests();

    const one = await purge(['--user', 'alice']);
    assert.equal(one.code, 0, `purge --user alice: ${one.stdout}${one.stderr}`);
    assert.match(one.stdout, /2 entries deleted for alice/);
    for (const s of Object.values(cliEnv())) assert.ok(!(one.stdout + one.stderr).includes(s), 'the CLI printed a secret');
    const aliceAfter = await a.post(toolsList(4));
    assert.equal(await cacheOutcome(gwA, aliceAfter), 'miss');
    assert.equal(await countUpstream('alice', 'tools/list'), 1, 'alice\'s tools/list went upstream after the purge');
    assert.equal(await cacheOutcome(gwA, await bob.post(toolsList(5))), 'hit', 'bob\'s entry stayed');
    assert.equal(await countUpstream('bob', 'tools/list'), 0);

    await waitForKeys(2);
    const all = await purge([]);
    assert.equal(all.code, 0, `purge: ${all.stdout}${all.stderr}`);
    assert.match(all.stdout, /entr(y|ies) deleted/);
    assert.deepEqual(await gatewayKeys(), [], 'every gateway key is gone');
    assert.equal(await redis.command('GET', 'other:app:key'), 'keep me', 'a key outside omnigw:v1: survived');
    const bobAfter = await bob.post(toolsList(6));
    assert.equal(await cacheOutcome(gwA, bobAfter), 'miss');
    assert.equal(await countUpstream('bob', 'tools/list'), 1, 'bob\'s tools/list went upstream after the purge');
  });

  it('an unknown member, or a config without Redis, exits 1 with a message', async (t) => {
    if (!supported) return t.skip('this gateway has no `cache purge`');
    const unknown = await purge(['--user', 'nosuch']);
    assert.equal(unknown.code, 1, `${unknown.stdout}${unknown.stderr}`);
    assert.match(unknown.stderr, /nosuch/);

    const file = join(env.dir, 'no-redis.json');
    writeFileSync(file, JSON.stringify(merge(gwA.config, { redis: null })));
    const lru = await runGatewayCli(['cache', 'purge', '-c', file], { env: cliEnv() });
    assert.equal(lru.code, 1, `purge without redis: ${lru.stdout}${lru.stderr}`);
    assert.match(lru.stderr, /redis/i);
  });
});

describe('Redis outages', () => {
  it('redis-server killed: requests keep succeeding through upstream (one log line); restarted on the same port: a miss, then a hit', async () => {
    const s = await session(gwA, 'alice');
    await s.post(toolsList(1));
    await waitForKeys(1);
    assert.equal(await cacheOutcome(gwA, await s.post(toolsList(2))), 'hit', 'premise: alice\'s list is cached');
    const mark = gwA.stderr().length;
    await fake.clearRequests();

    await redis.kill();
    for (const id of [3, 4, 5]) {
      const res = await s.post(toolsList(id));
      assert.equal(res.status, 200, res.body);
      assert.ok(toolNames(responseMessage(res, id).result).includes('getData'));
    }
    assert.ok(responseMessage(await s.post(pickModel(6)), 6).result, 'pickModel too');
    assert.equal(await countUpstream('alice', 'tools/list'), 3, 'each tools/list went upstream while Redis was down');
    await gwA.waitForLog(/redis: unreachable/, { since: mark });
    assert.equal(logLines(gwA, /redis: unreachable/, mark).length, 1, 'one log line per outage');

    await redis.restart();
    await gwA.waitForLog(/redis: reachable again/, { since: mark, timeoutMs: 20000 });
    await fake.clearRequests();
    // The restarted Redis is empty: a miss that stores, then (once the write landed) a hit.
    const miss = await s.post(toolsList(7));
    assert.equal(await cacheOutcome(gwA, miss), 'miss');
    assert.equal(await countUpstream('alice', 'tools/list'), 1);
    await waitForKeys(1);
    const hit = await s.post(toolsList(8));
    assert.equal(await cacheOutcome(gwA, hit), 'hit');
    assert.deepEqual(responseMessage(hit, 8).result, responseMessage(miss, 7).result);
    assert.equal(await countUpstream('alice', 'tools/list'), 1, 'caching resumed');
    assert.equal(logLines(gwA, /redis: unreachable/, mark).length, 1, 'still one line for the whole outage');
  });

  it('Redis unreachable from the start: the gateway starts, logs it once, and every tools/list goes upstream', async () => {
    const port = await closedPort();
    const g = await env.startGateway({ upstreamUrl: fake.mcpUrl, config: { redis: { url: `redis://127.0.0.1:${port}/0`, timeout_ms: 1000 } }, name: 'gateway-noredis' });
    const s = await session(g, 'alice');
    for (const id of [1, 2, 3]) {
      const res = await s.post(toolsList(id));
      assert.equal(res.status, 200, res.body);
      assert.ok(responseMessage(res, id).result);
    }
    assert.equal(await countUpstream('alice', 'tools/list'), 3);
    await g.waitForLog(/redis: unreachable/);
    assert.equal(logLines(g, /redis: unreachable/).length, 1, 'one log line per outage');
  });

  it('redis-server frozen (SIGSTOP): lookups time out, requests go upstream and succeed; after SIGCONT caching resumes', async () => {
    const g = await env.startGateway({ upstreamUrl: fake.mcpUrl, config: redisConfig(2, { timeout_ms: 300 }), name: 'gateway-slow' });
    await g.waitForLog(/redis: connected/);
    const s = await session(g, 'alice');
    await s.post(toolsList(1));
    await waitForKeys(1, 2);
    assert.equal(await cacheOutcome(g, await s.post(toolsList(2))), 'hit', 'premise: alice\'s list is cached');
    await fake.clearRequests();

    redis.pause();
    try {
      for (const id of [3, 4]) {
        const res = await s.post(toolsList(id));
        assert.equal(res.status, 200, res.body);
        assert.ok(responseMessage(res, id).result);
      }
      assert.equal(await countUpstream('alice', 'tools/list'), 2, 'each tools/list went upstream while Redis was frozen');
    } finally {
      redis.resume();
    }
    let id = 10;
    await waitFor(async () => {
      const res = await s.post(toolsList(id++));
      return (await cacheOutcome(g, res)) === 'hit';
    }, { timeoutMs: 20000, intervalMs: 200, message: 'a cache hit after Redis was resumed' });
  });
});
