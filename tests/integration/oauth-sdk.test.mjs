// The official SDK client's own OAuth support against the gateway (docs/oauth.md): an
// OAuthClientProvider whose redirectToAuthorization drives the headless browser. The first
// connect gets 401, discovers, registers and sends the person to sign in (UnauthorizedError);
// finishAuth(code) gets the tokens; a new connection then runs as that member at Omni. A stale
// access token makes the SDK refresh (a rotated refresh token) without a new sign-in.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { TestEnv } from './lib/harness.mjs';
import { toolJson } from './lib/mcp.mjs';
import { HeadlessOAuthClientProvider, assertUpstreamAs, browse, loopbackRedirect, startOAuthGateway, startOidcProvider } from './lib/oauth.mjs';

const env = new TestEnv('oauth-sdk');
let fake;
let provider;
let gw;

before(async () => {
  fake = await env.startFake();
  provider = await startOidcProvider(env);
  gw = await startOAuthGateway(env, { provider, upstreamUrl: fake.mcpUrl });
});
after(() => env.cleanup());
beforeEach(async () => {
  await fake.reset();
  provider.reset();
});

/** An SDK client on a new transport with authProvider; the SDK's own fetch (plain HTTP loopback). */
function sdkClient(authProvider) {
  const transport = new StreamableHTTPClientTransport(new URL(gw.url), {
    authProvider,
    reconnectionOptions: { maxRetries: 0, initialReconnectionDelay: 1000, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1 },
  });
  const client = new Client({ name: 'omni-gw-itest-sdk', version: '1.0.0' });
  client.onerror = () => {};
  return { client, transport };
}

/** The SDK's sign-in as `user`: connect (401 → browser), finishAuth(code); resolves to the auth provider. */
async function sdkSignIn(user) {
  const auth = new HeadlessOAuthClientProvider({
    redirectUrl: await loopbackRedirect('/callback'),
    browseAs: (url) => browse(url, { gw, provider, user }),
  });
  const first = sdkClient(auth);
  await assert.rejects(first.client.connect(first.transport), (err) => {
    assert.ok(err instanceof UnauthorizedError, `expected UnauthorizedError, got ${err?.stack ?? err}`);
    return true;
  });
  await first.client.close().catch(() => {});
  assert.equal(auth.visits.length, 1, 'the SDK sent the person to sign in once');
  assert.ok(auth.code, `the sign-in brought back no code:\n${auth.visits[0]?.describe()}`);
  gw.secret('gateway authorization code (SDK)', auth.code);
  await first.transport.finishAuth(auth.code);
  return auth;
}

describe('the SDK client with an OAuthClientProvider', () => {
  it('signs alice in, then lists and calls tools as alice at Omni', async () => {
    const auth = await sdkSignIn('alice');

    // What the SDK did on the way: registered (public client), asked with PKCE, state and the
    // resource from the protected resource metadata, got the code with its state and our iss.
    assert.ok(auth.clientInformation()?.client_id, 'the SDK saved no client information');
    const url = auth.authorizationUrls[0];
    assert.equal(`${url.origin}${url.pathname}`, `${gw.publicUrl}/oauth/authorize`);
    assert.equal(url.searchParams.get('resource'), gw.resource);
    assert.equal(url.searchParams.get('scope'), 'mcp');
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
    const visit = auth.visits[0];
    assert.equal(visit.state, auth.states[0]);
    assert.equal(visit.iss, gw.publicUrl);
    const tokens = auth.tokens();
    assert.match(tokens?.access_token ?? '', /^gwat_/);
    assert.match(tokens?.refresh_token ?? '', /^gwrt_/);
    gw.secret('gateway access token (SDK)', tokens.access_token);
    gw.secret('gateway refresh token (SDK)', tokens.refresh_token);

    const { client, transport } = sdkClient(auth);
    await client.connect(transport);
    try {
      const tools = (await client.listTools()).tools.map((t) => t.name);
      assert.ok(tools.includes('getData'), `alice's tools: ${tools}`);
      const result = await client.callTool({ name: 'getData', arguments: { prompt: 'revenue by region' } });
      assert.equal(toolJson(result).runAs, 'u-alice');
    } finally {
      await client.close();
    }
    assertUpstreamAs(await fake.mcpRequests(), 'alice', [tokens.access_token, tokens.refresh_token]);
    assert.equal(auth.visits.length, 1, 'no second sign-in');
  });

  it('bob through the SDK reaches Omni with bob\'s PAT', async () => {
    const auth = await sdkSignIn('bob');
    gw.secret('gateway access token (SDK)', auth.tokens()?.access_token);
    gw.secret('gateway refresh token (SDK)', auth.tokens()?.refresh_token);

    const { client, transport } = sdkClient(auth);
    await client.connect(transport);
    try {
      assert.equal(toolJson(await client.callTool({ name: 'pickModel', arguments: {} })).runAs, 'u-bob');
    } finally {
      await client.close();
    }
    assertUpstreamAs(await fake.mcpRequests(), 'bob', [auth.tokens().access_token]);
  });

  it('with a stale access token the SDK refreshes (rotation) and carries on without a new sign-in', async () => {
    const auth = await sdkSignIn('alice');
    const old = auth.tokens();
    gw.secret('gateway refresh token (SDK)', old.refresh_token);
    // The access token the client holds is no longer known to the gateway.
    auth.saveTokens({ ...old, access_token: 'gwat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' });

    const { client, transport } = sdkClient(auth);
    await client.connect(transport);
    try {
      assert.equal(toolJson(await client.callTool({ name: 'pickModel', arguments: {} })).runAs, 'u-alice');
    } finally {
      await client.close();
    }
    const now = auth.tokens();
    gw.secret('gateway access token (SDK)', now.access_token);
    gw.secret('gateway refresh token (SDK)', now.refresh_token);
    assert.match(now.access_token, /^gwat_/);
    assert.notEqual(now.access_token, old.access_token);
    assert.notEqual(now.refresh_token, old.refresh_token, 'the refresh token was rotated');
    assert.equal(auth.visits.length, 1, 'a refresh, not a new sign-in');
    assertUpstreamAs(await fake.mcpRequests(), 'alice', [now.access_token]);
  });
});
