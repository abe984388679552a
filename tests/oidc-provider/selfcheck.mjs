#!/usr/bin/env node
// Proves the test provider is a faithful OpenID provider without any gateway: discovery, JWKS,
// the code flow with PKCE and the login form, ID tokens whose signatures verify with node:crypto
// against the published keys, the refusals, every ID-token shape, and the standalone server.
//   node tests/oidc-provider/selfcheck.mjs        (node:test output; exits non-zero on failure)
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createPublicKey, randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { decodeJws, s256, verifyJws } from './jose.mjs';
import { PEOPLE, startProvider } from './provider.mjs';

const CLIENT = { clientId: 'gw-client', clientSecret: 'gw-secret-0123456789', redirectUris: ['http://127.0.0.1:9/oauth/callback'] };
const PUBLIC = { clientId: 'gw-public', clientSecret: null, redirectUris: ['http://127.0.0.1:9/oauth/callback'] };
let p;
const secrets = [];

before(async () => {
  p = await startProvider({ clients: [CLIENT, PUBLIC], onSecret: (name, value) => secrets.push({ name, value }) });
});
after(() => p.close());

const get = (path, init) => fetch(`${p.issuer}${path}`, { redirect: 'manual', ...init });

function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: s256(verifier) };
}

/** Authorize + login as username; resolves to { code, state, nonce, verifier, location }. */
async function codeFor(username = 'alice', { client = CLIENT, scope = 'openid email' } = {}) {
  const { verifier, challenge } = pkce();
  const state = randomBytes(8).toString('hex');
  const nonce = randomBytes(8).toString('hex');
  const q = new URLSearchParams({ response_type: 'code', client_id: client.clientId, redirect_uri: client.redirectUris[0],
    scope, state, nonce, code_challenge: challenge, code_challenge_method: 'S256' });
  const form = await get(`/authorize?${q}`);
  assert.equal(form.status, 200, await form.clone().text());
  const html = await form.text();
  const action = /<form[^>]*action="([^"]+)"/.exec(html)[1];
  const txn = /name="txn" value="([^"]+)"/.exec(html)[1];
  const res = await fetch(action.replace(/&amp;/g, '&'), { method: 'POST', redirect: 'manual',
    body: new URLSearchParams({ txn, username, action: 'allow' }) });
  assert.equal(res.status, 302);
  const location = new URL(res.headers.get('location'));
  assert.equal(location.searchParams.get('state'), state);
  return { code: location.searchParams.get('code'), state, nonce, verifier, location };
}

function tokenRequest(form, { basic } = {}) {
  const headers = { 'Content-Type': 'application/x-www-form-urlencoded' };
  if (basic) headers.Authorization = `Basic ${Buffer.from(`${basic[0]}:${basic[1]}`).toString('base64')}`;
  return get('/token', { method: 'POST', headers, body: new URLSearchParams(form).toString() });
}

async function exchange(c, extra = {}, client = CLIENT) {
  const res = await tokenRequest({ grant_type: 'authorization_code', code: c.code, redirect_uri: client.redirectUris[0],
    code_verifier: c.verifier, client_id: client.clientId, ...(client.clientSecret ? { client_secret: client.clientSecret } : {}), ...extra });
  return { status: res.status, json: await res.json() };
}

const jwks = async () => (await get('/jwks')).json();

describe('discovery and keys', () => {
  it('serves the OpenID configuration', async () => {
    const doc = await (await get('/.well-known/openid-configuration')).json();
    assert.equal(doc.issuer, p.issuer);
    assert.equal(doc.authorization_endpoint, `${p.issuer}/authorize`);
    assert.equal(doc.token_endpoint, `${p.issuer}/token`);
    assert.equal(doc.jwks_uri, `${p.issuer}/jwks`);
    assert.deepEqual(doc.response_types_supported, ['code']);
    assert.deepEqual(doc.id_token_signing_alg_values_supported, ['RS256', 'ES256']);
    assert.deepEqual(doc.code_challenge_methods_supported, ['S256']);
  });

  it('publishes rsa-1 (n, e) and ec-1 (P-256 x, y) that node:crypto imports', async () => {
    const { keys } = await jwks();
    assert.deepEqual(keys.map((k) => k.kid), ['rsa-1', 'ec-1']);
    const [rsa, ec] = keys;
    assert.equal(rsa.kty, 'RSA');
    assert.match(rsa.n, /^[A-Za-z0-9_-]{342}$/, '2048-bit modulus, base64url');
    assert.equal(rsa.e, 'AQAB');
    assert.equal(ec.kty, 'EC');
    assert.equal(ec.crv, 'P-256');
    assert.match(ec.x, /^[A-Za-z0-9_-]{43}$/);
    assert.match(ec.y, /^[A-Za-z0-9_-]{43}$/);
    for (const k of keys) assert.ok(createPublicKey({ key: k, format: 'jwk' }));
  });
});

describe('the code flow', () => {
  it('login, token (client_secret_post), an RS256 ID token that verifies, with the asked claims', async () => {
    const c = await codeFor('alice');
    const { status, json } = await exchange(c);
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(json.token_type, 'Bearer');
    const { header, payload } = verifyJws(json.id_token, await jwks());
    assert.equal(header.alg, 'RS256');
    assert.equal(header.kid, 'rsa-1');
    assert.equal(payload.iss, p.issuer);
    assert.equal(payload.aud, CLIENT.clientId);
    assert.equal(payload.sub, PEOPLE.alice.sub);
    assert.equal(payload.nonce, c.nonce);
    assert.equal(payload.email, 'alice@team.example');
    assert.equal(payload.email_verified, true);
    assert.ok(payload.exp > Date.now() / 1000 && payload.iat <= Date.now() / 1000 + 1);
    const [req] = p.tokenRequests().slice(-1);
    assert.equal(req.form.code_verifier, c.verifier);
    assert.equal(req.form.client_secret, CLIENT.clientSecret);
    assert.deepEqual(req.auth, { method: 'client_secret_post', clientId: CLIENT.clientId, secretOk: true });
    assert.equal(req.pkce, 'ok');
    const auth = p.authorizeRequests().slice(-1)[0];
    assert.equal(s256(req.form.code_verifier), auth.query.code_challenge);
  });

  it('client_secret_basic works too; a public client needs no secret', async () => {
    const c = await codeFor('bob');
    const res = await tokenRequest({ grant_type: 'authorization_code', code: c.code, redirect_uri: CLIENT.redirectUris[0], code_verifier: c.verifier },
      { basic: [CLIENT.clientId, CLIENT.clientSecret] });
    assert.equal(res.status, 200);
    assert.equal(p.tokenRequests().slice(-1)[0].auth.method, 'client_secret_basic');
    const pub = await codeFor('bob', { client: PUBLIC });
    const { status, json } = await exchange(pub, {}, PUBLIC);
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(decodeJws(json.id_token).payload.aud, PUBLIC.clientId);
  });

  it('without the email scope the ID token has no email', async () => {
    const c = await codeFor('alice', { scope: 'openid' });
    const { json } = await exchange(c);
    assert.equal(decodeJws(json.id_token).payload.email, undefined);
  });

  it('cancel at the login form sends error=access_denied', async () => {
    const { challenge } = pkce();
    const q = new URLSearchParams({ response_type: 'code', client_id: CLIENT.clientId, redirect_uri: CLIENT.redirectUris[0],
      scope: 'openid', state: 's1', nonce: 'n1', code_challenge: challenge, code_challenge_method: 'S256' });
    const html = await (await get(`/authorize?${q}`)).text();
    const txn = /name="txn" value="([^"]+)"/.exec(html)[1];
    const res = await get('/login', { method: 'POST', body: new URLSearchParams({ txn, action: 'deny' }) });
    const loc = new URL(res.headers.get('location'));
    assert.equal(loc.searchParams.get('error'), 'access_denied');
    assert.equal(loc.searchParams.get('state'), 's1');
  });
});

describe('refusals', () => {
  it('authorize: unknown client or redirect URI → 400 page; missing nonce, PKCE or openid → redirect with error', async () => {
    const base = { response_type: 'code', client_id: CLIENT.clientId, redirect_uri: CLIENT.redirectUris[0], scope: 'openid',
      state: 's', nonce: 'n', code_challenge: pkce().challenge, code_challenge_method: 'S256' };
    const at = (over) => get(`/authorize?${new URLSearchParams(Object.fromEntries(Object.entries({ ...base, ...over }).filter(([, v]) => v !== null)))}`);
    for (const over of [{ client_id: 'nobody' }, { redirect_uri: 'http://127.0.0.1:9/other' }]) {
      const res = await at(over);
      assert.equal(res.status, 400);
      assert.equal(res.headers.get('location'), null);
    }
    for (const [over, error] of [[{ nonce: null }, 'invalid_request'], [{ code_challenge: null }, 'invalid_request'],
      [{ code_challenge_method: 'plain' }, 'invalid_request'], [{ scope: 'email' }, 'invalid_scope'], [{ response_type: 'token' }, 'unsupported_response_type'],
      [{ state: null }, 'invalid_request']]) {
      const res = await at(over);
      assert.equal(res.status, 302, JSON.stringify(over));
      assert.equal(new URL(res.headers.get('location')).searchParams.get('error'), error, JSON.stringify(over));
    }
  });

  it('token: wrong verifier, reused code, wrong redirect_uri → invalid_grant; wrong secret, unknown client → invalid_client', async () => {
    const c1 = await codeFor();
    assert.equal((await exchange(c1, { code_verifier: pkce().verifier })).json.error, 'invalid_grant');
    assert.equal(p.tokenRequests().slice(-1)[0].pkce, 'mismatch');
    const c2 = await codeFor();
    assert.equal((await exchange(c2)).status, 200);
    const again = await exchange(c2);
    assert.deepEqual([again.status, again.json.error], [400, 'invalid_grant']);
    const c3 = await codeFor();
    assert.equal((await exchange(c3, { redirect_uri: 'http://127.0.0.1:9/other' })).json.error, 'invalid_grant');
    const c4 = await codeFor();
    const wrong = await exchange(c4, { client_secret: 'nope-nope-nope' });
    assert.deepEqual([wrong.status, wrong.json.error], [401, 'invalid_client']);
    const unknown = await exchange(c4, { client_id: 'nobody' });
    assert.deepEqual([unknown.status, unknown.json.error], [401, 'invalid_client']);
  });
});

describe('ID token shapes', () => {
  it('ES256 is signed with ec-1 (r||s) and verifies', async () => {
    p.nextIdToken({ alg: 'ES256' });
    const { json } = await exchange(await codeFor());
    const { header } = verifyJws(json.id_token, await jwks());
    assert.deepEqual([header.alg, header.kid], ['ES256', 'ec-1']);
    assert.equal(decodeJws(json.id_token).signature.length, 64);
  });

  it('forge: labelled with a published kid, does not verify', async () => {
    for (const alg of ['RS256', 'ES256']) {
      p.nextIdToken({ alg, forge: true });
      const { json } = await exchange(await codeFor());
      assert.equal(decodeJws(json.id_token).header.kid, alg === 'RS256' ? 'rsa-1' : 'ec-1');
      assert.throws(() => verifyJws(json.id_token, { keys: p.jwks().keys }), /bad signature/);
    }
  });

  it('expired, wrong nonce, aud, iss, claims: the claims say so and the signature is good', async () => {
    p.nextIdToken({ expired: true });
    p.nextIdToken({ nonce: 'not-the-nonce' });
    p.nextIdToken({ aud: 'someone-else' });
    p.nextIdToken({ iss: 'https://issuer.elsewhere.example' });
    p.nextIdToken({ claims: { email_verified: false } });
    const got = [];
    for (let i = 0; i < 5; i++) got.push(verifyJws((await exchange(await codeFor())).json.id_token, await jwks()).payload);
    assert.ok(got[0].exp < Date.now() / 1000 - 3000);
    assert.equal(got[1].nonce, 'not-the-nonce');
    assert.equal(got[2].aud, 'someone-else');
    assert.equal(got[3].iss, 'https://issuer.elsewhere.example');
    assert.equal(got[4].email_verified, false);
  });

  it('unknown kid: never published; late: published once a JWKS without it was served', async () => {
    p.nextIdToken({ unknownKid: 'never' });
    const never = (await exchange(await codeFor())).json.id_token;
    const neverKid = decodeJws(never).header.kid;
    assert.ok(!(await jwks()).keys.some((k) => k.kid === neverKid));
    assert.ok(!(await jwks()).keys.some((k) => k.kid === neverKid));

    // A relying party that holds an earlier JWKS: the next fetch has the key.
    const held = await jwks();
    p.nextIdToken({ unknownKid: 'late', alg: 'ES256' });
    const late = (await exchange(await codeFor())).json.id_token;
    assert.throws(() => verifyJws(late, held), /no key with kid/);
    verifyJws(late, await jwks());

    // A provider whose JWKS nobody fetched yet: the first fetch lacks the key, the second has it.
    const fresh = await startProvider({ clients: [CLIENT] });
    try {
      const saved = p;
      p = fresh;
      try {
        p.nextIdToken({ unknownKid: 'late' });
        const token = (await exchange(await codeFor())).json.id_token;
        const first = await jwks();
        assert.throws(() => verifyJws(token, first), /no key with kid/);
        verifyJws(token, await jwks());
        assert.equal(p.jwksFetches(), 2);
        assert.deepEqual(p.jwksRequests().map((e) => e.kids.length), [2, 3]);
      } finally {
        p = saved;
      }
    } finally {
      await fresh.close();
    }
  });

  it('HS256 (HMAC with the client secret) and none are made for the refusal tests', async () => {
    p.nextIdToken({ alg: 'HS256' });
    p.nextIdToken({ alg: 'none' });
    const hs = decodeJws((await exchange(await codeFor())).json.id_token);
    const none = decodeJws((await exchange(await codeFor())).json.id_token);
    assert.equal(hs.header.alg, 'HS256');
    assert.equal(none.header.alg, 'none');
    assert.equal(none.signature.length, 0);
  });

  it('tells onSecret of each code, token and client secret', () => {
    assert.ok(secrets.some((s) => s.value === CLIENT.clientSecret));
    for (const i of p.issued()) {
      for (const v of [i.code, i.idToken, i.accessToken]) assert.ok(secrets.some((s) => s.value === v));
    }
  });
});

describe('standalone', () => {
  it('server.mjs prints its issuer and serves discovery and /_test/', async () => {
    const child = spawn(process.execPath, [fileURLToPath(new URL('./server.mjs', import.meta.url)), '--port', '0',
      '--redirect-uri', 'http://127.0.0.1:9/oauth/callback', '--base-path', '/realms/team'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const line = await new Promise((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`server.mjs exited (${code})`)));
        createInterface({ input: child.stdout }).once('line', resolve);
      });
      const info = JSON.parse(line);
      assert.equal(info.listening, true);
      assert.equal(info.issuer, `http://127.0.0.1:${info.port}/realms/team`);
      assert.ok(info.client_secret);
      const doc = await (await fetch(`${info.issuer}/.well-known/openid-configuration`)).json();
      assert.equal(doc.issuer, info.issuer);
      assert.equal(doc.jwks_uri, `${info.issuer}/jwks`);
      const log = await (await fetch(`${info.url}/_test/requests`)).json();
      assert.deepEqual(log.map((e) => e.kind), ['discovery']);
    } finally {
      child.kill('SIGTERM');
    }
  });
});
