// Sign-ins and tokens on /metrics (README: Logs and metrics): an operator alerts on sign-ins
// that fail. Each counter is compared with what the test did: alice signs in, eve (no member
// entry) is refused, a forged ID token is refused, alice refreshes once.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestEnv } from './lib/harness.mjs';
import { authorizeUrl, browse, pkcePair, refreshTokens, register, signIn, startOAuthGateway, startOidcProvider } from './lib/oauth.mjs';
import { adminUrl, scrape } from './lib/prometheus.mjs';

const env = new TestEnv('oauth-metrics');
let gw;
let provider;
let admin;
before(async () => {
  const fake = await env.startFake();
  provider = await startOidcProvider(env);
  gw = await startOAuthGateway(env, { provider, upstreamUrl: fake.mcpUrl, config: { admin: { listen: '127.0.0.1:0' } } });
  admin = await adminUrl(gw);
});
after(() => env.cleanup());

const signIns = (m, result) => m.value('omni_gw_oauth_sign_ins_total', { result }) ?? -1;
const issued = (m, grant) => m.value('omni_gw_oauth_tokens_issued_total', { grant }) ?? -1;

describe('OAuth counters', () => {
  it('count sign-ins by result and tokens by grant', async () => {
    let m = await scrape(admin);
    for (const r of ['ok', 'no_member', 'invalid_id_token', 'provider_failed']) assert.equal(signIns(m, r), 0, r);
    assert.equal(issued(m, 'authorization_code'), 0);
    assert.equal(issued(m, 'refresh_token'), 0);

    const alice = await signIn(gw, provider, 'alice');
    const client = await register(gw);
    const attempt = (user) => browse(authorizeUrl(gw, { clientId: client.client_id, redirectUri: client.redirect_uris[0], challenge: pkcePair().challenge, state: 's' }), { gw, provider, user });
    const eve = await attempt('eve');
    assert.equal(eve.page?.status, 403);
    provider.nextIdToken({ forge: true });
    const forged = await attempt('bob');
    assert.equal(forged.page?.status, 502);
    const refreshed = await refreshTokens(gw, { refreshToken: alice.tokens.refresh_token, clientId: alice.client.client_id });
    assert.equal(refreshed.status, 200, refreshed.body);

    m = await scrape(admin);
    assert.equal(signIns(m, 'ok'), 1);
    assert.equal(signIns(m, 'no_member'), 1);
    assert.equal(signIns(m, 'invalid_id_token'), 1);
    assert.equal(signIns(m, 'provider_failed'), 0);
    assert.equal(issued(m, 'authorization_code'), 1);
    assert.equal(issued(m, 'refresh_token'), 1);
  });
});
