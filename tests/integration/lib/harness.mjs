// The integration harness: one TestEnv per test file owns a temp dir, test-time certificates,
// the fake Omni processes and the gateways it started, and cleans all of them up in after().
// Re-exports the helpers a test file needs, so test files import from here only.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { makeCerts } from './certs.mjs';
import { OMNI, startFake } from './fake.mjs';
import { baseConfig, buildMembers, gatewayEnv, launchGateway } from './gateway.mjs';
import { request } from './http.mjs';
import { findSecrets } from './util.mjs';

export { OMNI } from './fake.mjs';
export { runGatewayCli, merge } from './gateway.mjs';
export { request, openStream, curl, rawConnect, tlsFetch, parseSse } from './http.mjs';
export { waitFor, closedPort, newMemberToken, sha256Hex, findSecrets } from './util.mjs';
export { gatewayBin, REPO_ROOT } from './paths.mjs';

/** alice and bob reach Omni with their own PATs, carol with the org key and her user id. */
export const TEAM = Object.freeze([
  { name: 'alice', pat: OMNI.users.alice.pat, userId: OMNI.users.alice.id },
  { name: 'bob', pat: OMNI.users.bob.pat, userId: OMNI.users.bob.id },
  { name: 'carol', userId: OMNI.users.carol.id },
]);

export const MCP_ACCEPT = 'application/json, text/event-stream';

export class TestEnv {
  constructor(label) {
    this.label = label;
    this.dirPath = null;
    this.certsCache = null;
    this.fakes = [];
    this.gateways = [];
    // Everything that must never show up in a gateway log (name → value).
    this.secrets = { 'org key': OMNI.orgKey };
    for (const [n, u] of Object.entries(OMNI.users)) if (u.pat) this.secrets[`PAT of ${n}`] = u.pat;
  }

  get dir() {
    if (!this.dirPath) this.dirPath = mkdtempSync(join(tmpdir(), `omni-gw-${this.label}-`));
    return this.dirPath;
  }

  /** The test CA and server certificate (made on first use). */
  get certs() {
    if (!this.certsCache) this.certsCache = makeCerts(this.dir);
    return this.certsCache;
  }

  /** Adds a value that no gateway log may contain. */
  secret(name, value) {
    this.secrets[name] = value;
    return value;
  }

  /** Starts a fake Omni; { tls: true } makes it speak HTTPS with the test certificate. */
  async startFake({ tls = false, port = 0, name = `fake-omni-${this.fakes.length + 1}` } = {}) {
    const fake = await startFake({ certs: tls ? this.certs : undefined, port, name });
    this.fakes.push(fake);
    return fake;
  }

  /**
   * Starts a gateway in front of upstreamUrl for `members` (specs as in buildMembers), with
   * `config` deep-merged over the base config. orgKey null leaves OMNI_ORG_KEY unset; env adds
   * environment variables. Resolves to the gateway handle, plus tokens (member → plain token),
   * ca (PEM), caFile, and request(opts) for one raw request.
   */
  async startGateway({ upstreamUrl, members = TEAM, config, orgKey = OMNI.orgKey, env = {}, name } = {}) {
    const built = buildMembers(members);
    for (const [m, t] of Object.entries(built.tokens)) this.secret(`member token of ${m}`, t);
    for (const m of members) if (m.pat) this.secret(`PAT of member ${m.name}`, m.pat);
    const cfg = baseConfig({ certs: this.certs, upstreamUrl, users: built.users, overrides: config });
    const gwEnv = gatewayEnv({ ...built.env, ...(orgKey ? { OMNI_ORG_KEY: orgKey } : {}), ...env });
    const gwName = name ?? `gateway-${this.gateways.length + 1}`;
    const gw = await launchGateway({ dir: this.dir, name: gwName, config: cfg, env: gwEnv });
    this.gateways.push(gw);
    gw.config = cfg;
    gw.tokens = built.tokens;
    gw.ca = this.certs.ca;
    gw.caFile = this.certs.caFile;
    gw.mcpPath = new URL(gw.url).pathname;
    /** Authorization header for a member of this gateway. */
    gw.auth = (member) => ({ Authorization: `Bearer ${gw.tokens[member]}` });
    /**
     * One request to the gateway on a fresh connection. body: object (sent as JSON) or string.
     * member adds that member's Authorization; POSTs get MCP's Accept and Content-Type.
     */
    gw.request = ({ method = 'POST', path = gw.mcpPath, member, headers = {}, body, chunked, timeoutMs } = {}) => {
      // A list of [name, value] pairs, so that a test may repeat a header or choose its case;
      // a default is left out when the test gives that header itself.
      const given = Array.isArray(headers) ? headers : Object.entries(headers);
      const h = [];
      const givenNames = new Set(given.map(([k]) => k.toLowerCase()));
      const dflt = (k, v) => { if (!givenNames.has(k.toLowerCase())) h.push([k, v]); };
      if (method === 'POST') { dflt('Accept', MCP_ACCEPT); dflt('Content-Type', 'application/json'); }
      if (member) dflt('Authorization', gw.auth(member).Authorization);
      h.push(...given);
      const b = body === undefined || typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
      return request(`${gw.origin}${path}`, { method, headers: h, body: b, chunked, ca: gw.ca, timeoutMs });
    };
    return gw;
  }

  /** The names of secrets that occur in this gateway's stderr. */
  leakedSecrets(gw) {
    return findSecrets(gw.stderr(), this.secrets);
  }

  /**
   * Stops every process and removes the temp dir (kept when KEEP_TMP=1). Throws if a gateway
   * died on its own or logged a secret: the suite must not pass in either case.
   */
  async cleanup() {
    const problems = [];
    for (const gw of this.gateways) {
      if (gw.proc.diedUnexpectedly()) {
        const { code, signal } = gw.proc.exitInfo();
        problems.push(`gateway ${gw.name} exited by itself during the tests (code ${code}, signal ${signal})\n--- stderr ---\n${gw.stderr()}`);
      }
    }
    await Promise.all([...this.gateways, ...this.fakes].map((p) => p.stop().catch(() => {})));
    for (const gw of this.gateways) {
      const leaked = this.leakedSecrets(gw);
      if (leaked.length) problems.push(`gateway ${gw.name} logged secrets: ${leaked.join(', ')}`);
      // A sanitizer build (make SANITIZE=address,undefined) reports here, at the latest at exit.
      const report = gw.stderr().match(/^.*(ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:).*$/m);
      if (report) problems.push(`gateway ${gw.name}: sanitizer report: ${report[0]}\n--- stderr ---\n${gw.stderr()}`);
    }
    if (this.dirPath && process.env.KEEP_TMP !== '1') rmSync(this.dirPath, { recursive: true, force: true });
    else if (this.dirPath) console.log(`# kept ${this.dirPath}`);
    if (problems.length) throw new Error(problems.join('\n\n'));
  }
}

/**
 * Asserts that res is a gateway-made JSON-RPC error: status, JSON body with jsonrpc "2.0",
 * error.code, a non-empty message, and the id (when `id` is given: exactly that value;
 * `ids` lists the values allowed). Returns the parsed body.
 */
export function assertRpcError(res, { status, code, id, ids }, context = '') {
  const where = context ? `${context}: ` : '';
  assert.equal(res.status, status, `${where}expected HTTP ${status}, got ${res.status} with body ${res.body}`);
  assert.match(String(res.headers['content-type'] ?? ''), /application\/json/, `${where}content-type of a gateway error`);
  let body;
  try { body = JSON.parse(res.body); } catch { assert.fail(`${where}body is not JSON: ${res.body}`); }
  assert.equal(body.jsonrpc, '2.0', `${where}jsonrpc in ${res.body}`);
  assert.equal(body.error?.code, code, `${where}error.code in ${res.body}`);
  assert.equal(typeof body.error.message, 'string', `${where}error.message in ${res.body}`);
  assert.ok(body.error.message.length > 0, `${where}empty error.message`);
  assert.ok('id' in body, `${where}no id in ${res.body}`);
  if (id !== undefined) assert.equal(body.id, id, `${where}id in ${res.body}`);
  if (ids !== undefined) assert.ok(ids.includes(body.id), `${where}id ${JSON.stringify(body.id)} not one of ${JSON.stringify(ids)}`);
  return body;
}

/** Asserts that the fake received no request on its MCP endpoint (since it was last cleared). */
export async function assertNothingUpstream(fake, context = '') {
  const reqs = await fake.mcpRequests();
  assert.deepEqual(reqs.map((r) => `${r.method} ${r.path}`), [], `${context ? `${context}: ` : ''}upstream received requests`);
}
