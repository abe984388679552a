// For the sign-in tests (docs/oauth.md): the test OpenID provider (tests/oidc-provider/) started
// for a TestEnv, a gateway with an "oauth" block on plain HTTP loopback (its port chosen before
// the config is written, since public_url names it), client registration, PKCE pairs, a headless
// browser that walks authorize → provider login → callback, the token endpoint, a parser for
// WWW-Authenticate, and an OAuthClientProvider for the official SDK client.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PEOPLE, startProvider } from '../../oidc-provider/provider.mjs';
import { OMNI } from './fake.mjs';
import { merge } from './gateway.mjs';
import { request } from './http.mjs';
import { closedPort } from './util.mjs';

export { PEOPLE } from '../../oidc-provider/provider.mjs';
export { decodeJws, verifyJws, s256 } from '../../oidc-provider/jose.mjs';

/** A non-loopback redirect URI listed in oauth.redirect_uris by startOAuthGateway. */
export const LISTED_REDIRECT = 'cursor://anysphere.cursor-mcp/oauth/callback';

/**
 * Members who sign in at the provider (PEOPLE): alice also keeps a static token; bob and carol
 * sign in only (carol on the org key, her sign_in spelled in another case); dora's provider
 * says her email is not verified; eve (PEOPLE.eve) has no member entry at all.
 */
export const OAUTH_TEAM = Object.freeze([
  { name: 'alice', pat: OMNI.users.alice.pat, userId: OMNI.users.alice.id, extra: { sign_in: PEOPLE.alice.email } },
  { name: 'bob', pat: OMNI.users.bob.pat, userId: OMNI.users.bob.id, extra: { sign_in: PEOPLE.bob.email, token_sha256: null } },
  { name: 'carol', userId: OMNI.users.carol.id, extra: { sign_in: 'Carol@Team.Example', token_sha256: null } },
  { name: 'dora', userId: OMNI.users.admin.id, extra: { sign_in: PEOPLE.dora.email, token_sha256: null } },
]);

const randomText = (bytes = 16) => randomBytes(bytes).toString('base64url');

/**
 * Starts the test OpenID provider for env (a TestEnv): every code, token and client secret it
 * makes becomes one of env's secrets (so no gateway log may hold them), and env.cleanup() stops
 * it. opts go to startProvider (users, clients, basePath, alg, codeTtlS).
 */
export async function startOidcProvider(env, opts = {}) {
  const provider = await startProvider({ ...opts, onSecret: (name, value) => env.secret(name, value) });
  env.fakes.push(provider); // cleanup() stops everything in env.fakes
  return provider;
}

/**
 * Starts a gateway whose "oauth" block signs in at `provider`, on plain HTTP at
 * 127.0.0.1:<port>, public_url http://127.0.0.1:<port>. The port is a free one picked first (the
 * config must name it); a start that loses the port to another process is retried.
 * The provider learns the gateway as its client (clientId, with redirect URI
 * public_url/oauth/callback). clientSecret: a string (default: random), or null for a public
 * client; secretVia 'env' (client_secret_env OIDC_CLIENT_SECRET) or 'file' (client_secret_file).
 * oauth is merged over the default oauth block, config over the whole (null deletes a key).
 * publicUrl: another public_url than the gateway's own address (replicas behind one address,
 * see startOAuthReplicas); the gateway still listens on its own port.
 * The handle is TestEnv.startGateway's plus publicUrl, baseUrl (where the helpers here send the
 * gateway's requests: its own http://127.0.0.1:<port>, equal to publicUrl unless publicUrl was
 * given), resource (public_url + mcp_path), clientId, clientSecret, secret(name, value) (adds to
 * env's secrets).
 */
export async function startOAuthGateway(env, {
  provider, upstreamUrl, members = OAUTH_TEAM, oauth = {}, config = {}, clientId = 'omni-mcp-gateway',
  clientSecret = `oidc-secret-${randomText(24)}`, secretVia = 'env', name, publicUrl: sharedPublicUrl,
} = {}) {
  if (clientSecret) env.secret(`OIDC client secret of ${clientId}`, clientSecret);
  let secretFile;
  if (clientSecret && secretVia === 'file') {
    secretFile = join(env.dir, `oidc-secret-${randomText(6)}`);
    writeFileSync(secretFile, `${clientSecret}\n`, { mode: 0o600 });
  }
  for (let attempt = 1; ; attempt++) {
    const port = await closedPort();
    const ownUrl = `http://127.0.0.1:${port}`;
    const publicUrl = sharedPublicUrl ?? ownUrl;
    provider.addClient({ clientId, clientSecret, redirectUris: [`${publicUrl}/oauth/callback`] });
    const providerBlock = { issuer: provider.issuer, client_id: clientId };
    if (clientSecret && secretVia === 'env') providerBlock.client_secret_env = 'OIDC_CLIENT_SECRET';
    if (clientSecret && secretVia === 'file') providerBlock.client_secret_file = secretFile;
    const base = {
      listen: `127.0.0.1:${port}`,
      tls: null,
      plain_http: true,
      // Each test counts what reaches the fake Omni: a cache would answer some calls itself.
      cache: { enabled: false },
      oauth: { public_url: publicUrl, redirect_uris: [LISTED_REDIRECT], provider: providerBlock },
    };
    let gw;
    try {
      gw = await env.startGateway({
        upstreamUrl, members, name, config: merge(merge(base, { oauth }), config),
        env: clientSecret && secretVia === 'env' ? { OIDC_CLIENT_SECRET: clientSecret } : {},
      });
    } catch (err) {
      if (attempt < 3 && /EADDRINUSE|address already in use/i.test(err.message)) continue;
      throw err;
    }
    let n = 0;
    gw.publicUrl = publicUrl;
    gw.baseUrl = ownUrl;
    gw.resource = `${publicUrl}${gw.mcpPath}`;
    gw.prmUrl = `${publicUrl}/.well-known/oauth-protected-resource${gw.mcpPath}`;
    gw.clientId = clientId;
    gw.clientSecret = clientSecret;
    gw.secret = (what, value) => (value ? env.secret(`${what} #${++n}`, value) : value);
    return gw;
  }
}

/**
 * Replicas of one deployment on one Redis: `count` gateways (named replica-a, replica-b, …,
 * plus `label`) with a `redis` block (redisUrl, timeout_ms redisTimeoutMs) and the same
 * oauth.public_url (publicUrl: by default an http://<label>.replicas.test origin that nothing
 * listens on, as a load balancer's address would be), so the same issuer and resource
 * (public_url + mcp_path), the same provider client (clientId, one clientSecret) and the same
 * members. Each listens on its own port: the test sends every request to the replica it
 * chooses (the helpers here use gw.baseUrl; browse's callbackTo picks the replica that gets
 * the provider's redirect to public_url/oauth/callback). Other options go to startOAuthGateway.
 * Resolves, once each replica has logged `redis: connected`, to the handles in order.
 */
export async function startOAuthReplicas(env, {
  redisUrl, redisTimeoutMs = 1000, count = 2, label = '', publicUrl, clientId, config = {},
  clientSecret = `oidc-secret-${randomText(24)}`, ...opts
} = {}) {
  const host = `${label || 'oauth'}.replicas.test`.replace(/[^A-Za-z0-9.-]/g, '-');
  const shared = publicUrl ?? `http://${host}`;
  const replicas = [];
  for (let i = 0; i < count; i++) {
    const name = `replica-${String.fromCharCode(97 + i)}${label ? `-${label}` : ''}`;
    replicas.push(await startOAuthGateway(env, {
      ...opts, name, clientSecret, publicUrl: shared, clientId: clientId ?? `omni-mcp-gateway-${host}`,
      config: merge({ redis: { url: redisUrl, timeout_ms: redisTimeoutMs } }, config),
    }));
  }
  for (const gw of replicas) await gw.waitForLog(/redis: connected/, { timeoutMs: 15000 });
  return replicas;
}

/** Where the test sends gw's requests (its own address; public_url may be nobody's). */
const baseOf = (gw) => gw.baseUrl ?? gw.publicUrl;

/** A PKCE pair (RFC 7636): a 43-character verifier and its S256 challenge. */
export function pkcePair() {
  const verifier = randomText(32);
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

/** A loopback redirect URI (RFC 8252) on a port nothing listens on: it is parsed, never fetched. */
export async function loopbackRedirect(path = '/callback') {
  return `http://127.0.0.1:${await closedPort()}${path}`;
}

function parseJson(text) {
  try { return JSON.parse(text); } catch { return null; }
}

/** POST /oauth/register with `metadata` (JSON). Resolves to { status, headers, body, json }. */
export async function registerClient(gw, metadata) {
  const res = await request(`${baseOf(gw)}/oauth/register`, {
    method: 'POST', ca: gw.ca,
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: typeof metadata === 'string' ? metadata : JSON.stringify(metadata),
  });
  return { ...res, json: parseJson(res.body) };
}

/** The client metadata an MCP client registers with (public client, code + refresh). */
export function clientMetadata(redirectUris, extra = {}) {
  return {
    client_name: 'omni-gw-itest', redirect_uris: redirectUris, grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'], token_endpoint_auth_method: 'none', ...extra,
  };
}

/** Registers a client (a fresh loopback redirect URI unless given); asserts 201; resolves to the answer. */
export async function register(gw, { redirectUris, extra } = {}) {
  const uris = redirectUris ?? [await loopbackRedirect()];
  const res = await registerClient(gw, clientMetadata(uris, extra));
  assert.equal(res.status, 201, `POST /oauth/register: ${res.status} ${res.body}`);
  assert.ok(res.json?.client_id, `registration answer without client_id: ${res.body}`);
  return res.json;
}

/**
 * The gateway's /oauth/authorize URL. Every parameter may be overridden; null leaves it out.
 * Defaults: response_type code, S256, scope mcp, resource gw.resource.
 */
export function authorizeUrl(gw, { clientId, redirectUri, challenge, state, resource = gw.resource, scope = 'mcp', method = 'S256', responseType = 'code', extra = {} }) {
  const params = {
    response_type: responseType, client_id: clientId, redirect_uri: redirectUri, code_challenge: challenge,
    code_challenge_method: method, state, resource, scope, ...extra,
  };
  const u = new URL(`${baseOf(gw)}/oauth/authorize`);
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) u.searchParams.set(k, v);
  return u.href;
}

function storeCookies(jar, url, setCookie) {
  for (const line of [].concat(setCookie ?? [])) {
    const [pair, ...attrs] = line.split(';');
    const i = pair.indexOf('=');
    if (i <= 0) continue;
    const name = pair.slice(0, i).trim();
    const value = pair.slice(i + 1).trim();
    const cookies = jar.get(url.hostname) ?? new Map();
    const gone = value === '' || attrs.some((a) => /^\s*max-age\s*=\s*(0|-)/i.test(a));
    if (gone) cookies.delete(name);
    else cookies.set(name, value);
    jar.set(url.hostname, cookies);
  }
}

function cookieHeader(jar, url) {
  const cookies = jar.get(url.hostname);
  return cookies && cookies.size ? [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') : null;
}

const unescapeHtml = (s) => s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

/** The first <form> of an HTML page: its action (absolute) and its hidden fields. */
function parseForm(html, base) {
  const form = /<form\b[^>]*>/i.exec(html);
  if (!form) return null;
  const action = /\baction="([^"]*)"/i.exec(form[0]);
  const fields = {};
  for (const m of html.matchAll(/<input\b[^>]*>/gi)) {
    if (!/\btype="hidden"/i.test(m[0])) continue;
    const name = /\bname="([^"]*)"/i.exec(m[0]);
    const value = /\bvalue="([^"]*)"/i.exec(m[0]);
    if (name) fields[unescapeHtml(name[1])] = value ? unescapeHtml(value[1]) : '';
  }
  return { action: new URL(action ? unescapeHtml(action[1]) : '', base), fields };
}

/**
 * A headless browser for one sign-in. Starts at url (the gateway's /oauth/authorize), follows
 * redirects within the gateway and the provider (keeping cookies per host, as a browser does),
 * submits the provider's login form once as `user` (action 'allow' or 'deny'), and stops at the
 * first redirect that leaves both (the client's redirect URI: parsed, never fetched) or at a
 * response that is no redirect (a page). The gateway is gw's public_url and gw.baseUrl; the
 * provider's redirect back to the gateway is sent to callbackTo's baseUrl (another replica
 * with the same public_url) when given, else to gw.baseUrl. Resolves to:
 *   steps        [{ method, url, status, location }] (url: where the request was sent)
 *   page         the last response fetched { status, headers, body, url }
 *   redirect     URL of the client's redirect (or null), with params (object), code, state,
 *                iss, error, errorDescription read from it
 *   toProvider   the gateway's redirect to the provider (URL, or null)
 *   callback     the provider's redirect to the gateway's /oauth/callback (URL, or null), as
 *                the provider sent it
 *   describe()   the steps and the last page, for assertion messages
 */
export async function browse(url, { gw, provider, user = 'alice', action = 'allow', jar = new Map(), maxSteps = 12, callbackTo } = {}) {
  const publicOrigin = new URL(gw.publicUrl).origin;
  const gwOrigins = new Set([publicOrigin, new URL(baseOf(gw)).origin]);
  if (callbackTo) gwOrigins.add(new URL(baseOf(callbackTo)).origin);
  const isGateway = (u) => gwOrigins.has(u.origin);
  // The replica that receives a request the provider sent to the gateway.
  const callbackBase = baseOf(callbackTo ?? gw);
  const providerOrigin = new URL(provider.url).origin;
  const steps = [];
  let current = new URL(url);
  let method = 'GET';
  let body;
  let submitted = false;
  let toProvider = null;
  let callback = null;
  for (let i = 0; i < maxSteps; i++) {
    const headers = { Accept: 'text/html,application/xhtml+xml,*/*;q=0.8', 'User-Agent': 'omni-gw-itest-browser/1' };
    const cookie = cookieHeader(jar, current);
    if (cookie) headers.Cookie = cookie;
    if (body !== undefined) {
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
      headers.Origin = current.origin;
    }
    const res = await request(current.href, { method, headers, body, ca: gw.ca });
    storeCookies(jar, current, res.headers['set-cookie']);
    const location = res.headers.location ?? null;
    steps.push({ method, url: current.href, status: res.status, location });
    const page = { status: res.status, headers: res.headers, body: res.body, url: current.href };
    if (res.status >= 300 && res.status < 400 && location) {
      let next = new URL(location, current);
      if (!isGateway(next) && next.origin !== providerOrigin) return ended(gw, steps, page, next, toProvider, callback);
      if (isGateway(current) && next.origin === providerOrigin && !toProvider) toProvider = next;
      if (current.origin === providerOrigin && isGateway(next)) {
        callback = next;
        next = new URL(`${next.pathname}${next.search}`, callbackBase);
      } else if (next.origin === publicOrigin) {
        next = new URL(`${next.pathname}${next.search}`, baseOf(gw));
      }
      current = next;
      method = 'GET';
      body = undefined;
      continue;
    }
    const form = current.origin === providerOrigin && res.status === 200 && !submitted ? parseForm(res.body, current) : null;
    if (form) {
      submitted = true;
      current = form.action;
      method = 'POST';
      body = new URLSearchParams({ ...form.fields, username: user, action }).toString();
      continue;
    }
    return ended(gw, steps, page, null, toProvider, callback);
  }
  throw new Error(`the sign-in did not end within ${maxSteps} steps:\n${steps.map((s) => JSON.stringify(s)).join('\n')}`);
}

function ended(gw, steps, page, redirect, toProvider, callback) {
  const params = redirect ? Object.fromEntries(redirect.searchParams) : {};
  if (params.code) gw.secret?.('gateway authorization code', params.code);
  return {
    steps, page, redirect, params, toProvider, callback,
    code: params.code ?? null,
    state: params.state ?? null,
    iss: params.iss ?? null,
    error: params.error ?? null,
    errorDescription: params.error_description ?? null,
    describe() {
      const excerpt = page.body.length > 600 ? `${page.body.slice(0, 600)}…` : page.body;
      return `${steps.map((s) => `${s.method} ${s.url} → ${s.status}${s.location ? ` ${s.location}` : ''}`).join('\n')}\n--- last page (${page.status}) ---\n${excerpt}`;
    },
  };
}

/** POST /oauth/token with the form fields (null/undefined left out); resolves to { status, headers, body, json }. */
export async function tokenRequest(gw, fields, { headers = {} } = {}) {
  const form = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) if (v !== null && v !== undefined) form.set(k, v);
  const res = await request(`${baseOf(gw)}/oauth/token`, {
    method: 'POST', ca: gw.ca, body: form.toString(),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json', ...headers },
  });
  const json = parseJson(res.body);
  gw.secret?.('gateway access token', json?.access_token);
  gw.secret?.('gateway refresh token', json?.refresh_token);
  return { ...res, json };
}

/** grant_type=authorization_code. resource defaults to gw.resource (null leaves it out). */
export function exchangeCode(gw, { code, verifier, clientId, redirectUri, resource = gw.resource, extra = {} }) {
  return tokenRequest(gw, { grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: clientId, code_verifier: verifier, resource, ...extra });
}

/** grant_type=refresh_token. resource defaults to gw.resource (null leaves it out). */
export function refreshTokens(gw, { refreshToken, clientId, resource = gw.resource, extra = {} }) {
  return tokenRequest(gw, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId, resource, ...extra });
}

/**
 * The whole sign-in of `user` as an MCP client does it: register (unless client is given), a
 * PKCE pair and a state, the browser, then the code exchange (unless exchange is false).
 * Replicas: the provider's redirect goes to callbackTo (browse), the code is exchanged on
 * exchangeOn (default gw). Asserts each step worked. Resolves to
 * { client, pkce, state, browser, tokens, tokenResponse }.
 */
export async function signIn(gw, provider, user, { client, exchange = true, scope, callbackTo, exchangeOn = gw } = {}) {
  const c = client ?? await register(gw);
  const pkce = pkcePair();
  const state = randomText(12);
  const redirectUri = c.redirect_uris[0];
  const b = await browse(authorizeUrl(gw, { clientId: c.client_id, redirectUri, challenge: pkce.challenge, state, ...(scope ? { scope } : {}) }), { gw, provider, user, callbackTo });
  assert.ok(b.code, `sign-in of ${user} gave the client no code:\n${b.describe()}`);
  assert.equal(b.state, state, 'state comes back unchanged');
  if (!exchange) return { client: c, pkce, state, browser: b };
  const tokenResponse = await exchangeCode(exchangeOn, { code: b.code, verifier: pkce.verifier, clientId: c.client_id, redirectUri });
  assert.equal(tokenResponse.status, 200, `token exchange for ${user}: ${tokenResponse.status} ${tokenResponse.body}`);
  return { client: c, pkce, state, browser: b, tokens: tokenResponse.json, tokenResponse };
}

/**
 * Parses one challenge of a WWW-Authenticate header: { scheme, params } (params by lowercased
 * name, quoted strings unescaped). Throws on a repeated parameter.
 */
export function parseChallenge(header) {
  const text = String(header ?? '');
  const m = /^\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)\s*(.*)$/s.exec(text);
  if (!m) return { scheme: null, params: {} };
  const params = {};
  for (const p of m[2].matchAll(/([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))/g)) {
    const key = p[1].toLowerCase();
    if (key in params) throw new Error(`${key} twice in WWW-Authenticate: ${text}`);
    params[key] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3];
  }
  return { scheme: m[1], params };
}

/** Asserts an OAuth error answer (RFC 6749 5.2 / RFC 7591 3.2.2): status, JSON, error; no token in it. */
export function assertOAuthError(res, { status, error }, context = '') {
  const where = context ? `${context}: ` : '';
  assert.equal(res.status, status, `${where}expected HTTP ${status}, got ${res.status} ${res.body}`);
  assert.match(String(res.headers['content-type'] ?? ''), /application\/json/, `${where}Content-Type of an OAuth error`);
  const json = parseJson(res.body);
  assert.ok(json, `${where}body is not JSON: ${res.body}`);
  assert.equal(json.error, error, `${where}error in ${res.body}`);
  assert.equal(json.access_token, undefined, `${where}an error answer carries an access token`);
  assert.equal(json.refresh_token, undefined, `${where}an error answer carries a refresh token`);
  return json;
}

/** Asserts that a sign-in ended on a gateway page with `status` and gave the client no code. */
export function assertRefusedPage(b, status, context = '') {
  const where = context ? `${context}: ` : '';
  assert.equal(b.redirect, null, `${where}the browser was sent on to ${b.redirect?.href}\n${b.describe()}`);
  assert.equal(b.code, null, `${where}a code reached the client`);
  assert.equal(b.page.status, status, `${where}expected a ${status} page\n${b.describe()}`);
  assert.equal(b.page.headers.location, undefined, `${where}the refusal page redirects`);
  assert.match(String(b.page.headers['content-type'] ?? ''), /text\/html/, `${where}refusal page Content-Type`);
}

/**
 * An OAuthClientProvider (SDK client/auth.js) for the official SDK client: keeps client
 * information, tokens and the code verifier in memory exactly as the SDK hands them over, and
 * answers redirectToAuthorization(url) by driving the headless browser (browseAs(url) → the
 * browse() result), keeping the code it brought back in `code`.
 */
export class HeadlessOAuthClientProvider {
  constructor({ redirectUrl, browseAs, clientName = 'omni-gw-itest-sdk' }) {
    this._redirectUrl = redirectUrl;
    this._browseAs = browseAs;
    this._clientName = clientName;
    this._client = undefined;
    this._tokens = undefined;
    this._verifier = undefined;
    this.states = [];
    this.authorizationUrls = [];
    this.visits = [];
    this.savedTokens = [];
    this.invalidated = [];
    this.code = null;
  }

  get redirectUrl() { return this._redirectUrl; }

  get clientMetadata() {
    return {
      client_name: this._clientName, redirect_uris: [this._redirectUrl], grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'], token_endpoint_auth_method: 'none',
    };
  }

  state() {
    const s = randomText(12);
    this.states.push(s);
    return s;
  }

  clientInformation() { return this._client; }
  saveClientInformation(info) { this._client = info; }
  tokens() { return this._tokens; }
  saveTokens(tokens) { this._tokens = tokens; this.savedTokens.push(tokens); }
  saveCodeVerifier(verifier) { this._verifier = verifier; }

  codeVerifier() {
    if (!this._verifier) throw new Error('no code verifier saved');
    return this._verifier;
  }

  async redirectToAuthorization(url) {
    this.authorizationUrls.push(new URL(url));
    const visit = await this._browseAs(new URL(url).href);
    this.visits.push(visit);
    this.code = visit.code;
  }

  invalidateCredentials(scope) {
    this.invalidated.push(scope);
    if (scope === 'all' || scope === 'client') this._client = undefined;
    if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
    if (scope === 'all' || scope === 'verifier') this._verifier = undefined;
  }
}

/** The Omni credential a member's requests must carry upstream (OAUTH_TEAM / TEAM). */
export function omniIdentity(member) {
  if (member === 'carol') return { authorization: `Bearer ${OMNI.orgKey}`, userId: OMNI.users.carol.id };
  return { authorization: `Bearer ${OMNI.users[member].pat}`, userId: OMNI.users[member].id };
}

/**
 * Asserts that the fake received requests, each with exactly `member`'s Omni credential and
 * user id, and that none of `hidden` (the gateway's own tokens) reached it in any header.
 */
export function assertUpstreamAs(reqs, member, hidden = []) {
  const { authorization, userId } = omniIdentity(member);
  assert.ok(reqs.length > 0, `upstream received nothing for ${member}`);
  for (const r of reqs) {
    const where = `upstream ${r.method} #${r.seq} for ${member}`;
    assert.equal(r.headers.authorization, authorization, `${where}: Authorization`);
    assert.equal(r.headers['x-mcp-user-id'], userId, `${where}: X-MCP-User-ID`);
    for (const t of hidden) assert.ok(!JSON.stringify(r.headers).includes(t), `${where}: a gateway token reached Omni`);
  }
}
