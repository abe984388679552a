// The OAuth server's state in Redis (docs/oauth.md: with `redis` configured, registered clients,
// sign-ins in progress, codes, access and refresh tokens live under `omnigw:v1:oauth:`, so any
// replica validates any token). Two gateway replicas on one real redis-server (lib/redis.mjs),
// each on its own port with the same public_url (an address nothing listens on, as a load
// balancer's would be: the test sends each request to the replica it chooses, the provider's
// redirect to public_url/oauth/callback included):
//   - a sign-in started on A completes on B, the code is exchanged on A, the token runs as the
//     member on B, refresh on B rotates for A too, and codes / refresh tokens are single-use
//     across replicas;
//   - the keys are SHA-256 digests (never a token or code), expire, and no value holds a token,
//     a code or the provider's client secret;
//   - redis-server killed: a token the replica must look up gets 503 -32016 (not 401), the
//     token endpoint 503 temporarily_unavailable, static member tokens still work; after a
//     restart on the same port a new sign-in works again;
//   - a member removed by SIGHUP on both replicas loses access on both while her token is still
//     in Redis.
// Each claim about /mcp is checked against what the fake Omni received.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { OMNI, TestEnv, assertNothingUpstream, assertRpcError, findSecrets, request, sha256Hex, waitFor } from './lib/harness.mjs';
import { initializeMessage, rpc, sdkConnect, toolJson } from './lib/mcp.mjs';
import {
  assertOAuthError, assertRefusedPage, assertUpstreamAs, authorizeUrl, browse, exchangeCode, parseChallenge, pkcePair,
  refreshTokens, register, registerClient, clientMetadata, loopbackRedirect, signIn, startOAuthReplicas, startOidcProvider,
} from './lib/oauth.mjs';
import { startRedis } from './lib/redis.mjs';

const env = new TestEnv('oauth-redis');
let fake;
let provider;
let redis; // shared by the describes that keep Redis up, one db each

const PREFIX = 'omnigw:v1:oauth:';
const TTL = { access: 900, refresh: 3600, code: 60 }; // oauth.*_ttl_s of every replica pair here

before(async () => {
  fake = await env.startFake();
  provider = await startOidcProvider(env);
  redis = await startRedis();
});
after(async () => {
  try {
    await env.cleanup();
  } finally {
    await redis?.stop();
  }
});
beforeEach(async () => {
  await fake.reset();
  provider.reset();
});

/** Replicas A and B on Redis `r`, db `db`; `label` names them (and their public_url host). */
function replicas(r, db, label, extra = {}) {
  return startOAuthReplicas(env, {
    provider, upstreamUrl: fake.mcpUrl, redisUrl: r.url(db), label,
    oauth: { access_token_ttl_s: TTL.access, refresh_token_ttl_s: TTL.refresh, code_ttl_s: TTL.code },
    ...extra,
  });
}

const bearer = (token) => ({ Authorization: `Bearer ${token}` });
const initializeWith = (gw, token, id) => gw.request({ headers: bearer(token), body: initializeMessage(id) });

/** The SDK client on gw with an access token: tools/list and pickModel; resolves to { tools, runAs }. */
async function mcpWith(gw, token) {
  const c = await sdkConnect(gw, null, { token });
  try {
    const tools = (await c.client.listTools()).tools.map((t) => t.name);
    const runAs = toolJson(await c.client.callTool({ name: 'pickModel', arguments: {} })).runAs;
    return { tools, runAs };
  } finally {
    await c.close();
  }
}

/** The origin a browse() step was sent to. */
const originOf = (step) => new URL(step.url).origin;
const callbackStep = (b) => b.steps.find((s) => new URL(s.url).pathname === '/oauth/callback');

describe('two replicas share the OAuth state through Redis', () => {
  let a;
  let b;
  before(async () => {
    [a, b] = await replicas(redis, 0, 'share');
  });

  it('authorize on A, callback on B, code exchanged on A, MCP on B as alice; refresh on B; replays on the other replica → invalid_grant', async () => {
    assert.notEqual(a.baseUrl, b.baseUrl, 'premise: the replicas listen on two ports');
    assert.equal(a.publicUrl, b.publicUrl, 'premise: one public_url');

    // Registered on A only: the registration is in Redis.
    const client = await register(a);
    assert.deepEqual(await redis.keys(`${PREFIX}client:*`, 0), [`${PREFIX}client:${client.client_id}`],
      'the client registered on A is not in Redis (db 0) under omnigw:v1:oauth:');
    const redirectUri = client.redirect_uris[0];
    const pkce = pkcePair();
    const visit = await browse(authorizeUrl(a, { clientId: client.client_id, redirectUri, challenge: pkce.challenge, state: 'st-share' }),
      { gw: a, provider, user: 'alice', callbackTo: b });

    // A started the sign-in (it knew the client) and sent the browser to the provider, which
    // came back to public_url/oauth/callback; that request went to B, which found the sign-in
    // A had begun and gave the client its code.
    assert.ok(visit.code, `no code for the client:\n${visit.describe()}`);
    assert.equal(originOf(visit.steps[0]), a.baseUrl, visit.describe());
    assert.equal(visit.steps[0].status, 302, visit.describe());
    assert.equal(`${visit.callback.origin}${visit.callback.pathname}`, `${a.publicUrl}/oauth/callback`, visit.describe());
    assert.equal(originOf(callbackStep(visit)), b.baseUrl, visit.describe());
    assert.equal(`${visit.redirect.origin}${visit.redirect.pathname}`, redirectUri);
    assert.equal(visit.state, 'st-share');
    assert.equal(visit.iss, a.publicUrl, 'iss is the shared public_url');
    const [auth] = provider.authorizeRequests();
    assert.equal(auth.query.redirect_uri, `${a.publicUrl}/oauth/callback`);
    assert.equal(provider.tokenRequests().length, 1, 'B exchanged the provider\'s code once');

    // The callback replayed on A: the sign-in was used up on B.
    const replayed = await request(`${a.baseUrl}${visit.callback.pathname}${visit.callback.search}`, { headers: { Accept: 'text/html' } });
    assert.equal(replayed.status, 400, `callback replayed on A: ${replayed.status} ${replayed.body}`);
    assert.equal(replayed.headers.location, undefined);
    assert.equal(provider.tokenRequests().length, 1, 'the provider\'s code is not exchanged again by A');

    // B's code, exchanged on A.
    const t = await exchangeCode(a, { code: visit.code, verifier: pkce.verifier, clientId: client.client_id, redirectUri });
    assert.equal(t.status, 200, `code from B exchanged on A: ${t.status} ${t.body}`);
    assert.match(t.json.access_token, /^gwat_[A-Za-z0-9_-]{43}$/);
    assert.match(t.json.refresh_token, /^gwrt_[A-Za-z0-9_-]{43}$/);
    assert.equal(t.json.expires_in, TTL.access);
    const tokens = t.json;

    // The code again, on the replica that issued it: used.
    const again = await exchangeCode(b, { code: visit.code, verifier: pkce.verifier, clientId: client.client_id, redirectUri });
    assertOAuthError(again, { status: 400, error: 'invalid_grant' }, 'the code replayed on B');

    // A's access token on B: runs as alice, upstream with her PAT.
    await fake.clearRequests();
    const onB = await mcpWith(b, tokens.access_token);
    assert.ok(onB.tools.includes('getData'), `alice's tools on B: ${onB.tools}`);
    assert.equal(onB.runAs, OMNI.users.alice.id);
    assertUpstreamAs(await fake.mcpRequests(), 'alice', [tokens.access_token, tokens.refresh_token]);

    // Refresh on B; the rotated refresh token replayed on A is refused.
    const r1 = await refreshTokens(b, { refreshToken: tokens.refresh_token, clientId: client.client_id });
    assert.equal(r1.status, 200, `refresh on B: ${r1.body}`);
    assert.notEqual(r1.json.access_token, tokens.access_token);
    assert.notEqual(r1.json.refresh_token, tokens.refresh_token);
    const old = await refreshTokens(a, { refreshToken: tokens.refresh_token, clientId: client.client_id });
    assertOAuthError(old, { status: 400, error: 'invalid_grant' }, 'the rotated refresh token replayed on A');

    // B's new tokens work on A: the access token for MCP, the refresh token for one more turn.
    await fake.clearRequests();
    assert.equal((await mcpWith(a, r1.json.access_token)).runAs, OMNI.users.alice.id);
    assertUpstreamAs(await fake.mcpRequests(), 'alice', [r1.json.access_token, r1.json.refresh_token]);
    const r2 = await refreshTokens(a, { refreshToken: r1.json.refresh_token, clientId: client.client_id });
    assert.equal(r2.status, 200, `B's refresh token refreshed on A: ${r2.body}`);
    assert.equal(provider.authorizeRequests().length, 1, 'no refresh signed in at the provider again');
  });

  it('a client registered on B is known to A; an unknown client is unknown to both', async () => {
    const client = await register(b);
    const s = await signIn(a, provider, 'bob', { client, callbackTo: a, exchangeOn: b });
    await fake.clearRequests();
    const res = await initializeWith(a, s.tokens.access_token, 7);
    assert.equal(res.status, 200, res.body);
    assertUpstreamAs(await fake.mcpRequests(), 'bob', [s.tokens.access_token]);

    for (const gw of [a, b]) {
      const made = await refreshTokens(gw, { refreshToken: s.tokens.refresh_token, clientId: 'gwc_never-registered-client-000000000000' });
      assertOAuthError(made, { status: 401, error: 'invalid_client' }, `${gw.name}: unknown client`);
    }
  });
});

describe('what the OAuth state in Redis looks like', () => {
  let a;
  let b;
  const DB = 1;
  before(async () => {
    [a, b] = await replicas(redis, DB, 'keys');
  });

  it('keys are the kind and a SHA-256 hex digest (never the token or code), all expire, and no value holds a token, code or the client secret', async () => {
    // A whole sign-in on A, one refresh, and the new token used. (All on one replica: what
    // is checked here is what reached Redis.)
    const s = await signIn(a, provider, 'alice');
    const r1 = await refreshTokens(a, { refreshToken: s.tokens.refresh_token, clientId: s.client.client_id });
    assert.equal(r1.status, 200, r1.body);
    assert.equal((await initializeWith(a, r1.json.access_token, 1)).status, 200);
    // On B: a code not exchanged yet, and a sign-in left at the provider.
    const pending = await signIn(b, provider, 'bob', { exchange: false });
    const client = await register(b);
    const left = await request(authorizeUrl(b, { clientId: client.client_id, redirectUri: client.redirect_uris[0], challenge: pkcePair().challenge, state: 'st-left' }));
    assert.equal(left.status, 302, left.body);
    const providerState = new URL(left.headers.location).searchParams.get('state');
    assert.ok(providerState, left.headers.location);

    const keys = await redis.keys(`${PREFIX}*`, DB);
    assert.ok(keys.length > 0, `no ${PREFIX}* key in Redis db ${DB} after a whole sign-in: the OAuth state is not in Redis`);
    const all = await redis.keys('*', DB);
    assert.deepEqual(all, keys, 'every key the gateway wrote is under omnigw:v1:oauth:');

    // The names: <kind>:<64 hex>, or client:<client_id> (an identifier, not a secret).
    const clientIds = new Set([s.client.client_id, pending.client.client_id, client.client_id]);
    for (const key of keys) {
      const rest = key.slice(PREFIX.length);
      const m = /^([a-z]+):(.*)$/.exec(rest);
      assert.ok(m, `key ${key}`);
      if (m[1] === 'client') assert.ok(clientIds.has(m[2]), `a client key for a client never registered: ${key}`);
      else assert.match(m[2], /^[0-9a-f]{64}$/, `key ${key}: not a SHA-256 hex digest after the kind`);
    }
    const secrets = {
      ...env.secrets, 'the first access token': s.tokens.access_token, 'the first refresh token': s.tokens.refresh_token,
      'the refreshed access token': r1.json.access_token, 'the refreshed refresh token': r1.json.refresh_token,
      'the exchanged code': s.browser.code, 'the pending code': pending.browser.code, 'the provider state': providerState,
      'the client secret': a.clientSecret,
    };
    assert.deepEqual(findSecrets(keys.join('\n'), secrets), [], 'secrets in key names');

    // The digests are SHA-256 of the token or code: each live one is there, under its kind.
    const has = (kind, secret) => keys.includes(`${PREFIX}${kind}:${sha256Hex(secret)}`);
    assert.ok(has('access', s.tokens.access_token), 'access:<sha256 of the first access token>');
    assert.ok(has('access', r1.json.access_token), 'access:<sha256 of the refreshed access token>');
    assert.ok(has('refresh', r1.json.refresh_token), 'refresh:<sha256 of the refresh token>');
    assert.ok(has('code', pending.browser.code), 'code:<sha256 of the code not exchanged yet>');
    assert.ok(!has('refresh', s.tokens.refresh_token), 'the rotated refresh token is gone');
    assert.ok(!has('code', s.browser.code), 'the exchanged code is gone');
    assert.ok(keys.some((k) => k.includes(sha256Hex(providerState))), 'the sign-in left at the provider is keyed by a digest of its state');
    for (const c of clientIds) assert.ok(keys.includes(`${PREFIX}client:${c}`), `client ${c} registered`);

    // Every key expires, within its configured lifetime.
    for (const key of keys) {
      const ttl = await redis.commandIn(DB, 'TTL', key);
      const kind = key.slice(PREFIX.length).split(':')[0];
      const max = TTL[kind] ?? 7776000; // client_ttl_s, and the rest: some lifetime
      assert.ok(ttl > 0 && ttl <= max, `TTL of ${key}: ${ttl} (max ${max})`);
    }

    // No value holds a token, a code, the client secret (nor a PAT, the org key, a member
    // token or anything the provider issued: env.secrets).
    const values = [];
    for (const key of keys) {
      const v = await redis.commandIn(DB, 'GET', key);
      assert.equal(typeof v, 'string', `${key} holds a string`);
      values.push(v);
      const leaked = findSecrets(v, secrets);
      assert.deepEqual(leaked, [], `value of ${key.slice(0, PREFIX.length + 12)}… holds secrets`);
    }
    assert.ok(values.length >= 7, `${values.length} values checked`);
  });
});

describe('Redis goes away', () => {
  let outage; // a redis-server of this describe's own: it is killed
  let a;
  let b;
  before(async () => {
    outage = await startRedis({ name: 'redis-server-outage' });
    [a, b] = await replicas(outage, 0, 'outage');
  });
  after(() => outage?.stop());

  it('a token the replica must look up → 503 -32016 (not 401); /oauth/token → 503 temporarily_unavailable; the replicas stay up; after a restart a new sign-in works', async () => {
    // Both sign in on A; alice's token is used on A. bob's was never used: neither replica
    // has validated it. alice's was never used on B.
    const alice = await signIn(a, provider, 'alice');
    const bob = await signIn(a, provider, 'bob');
    assert.equal((await initializeWith(a, alice.tokens.access_token, 1)).status, 200, 'premise: alice\'s token works');
    const marks = [a.stderr().length, b.stderr().length];

    await outage.kill();
    await fake.clearRequests();

    let id = 10;
    for (const [gw, token, who] of [[b, bob.tokens.access_token, 'bob on B'], [a, bob.tokens.access_token, 'bob on A'], [b, alice.tokens.access_token, 'alice on B']]) {
      for (const body of [initializeMessage(++id), rpc(++id, 'tools/list')]) {
        const res = await gw.request({ headers: bearer(token), body });
        assertRpcError(res, { status: 503, code: -32016, id: body.id }, `${who}, ${body.method}, Redis down`);
        const challenge = res.headers['www-authenticate'];
        if (challenge) assert.notEqual(parseChallenge(challenge).params.error, 'invalid_token', `${who}: a store outage is no invalid token: ${challenge}`);
      }
    }
    await assertNothingUpstream(fake, 'requests refused while Redis was down');

    // The token endpoint, both grants, on both replicas.
    for (const gw of [a, b]) {
      const refresh = await refreshTokens(gw, { refreshToken: bob.tokens.refresh_token, clientId: bob.client.client_id });
      assertOAuthError(refresh, { status: 503, error: 'temporarily_unavailable' }, `${gw.name}: refresh while Redis is down`);
      const code = await exchangeCode(gw, { code: 'made-up-code-0000000000000000', verifier: pkcePair().verifier, clientId: alice.client.client_id, redirectUri: alice.client.redirect_uris[0] });
      assertOAuthError(code, { status: 503, error: 'temporarily_unavailable' }, `${gw.name}: code exchange while Redis is down`);
    }

    // The replicas are up: discovery answers, and alice's static member token is served.
    for (const gw of [a, b]) {
      assert.equal(gw.proc.exitInfo(), null, `${gw.name} exited`);
      const doc = await request(`${gw.baseUrl}/.well-known/oauth-authorization-server`);
      assert.equal(doc.status, 200, `${gw.name}: ${doc.body}`);
      await fake.clearRequests();
      const res = await gw.request({ member: 'alice', body: initializeMessage(++id) });
      assert.equal(res.status, 200, `${gw.name}, alice's static token while Redis is down: ${res.body}`);
      assertUpstreamAs(await fake.mcpRequests(), 'alice');
    }
    await a.waitForLog(/redis: unreachable/, { since: marks[0] });
    await b.waitForLog(/redis: unreachable/, { since: marks[1] });

    // redis-server back on the same port, empty. The replicas reconnect with back-off: poll
    // until each registers a client again.
    await outage.restart();
    for (const gw of [a, b]) {
      const uri = await loopbackRedirect();
      await waitFor(async () => (await registerClient(gw, clientMetadata([uri]))).status === 201,
        { timeoutMs: 30000, intervalMs: 250, message: `${gw.name} to register clients again after Redis restarted` });
    }

    // A new sign-in across both replicas, and bob on MCP with its token.
    await fake.clearRequests();
    const again = await signIn(a, provider, 'bob', { callbackTo: b, exchangeOn: b });
    const res = await initializeWith(a, again.tokens.access_token, ++id);
    assert.equal(res.status, 200, `bob after Redis came back: ${res.body}`);
    assert.equal((await mcpWith(b, again.tokens.access_token)).runAs, OMNI.users.bob.id);
    assertUpstreamAs(await fake.mcpRequests(), 'bob', [again.tokens.access_token]);

    // The restarted Redis is empty: bob's old token, never seen by either replica, is unknown now.
    await fake.clearRequests();
    for (const gw of [a, b]) {
      const old = await initializeWith(gw, bob.tokens.access_token, ++id);
      assertRpcError(old, { status: 401, code: -32001, id }, `${gw.name}: bob's token from before the restart`);
      assert.equal(parseChallenge(old.headers['www-authenticate']).params.error, 'invalid_token');
    }
    await assertNothingUpstream(fake);
  });
});

describe('a member removed by a reload (SIGHUP on both replicas)', () => {
  let a;
  let b;
  const DB = 3;
  before(async () => {
    [a, b] = await replicas(redis, DB, 'reload');
  });

  /** Removes `member` from gw's config file and reloads it; resolves once applied. */
  async function removeAndReload(gw, member) {
    const cfg = JSON.parse(readFileSync(gw.configFile, 'utf8'));
    cfg.users = cfg.users.filter((u) => u.name !== member);
    writeFileSync(gw.configFile, JSON.stringify(cfg, null, 2));
    const mark = gw.stderr().length;
    gw.signal('SIGHUP');
    await gw.waitForLog(/reload: config applied/, { since: mark });
  }

  it('bob loses access on both replicas though his token is still in Redis; alice keeps hers', async () => {
    const bob = await signIn(a, provider, 'bob');
    const alice = await signIn(a, provider, 'alice');
    // Both replicas have served bob's token before the reload.
    for (const [i, gw] of [a, b].entries()) {
      await fake.clearRequests();
      const res = await initializeWith(gw, bob.tokens.access_token, i + 1);
      assert.equal(res.status, 200, `${gw.name}, bob before the reload: ${res.body}`);
      assertUpstreamAs(await fake.mcpRequests(), 'bob', [bob.tokens.access_token]);
    }

    await removeAndReload(a, 'bob');
    await removeAndReload(b, 'bob');
    assert.equal(await redis.commandIn(DB, 'EXISTS', `${PREFIX}access:${sha256Hex(bob.tokens.access_token)}`), 1,
      'premise: bob\'s access token is still in Redis');

    await fake.clearRequests();
    let id = 10;
    for (const gw of [a, b]) {
      for (const body of [initializeMessage(++id), rpc(++id, 'tools/list')]) {
        const res = await gw.request({ headers: bearer(bob.tokens.access_token), body });
        assertRpcError(res, { status: 401, code: -32001, id: body.id }, `${gw.name}, bob after the reload`);
        const { scheme, params } = parseChallenge(res.headers['www-authenticate']);
        assert.equal(scheme, 'Bearer');
        assert.equal(params.error, 'invalid_token');
        assert.equal(params.resource_metadata, gw.prmUrl);
      }
    }
    await assertNothingUpstream(fake, 'bob after the reload');

    // His refresh token gets him nothing either, and he cannot sign in again.
    const refresh = await refreshTokens(b, { refreshToken: bob.tokens.refresh_token, clientId: bob.client.client_id });
    assertOAuthError(refresh, { status: 400, error: 'invalid_grant' }, 'bob\'s refresh token after the reload');
    const visit = await browse(authorizeUrl(a, { clientId: bob.client.client_id, redirectUri: bob.client.redirect_uris[0], challenge: pkcePair().challenge, state: 'st-bob' }),
      { gw: a, provider, user: 'bob', callbackTo: b });
    assertRefusedPage(visit, 403, 'bob signing in again');

    // alice, signed in before the reload, goes on through both.
    for (const gw of [a, b]) {
      await fake.clearRequests();
      const res = await initializeWith(gw, alice.tokens.access_token, ++id);
      assert.equal(res.status, 200, `${gw.name}, alice after the reload: ${res.body}`);
      assertUpstreamAs(await fake.mcpRequests(), 'alice', [alice.tokens.access_token]);
    }
  });
});
