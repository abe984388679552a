// SIGHUP (issue 6): a reload that adds a member lets them in at once, while streams that were
// open before it (alice's held getData on a POST, bob's GET stream) go on on the same
// connections and end normally; a broken config is refused with its problems logged, and the
// gateway keeps serving with the config it had.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OMNI, TestEnv, newMemberToken, openStream, waitFor } from './lib/harness.mjs';
import { getDataMessage, rawSession, responseMessage, rpc, toolJson } from './lib/mcp.mjs';

const env = new TestEnv('ops-reload');
let fake;
let gw;

before(async () => {
  fake = await env.startFake();
  gw = await env.startGateway({ upstreamUrl: fake.mcpUrl, config: { cache: { enabled: false } } });
});
after(async () => {
  await fake?.release().catch(() => {});
  await env.cleanup();
});
beforeEach(() => fake.reset());

/**
 * A member added by a reload: a new token, and alice's PAT in a file (a reload cannot add
 * environment variables to a running process).
 */
function newMember(name) {
  const { token, sha256 } = newMemberToken();
  env.secret(`member token of ${name}`, token);
  const patFile = join(env.dir, `${name}.pat`);
  writeFileSync(patFile, `${OMNI.users.alice.pat}\n`);
  return { token, entry: { name, token_sha256: sha256, omni_pat_file: patFile, omni_user_id: OMNI.users.alice.id } };
}

/** Writes text over the gateway's config file and sends SIGHUP; returns the stderr mark. */
function reloadWith(text) {
  writeFileSync(gw.configFile, text);
  const mark = gw.stderr().length;
  gw.signal('SIGHUP');
  return mark;
}

const bearer = (token) => ({ Authorization: `Bearer ${token}` });

describe('SIGHUP adds a member', () => {
  it('the new member is let in after the reload, while alice\'s held getData stream and bob\'s GET stream go on and alice gets her whole result', async () => {
    const dave = newMember('dave');
    const alice = await rawSession(gw.url, { ca: gw.ca, headers: gw.auth('alice') });
    const bob = await rawSession(gw.url, { ca: gw.ca, headers: gw.auth('bob') });

    // dave is unknown before the reload.
    const refused = await gw.request({ headers: bearer(dave.token), body: rpc(1, 'tools/list') });
    assert.equal(refused.status, 401, refused.body);

    // alice: a getData the fake holds, its SSE stream open (first event in).
    await fake.hold();
    const held = await alice.stream(getDataMessage(7));
    assert.equal(held.status, 200);
    const started = await held.nextEvent();
    assert.equal(started.json().method, 'notifications/message', started.data);
    // bob: his session's GET stream.
    const getStream = await openStream(gw.url, { method: 'GET', headers: { ...bob.headers(), Accept: 'text/event-stream' }, ca: gw.ca });
    assert.equal(getStream.status, 200, getStream.text());
    await waitFor(async () => (await fake.requests()).some((r) => r.method === 'GET' && r.headers['mcp-session-id'] === bob.sessionId), { message: 'bob\'s GET stream reached the fake' });

    const cfg = { ...gw.config, users: [...gw.config.users, dave.entry] };
    const mark = reloadWith(JSON.stringify(cfg, null, 2));
    await gw.waitForLog(/reload: config applied \(4 members\)/, { since: mark });

    // dave is in, through the SDK-shaped raw session, and reaches Omni as alice's PAT says.
    await fake.clearRequests();
    const daveS = await rawSession(gw.url, { ca: gw.ca, headers: bearer(dave.token) });
    const list = await daveS.post(rpc(2, 'tools/list'));
    assert.equal(list.status, 200, list.body);
    assert.ok(responseMessage(list, 2).result.tools.some((t) => t.name === 'getData'), list.body);
    const daveUp = (await fake.rpcRequests('tools/list', 2))[0];
    assert.equal(daveUp?.headers.authorization, `Bearer ${OMNI.users.alice.pat}`, 'dave runs with the PAT from his file');

    // The streams opened before the reload are still open and still carry events.
    assert.equal(held.isEnded(), false, `alice's stream ended at the reload: ${held.text()}`);
    assert.equal(getStream.isEnded(), false, `bob's GET stream ended at the reload: ${getStream.text()}`);
    const sent = await requestListChanged(OMNI.users.bob.id);
    assert.equal(sent, 1, 'the fake told bob\'s session');
    const changed = await getStream.nextEvent();
    assert.equal(changed.json().method, 'notifications/tools/list_changed', changed.data);

    // Release: alice's result arrives on the same stream, which then ends normally.
    await fake.release();
    const rest = await held.rest();
    const result = rest.map((e) => e.json()).find((m) => m.id === 7);
    assert.ok(result?.result, `alice's result after the reload: ${held.text()}`);
    assert.equal(toolJson(result.result).runAs, OMNI.users.alice.id);
    assert.equal((await held.ended).error, null, 'alice\'s stream ended cleanly');
    const events = await fake.events();
    assert.deepEqual(events.filter((e) => e.type === 'response-closed-early'), [], 'no upstream response was cut');
    assert.doesNotMatch(gw.stderr().slice(mark), /closing|drain/i, 'the reload closed nothing');
    getStream.close();
  });
});

/** Asks the fake to send notifications/tools/list_changed on the GET streams of runAs. */
async function requestListChanged(runAs) {
  const res = await fetch(`${fake.base}/_fake/list-changed`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ runAs, on: 'get' }) });
  assert.equal(res.status, 200);
  return (await res.json()).sent;
}

describe('SIGHUP with a broken config', () => {
  it('keeps serving with the old config: old members work, the member of the broken file is not admitted, each problem is logged', async () => {
    const erin = newMember('erin');
    const alice = await rawSession(gw.url, { ca: gw.ca, headers: gw.auth('alice') });
    const good = JSON.stringify(gw.config, null, 2);

    // Broken in two ways: an unknown key, and a member whose token hash is not hex.
    const cfg = { ...gw.config, bogus_setting: true, users: [...gw.config.users, erin.entry, { name: 'frank', token_sha256: 'zz' }] };
    let mark;
    try {
      mark = reloadWith(JSON.stringify(cfg, null, 2));
      const kept = await gw.waitForLog(/reload: kept the running config/, { since: mark });
      assert.match(kept, /problem/, kept);
      await gw.waitForLog(/bogus_setting/, { since: mark });
      await gw.waitForLog(/token_sha256/, { since: mark });
      assert.doesNotMatch(gw.stderr().slice(mark), /reload: config applied/, 'the broken config was not applied');

      // erin (in the broken file only) is not admitted, on a new connection.
      const refused = await gw.request({ headers: bearer(erin.token), body: rpc(1, 'tools/list') });
      assert.equal(refused.status, 401, refused.body);
      // alice goes on: on her session and on a new one; upstream gets her calls.
      const res = await alice.post(getDataMessage(3));
      assert.equal(res.status, 200, res.body);
      assert.ok(responseMessage(res, 3).result, res.body);
      const again = await rawSession(gw.url, { ca: gw.ca, headers: gw.auth('bob') });
      assert.equal((await again.post(rpc(4, 'tools/list'))).status, 200);
      assert.equal((await fake.rpcRequests('tools/call', 3)).length, 1, 'alice\'s getData reached Omni');

      // JSON that does not parse: the same.
      mark = reloadWith('{"listen": "127.0.0.1:0", ');
      await gw.waitForLog(/reload: kept the running config/, { since: mark });
      assert.equal((await alice.post(rpc(5, 'tools/list'))).status, 200);
    } finally {
      writeFileSync(gw.configFile, good);
    }
    assert.equal(gw.proc.exitInfo(), null, 'the gateway is still running');
    // The running config was never replaced: a reload of the good file now applies 3 members.
    mark = gw.stderr().length;
    gw.signal('SIGHUP');
    await gw.waitForLog(/reload: config applied/, { since: mark });
    assert.equal((await gw.request({ headers: bearer(erin.token), body: rpc(6, 'tools/list') })).status, 401);
  });
});
