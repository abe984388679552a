// The audit's file sink failing with on_failure "refuse" (issue 5), through the real gateway, the
// fake Omni and a real redis-server. chmod does not stop writes to an open file (and root ignores
// it), so the test makes the path unopenable: the audit directory is renamed away and a plain file
// put in its place, and SIGUSR1 makes the gateway reopen the file, which fails. While it fails,
// getData gets 503 -32015 and never reaches Omni, and pickModel (metadata) still flows. Once the
// directory is back, the sink recovers within a few seconds (retried every second): getData is
// answered and recorded again, the file holds one "audit_sink_recovered" record telling of the
// gap, and `audit verify` confirms the chain across it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OMNI, TestEnv, assertRpcError, waitFor } from './lib/harness.mjs';
import { getDataMessage, rawSession, responseMessage, rpc, toolJson } from './lib/mcp.mjs';
import { startRedis } from './lib/redis.mjs';
import { auditConfig, auditFileLines, auditFileRecords, auditVerify, checkStreamChains, recordBody, streamEntries } from './lib/audit.mjs';

const STREAM_KEY = 'gw:audit:failure';
const MEMBERS = [{ name: 'alice', pat: OMNI.users.alice.pat, userId: OMNI.users.alice.id }];

const env = new TestEnv('audit-failure');
let redis;
let fake;
let gw;
let auditDir;
let auditFile;
let session;
let nextId = 10;

const pickModel = (id) => rpc(id, 'tools/call', { name: 'pickModel', arguments: {} });

before(async () => {
  redis = await startRedis();
  fake = await env.startFake();
  auditDir = join(env.dir, 'audit');
  mkdirSync(auditDir);
  auditFile = join(auditDir, 'audit.jsonl');
  gw = await env.startGateway({
    upstreamUrl: fake.mcpUrl,
    members: MEMBERS,
    config: auditConfig({ file: auditFile, redis, key: STREAM_KEY, onFailure: 'refuse' }),
  });
  session = await rawSession(gw.url, { ca: gw.ca, headers: gw.auth('alice') });
});
after(async () => {
  try {
    await env.cleanup();
  } finally {
    await redis?.stop();
  }
});

/** getData through the session: the response, its id and its prompt. */
async function getData(label) {
  const id = nextId++;
  const prompt = `audit failure ${label} ${id}`;
  const res = await session.post(getDataMessage(id, prompt));
  return { res, id, prompt };
}

/** The upstream's tools/call messages for tool since the log was cleared. */
async function upstreamCalls(tool) {
  const reqs = await fake.mcpRequests();
  return reqs.flatMap((r) => (Array.isArray(r.body) ? r.body : [r.body]))
    .filter((m) => m?.method === 'tools/call' && m.params?.name === tool);
}

function assertAnswered(res, id, context) {
  assert.equal(res.status, 200, `${context}: ${res.status} ${res.body}`);
  const answer = responseMessage(res, id);
  assert.ok(answer.result, `${context}: ${JSON.stringify(answer)}`);
  return answer.result;
}

describe('the audit file made unopenable, on_failure refuse', () => {
  let beforeOutage;
  let refusedPrompt;

  it('while the sink works, getData is answered and recorded', async () => {
    const { res, id, prompt } = await getData('before');
    const result = assertAnswered(res, id, 'getData before the outage');
    assert.ok(Array.isArray(toolJson(result).result));
    const records = auditFileRecords(auditFile);
    assert.ok(records.some((r) => r.tool === 'getData' && r.arguments?.prompt === prompt), 'the getData record is in the file when its answer completes');
    beforeOutage = records.length;
  });

  it('the path made unopenable and SIGUSR1: getData gets 503 -32015 and never reaches Omni; pickModel still works', async () => {
    const mark = gw.stderr().length;
    renameSync(auditDir, `${auditDir}.away`);
    writeFileSync(auditDir, 'not a directory\n');
    gw.signal('SIGUSR1');
    await gw.waitForLog(/audit: file sink failing/, { since: mark });
    await fake.clearRequests();

    const refused = await getData('refused');
    refusedPrompt = refused.prompt;
    assertRpcError(refused.res, { status: 503, code: -32015, id: refused.id }, 'getData while the file sink fails');
    assert.deepEqual(await upstreamCalls('getData'), [], 'no getData reached Omni');

    const id = nextId++;
    const pick = await session.post(pickModel(id));
    const result = assertAnswered(pick, id, 'pickModel while the file sink fails');
    assert.equal(toolJson(result).runAs, OMNI.users.alice.id);
    assert.equal((await upstreamCalls('pickModel')).length, 1, 'pickModel reached Omni');

    // Still refused a moment later (the sink is retried every second and keeps failing).
    const again = await getData('refused-again');
    assertRpcError(again.res, { status: 503, code: -32015, id: again.id }, 'getData again while the file sink fails');
    assert.deepEqual(await upstreamCalls('getData'), [], 'still no getData reached Omni');
  });

  it('the path restored: within a few seconds getData is answered and recorded again, and pickModel too', async () => {
    const mark = gw.stderr().length;
    rmSync(auditDir);
    renameSync(`${auditDir}.away`, auditDir);
    let last;
    const ok = await waitFor(async () => {
      last = await getData('after');
      return last.res.status === 200 ? last : null;
    }, { timeoutMs: 10000, intervalMs: 200, message: 'getData answered again after the audit directory came back' });
    assertAnswered(ok.res, ok.id, 'getData after recovery');
    await gw.waitForLog(/audit: file sink recovered/, { since: mark });
    const records = auditFileRecords(auditFile);
    assert.ok(records.some((r) => r.tool === 'getData' && r.arguments?.prompt === ok.prompt), 'the getData after recovery is in the file');
    assert.ok(!records.some((r) => r.arguments?.prompt === refusedPrompt), 'a refused getData left no record (the audit could not take it)');

    await fake.clearRequests();
    const id = nextId++;
    assertAnswered(await session.post(pickModel(id)), id, 'pickModel after recovery');
    assert.equal((await upstreamCalls('pickModel')).length, 1);
    assert.equal((await upstreamCalls('getData')).length, 0);
  });

  it('the file holds one "audit_sink_recovered" record, and the chain verifies across the gap', async () => {
    // A last data query: once answered, every earlier record is in the file.
    const last = await getData('last');
    assertAnswered(last.res, last.id, 'the last getData');
    const records = auditFileRecords(auditFile);
    const recovered = records.filter((r) => r.event === 'audit_sink_recovered');
    assert.equal(recovered.length, 1, `recovery records: ${JSON.stringify(recovered)}`);
    const rec = recovered[0];
    assert.equal(rec.sink, 'file');
    assert.match(rec.down_since, /^\d{4}-\d\d-\d\dT/);
    assert.equal(typeof rec.error, 'string');
    assert.ok(rec.error.length > 0);
    assert.equal(typeof rec.failed, 'number');
    // At least the two refused getData calls and the pickModel answered during the outage.
    assert.ok(rec.refused >= 3, `refused: ${rec.refused}`);
    const at = records.indexOf(rec);
    assert.equal(at, beforeOutage, 'the recovery record follows the last record written before the outage');
    assert.ok(records.slice(at + 1).every((r) => !r.event), 'records after it are requests');
    const v = await auditVerify(auditFile);
    assert.equal(v.code, 0, `audit verify: ${v.stdout}${v.stderr}`);
    assert.match(v.stdout, new RegExp(`^ok: ${records.length} records, chain intact \\(seq 1\\.\\.${records.length}\\)$`, 'm'));
    assert.equal(auditFileLines(auditFile).partial, '', 'no half-written line');
  });

  it('the stream, which never failed, holds the same requests: every record but the file\'s recovery record', async () => {
    const entries = await streamEntries(redis, STREAM_KEY);
    checkStreamChains(entries);
    const fileRequests = auditFileRecords(auditFile).filter((r) => !r.event).map(recordBody);
    assert.deepEqual(entries.map((e) => recordBody(e.record)), fileRequests);
  });
});
