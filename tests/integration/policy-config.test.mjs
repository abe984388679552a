// Policy as part of the config: a reload (SIGHUP) that passes validation applies to the next
// request; one that fails keeps the old policy, logs every problem, and the gateway keeps
// serving. `omni-mcp-gateway check` reports policy mistakes with the config path of each.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OMNI, TestEnv, merge, runGatewayCli } from './lib/harness.mjs';
import { baseConfig, buildMembers } from './lib/gateway.mjs';
import { getDataMessage, rawSession, responseMessage, toolJson } from './lib/mcp.mjs';

const SALES = '6f1c2a8e-5b3d-4c71-9a0e-1d2b3c4d5e01';
const FINANCE = '6f1c2a8e-5b3d-4c71-9a0e-1d2b3c4d5e02';
const INTERNS = { tools: { allow: ['pick*', 'searchOmniDocs'] } };
const asAlice = (name, more = {}) => ({ name, pat: OMNI.users.alice.pat, userId: OMNI.users.alice.id, ...more });

const env = new TestEnv('policy-config');
after(() => env.cleanup());

describe('reload (SIGHUP)', () => {
  let fake;
  let gw;

  before(async () => {
    fake = await env.startFake();
    gw = await env.startGateway({
      upstreamUrl: fake.mcpUrl,
      members: [asAlice('rex', { groups: ['interns'] })],
      config: { groups: { interns: INTERNS }, cache: { enabled: false } },
    });
  });
  beforeEach(() => fake.reset());

  /** Writes cfg over the gateway's config file, sends SIGHUP, returns the stderr mark from before. */
  function reloadWith(cfg) {
    writeFileSync(gw.configFile, JSON.stringify(cfg, null, 2));
    const mark = gw.stderr().length;
    gw.signal('SIGHUP');
    return mark;
  }

  /** The config the gateway started with, its rex entry changed by `rex` and its root by `root`. */
  function configWith({ root = {}, rex = {} } = {}) {
    const cfg = merge(gw.config, root);
    cfg.users = gw.config.users.map((u) => (u.name === 'rex' ? { ...u, ...rex } : u));
    return cfg;
  }

  it('a valid reload applies to the next request; a broken one keeps the old policy and logs every problem', async () => {
    const s = await rawSession(gw.url, { ca: gw.ca, headers: gw.auth('rex') });
    await fake.clearRequests();

    // Before: interns may not call getData.
    const before1 = assertRpc(await s.post(getDataMessage(1)), 1);
    assert.equal(before1.error?.code, -32030, `before the reload: ${JSON.stringify(before1)}`);
    assert.match(before1.error.message, /group:interns/);
    assert.equal((await fake.rpcRequests('tools/call')).length, 0, 'nothing upstream before the reload');

    // A valid config that lets interns call getData.
    let mark = reloadWith(configWith({ root: { groups: { interns: { tools: { allow: ['pick*', 'searchOmniDocs', 'getData'] } } } } }));
    await gw.waitForLog(/reload: config applied/, { since: mark });

    const after1 = assertRpc(await s.post(getDataMessage(2)), 2);
    assert.ok(after1.result, `after the valid reload: ${JSON.stringify(after1)}`);
    assert.equal(toolJson(after1.result).runAs, OMNI.users.alice.id);
    assert.deepEqual((await fake.rpcRequests('tools/call')).map((r) => r.body.id), [2], 'upstream received getData after the reload');

    // A broken config: the restrictive interns again, an unknown group for rex, and a group
    // that allows and denies the same tool. Were any of it applied, getData would be refused.
    await fake.clearRequests();
    mark = reloadWith(configWith({
      root: { groups: { interns: INTERNS, mixed: { tools: { allow: ['getData'], deny: ['getData'] } } } },
      rex: { groups: ['interns', 'internz'] },
    }));
    const unknown = await gw.waitForLog(/unknown group "internz"/, { since: mark });
    assert.match(unknown, /users\[0\]\.groups\[1\]/, `the log line names the config path: ${unknown}`);
    const contradiction = await gw.waitForLog(/groups\.mixed\.tools\.deny\[0\]/, { since: mark });
    assert.match(contradiction, /getData/, contradiction);
    assert.doesNotMatch(gw.stderr().slice(mark), /reload: config applied/, 'the broken config was not applied');

    const after2 = assertRpc(await s.post(getDataMessage(3)), 3);
    assert.ok(after2.result, `after the broken reload, the previous policy still applies: ${JSON.stringify(after2)}`);
    assert.deepEqual((await fake.rpcRequests('tools/call')).map((r) => r.body.id), [3], 'upstream received getData after the broken reload');
    assert.equal(gw.proc.exitInfo(), null, 'the gateway is still running');
  });
});

/** The JSON-RPC answer with `id` in res (HTTP 200, SSE or JSON). */
function assertRpc(res, id) {
  assert.equal(res.status, 200, `${res.status} ${res.body}`);
  return responseMessage(res, id);
}

describe('check -c reports policy mistakes with their config paths', () => {
  let n = 0;
  /** Writes the base config with these members and overrides, and runs `check -c` on it. */
  async function check(members, overrides) {
    const built = buildMembers(members);
    const file = join(env.dir, `check-${++n}.json`);
    writeFileSync(file, JSON.stringify(baseConfig({ certs: env.certs, upstreamUrl: 'https://127.0.0.1:9/mcp/https', users: built.users, overrides }), null, 2));
    const res = await runGatewayCli(['check', '-c', file], { env: { ...built.env, OMNI_ORG_KEY: OMNI.orgKey } });
    return { ...res, output: res.stdout + res.stderr, lines: (res.stdout + res.stderr).split('\n') };
  }

  /** Asserts that exactly one line of output matches every pattern. */
  function assertLine(res, patterns, what) {
    const hits = res.lines.filter((l) => patterns.every((p) => p.test(l)));
    assert.equal(hits.length, 1, `${what}: expected one line matching ${patterns.join(' and ')} in:\n${res.output}`);
  }

  it('an unknown group and contradictory rules: one line each, with its path; exit 1', async () => {
    const res = await check(
      [asAlice('u0', { groups: ['internz'] }), asAlice('u1', { groups: ['a', 'b'] })],
      {
        groups: {
          a: { model: FINANCE },
          b: { model: SALES },
          g: { tools: { allow: ['pickModel', 'getData'], deny: ['getData'] } },
          finance: { models: [FINANCE], model: SALES },
        },
      },
    );

    assert.equal(res.code, 1, res.output);
    assertLine(res, [/users\[0\]\.groups\[0\]/, /unknown group "internz"/], 'unknown group');
    assertLine(res, [/groups\.g\.tools\.deny\[0\]/, /"getData"/, /groups\.g\.tools\.allow\[1\]/], 'allowed and denied in one rule');
    assertLine(res, [/users\[1\]/, /groups a and b pin different models/], 'two groups pin different models');
    assertLine(res, [/groups\.finance\.model/, new RegExp(SALES), /not in groups\.finance\.models/], 'a pin outside its own list');
  });

  it('a tool allowed by one rule and denied by another is a warning naming both rules; exit 0', async () => {
    const res = await check(
      [asAlice('u0', { groups: ['g'], rule: { tools: { allow: ['getData', 'pickModel'] } } })],
      { groups: { g: { tools: { deny: ['getData'] } } } },
    );

    assert.equal(res.code, 0, res.output);
    assertLine(res, [/users\[0\]/, /getData/, /user:u0/, /group:g/], 'allow/deny across rules');
  });

  it('a good policy exits 0 without warnings', async () => {
    const res = await check([asAlice('u0', { groups: ['interns'] })], { groups: { interns: INTERNS } });

    assert.equal(res.code, 0, res.output);
    assert.doesNotMatch(res.output, /warn/i);
  });
});
