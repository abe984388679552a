// X-MCP-User-Required: the team, one member or the client can require a user ID; a member who has
// none is refused before anything reaches Omni, and nobody falls through to the org key's admin.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OMNI, TestEnv, assertNothingUpstream, assertRpcError } from './lib/harness.mjs';
import { initializeMessage, rawSession, responseMessage, rpc, toolJson } from './lib/mcp.mjs';

const env = new TestEnv('user-required');
let fake;
let open;      // team user_required false
let strict;    // team user_required true

// dave has a PAT (bob's) but no omni_user_id; erin likewise, with user_required on her entry;
// frank is on the org key without a user id (a config `check` should warn about).
const MEMBERS = [
  { name: 'alice', pat: OMNI.users.alice.pat, userId: OMNI.users.alice.id },
  { name: 'carol', userId: OMNI.users.carol.id },
  { name: 'dave', pat: OMNI.users.bob.pat },
  { name: 'erin', pat: OMNI.users.bob.pat, userRequired: true },
  { name: 'frank' },
];

before(async () => {
  fake = await env.startFake();
  // Each test reads the headers of every call upstream: no answers from the cache here.
  const cache = { enabled: false };
  open = await env.startGateway({ upstreamUrl: fake.mcpUrl, members: MEMBERS, name: 'open', config: { cache } });
  strict = await env.startGateway({ upstreamUrl: fake.mcpUrl, members: MEMBERS, name: 'strict', config: { user_required: true, cache } });
});
after(() => env.cleanup());
beforeEach(() => fake.reset());

async function assertRefused(gw, member, headers = {}, context = member) {
  const res = await gw.request({ member, headers, body: initializeMessage(5) });
  assertRpcError(res, { status: 403, code: -32002, id: 5 }, context);
  await assertNothingUpstream(fake, context);
}

/** A session and one pickModel (every role has it) as member; returns who ran it and the upstream requests. */
async function sessionAs(gw, member, headers = {}) {
  const s = await rawSession(gw.url, { ca: gw.ca, headers: { ...gw.auth(member), ...headers } });
  const res = await s.post(rpc(2, 'tools/call', { name: 'pickModel', arguments: {} }));
  assert.equal(res.status, 200, res.body);
  const runAs = toolJson(responseMessage(res, 2).result).runAs;
  return { runAs, reqs: await fake.mcpRequests() };
}

function assertRequiredUpstream(reqs, userId) {
  assert.ok(reqs.length >= 3, `upstream saw ${reqs.length} requests`);
  for (const r of reqs) {
    assert.equal(r.headers['x-mcp-user-required'], 'true', `upstream #${r.seq} X-MCP-User-Required`);
    assert.equal(r.headers['x-mcp-user-id'], userId, `upstream #${r.seq} X-MCP-User-ID`);
  }
}

describe('team-level user_required: true', () => {
  it('a member without omni_user_id is refused with 403 -32002, nothing upstream', async () => {
    await assertRefused(strict, 'dave');
  });

  it('a member with a user id passes, and upstream gets X-MCP-User-Required: true with the id', async () => {
    const { runAs, reqs } = await sessionAs(strict, 'alice');

    assert.equal(runAs, OMNI.users.alice.id);
    assertRequiredUpstream(reqs, OMNI.users.alice.id);
  });

  it('an org-key member with a user id passes with X-MCP-User-Required: true', async () => {
    const { runAs, reqs } = await sessionAs(strict, 'carol');

    assert.equal(runAs, OMNI.users.carol.id);
    assertRequiredUpstream(reqs, OMNI.users.carol.id);
    for (const r of reqs) assert.equal(r.headers.authorization, `Bearer ${OMNI.orgKey}`);
  });

  it('a client-sent X-MCP-User-Required: false does not loosen it', async () => {
    await assertRefused(strict, 'dave', { 'X-MCP-User-Required': 'false' }, 'dave sending false');

    const { reqs } = await sessionAs(strict, 'alice', { 'X-MCP-User-Required': 'false' });
    assertRequiredUpstream(reqs, OMNI.users.alice.id);
  });
});

describe('team-level user_required: false', () => {
  it('a member without user id passes when nobody requires one (upstream gets no user id)', async () => {
    const { runAs, reqs } = await sessionAs(open, 'dave');

    assert.equal(runAs, OMNI.users.bob.id, 'dave uses bob\'s PAT');
    for (const r of reqs) {
      assert.equal(r.headers['x-mcp-user-id'], undefined, `upstream #${r.seq} X-MCP-User-ID`);
      assert.notEqual(r.headers['x-mcp-user-required'], 'true', `upstream #${r.seq} X-MCP-User-Required`);
      assert.equal(r.headers.authorization, `Bearer ${OMNI.users.bob.pat}`);
    }
  });

  it('a client-sent X-MCP-User-Required: true tightens: a member without user id is refused', async () => {
    await assertRefused(open, 'dave', { 'X-MCP-User-Required': 'true' }, 'dave sending true');
  });

  it('a client-sent X-MCP-User-Required: true is passed on with the member\'s user id', async () => {
    const { reqs } = await sessionAs(open, 'alice', { 'X-MCP-User-Required': 'true' });

    assertRequiredUpstream(reqs, OMNI.users.alice.id);
  });

  it('member-level user_required: true refuses that member without user id', async () => {
    await assertRefused(open, 'erin');
  });
});

describe('the org key never runs without a user id', () => {
  for (const gwName of ['open', 'strict']) {
    it(`an org-key member without omni_user_id is refused (403 -32002) on the ${gwName} gateway`, async () => {
      const gw = gwName === 'open' ? open : strict;
      await assertRefused(gw, 'frank');
      for (const method of ['GET', 'DELETE']) {
        const res = await gw.request({ method, member: 'frank', headers: { Accept: 'text/event-stream', 'Mcp-Session-Id': 'x' } });
        assertRpcError(res, { status: 403, code: -32002 }, `frank ${method}`);
      }
      await assertNothingUpstream(fake, `frank GET/DELETE on ${gwName}`);
    });
  }
});
