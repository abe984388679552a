// Sign-in refusals (docs/oauth.md): bad authorization requests, bad token requests, ID tokens
// that must not verify, and people without a member entry. Each is refused with the documented
// OAuth error or page, and none yields a token: no code reaches the client, or the token
// endpoint answers an error.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestEnv, assertNothingUpstream, findSecrets } from './lib/harness.mjs';
import {
  LISTED_REDIRECT, assertOAuthError, assertRefusedPage, authorizeUrl, browse, decodeJws, exchangeCode, loopbackRedirect,
  pkcePair, refreshTokens, register, signIn, startOAuthGateway, startOidcProvider, tokenRequest,
} from './lib/oauth.mjs';

const env = new TestEnv('oauth-negative');
let fake;
let provider;
let gw;
let client;

before(async () => {
  fake = await env.startFake();                                            // upstream
  provider = await startOidcProvider(env);                                 // identity provider
  gw = await startOAuthGateway(env, { provider, upstreamUrl: fake.mcpUrl }); // config
  client = await register(gw);                                              // an MCP client
});
after(() => env.cleanup());
beforeEach(async () => {
  await fake.reset();
  provider.reset();
});

/** Walks the browser through an authorization request of `client` with `over` (null drops a parameter). */
function attempt(over = {}, { user = 'alice', c = client } = {}) {
  const pkce = pkcePair();
  const url = authorizeUrl(gw, { clientId: c.client_id, redirectUri: c.redirect_uris[0], challenge: pkce.challenge, state: 'st-neg', ...over });
  return browse(url, { gw, provider, user });
}

/** The page must not show any secret of the run (provider code, ID token, client secret, tokens). */
function assertPageHoldsNoSecret(b) {
  assert.deepEqual(findSecrets(b.page.body, env.secrets), [], 'the refusal page shows a secret');
  for (const i of provider.issued()) {
    assert.ok(!b.page.body.includes(i.idToken.split('.')[1]), 'the page shows the ID token\'s claims as sent');
  }
}

describe('/oauth/authorize refuses', () => {
  it('an unknown client_id: 400 page, no redirect, nothing sent to the provider', async () => {
    const b = await attempt({ clientId: 'no-such-client-0123456789' });
    assertRefusedPage(b, 400);
    assert.equal(provider.authorizeRequests().length, 0);
  });

  it('a redirect URI the client did not register: 400 page, no redirect', async () => {
    for (const redirectUri of [await loopbackRedirect(), LISTED_REDIRECT, 'https://evil.example/callback', `${client.redirect_uris[0]}/more`]) {
      const b = await attempt({ redirectUri });
      assertRefusedPage(b, 400, redirectUri);
    }
    assert.equal(provider.authorizeRequests().length, 0);
  });

  const redirected = {
    'a foreign resource': [{ resource: 'https://other.example/mcp' }, 'invalid_target'],
    'no code_challenge': [{ challenge: null }, 'invalid_request'],
    'code_challenge_method plain': [{ method: 'plain' }, 'invalid_request'],
    'no code_challenge_method': [{ method: null }, 'invalid_request'],
    'response_type token': [{ responseType: 'token' }, 'unsupported_response_type'],
  };
  for (const [name, [over, error]] of Object.entries(redirected)) {
    it(`${name}: 302 to the client with error=${error}, state and iss; no code`, async () => {
      const b = await attempt(over);

      assert.ok(b.redirect, `no redirect to the client:\n${b.describe()}`);
      assert.equal(`${b.redirect.origin}${b.redirect.pathname}`, client.redirect_uris[0], b.describe());
      assert.equal(b.error, error, b.describe());
      assert.equal(b.state, 'st-neg');
      assert.equal(b.iss, gw.publicUrl);
      assert.equal(b.code, null);
      assert.equal(provider.authorizeRequests().length, 0, 'the gateway went to the provider anyway');
    });
  }

  it('a scope beyond mcp is not granted: the token carries scope mcp and nothing more', async () => {
    // RFC 6749 §3.3 lets the server issue less than asked; refusing would break clients that
    // ask for scopes of their own (openid, offline_access, ...).
    const s = await signIn(gw, provider, 'alice', { scope: 'admin offline_access' });
    assert.equal(s.tokens.scope, 'mcp');
  });

  it('the resource with a trailing slash or another path: invalid_target', async () => {
    for (const resource of [`${gw.resource}/`, `${gw.publicUrl}/other`, gw.publicUrl]) {
      const b = await attempt({ resource });
      assert.equal(b.error, 'invalid_target', `${resource}:\n${b.describe()}`);
      assert.equal(b.code, null);
    }
  });
});

describe('/oauth/token refuses', () => {
  /** A fresh code for client c (alice), not yet exchanged. */
  const freshCode = (c = client) => signIn(gw, provider, 'alice', { client: c, exchange: false });
  const exchange = (s, over = {}) => exchangeCode(gw, { code: s.browser.code, verifier: s.pkce.verifier, clientId: s.client.client_id, redirectUri: s.client.redirect_uris[0], ...over });

  it('a wrong PKCE verifier → invalid_grant', async () => {
    const s = await freshCode();
    assertOAuthError(await exchange(s, { verifier: pkcePair().verifier }), { status: 400, error: 'invalid_grant' });
  });

  it('no verifier → invalid_request or invalid_grant, never a token', async () => {
    const s = await freshCode();
    const res = await exchange(s, { verifier: null });
    assert.equal(res.status, 400, res.body);
    assert.ok(['invalid_request', 'invalid_grant'].includes(res.json?.error), res.body);
    assert.equal(res.json.access_token, undefined);
  });

  it('a code used twice → invalid_grant the second time', async () => {
    const s = await freshCode();
    const first = await exchange(s);
    assert.equal(first.status, 200, first.body);
    assertOAuthError(await exchange(s), { status: 400, error: 'invalid_grant' }, 'second use');
  });

  it('a foreign resource → invalid_target', async () => {
    const s = await freshCode();
    assertOAuthError(await exchange(s, { resource: 'https://other.example/mcp' }), { status: 400, error: 'invalid_target' });
  });

  it('a redirect_uri other than the authorization request\'s → invalid_grant', async () => {
    const s = await freshCode();
    assertOAuthError(await exchange(s, { redirectUri: await loopbackRedirect() }), { status: 400, error: 'invalid_grant' });
  });

  it('a code presented by another registered client → invalid_grant', async () => {
    const s = await freshCode();
    const other = await register(gw, { redirectUris: s.client.redirect_uris });
    assertOAuthError(await exchange(s, { clientId: other.client_id }), { status: 400, error: 'invalid_grant' });
  });

  it('an unknown client_id → 401 invalid_client', async () => {
    const s = await freshCode();
    assertOAuthError(await exchange(s, { clientId: 'no-such-client-0123456789' }), { status: 401, error: 'invalid_client' });
  });

  it('a code the gateway never issued → invalid_grant', async () => {
    const res = await exchangeCode(gw, { code: 'made-up-code-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', verifier: pkcePair().verifier, clientId: client.client_id, redirectUri: client.redirect_uris[0] });
    assertOAuthError(res, { status: 400, error: 'invalid_grant' });
  });

  it('the provider\'s code (not the gateway\'s) → invalid_grant', async () => {
    const s = await freshCode();
    const providerCode = provider.issued()[0].code;
    assertOAuthError(await exchange(s, { code: providerCode }), { status: 400, error: 'invalid_grant' });
  });

  it('grant_type password → unsupported_grant_type; no grant_type → invalid_request', async () => {
    assertOAuthError(await tokenRequest(gw, { grant_type: 'password', username: 'alice', password: 'x', client_id: client.client_id }), { status: 400, error: 'unsupported_grant_type' });
    assertOAuthError(await tokenRequest(gw, { client_id: client.client_id }), { status: 400, error: 'invalid_request' });
  });

  it('a refresh token presented by another client, or with a foreign resource → refused', async () => {
    const { tokens } = await signIn(gw, provider, 'alice');
    const other = await register(gw);
    assertOAuthError(await refreshTokens(gw, { refreshToken: tokens.refresh_token, clientId: other.client_id }), { status: 400, error: 'invalid_grant' }, 'other client');
    assertOAuthError(await refreshTokens(gw, { refreshToken: tokens.refresh_token, clientId: client.client_id, resource: 'https://other.example/mcp' }),
      { status: 400, error: 'invalid_target' }, 'foreign resource');
  });

  it('an access token used as a refresh token → invalid_grant', async () => {
    const { tokens } = await signIn(gw, provider, 'alice');
    assertOAuthError(await refreshTokens(gw, { refreshToken: tokens.access_token, clientId: client.client_id }), { status: 400, error: 'invalid_grant' });
  });
});

describe('ID tokens that do not verify → 502 page, no code', () => {
  const shapes = {
    'forged (RS256, a key not in the JWKS, labelled rsa-1)': { forge: true },
    'forged (ES256, labelled ec-1)': { alg: 'ES256', forge: true },
    'expired an hour ago': { expired: true },
    'a nonce from another sign-in': { nonce: 'nonce-of-another-sign-in-0123456789' },
    'no nonce': { nonce: null },
    'for another client (aud)': { aud: 'another-client.apps.example' },
    'from another issuer (iss)': { iss: 'https://accounts.elsewhere.example' },
    'alg HS256 keyed with the client secret': { alg: 'HS256' },
    'alg none': { alg: 'none' },
  };
  for (const [name, shape] of Object.entries(shapes)) {
    it(name, async () => {
      provider.nextIdToken(shape);
      const b = await attempt();

      assertRefusedPage(b, 502, name);
      // The gateway did get this ID token from the provider, and refused it.
      const [tok] = provider.tokenRequests();
      assert.ok(tok, `the gateway never called the provider's token endpoint:\n${b.describe()}`);
      assert.equal(tok.status, 200, `the provider refused the gateway: ${tok.error} ${tok.errorDescription}`);
      assert.deepEqual(provider.issued()[0].shape, shape);
      assertPageHoldsNoSecret(b);
      await assertNothingUpstream(fake);
    });
  }

  it('a kid that is never published: the JWKS is fetched again once, then 502', async () => {
    // A sign-in first, so that the gateway holds the JWKS whatever its fetching strategy.
    await signIn(gw, provider, 'alice', { exchange: false });
    const fetchesBefore = provider.jwksFetches();
    provider.nextIdToken({ unknownKid: 'never' });
    const b = await attempt();

    assertRefusedPage(b, 502);
    const kid = decodeJws(provider.issued().at(-1).idToken).header.kid;
    assert.ok(!provider.jwksRequests().some((r) => r.kids.includes(kid)));
    const refetches = provider.jwksFetches() - fetchesBefore;
    assert.ok(refetches >= 1 && refetches <= 2, `JWKS fetched ${refetches} times for the unknown kid: once again, not in a loop`);
  });
});

describe('people the gateway does not know', () => {
  it('eve (no member entry) → 403 page that names no secret; no code', async () => {
    const b = await attempt({}, { user: 'eve' });

    assertRefusedPage(b, 403);
    assertPageHoldsNoSecret(b);
    assert.equal(provider.tokenRequests().length, 1, 'the gateway verified eve at the provider first');
    await assertNothingUpstream(fake);
  });

  it('dora (member entry, but the provider says email_verified: false) → refused with a 403 page; no code', async () => {
    const b = await attempt({}, { user: 'dora' });

    assertRefusedPage(b, 403);
    assertPageHoldsNoSecret(b);
    await assertNothingUpstream(fake);
  });

  it('email_verified as the string "false" is not true either; no code', async () => {
    provider.nextIdToken({ claims: { email_verified: 'false' } });
    const b = await attempt({}, { user: 'alice' });
    assert.equal(b.code, null, b.describe());
    assert.equal(b.redirect, null, b.describe());
    assert.ok([403, 502].includes(b.page.status), `expected a 403 or 502 page:\n${b.describe()}`);
  });

  it('an ID token without the email claim → refused; no code', async () => {
    provider.nextIdToken({ claims: { email: null, email_verified: null } });
    const b = await attempt({}, { user: 'alice' });
    assert.equal(b.code, null, b.describe());
    assert.equal(b.redirect, null, b.describe());
    assert.ok([403, 502].includes(b.page.status), `expected a 403 or 502 page:\n${b.describe()}`);
  });
});
