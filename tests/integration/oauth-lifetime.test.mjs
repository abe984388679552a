// How long what the gateway issues lives (docs/oauth.md): an access token past
// access_token_ttl_s is refused with error="invalid_token" (the refresh token still works), a
// code past code_ttl_s is refused, and a member removed by a reload loses her access tokens.
// Lifetimes are set to 1 s here; the tests wait for the refusal by polling, or for the clock.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { TestEnv, assertRpcError, waitFor } from './lib/harness.mjs';
import { initializeMessage } from './lib/mcp.mjs';
import { assertOAuthError, exchangeCode, parseChallenge, refreshTokens, signIn, startOAuthGateway, startOidcProvider } from './lib/oauth.mjs';

const env = new TestEnv('oauth-lifetime');
let fake;
let provider;
before(async () => {
  fake = await env.startFake();
  provider = await startOidcProvider(env);
});
after(() => env.cleanup());
beforeEach(async () => {
  await fake.reset();
  provider.reset();
});

const initializeWith = (gw, token, id) => gw.request({ headers: { Authorization: `Bearer ${token}` }, body: initializeMessage(id) });

describe('access token expiry (access_token_ttl_s 1)', () => {
  let gw;
  before(async () => {
    gw = await startOAuthGateway(env, { provider, upstreamUrl: fake.mcpUrl, oauth: { access_token_ttl_s: 1 } });
  });

  it('an expired access token → 401 with the resource metadata and error="invalid_token"; refresh still works', async () => {
    const { client, tokens } = await signIn(gw, provider, 'alice');
    assert.equal(tokens.expires_in, 1);

    // Used until the gateway refuses it (it was accepted at first unless the machine is slow).
    let id = 0;
    const res = await waitFor(async () => {
      const r = await initializeWith(gw, tokens.access_token, ++id);
      return r.status === 401 ? r : null;
    }, { timeoutMs: 10000, intervalMs: 200, message: 'the access token to expire' });

    assertRpcError(res, { status: 401, code: -32001, id });
    const { scheme, params } = parseChallenge(res.headers['www-authenticate']);
    assert.equal(scheme, 'Bearer');
    assert.equal(params.error, 'invalid_token');
    assert.equal(params.resource_metadata, gw.prmUrl);
    const upstream = (await fake.mcpRequests()).filter((r) => r.body?.id === id);
    assert.deepEqual(upstream, [], 'the refused request reached Omni');

    const refreshed = await refreshTokens(gw, { refreshToken: tokens.refresh_token, clientId: client.client_id });
    assert.equal(refreshed.status, 200, refreshed.body);
    assert.equal(refreshed.json.expires_in, 1);
    assert.notEqual(refreshed.json.access_token, tokens.access_token);
  });
});

describe('code expiry (code_ttl_s 1)', () => {
  let gw;
  before(async () => {
    gw = await startOAuthGateway(env, { provider, upstreamUrl: fake.mcpUrl, oauth: { code_ttl_s: 1 } });
  });

  it('a code exchanged after code_ttl_s → invalid_grant, no token', async () => {
    const s = await signIn(gw, provider, 'alice', { exchange: false });
    // Not a timing assertion: the clock has to pass the code's lifetime (1 s) with a margin.
    const deadline = Date.now() + 2500;
    await waitFor(() => Date.now() >= deadline, { timeoutMs: 5000, intervalMs: 100, message: 'the code lifetime to pass' });

    const res = await exchangeCode(gw, { code: s.browser.code, verifier: s.pkce.verifier, clientId: s.client.client_id, redirectUri: s.client.redirect_uris[0] });
    assertOAuthError(res, { status: 400, error: 'invalid_grant' });
  });
});

describe('a member removed from the config', () => {
  let gw;
  before(async () => {
    gw = await startOAuthGateway(env, { provider, upstreamUrl: fake.mcpUrl });
  });

  it('loses her access tokens at the reload; another member\'s keep working', async () => {
    const bob = await signIn(gw, provider, 'bob');
    const alice = await signIn(gw, provider, 'alice');
    assert.equal((await initializeWith(gw, bob.tokens.access_token, 1)).status, 200);

    const cfg = JSON.parse(readFileSync(gw.configFile, 'utf8'));
    cfg.users = cfg.users.filter((u) => u.name !== 'bob');
    writeFileSync(gw.configFile, JSON.stringify(cfg, null, 2));
    const mark = gw.stderr().length;
    gw.signal('SIGHUP');
    await gw.waitForLog(/reload: config applied/, { since: mark });

    const res = await initializeWith(gw, bob.tokens.access_token, 2);
    assertRpcError(res, { status: 401, code: -32001, id: 2 });
    assert.equal(parseChallenge(res.headers['www-authenticate']).params.error, 'invalid_token');
    const ok = await initializeWith(gw, alice.tokens.access_token, 3);
    assert.equal(ok.status, 200, `alice after the reload (OAuth state kept across SIGHUP): ${ok.body}`);
  });
});
