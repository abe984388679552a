// A small OpenID Connect provider for the gateway's sign-in tests: discovery, JWKS, the
// authorization code flow with PKCE S256 and a login form, a token endpoint answering signed ID
// tokens. Tests shape the next ID token (alg, forged, expired, wrong nonce/aud/iss, unknown kid)
// and read what the provider received. node:http and node:crypto only. See README.md beside it.
import http from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { halfHash, newSigningKey, randomToken, s256, signJws } from './jose.mjs';

/** The people who can sign in by default (username → claims). */
export const PEOPLE = Object.freeze({
  alice: Object.freeze({ sub: '110000000000000000001', email: 'alice@team.example', email_verified: true }),
  bob: Object.freeze({ sub: '110000000000000000002', email: 'bob@team.example', email_verified: true }),
  carol: Object.freeze({ sub: '110000000000000000003', email: 'carol@team.example', email_verified: true }),
  dora: Object.freeze({ sub: '110000000000000000004', email: 'dora@team.example', email_verified: false }),
  eve: Object.freeze({ sub: '110000000000000000005', email: 'eve@elsewhere.example', email_verified: true }),
});

const ID_TOKEN_TTL_S = 3600;
const ACCESS_TOKEN_TTL_S = 3600;
const MAX_BODY_BYTES = 64 * 1024;
const PKCE_VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/;
const PKCE_CHALLENGE = /^[A-Za-z0-9_-]{43}$/;

class OAuthFailure extends Error {
  constructor(status, error, description) {
    super(description);
    this.status = status;
    this.error = error;
  }
}

/**
 * Starts the provider on host:port (port 0: the OS picks). Options:
 *   users      username → { sub, email, email_verified } (default PEOPLE)
 *   clients    [{ clientId, clientSecret (null: a public client), redirectUris }]
 *   basePath   a path for the issuer, e.g. '/realms/team' (default none: issuer = origin)
 *   codeTtlS   lifetime of an authorization code (default 60)
 *   alg        the default ID token alg, 'RS256' (key rsa-1) or 'ES256' (key ec-1)
 *   onSecret   (name, value) => void, told of every code, token and client secret it makes
 *   testApi    serve the /_test/ HTTP control API (default true)
 * Resolves to the provider handle (see README.md): { issuer, url, port, addClient, addUser,
 * nextIdToken, setAlg, requests, tokenRequests, authorizeRequests, jwksFetches, issued, reset,
 * close, stop }.
 */
export async function startProvider({
  host = '127.0.0.1', port = 0, users = PEOPLE, clients = [], basePath = '', codeTtlS = 60,
  alg = 'RS256', onSecret = () => {}, testApi = true,
} = {}) {
  const state = {
    issuer: null,
    users: new Map(Object.entries(users)),
    clients: new Map(),
    // kid → signing key; publishFrom: the first JWKS fetch (1-based count) that lists it.
    keys: new Map(),
    current: {},
    alg,
    jwksServed: 0,
    txns: new Map(),   // login transactions: txn id → the authorize request
    codes: new Map(),  // code → { clientId, redirectUri, codeChallenge, nonce, scope, user, expiresAt, used }
    shapes: [],        // how to make the next ID tokens, one each
    log: [],
    issued: [],
    seq: 0,
    secretSeq: 0,
  };
  const secret = (name, value) => { onSecret(`${name} #${++state.secretSeq} (oidc provider)`, value); return value; };
  for (const [a, kid] of [['RS256', 'rsa-1'], ['ES256', 'ec-1']]) {
    const key = { ...newSigningKey(a, kid), publishFrom: 0 };
    state.keys.set(kid, key);
    state.current[a] = key;
  }

  const provider = {
    issuer: null,
    url: null,
    port: 0,
    /** Registers (or replaces) a client. clientSecret null makes it a public client (PKCE only). */
    addClient({ clientId, clientSecret = null, redirectUris }) {
      if (clientSecret) secret(`client secret of ${clientId}`, clientSecret);
      state.clients.set(clientId, { clientId, clientSecret, redirectUris: [...redirectUris] });
    },
    /** Adds (or replaces) a person who can sign in. */
    addUser(username, claims) { state.users.set(username, { ...claims }); },
    /**
     * Shapes the next ID token the token endpoint issues (each call queues one shape, used once):
     *   alg          'RS256' | 'ES256' (the published key of that type), 'HS256' (HMAC with the
     *                client secret) | 'none' (no signature)
     *   forge        true: signed with a fresh key of that type, labelled with the published kid
     *   unknownKid   'never': a fresh key whose kid is never published; 'late': a fresh key
     *                published once the JWKS has been served without it (the JWKS fetched after
     *                this token was issued, or the second one if none was fetched before)
     *   expired      true: iat two hours ago, exp one hour ago
     *   nonce, aud, iss   replace the claim (nonce null: left out)
     *   claims       merged over the claims (a null value removes the claim)
     *   header       merged over the JWS header
     */
    nextIdToken(shape = {}) { state.shapes.push({ ...shape }); },
    /** The default alg for unshaped ID tokens. */
    setAlg(a) { state.alg = a; },
    /** Every request received (oldest first): { seq, t, method, path, query, headers, form, status, ... }. */
    requests: () => state.log.map((e) => ({ ...e })),
    tokenRequests: () => state.log.filter((e) => e.kind === 'token'),
    authorizeRequests: () => state.log.filter((e) => e.kind === 'authorize'),
    logins: () => state.log.filter((e) => e.kind === 'login'),
    /** How many times the JWKS was served since the start (reset() does not clear it). */
    jwksFetches: () => state.jwksServed,
    /** The JWKS requests in the log, each with the kids it was served. */
    jwksRequests: () => state.log.filter((e) => e.kind === 'jwks'),
    /** What the token endpoint issued: { seq, clientId, username, code, idToken, accessToken, header, claims, shape }. */
    issued: () => state.issued.map((e) => ({ ...e })),
    /** The JWKS as served now (without counting a fetch). */
    jwks: () => ({ keys: [...state.keys.values()].filter((k) => k.publishFrom <= state.jwksServed + 1).map((k) => k.jwk) }),
    /** Clears the request log, the issued list and any unused shapes; keys, clients, users stay. */
    reset() { state.log.length = 0; state.issued.length = 0; state.shapes.length = 0; },
    close: () => new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    }),
  };
  provider.stop = provider.close;

  const server = http.createServer((req, res) => {
    onRequest(state, provider, req, res, { basePath, codeTtlS, secret, testApi }).catch((err) => {
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(err?.message ?? err) });
      else res.destroy();
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  provider.port = server.address().port;
  provider.url = `http://${host}:${provider.port}`;
  provider.issuer = `${provider.url}${basePath}`;
  state.issuer = provider.issuer;
  for (const c of clients) provider.addClient(c);
  return provider;
}

async function onRequest(state, provider, req, res, opts) {
  const url = new URL(req.url, 'http://provider.invalid');
  const raw = await readBody(req);
  if (opts.testApi && url.pathname.startsWith('/_test/')) return testApi(state, provider, req, res, url, raw);

  const entry = {
    seq: ++state.seq, t: Date.now(), method: req.method, path: url.pathname, kind: 'other',
    query: Object.fromEntries(url.searchParams), headers: { ...req.headers }, form: null, status: null,
  };
  state.log.push(entry);
  const sub = url.pathname.startsWith(opts.basePath) ? url.pathname.slice(opts.basePath.length) : null;
  const route = `${req.method} ${sub}`;
  try {
    if (route === 'GET /.well-known/openid-configuration') {
      entry.kind = 'discovery';
      return send(entry, res, 200, { 'Content-Type': 'application/json', 'Cache-Control': 'public, max-age=3600' }, JSON.stringify(discovery(state.issuer)));
    }
    if (route === 'GET /jwks') return jwks(state, entry, res);
    if (route === 'GET /authorize') return authorize(state, entry, res, url);
    if (route === 'POST /login') return login(state, entry, req, res, raw, opts);
    if (route === 'POST /token') return token(state, entry, req, res, raw, opts);
    return send(entry, res, 404, { 'Content-Type': 'application/json' }, JSON.stringify({ error: 'not_found' }));
  } catch (err) {
    if (!(err instanceof OAuthFailure)) throw err;
    entry.error = err.error;
    entry.errorDescription = err.message;
    return send(entry, res, err.status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' },
      JSON.stringify({ error: err.error, error_description: err.message }));
  }
}

function discovery(issuer) {
  return {
    issuer,
    authorization_endpoint: `${issuer}/authorize`,
    token_endpoint: `${issuer}/token`,
    jwks_uri: `${issuer}/jwks`,
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: ['authorization_code'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256', 'ES256'],
    scopes_supported: ['openid', 'email', 'profile'],
    token_endpoint_auth_methods_supported: ['client_secret_post', 'client_secret_basic', 'none'],
    claims_supported: ['iss', 'sub', 'aud', 'exp', 'iat', 'auth_time', 'nonce', 'azp', 'at_hash', 'email', 'email_verified'],
    code_challenge_methods_supported: ['S256'],
  };
}

function jwks(state, entry, res) {
  const n = ++state.jwksServed;
  const keys = [...state.keys.values()].filter((k) => k.publishFrom <= n);
  entry.kind = 'jwks';
  entry.fetch = n;
  entry.kids = keys.map((k) => k.kid);
  // Like the big providers, the JWKS says it may be cached: a relying party must still fetch
  // it again when a token names a kid it does not know.
  return send(entry, res, 200, { 'Content-Type': 'application/json', 'Cache-Control': 'public, max-age=3600' },
    JSON.stringify({ keys: keys.map((k) => k.jwk) }));
}

/** GET /authorize: checks the request (OIDC core 3.1.2.1 plus required PKCE, nonce and state). */
function authorize(state, entry, res, url) {
  entry.kind = 'authorize';
  const q = url.searchParams;
  const dup = [...new Set([...q.keys()])].find((k) => q.getAll(k).length > 1);
  const clientId = q.get('client_id');
  const redirectUri = q.get('redirect_uri');
  const client = clientId ? state.clients.get(clientId) : undefined;
  // Without a known client and one of its redirect URIs there is nowhere safe to send an error.
  if (!client) return page(entry, res, 400, 'Unknown client', `client_id ${clientId ?? '(none)'} is not registered here.`, 'invalid_client');
  if (!redirectUri || !client.redirectUris.includes(redirectUri)) {
    return page(entry, res, 400, 'Wrong redirect URI', `redirect_uri ${redirectUri ?? '(none)'} is not registered for ${clientId}.`, 'invalid_redirect_uri');
  }
  const fail = (error, description) => {
    entry.error = error;
    entry.errorDescription = description;
    return redirect(entry, res, redirectUri, { error, error_description: description, state: q.get('state') ?? undefined });
  };
  if (dup) return fail('invalid_request', `${dup} given more than once`);
  if (q.get('response_type') !== 'code') return fail('unsupported_response_type', 'only response_type=code');
  const scopes = (q.get('scope') ?? '').split(' ').filter(Boolean);
  if (!scopes.includes('openid')) return fail('invalid_scope', 'scope must include openid');
  if (!q.get('code_challenge')) return fail('invalid_request', 'code_challenge is required (PKCE)');
  if (q.get('code_challenge_method') !== 'S256') return fail('invalid_request', 'code_challenge_method must be S256');
  if (!PKCE_CHALLENGE.test(q.get('code_challenge'))) return fail('invalid_request', 'code_challenge is not a base64url SHA-256');
  if (!q.get('nonce')) return fail('invalid_request', 'nonce is required');
  if (!q.get('state')) return fail('invalid_request', 'state is required');

  const txn = randomToken(16);
  state.txns.set(txn, {
    clientId, redirectUri, scopes, state: q.get('state'), nonce: q.get('nonce'),
    codeChallenge: q.get('code_challenge'), createdAt: Date.now(),
  });
  entry.txn = txn;
  const body = `<!doctype html>
<html><head><meta charset="utf-8"><title>Sign in - test OpenID provider</title></head>
<body>
<h1>Sign in to continue to ${esc(clientId)}</h1>
<form method="post" action="${esc(`${state.issuer}/login`)}">
<input type="hidden" name="txn" value="${esc(txn)}">
<label>Username <input type="text" name="username" autofocus></label>
<button type="submit" name="action" value="allow">Sign in</button>
<button type="submit" name="action" value="deny">Cancel</button>
</form>
<p>People: ${[...state.users.keys()].map(esc).join(', ')}</p>
</body></html>
`;
  return send(entry, res, 200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' }, body);
}

/** POST /login: the form. Allow → 302 with a code; deny → 302 with error=access_denied. */
function login(state, entry, req, res, raw, opts) {
  entry.kind = 'login';
  const form = Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
  entry.form = form;
  const t = state.txns.get(form.txn);
  if (!t) return page(entry, res, 400, 'Sign-in expired', 'This sign-in is unknown or was already used; start again.', 'unknown_txn');
  state.txns.delete(form.txn);
  if (form.action === 'deny') {
    entry.error = 'access_denied';
    return redirect(entry, res, t.redirectUri, { error: 'access_denied', error_description: 'the person cancelled', state: t.state });
  }
  const user = state.users.get(form.username);
  if (!user) return page(entry, res, 401, 'Unknown person', `There is no ${form.username ?? ''} here.`, 'unknown_user');
  const code = opts.secret('authorization code', randomToken(32));
  state.codes.set(code, { ...t, username: form.username, user: { ...user }, authTime: Math.floor(Date.now() / 1000), expiresAt: Date.now() + opts.codeTtlS * 1000, used: false });
  entry.username = form.username;
  entry.code = code;
  return redirect(entry, res, t.redirectUri, { code, state: t.state });
}

/** POST /token: client authentication, then the authorization_code grant with PKCE. */
function token(state, entry, req, res, raw, opts) {
  entry.kind = 'token';
  const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  const params = new URLSearchParams(raw.toString('utf8'));
  entry.form = Object.fromEntries(params);
  if (type !== 'application/x-www-form-urlencoded') throw new OAuthFailure(400, 'invalid_request', `Content-Type ${type || '(none)'}: expected application/x-www-form-urlencoded`);
  const dup = [...new Set([...params.keys()])].find((k) => params.getAll(k).length > 1);
  if (dup) throw new OAuthFailure(400, 'invalid_request', `${dup} given more than once`);
  const form = entry.form;
  const client = authenticateClient(state, entry, req, form);
  if (form.grant_type !== 'authorization_code') throw new OAuthFailure(400, 'unsupported_grant_type', `grant_type ${form.grant_type ?? '(none)'}`);
  if (!form.code) throw new OAuthFailure(400, 'invalid_request', 'code is required');
  const c = state.codes.get(form.code);
  if (!c) throw new OAuthFailure(400, 'invalid_grant', 'unknown code');
  if (c.used) throw new OAuthFailure(400, 'invalid_grant', 'code already used');
  c.used = true;
  if (Date.now() > c.expiresAt) throw new OAuthFailure(400, 'invalid_grant', 'code expired');
  if (c.clientId !== client.clientId) throw new OAuthFailure(400, 'invalid_grant', 'code was issued to another client');
  if (form.redirect_uri !== c.redirectUri) throw new OAuthFailure(400, 'invalid_grant', `redirect_uri ${form.redirect_uri ?? '(none)'} is not the one of the authorization request`);
  if (!form.code_verifier) { entry.pkce = 'missing'; throw new OAuthFailure(400, 'invalid_grant', 'code_verifier is required (PKCE)'); }
  if (!PKCE_VERIFIER.test(form.code_verifier) || s256(form.code_verifier) !== c.codeChallenge) {
    entry.pkce = 'mismatch';
    throw new OAuthFailure(400, 'invalid_grant', 'code_verifier does not match code_challenge');
  }
  entry.pkce = 'ok';

  const accessToken = opts.secret('provider access token', randomToken(32));
  const shape = state.shapes.shift() ?? {};
  const { idToken, header, claims } = makeIdToken(state, client, c, accessToken, shape);
  opts.secret('ID token', idToken);
  state.issued.push({ seq: entry.seq, clientId: client.clientId, username: c.username, code: form.code, idToken, accessToken, header, claims, shape });
  entry.issuedIdToken = true;
  const scope = c.scopes.join(' ');
  return send(entry, res, 200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', Pragma: 'no-cache' },
    JSON.stringify({ access_token: accessToken, token_type: 'Bearer', expires_in: ACCESS_TOKEN_TTL_S, scope, id_token: idToken }));
}

/**
 * RFC 6749 2.3.1: HTTP Basic or client_secret_post (never both); a public client sends only its
 * client_id. Records entry.auth = { method, clientId, secretOk }. Throws 401 invalid_client.
 */
function authenticateClient(state, entry, req, form) {
  const basic = /^Basic\s+(\S+)$/i.exec(String(req.headers.authorization ?? ''));
  let method = 'none';
  let clientId = form.client_id;
  let given;
  if (basic) {
    const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i < 0) throw new OAuthFailure(401, 'invalid_client', 'malformed Basic credentials');
    method = 'client_secret_basic';
    clientId = decodeURIComponent(decoded.slice(0, i).replace(/\+/g, ' '));
    given = decodeURIComponent(decoded.slice(i + 1).replace(/\+/g, ' '));
    if (form.client_secret !== undefined) throw new OAuthFailure(400, 'invalid_request', 'two client authentication methods');
    if (form.client_id !== undefined && form.client_id !== clientId) throw new OAuthFailure(400, 'invalid_request', 'client_id differs from the Basic credentials');
  } else if (form.client_secret !== undefined) {
    method = 'client_secret_post';
    given = form.client_secret;
  }
  const client = clientId ? state.clients.get(clientId) : undefined;
  entry.auth = { method, clientId: clientId ?? null, secretOk: false };
  if (!client) throw new OAuthFailure(401, 'invalid_client', `unknown client ${clientId ?? '(none)'}`);
  if (client.clientSecret) {
    if (method === 'none') throw new OAuthFailure(401, 'invalid_client', 'client authentication required');
    if (!sameSecret(given, client.clientSecret)) throw new OAuthFailure(401, 'invalid_client', 'wrong client secret');
    entry.auth.secretOk = true;
  } else if (method !== 'none') {
    throw new OAuthFailure(401, 'invalid_client', 'a public client has no secret');
  }
  return client;
}

function sameSecret(a, b) {
  const x = Buffer.from(String(a ?? ''));
  const y = Buffer.from(String(b));
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The ID token for code c, made as the shape says (see nextIdToken). */
function makeIdToken(state, client, c, accessToken, shape) {
  const alg = shape.alg ?? state.alg;
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: state.issuer, sub: c.user.sub, aud: client.clientId, azp: client.clientId,
    exp: now + ID_TOKEN_TTL_S, iat: now, auth_time: c.authTime, nonce: c.nonce,
  };
  if (alg === 'RS256' || alg === 'ES256') claims.at_hash = halfHash(accessToken);
  if (c.scopes.includes('email')) {
    claims.email = c.user.email;
    claims.email_verified = c.user.email_verified;
  }
  if (shape.expired) Object.assign(claims, { iat: now - 7200, auth_time: now - 7200, exp: now - 3600 });
  for (const k of ['nonce', 'aud', 'iss']) if (k in shape) claims[k] = shape[k];
  for (const [k, v] of Object.entries(shape.claims ?? {})) {
    if (v === null) delete claims[k];
    else claims[k] = v;
  }
  for (const [k, v] of Object.entries(claims)) if (v === null || v === undefined) delete claims[k];

  let key;
  let header = {};
  if (alg === 'HS256') {
    header = { kid: state.current.RS256.kid };
  } else if (alg === 'none') {
    header = {};
  } else if (shape.forge) {
    key = newSigningKey(alg, state.current[alg].kid);
  } else if (shape.unknownKid) {
    const kid = `${alg === 'ES256' ? 'ec' : 'rsa'}-${shape.unknownKid}-${randomToken(6)}`;
    key = newSigningKey(alg, kid);
    const served = state.jwksServed;
    key.publishFrom = shape.unknownKid === 'late' ? (served === 0 ? 2 : served + 1) : Infinity;
    state.keys.set(kid, key);
  } else {
    key = state.current[alg];
  }
  header = { ...header, ...(shape.header ?? {}) };
  const idToken = signJws(claims, { key, header: { alg, ...header }, hmacSecret: client.clientSecret ?? 'no-secret' });
  const parts = idToken.split('.');
  return { idToken, header: JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')), claims };
}

/** The /_test/ API: the handle's controls over HTTP, for a provider in another process. */
function testApi(state, provider, req, res, url, raw) {
  const body = raw.length ? JSON.parse(raw.toString('utf8')) : {};
  const route = `${req.method} ${url.pathname}`;
  if (route === 'GET /_test/requests') return sendJson(res, 200, provider.requests());
  if (route === 'GET /_test/issued') return sendJson(res, 200, provider.issued());
  if (route === 'GET /_test/jwks-fetches') return sendJson(res, 200, { count: provider.jwksFetches() });
  if (route === 'POST /_test/next-id-token') { provider.nextIdToken(body); return sendJson(res, 200, { queued: state.shapes.length }); }
  if (route === 'POST /_test/alg') { provider.setAlg(body.alg); return sendJson(res, 200, { alg: state.alg }); }
  if (route === 'POST /_test/clients') {
    provider.addClient({ clientId: body.client_id, clientSecret: body.client_secret ?? null, redirectUris: body.redirect_uris ?? [] });
    return sendJson(res, 200, { ok: true });
  }
  if (route === 'POST /_test/users') {
    const { username, ...claims } = body;
    provider.addUser(username, claims);
    return sendJson(res, 200, { ok: true });
  }
  if (route === 'POST /_test/reset') { provider.reset(); return sendJson(res, 200, { ok: true }); }
  return sendJson(res, 404, { error: 'no such control route' });
}

function redirect(entry, res, target, params) {
  const u = new URL(target);
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) u.searchParams.set(k, v);
  entry.location = u.href;
  return send(entry, res, 302, { Location: u.href, 'Cache-Control': 'no-store' }, '');
}

function page(entry, res, status, title, text, error) {
  entry.error = error;
  entry.errorDescription = text;
  const body = `<!doctype html>\n<html><head><meta charset="utf-8"><title>${esc(title)}</title></head><body><h1>${esc(title)}</h1><p>${esc(text)}</p></body></html>\n`;
  return send(entry, res, status, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' }, body);
}

function send(entry, res, status, headers, body) {
  entry.status = status;
  res.writeHead(status, { ...headers, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function sendJson(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let n = 0;
    req.on('data', (c) => {
      n += c.length;
      if (n > MAX_BODY_BYTES) { req.destroy(); reject(new Error('request body too large')); return; }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function esc(s) {
  return String(s).replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]);
}
