// Per-member rate and concurrency limits through the real gateway: past the configured count the
// member gets HTTP 429 with Retry-After and a JSON-RPC error, the upstream never sees the refused
// request, and other members are not limited.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OMNI, TestEnv, assertRpcError, waitFor } from './lib/harness.mjs';
import { getDataMessage, rawSession, responseMessage, rpc } from './lib/mcp.mjs';

const asAlice = (name, more = {}) => ({ name, pat: OMNI.users.alice.pat, userId: OMNI.users.alice.id, ...more });
const MEMBERS = [
  asAlice('rita', { rule: { rate: { tool_calls_per_minute: 3, burst: 3 } } }),
  asAlice('connie', { rule: { max_concurrent: 1 } }),
  asAlice('nina'),
];

const env = new TestEnv('policy-limits');
let fake;
let gw;

before(async () => {
  fake = await env.startFake();
  // Without the metadata cache every allowed tools/call reaches the upstream's log.
  gw = await env.startGateway({ upstreamUrl: fake.mcpUrl, members: MEMBERS, config: { cache: { enabled: false } } });
});
after(async () => {
  await fake?.release().catch(() => {});
  await env.cleanup();
});
beforeEach(() => fake.reset());

async function session(member) {
  const s = await rawSession(gw.url, { ca: gw.ca, headers: gw.auth(member) });
  await fake.clearRequests();
  return s;
}

const pickModel = (id) => rpc(id, 'tools/call', { name: 'pickModel', arguments: {} });

/** Asserts a 429 with a Retry-After of whole seconds (at least 1) and this JSON-RPC error. */
function assertLimited(res, code, id, context) {
  assertRpcError(res, { status: 429, code, id }, context);
  const retry = res.headers['retry-after'];
  assert.match(String(retry), /^\d+$/, `${context}: Retry-After ${retry}`);
  assert.ok(Number(retry) >= 1 && Number(retry) <= 60, `${context}: Retry-After ${retry}`);
}

describe('rate: tool_calls_per_minute 3, burst 3', () => {
  it('the 4th tools/call gets 429 -32029 with Retry-After; the upstream received exactly 3; other requests and other members go on', async () => {
    const rita = await session('rita');

    for (const id of [1, 2, 3]) {
      const res = await rita.post(pickModel(id));
      assert.equal(res.status, 200, `call ${id}: ${res.status} ${res.body}`);
      assert.ok(responseMessage(res, id).result, `call ${id}: ${res.body}`);
    }
    assertLimited(await rita.post(pickModel(4)), -32029, 4, 'the 4th call');

    assert.deepEqual((await fake.rpcRequests('tools/call')).map((r) => r.body.id), [1, 2, 3], 'upstream tools/call');
    // Only tool calls are limited for rita: her tools/list still goes through.
    const list = await rita.post(rpc(5, 'tools/list'));
    assert.equal(list.status, 200, list.body);
    assert.equal((await fake.rpcRequests('tools/list')).length, 1, 'upstream tools/list');

    // nina shares nothing with rita's bucket.
    const nina = await session('nina');
    for (const id of [11, 12, 13, 14, 15]) {
      const res = await nina.post(pickModel(id));
      assert.equal(res.status, 200, `nina's call ${id}: ${res.status} ${res.body}`);
    }
    assert.deepEqual((await fake.rpcRequests('tools/call')).map((r) => r.body.id), [11, 12, 13, 14, 15], 'upstream tools/call of nina');
  });
});

describe('max_concurrent 1', () => {
  it('while connie\'s getData is held, her next request gets 429 -32028 and never reaches Omni; nina is served; after release connie is served again', async () => {
    const connie = await session('connie');
    const nina = await session('nina');
    await fake.hold();
    const held = await connie.stream(getDataMessage(21));
    try {
      assert.equal(held.status, 200);
      const call = await waitFor(async () => (await fake.rpcRequests('tools/call', 21))[0], { message: 'upstream tools/call 21' });
      await waitFor(async () => (await fake.events()).some((e) => e.type === 'hold-waiting' && e.seq === call.seq), { message: 'the fake holds getData' });

      assertLimited(await connie.post(pickModel(22)), -32028, 22, 'connie\'s second request');
      assert.equal((await fake.rpcRequests('tools/call', 22)).length, 0, 'upstream never received the refused call');

      const other = await nina.post(pickModel(23));
      assert.equal(other.status, 200, `nina while connie is held: ${other.status} ${other.body}`);
    } finally {
      await fake.release();
    }
    const events = await held.rest();
    const result = events.map((e) => e.json()).find((m) => m.id === 21);
    assert.ok(result?.result, `held getData finished: ${held.text()}`);

    const again = await connie.post(pickModel(24));
    assert.equal(again.status, 200, `connie after release: ${again.status} ${again.body}`);
    assert.equal((await fake.rpcRequests('tools/call', 24)).length, 1, 'upstream received connie\'s call after release');
  });
});
