// The command line: `check -c FILE` validates a config (unknown keys are errors that name the
// key); `token` prints a new member token and its SHA-256.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OMNI, TEAM, TestEnv, runGatewayCli, sha256Hex } from './lib/harness.mjs';
import { baseConfig, buildMembers } from './lib/gateway.mjs';

const env = new TestEnv('cli');
after(() => env.cleanup());

let n = 0;
/** Writes a config (the base one with `overrides`, or `raw` text) and runs `check -c` on it. */
async function check({ overrides, members = TEAM, raw, envVars } = {}) {
  const built = buildMembers(members);
  const file = join(env.dir, `check-${++n}.json`);
  const cfg = baseConfig({ certs: env.certs, upstreamUrl: 'http://127.0.0.1:9/mcp/https', users: built.users, overrides });
  writeFileSync(file, raw ?? JSON.stringify(cfg, null, 2));
  const res = await runGatewayCli(['check', '-c', file], { env: { ...built.env, OMNI_ORG_KEY: OMNI.orgKey, ...envVars } });
  return { ...res, output: res.stdout + res.stderr, cfg };
}

describe('check -c', () => {
  it('a good config exits 0', async () => {
    const res = await check();
    assert.equal(res.code, 0, res.output);
  });

  it('an unknown top-level key exits 1 and names the key', async () => {
    const res = await check({ overrides: { bogus_setting: 1 } });
    assert.equal(res.code, 1, res.output);
    assert.match(res.output, /bogus_setting/);
  });

  it('an unknown key inside upstream exits 1 and names the key', async () => {
    const res = await check({ overrides: { upstream: { timeout_sec: 3 } } });
    assert.equal(res.code, 1, res.output);
    assert.match(res.output, /timeout_sec/);
  });

  it('an unknown key in a member exits 1 and names the key', async () => {
    const members = [{ ...TEAM[0], extra: { omni_pat_evn: 'OMNI_PAT_ALICE' } }, ...TEAM.slice(1)];
    const res = await check({ members });
    assert.equal(res.code, 1, res.output);
    assert.match(res.output, /omni_pat_evn/);
  });

  it('every problem gets its own line', async () => {
    const res = await check({ overrides: { bogus_one: 1, bogus_two: 2 } });
    assert.equal(res.code, 1, res.output);
    const lines = res.output.split('\n');
    assert.ok(lines.some((l) => l.includes('bogus_one') && !l.includes('bogus_two')), res.output);
    assert.ok(lines.some((l) => l.includes('bogus_two') && !l.includes('bogus_one')), res.output);
  });

  it('a file that is not JSON exits 1', async () => {
    const res = await check({ raw: '{ "listen": ' });
    assert.equal(res.code, 1, res.output);
  });

  it('warns about an org-key member without omni_user_id, naming the member', async () => {
    const res = await check({ members: [...TEAM, { name: 'frank' }] });
    assert.equal(res.code, 0, res.output);
    assert.ok(res.output.split('\n').some((l) => /warn/i.test(l) && l.includes('frank')), res.output);
  });

  it('an inline omni_pat is accepted with a warning that does not print the PAT', async () => {
    const inline = env.secret('inline PAT', 'pat-inline-check-5555');
    const members = [{ name: 'ivan', userId: 'u-ivan', extra: { omni_pat: inline } }];
    const res = await check({ members });
    assert.equal(res.code, 0, res.output);
    assert.match(res.output, /omni_pat/i, 'a warning about the inline PAT');
    assert.ok(!res.output.includes(inline), `check printed the PAT: ${res.output}`);
  });
});

describe('token', () => {
  async function newToken() {
    const res = await runGatewayCli(['token']);
    assert.equal(res.code, 0, res.stdout + res.stderr);
    const token = res.stdout.match(/^token:\s*(\S+)\s*$/m)?.[1];
    const hash = res.stdout.match(/^token_sha256:\s*(\S+)\s*$/m)?.[1];
    assert.ok(token && hash, `unexpected output: ${res.stdout}`);
    return { token, hash };
  }

  it('prints a token and its SHA-256', async () => {
    const { token, hash } = await newToken();
    assert.match(hash, /^[0-9a-f]{64}$/);
    assert.equal(sha256Hex(token), hash);
    assert.ok(token.length >= 32, `token too short: ${token.length} characters`);
  });

  it('prints a different token each time', async () => {
    const a = await newToken();
    const b = await newToken();
    assert.notEqual(a.token, b.token);
  });
});
