// Secrets: with log_level debug and traffic through every path (success, refusals, upstream
// refusing a credential), the gateway's log holds no member token, PAT or org key.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OMNI, TestEnv, assertRpcError, findSecrets } from './lib/harness.mjs';
import { getDataMessage, initializeMessage, rawSession, sdkConnect } from './lib/mcp.mjs';

const env = new TestEnv('secrets');
let fake;
let gw;
const badPat = env.secret('a PAT Omni does not know', 'pat-unknown-to-omni-7777');
const wrongToken = env.secret('a wrong member token', 'gwt_wrong-token-sent-by-a-client-000000000000');
const prompt = 'PROMPT-MARKER-do-not-log-request-bodies';

before(async () => {
  fake = await env.startFake();
  gw = await env.startGateway({
    upstreamUrl: fake.mcpUrl,
    config: { log_level: 'debug', user_required: false },
    members: [
      { name: 'alice', pat: OMNI.users.alice.pat, userId: OMNI.users.alice.id },
      { name: 'carol', userId: OMNI.users.carol.id },
      { name: 'mallory', pat: badPat },
      { name: 'frank' },
    ],
  });
});
after(() => env.cleanup());

describe('logs', () => {
  it('hold no token, PAT or org key after traffic through every path', async () => {
    for (const member of ['alice', 'carol']) {
      const c = await sdkConnect(gw, member);
      try {
        await c.client.listTools();
        await c.client.callTool({ name: 'getData', arguments: { prompt } });
      } finally {
        await c.close();
      }
    }
    const s = await rawSession(gw.url, { ca: gw.ca, headers: gw.auth('alice') });
    assert.equal((await s.post(getDataMessage(3, prompt))).status, 200);
    assert.equal((await gw.request({ method: 'DELETE', member: 'alice', headers: { 'Mcp-Session-Id': s.sessionId } })).status, 200);
    assertRpcError(await gw.request({ headers: { Authorization: `Bearer ${wrongToken}` }, body: initializeMessage(4) }), { status: 401, code: -32001 });
    assertRpcError(await gw.request({ member: 'mallory', body: initializeMessage(5) }), { status: 502, code: -32010 });
    assertRpcError(await gw.request({ member: 'frank', body: initializeMessage(6) }), { status: 403, code: -32002 });
    assertRpcError(await gw.request({ member: 'alice', headers: { Origin: 'https://evil.example' }, body: initializeMessage(7) }), { status: 403, code: -32003 });

    const log = gw.stderr();
    assert.ok(log.split('\n').length > 3, `the debug log says almost nothing:\n${log}`);
    assert.deepEqual(findSecrets(log, env.secrets), [], 'secrets in the gateway log');
  });

  it('hold no request body', () => {
    assert.ok(!gw.stderr().includes(prompt), 'a request body (the prompt) is in the gateway log');
  });

  it('name the member', () => {
    assert.match(gw.stderr(), /alice/, 'log lines should name the member');
  });
});
