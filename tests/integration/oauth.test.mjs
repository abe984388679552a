// Signing in with the team's identity provider (docs/oauth.md): the discovery documents and the
// 401 challenge that lead an MCP client to them, client registration, the whole authorization
// code flow through the test OpenID provider, tokens that run as the right member at Omni,
// refresh with rotation, what the provider received from the gateway, and logs without secrets.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestEnv, assertNothingUpstream, assertRpcError, findSecrets, request } from './lib/harness.mjs';
import { initializeMessage, sdkConnect, toolJson } from './lib/mcp.mjs';
import {
  LISTED_REDIRECT, assertOAuthError, assertUpstreamAs, authorizeUrl, browse, clientMetadata, parseChallenge, pkcePair,
  refreshTokens, register, registerClient, s256, signIn, startOAuthGateway, startOidcProvider,
} from './lib/oauth.mjs';

const env = new TestEnv('oauth');
let fake;
let provider;
let gw;

before(async () => {
  // upstream: the fake Omni; the team's identity provider: the test OpenID provider
  fake = await env.startFake();
  provider = await startOidcProvider(env);
  // config: an "oauth" block naming the provider (client secret from the environment), members
  // who sign in by email (OAUTH_TEAM); debug logs, so that the log check below sees the most
  gw = await startOAuthGateway(env, {
    provider, upstreamUrl: fake.mcpUrl,
    oauth: { access_token_ttl_s: 900, provider: { claim: 'email', scopes: 'openid email' } },
    config: { log_level: 'debug' },
  });
});
after(() => env.cleanup());
beforeEach(async () => {
  await fake.reset();
  provider.reset();
});

const getJson = async (path) => {
  const res = await request(`${gw.publicUrl}${path}`, { headers: { Accept: 'application/json' } });
  let json = null;
  try { json = JSON.parse(res.body); } catch { /* asserted below */ }
  return { ...res, json };
};

/** Lists tools and calls pickModel with an access token; resolves to { tools, runAs }. */
async function mcpWith(token) {
  const c = await sdkConnect(gw, null, { token });
  try {
    const tools = (await c.client.listTools()).tools.map((t) => t.name);
    const runAs = toolJson(await c.client.callTool({ name: 'pickModel', arguments: {} })).runAs;
    return { tools, runAs };
  } finally {
    await c.close();
  }
}

describe('discovery documents', () => {
  it('protected resource metadata (RFC 9728) at both well-known paths', async () => {
    for (const path of ['/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource/mcp']) {
      const res = await getJson(path);

      assert.equal(res.status, 200, `${path}: ${res.body}`);
      assert.match(String(res.headers['content-type']), /application\/json/, path);
      assert.deepEqual(res.json, {
        resource: `${gw.publicUrl}/mcp`,
        authorization_servers: [gw.publicUrl],
        scopes_supported: ['mcp'],
        bearer_methods_supported: ['header'],
        resource_name: 'omni-mcp-gateway',
      }, path);
    }
    await assertNothingUpstream(fake);
  });

  it('authorization server metadata (RFC 8414)', async () => {
    const res = await getJson('/.well-known/oauth-authorization-server');

    assert.equal(res.status, 200, res.body);
    assert.match(String(res.headers['content-type']), /application\/json/);
    assert.deepEqual(res.json, {
      issuer: gw.publicUrl,
      authorization_endpoint: `${gw.publicUrl}/oauth/authorize`,
      token_endpoint: `${gw.publicUrl}/oauth/token`,
      registration_endpoint: `${gw.publicUrl}/oauth/register`,
      response_types_supported: ['code'],
      grant_types_supported: ['authorization_code', 'refresh_token'],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: ['none'],
      scopes_supported: ['mcp'],
      authorization_response_iss_parameter_supported: true,
    });
  });
});

describe('the 401 challenge on /mcp', () => {
  it('without a token: WWW-Authenticate names the resource metadata, no error', async () => {
    const res = await gw.request({ body: initializeMessage(1) });

    assertRpcError(res, { status: 401, code: -32001, id: 1 });
    const { scheme, params } = parseChallenge(res.headers['www-authenticate']);
    assert.equal(scheme, 'Bearer', res.headers['www-authenticate']);
    assert.equal(params.realm, 'omni-mcp-gateway');
    assert.equal(params.resource_metadata, `${gw.publicUrl}/.well-known/oauth-protected-resource/mcp`);
    assert.equal(params.error, undefined, 'no token was presented');
    await assertNothingUpstream(fake);
  });

  const wrong = {
    'an access token the gateway never issued': env.secret('a made-up access token', 'gwat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'),
    'a static member token not in the config': env.secret('a made-up member token', 'gwt_not-a-member-token-0123456789abcdef0123'),
    'a refresh token used as an access token': env.secret('a made-up refresh token', 'gwrt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'),
  };
  for (const [name, token] of Object.entries(wrong)) {
    it(`${name}: 401 with error="invalid_token" and the resource metadata`, async () => {
      for (const method of ['POST', 'GET', 'DELETE']) {
        const res = await gw.request({ method, headers: { Authorization: `Bearer ${token}`, ...(method === 'POST' ? {} : { 'Mcp-Session-Id': 'x' }) }, body: method === 'POST' ? initializeMessage(2) : undefined });

        assertRpcError(res, { status: 401, code: -32001 }, `${name}, ${method}`);
        const { scheme, params } = parseChallenge(res.headers['www-authenticate']);
        assert.equal(scheme, 'Bearer');
        assert.equal(params.error, 'invalid_token', `${method}: ${res.headers['www-authenticate']}`);
        assert.equal(params.resource_metadata, gw.prmUrl);
      }
      await assertNothingUpstream(fake, name);
    });
  }

  it('a real refresh token is no access token either', async () => {
    const { tokens } = await signIn(gw, provider, 'alice');
    const res = await gw.request({ headers: { Authorization: `Bearer ${tokens.refresh_token}` }, body: initializeMessage(3) });

    assertRpcError(res, { status: 401, code: -32001, id: 3 });
    assert.equal(parseChallenge(res.headers['www-authenticate']).params.error, 'invalid_token');
    await assertNothingUpstream(fake);
  });
});

describe('client registration (RFC 7591)', () => {
  it('loopback redirect URIs on any port (127.0.0.1, localhost, [::1]) are registered', async () => {
    for (const host of ['127.0.0.1', 'localhost', '[::1]']) {
      const uri = `http://${host}:${40000 + Math.floor(Math.random() * 20000)}/callback`;
      const before = Math.floor(Date.now() / 1000);
      const res = await registerClient(gw, clientMetadata([uri], { client_name: `itest ${host}` }));

      assert.equal(res.status, 201, `${uri}: ${res.body}`);
      assert.match(String(res.headers['content-type']), /application\/json/);
      const c = res.json;
      assert.equal(typeof c.client_id, 'string');
      assert.ok(c.client_id.length >= 16, `client_id ${c.client_id} is too short to be unguessable`);
      assert.ok(Number.isInteger(c.client_id_issued_at) && c.client_id_issued_at >= before - 5 && c.client_id_issued_at <= Date.now() / 1000 + 5,
        `client_id_issued_at ${c.client_id_issued_at}`);
      assert.deepEqual(c.redirect_uris, [uri]);
      assert.equal(c.token_endpoint_auth_method, 'none');
      assert.deepEqual(c.grant_types, ['authorization_code', 'refresh_token']);
      assert.deepEqual(c.response_types, ['code']);
      assert.equal(c.client_name, `itest ${host}`);
      assert.equal(c.client_secret, undefined, 'a public client gets no secret');
    }
  });

  it('two registrations get two client ids', async () => {
    const a = await register(gw);
    const b = await register(gw);
    assert.notEqual(a.client_id, b.client_id);
  });

  it('a non-loopback redirect URI listed in oauth.redirect_uris is registered', async () => {
    const c = await register(gw, { redirectUris: [LISTED_REDIRECT] });
    assert.deepEqual(c.redirect_uris, [LISTED_REDIRECT]);
  });

  for (const uris of [
    ['https://evil.example/callback'],
    ['http://evil.example/callback'],
    ['http://127.0.0.1.evil.example:8080/callback'],
    ['cursor://anysphere.cursor-mcp/oauth/other'],
    ['http://127.0.0.1:8080/callback', 'https://evil.example/callback'],
  ]) {
    it(`redirect_uris ${JSON.stringify(uris)} → 400 invalid_redirect_uri`, async () => {
      const res = await registerClient(gw, clientMetadata(uris));
      assertOAuthError(res, { status: 400, error: 'invalid_redirect_uri' });
      assert.equal(res.json.client_id, undefined);
    });
  }

  it('a body that is not JSON → 400 invalid_client_metadata', async () => {
    assertOAuthError(await registerClient(gw, '{"redirect_uris": ['), { status: 400, error: 'invalid_client_metadata' });
  });
});

describe('sign-in, token, and MCP as the member', () => {
  it('alice: authorize with PKCE, provider login, callback, token; her session reaches Omni with her PAT', async () => {
    const s = await signIn(gw, provider, 'alice');
    const b = s.browser;

    // The gateway sent the browser to the provider's authorization endpoint, and the provider
    // sent it back to the gateway's callback.
    assert.equal(`${b.toProvider.origin}${b.toProvider.pathname}`, `${provider.issuer}/authorize`, b.describe());
    assert.equal(`${b.callback.origin}${b.callback.pathname}`, `${gw.publicUrl}/oauth/callback`, b.describe());
    // The client got its code at its own redirect URI, with its state and the issuer (RFC 9207).
    assert.equal(`${b.redirect.origin}${b.redirect.pathname}`, s.client.redirect_uris[0]);
    assert.equal(b.iss, gw.publicUrl);
    assert.equal(b.error, null);

    const t = s.tokenResponse;
    assert.match(String(t.headers['content-type']), /application\/json/);
    assert.match(String(t.headers['cache-control']), /no-store/);
    assert.match(t.json.access_token, /^gwat_[A-Za-z0-9_-]{43}$/);
    assert.match(t.json.refresh_token, /^gwrt_[A-Za-z0-9_-]{43}$/);
    assert.equal(t.json.token_type, 'Bearer');
    assert.equal(t.json.expires_in, 900);
    assert.equal(t.json.scope, 'mcp');

    const { tools, runAs } = await mcpWith(t.json.access_token);
    assert.ok(tools.includes('getData'), `alice's tools: ${tools}`);
    assert.equal(runAs, 'u-alice');
    assertUpstreamAs(await fake.mcpRequests(), 'alice', [t.json.access_token, t.json.refresh_token]);
  });

  it('bob and carol each reach Omni as themselves (carol: org key; her sign_in matched without case)', async () => {
    const bob = await signIn(gw, provider, 'bob');
    const carol = await signIn(gw, provider, 'carol');
    assert.notEqual(bob.tokens.access_token, carol.tokens.access_token);

    const b = await mcpWith(bob.tokens.access_token);
    assert.equal(b.runAs, 'u-bob');
    assert.ok(!b.tools.includes('getData'), 'bob (Viewer) has no getData');
    assertUpstreamAs(await fake.mcpRequests(), 'bob', [bob.tokens.access_token]);

    await fake.clearRequests();
    const c = await mcpWith(carol.tokens.access_token);
    assert.equal(c.runAs, 'u-carol');
    assertUpstreamAs(await fake.mcpRequests(), 'carol', [carol.tokens.access_token]);
  });

  it('alice\'s static member token keeps working next to sign-in', async () => {
    const c = await sdkConnect(gw, 'alice');
    try {
      await c.client.listTools();
    } finally {
      await c.close();
    }
    assertUpstreamAs(await fake.mcpRequests(), 'alice');
  });

  it('refresh: new tokens; the old refresh token is then refused (rotation); the new access token works', async () => {
    const { client, tokens } = await signIn(gw, provider, 'alice');

    const r1 = await refreshTokens(gw, { refreshToken: tokens.refresh_token, clientId: client.client_id });
    assert.equal(r1.status, 200, r1.body);
    assert.match(String(r1.headers['cache-control']), /no-store/);
    assert.match(r1.json.access_token, /^gwat_[A-Za-z0-9_-]{43}$/);
    assert.match(r1.json.refresh_token, /^gwrt_[A-Za-z0-9_-]{43}$/);
    assert.notEqual(r1.json.access_token, tokens.access_token);
    assert.notEqual(r1.json.refresh_token, tokens.refresh_token);
    assert.equal(r1.json.token_type, 'Bearer');
    assert.equal(r1.json.expires_in, 900);

    const again = await refreshTokens(gw, { refreshToken: tokens.refresh_token, clientId: client.client_id });
    assertOAuthError(again, { status: 400, error: 'invalid_grant' }, 'the rotated refresh token');

    assert.equal((await mcpWith(r1.json.access_token)).runAs, 'u-alice');
    assertUpstreamAs(await fake.mcpRequests(), 'alice', [r1.json.access_token]);
    assert.equal(provider.authorizeRequests().length, 1, 'a refresh does not sign in at the provider again');
  });

  it('the provider received the gateway\'s own PKCE, a nonce, the client secret and redirect_uri public_url/oauth/callback', async () => {
    const s = await signIn(gw, provider, 'bob');

    const [auth] = provider.authorizeRequests();
    assert.ok(auth, 'the provider received no authorization request');
    const q = auth.query;
    assert.equal(q.client_id, gw.clientId);
    assert.equal(q.redirect_uri, `${gw.publicUrl}/oauth/callback`);
    assert.equal(q.response_type, 'code');
    assert.deepEqual(q.scope.split(' ').sort(), ['email', 'openid']);
    assert.equal(q.code_challenge_method, 'S256');
    assert.match(q.code_challenge, /^[A-Za-z0-9_-]{43}$/);
    assert.notEqual(q.code_challenge, s.pkce.challenge, 'the gateway must use its own PKCE pair with the provider');
    assert.ok(q.nonce && q.nonce.length >= 16, `nonce ${q.nonce}`);
    assert.ok(q.state && q.state.length >= 16, `state ${q.state}`);
    assert.equal(q.resource, undefined, 'the MCP resource is not the provider\'s business');

    const [tok] = provider.tokenRequests();
    assert.ok(tok, 'the gateway never called the provider\'s token endpoint');
    assert.equal(tok.status, 200, `the provider refused the gateway: ${tok.error} ${tok.errorDescription}`);
    assert.equal(tok.form.grant_type, 'authorization_code');
    assert.equal(tok.form.code, provider.issued()[0].code);
    assert.equal(tok.form.redirect_uri, `${gw.publicUrl}/oauth/callback`);
    assert.equal(s256(tok.form.code_verifier), q.code_challenge, 'code_verifier hashes to the challenge sent to /authorize');
    assert.notEqual(tok.form.code_verifier, s.pkce.verifier);
    assert.equal(tok.form.client_id, gw.clientId);
    assert.equal(tok.form.client_secret, gw.clientSecret, 'client_secret_post');
    assert.deepEqual(tok.auth, { method: 'client_secret_post', clientId: gw.clientId, secretOk: true });
    // The ID token the gateway accepted carried the nonce of its authorization request.
    assert.equal(provider.issued()[0].claims.nonce, q.nonce);
  });

  it('each sign-in sends a new nonce, state and challenge to the provider', async () => {
    await signIn(gw, provider, 'alice', { exchange: false });
    await signIn(gw, provider, 'alice', { exchange: false });
    const [a, b] = provider.authorizeRequests().map((r) => r.query);
    for (const k of ['nonce', 'state', 'code_challenge']) assert.notEqual(a[k], b[k], k);
  });

  it('cancel at the provider: the client gets error=access_denied with its state and iss, and no code', async () => {
    const client = await register(gw);
    const pkce = pkcePair();
    const b = await browse(authorizeUrl(gw, { clientId: client.client_id, redirectUri: client.redirect_uris[0], challenge: pkce.challenge, state: 'st-cancel' }),
      { gw, provider, user: 'alice', action: 'deny' });

    assert.ok(b.redirect, `no redirect to the client:\n${b.describe()}`);
    assert.equal(`${b.redirect.origin}${b.redirect.pathname}`, client.redirect_uris[0]);
    assert.equal(b.error, 'access_denied');
    assert.equal(b.state, 'st-cancel');
    assert.equal(b.iss, gw.publicUrl);
    assert.equal(b.code, null);
    assert.equal(provider.tokenRequests().length, 0);
  });

  it('a callback replayed (its state already used) → 400 page, no code', async () => {
    const s = await signIn(gw, provider, 'alice', { exchange: false });
    const res = await request(s.browser.callback.href, { headers: { Accept: 'text/html' } });

    assert.equal(res.status, 400, res.body);
    assert.equal(res.headers.location, undefined);
    assert.match(String(res.headers['content-type']), /text\/html/);
    assert.equal(provider.tokenRequests().length, 1, 'the provider\'s code is not exchanged twice');
  });

  it('a callback with a state the gateway never issued → 400 page', async () => {
    const res = await request(`${gw.publicUrl}/oauth/callback?code=made-up-code-000000&state=made-up-state-000000`, { headers: { Accept: 'text/html' } });

    assert.equal(res.status, 400, res.body);
    assert.equal(res.headers.location, undefined);
    assert.equal(provider.tokenRequests().length, 0);
  });
});

describe('logs', () => {
  it('hold no access token, refresh token, code, client secret or ID token', async () => {
    // Everything above ran on this gateway at log level debug; one more whole round here.
    const { client, tokens } = await signIn(gw, provider, 'carol');
    await refreshTokens(gw, { refreshToken: tokens.refresh_token, clientId: client.client_id });
    await mcpWith(tokens.access_token);

    const names = Object.keys(env.secrets).join('\n');
    for (const kind of ['gateway access token', 'gateway refresh token', 'gateway authorization code', 'ID token', 'OIDC client secret', 'authorization code #']) {
      assert.ok(names.includes(kind), `the check would not see a ${kind}: ${names}`);
    }
    const log = gw.stderr();
    assert.ok(log.split('\n').length > 10, `the debug log says almost nothing:\n${log}`);
    assert.deepEqual(findSecrets(log, env.secrets), [], 'secrets in the gateway log');
  });
});
