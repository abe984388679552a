// What the cache tests ask of every run: which upstream calls were made as which member, and
// whether the gateway's access log says the answer was a cache hit or a miss.
import assert from 'node:assert/strict';
import { OMNI } from './fake.mjs';
import { rawSession, rpc } from './mcp.mjs';

/** The Omni identity a logged upstream request ran as, for the team's members. */
export const CRED = Object.freeze({
  alice: { auth: `Bearer ${OMNI.users.alice.pat}` },
  bob: { auth: `Bearer ${OMNI.users.bob.pat}` },
  carol: { auth: `Bearer ${OMNI.orgKey}`, userId: OMNI.users.carol.id },
});

export const ranAs = (r, member) => r.headers.authorization === CRED[member].auth
  && (!CRED[member].userId || r.headers['x-mcp-user-id'] === CRED[member].userId);
// what: 'tools/list', or a tool name (a tools/call of it).
export const asks = (body, what) => body && !Array.isArray(body) && (what === 'tools/list'
  ? body.method === 'tools/list'
  : body.method === 'tools/call' && body.params?.name === what);

/**
 * Helpers bound to the test file's fake Omni (getFake() returns it once before() has run):
 * upstreamCalls/countUpstream(member, what) read its request log since it was last cleared.
 */
export function cacheProbes(getFake) {
  async function upstreamCalls(member, what) {
    return (await getFake().requests()).filter((r) => r.path.startsWith('/mcp') && ranAs(r, member) && asks(r.body, what));
  }
  return { upstreamCalls, countUpstream: async (member, what) => (await upstreamCalls(member, what)).length };
}

/** 'hit', 'miss' or 'none': the end of the access log line of the request that got res. */
export async function cacheOutcome(g, res) {
  const id = res.headers['x-request-id'];
  assert.ok(id, `no X-Request-Id in ${JSON.stringify(res.headers)}`);
  const line = await g.waitForLog(new RegExp(`req=${id.replace(/[^\w-]/g, '.')} .*status=`));
  return line.match(/ cache=(hit|miss)\s*$/)?.[1] ?? 'none';
}

export const toolsList = (id) => rpc(id, 'tools/list');
export const pickModel = (id) => rpc(id, 'tools/call', { name: 'pickModel', arguments: {} });
export const toolNames = (result) => result.tools.map((t) => t.name).sort();
export const session = (g, member) => rawSession(g.url, { ca: g.ca, headers: g.auth(member) });
