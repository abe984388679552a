// The provider's keys and client kinds (docs/oauth.md): RS256 and ES256 ID tokens both sign a
// member in; a signing key the gateway has not seen yet (a key rotation) makes it fetch the
// JWKS once more and succeed; the client secret from a file; a public client (no secret, PKCE
// only) at a provider whose issuer has a path.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestEnv } from './lib/harness.mjs';
import { sdkConnect, toolJson } from './lib/mcp.mjs';
import { assertUpstreamAs, decodeJws, s256, signIn, startOAuthGateway, startOidcProvider } from './lib/oauth.mjs';

const env = new TestEnv('oauth-keys');
let fake;
before(async () => { fake = await env.startFake(); });
after(() => env.cleanup());
beforeEach(() => fake.reset());

async function runAs(gw, token) {
  const c = await sdkConnect(gw, null, { token });
  try {
    return toolJson(await c.client.callTool({ name: 'pickModel', arguments: {} })).runAs;
  } finally {
    await c.close();
  }
}

describe('RS256 and ES256 ID tokens', () => {
  let provider;
  let gw;
  before(async () => {
    provider = await startOidcProvider(env);
    gw = await startOAuthGateway(env, { provider, upstreamUrl: fake.mcpUrl });
  });
  beforeEach(() => provider.reset());

  for (const [alg, kid] of [['RS256', 'rsa-1'], ['ES256', 'ec-1']]) {
    it(`an ${alg} ID token (kid ${kid}) signs alice in, and her token runs as her`, async () => {
      provider.nextIdToken({ alg });
      const { tokens } = await signIn(gw, provider, 'alice');

      const { header } = decodeJws(provider.issued()[0].idToken);
      assert.deepEqual([header.alg, header.kid], [alg, kid]);
      assert.equal(await runAs(gw, tokens.access_token), 'u-alice');
      assertUpstreamAs(await fake.mcpRequests(), 'alice', [tokens.access_token]);
    });
  }
});

describe('a new signing key, published after the first JWKS fetch (key rotation)', () => {
  let provider;
  let gw;
  before(async () => {
    // A provider and a gateway of their own, so that every JWKS fetch counted is this test's.
    // The client secret comes from a file here (client_secret_file).
    provider = await startOidcProvider(env);
    gw = await startOAuthGateway(env, { provider, upstreamUrl: fake.mcpUrl, secretVia: 'file' });
  });

  it('holding no keys yet: the first JWKS lacks the new kid, one more fetch has it, the sign-in succeeds', async () => {
    provider.nextIdToken({ unknownKid: 'late' });
    const b = await signIn(gw, provider, 'bob', { exchange: false }).catch((err) => err);

    const kid = decodeJws(provider.issued()[0].idToken).header.kid;
    const fetches = () => provider.jwksRequests().map((r) => r.kids.includes(kid));
    // The refetch may still be under way when a failing gateway has already answered.
    assert.ok(!(b instanceof Error), `${b?.message}\nJWKS fetches (with the new kid?): ${JSON.stringify(fetches())}`);
    assert.equal(provider.jwksFetches(), 2, `JWKS fetches (with the new kid?): ${JSON.stringify(fetches())}`);
    assert.deepEqual(fetches(), [false, true]);
  });

  it('holding keys: the provider rotates, the next token names the new kid, one more fetch, the sign-in succeeds', async () => {
    // The test before left the gateway holding the provider's keys (whether it succeeded or not).
    assert.ok(provider.jwksFetches() >= 1);
    const fetchesBefore = provider.jwksFetches();
    provider.nextIdToken({ unknownKid: 'late', alg: 'ES256' });
    const { tokens } = await signIn(gw, provider, 'bob');

    const kid = decodeJws(provider.issued().at(-1).idToken).header.kid;
    assert.equal(provider.jwksFetches() - fetchesBefore, 1, 'fetched once more for the new kid');
    assert.ok(provider.jwksRequests().at(-1).kids.includes(kid));
    assert.equal(await runAs(gw, tokens.access_token), 'u-bob');
  });

  it('the client secret read from client_secret_file reached the provider', () => {
    const tok = provider.tokenRequests().at(-1);
    assert.equal(tok.form.client_secret, gw.clientSecret);
    assert.equal(tok.auth.secretOk, true);
  });
});

describe('a public client (no client secret) at a provider whose issuer has a path', () => {
  let provider;
  let gw;
  before(async () => {
    provider = await startOidcProvider(env, { basePath: '/realms/team' });
    gw = await startOAuthGateway(env, { provider, upstreamUrl: fake.mcpUrl, clientSecret: null });
  });

  it('signs carol in with PKCE alone; the provider got no secret', async () => {
    const { tokens } = await signIn(gw, provider, 'carol');

    assert.equal(provider.issuer.endsWith('/realms/team'), true);
    const [auth] = provider.authorizeRequests();
    const [tok] = provider.tokenRequests();
    assert.equal(auth.path, '/realms/team/authorize');
    assert.equal(tok.form.client_secret, undefined);
    assert.equal(tok.headers.authorization, undefined);
    assert.deepEqual(tok.auth, { method: 'none', clientId: gw.clientId, secretOk: false });
    assert.equal(tok.form.client_id, gw.clientId);
    assert.equal(s256(tok.form.code_verifier), auth.query.code_challenge);
    assert.equal(await runAs(gw, tokens.access_token), 'u-carol');
  });
});
