// The central audit (issue 5) through the real gateway, the fake Omni and a real redis-server:
// 30 mixed JSON-RPC requests from alice (PAT), bob (PAT, in the `interns` group) and carol (org
// key) — initialize, tools/list, pickModel, getData, askOmni, ping, denied calls and 2025-03-26
// batches, through the SDK client and raw sessions — give exactly 30 records, in request order,
// in the file and in the Redis stream, with the right member, method and tool; data queries carry
// the generated query and the row count the client saw; `audit verify` confirms the file's chain
// and the stream holds one chain of its own; an edited, deleted or swapped line makes `audit
// verify` fail at that line; a denied call is recorded with its rule; no PAT, org key or member
// token is in either sink; `audit tail --user alice --tool getData` prints alice's getData rows
// only, from the file and from the stream.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OMNI, TestEnv, findSecrets } from './lib/harness.mjs';
import { getDataMessage, rawSession, responseMessage, rpc, sdkConnect, toolJson } from './lib/mcp.mjs';
import { startRedis } from './lib/redis.mjs';
import {
  auditConfig, auditFileLines, auditFileRecords, auditTail, auditVerify, checkFileChain,
  checkStreamChains, deleteLine, editLine, recordBody, streamEntries, swapLines,
} from './lib/audit.mjs';

const GROUPS = { interns: { tools: { allow: ['pick*', 'searchOmniDocs'] } } };
const MEMBERS = [
  { name: 'alice', pat: OMNI.users.alice.pat, userId: OMNI.users.alice.id },
  { name: 'bob', pat: OMNI.users.bob.pat, userId: OMNI.users.bob.id, groups: ['interns'] },
  { name: 'carol', userId: OMNI.users.carol.id },
];
const CREDENTIAL = { alice: 'pat', bob: 'pat', carol: 'org_key' };
const STREAM_KEY = 'gw:audit';
const SDK_CLIENT = 'omni-gw-itest';
const RAW_CLIENT = 'omni-gw-itest-raw';
const DATA_QUERIES = new Set(['getData', 'runQuery', 'askOmni', 'runSavedQuery']);

const env = new TestEnv('audit');
let redis;
let fake;
let gw;
let auditFile;
// What the test sent, in order: one entry per JSON-RPC request, i.e. per expected record.
const expected = [];
let upstreamMessages = [];

const call = (id, name, args = {}) => rpc(id, 'tools/call', { name, arguments: args });
const cancelled = { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 999, reason: 'audit test' } };

/** Records what one request is expected to leave in the audit. */
function expect(member, method, tool, more = {}) {
  expected.push({ member, method, tool: tool ?? null, decision: 'allow', rule: undefined, ...more });
}

/** The SDK client as member: initialize (and notifications/initialized, GET: no records). */
async function sdkMember(member) {
  const c = await sdkConnect(gw, member);
  expect(member, 'initialize', null, { client: SDK_CLIENT });
  const tool = async (name, args = {}) => {
    const res = await c.client.callTool({ name, arguments: args });
    expect(member, 'tools/call', name, { client: SDK_CLIENT, args, result: res });
    return res;
  };
  const listTools = async () => {
    const res = await c.client.listTools();
    expect(member, 'tools/list', null, { client: SDK_CLIENT });
    return res;
  };
  return { ...c, tool, listTools };
}

/** A raw session as member; post() records what each request of a body should leave. */
async function rawMember(member, opts = {}) {
  const s = await rawSession(gw.url, { ca: gw.ca, headers: gw.auth(member), ...opts });
  expect(member, 'initialize', null, {
    client: RAW_CLIENT, requestId: s.initResponse.headers['x-request-id'], protocolVersion: opts.protocolVersion,
  });
  const post = async (body, meta = []) => {
    const res = await s.post(body);
    assert.equal(res.status, 200, `${member}: ${JSON.stringify(body)} → ${res.status} ${res.body}`);
    const messages = Array.isArray(body) ? body : [body];
    const requests = messages.filter((m) => m.id !== undefined);
    requests.forEach((m, i) => {
      const answer = responseMessage(res, m.id);
      expect(member, m.method, m.params?.name, {
        client: RAW_CLIENT, requestId: res.headers['x-request-id'], sessionId: s.sessionId,
        protocolVersion: s.protocolVersion, args: m.params?.arguments, result: answer.result, error: answer.error,
        ...(meta[i] ?? {}),
      });
    });
    return res;
  };
  return { session: s, post };
}

const denied = { decision: 'deny', rule: 'group:interns' };

before(async () => {
  redis = await startRedis();
  fake = await env.startFake();
  auditFile = join(env.dir, 'audit.jsonl');
  gw = await env.startGateway({
    upstreamUrl: fake.mcpUrl,
    members: MEMBERS,
    config: { groups: GROUPS, ...auditConfig({ file: auditFile, redis, key: STREAM_KEY }) },
  });

  // alice through the SDK: 6 records
  const alice = await sdkMember('alice');
  await alice.listTools();
  await alice.tool('pickModel');
  await alice.tool('getData', { prompt: 'audit alice sdk revenue by region' });
  await alice.tool('askOmni', { prompt: 'audit alice sdk ask why revenue fell' });
  await alice.tool('searchOmniDocs', { question: 'how do I share a dashboard' });
  // carol (org key) through the SDK: 6 records
  const carol = await sdkMember('carol');
  await carol.listTools();
  await carol.tool('pickModel');
  await carol.tool('getData', { prompt: 'audit carol sdk invoices due by region 1' });
  await carol.tool('getData', { prompt: 'audit carol sdk invoices due by region 2' });
  await carol.tool('askOmni', { prompt: 'audit carol sdk ask about open invoices' });
  // bob (interns) in a raw 2025-03-26 session: 7 records, two of them denied getData calls
  const bob = await rawMember('bob', { protocolVersion: '2025-03-26' });
  await bob.post(rpc(2, 'tools/list'));
  await bob.post(call(3, 'pickModel'));
  await bob.post(getDataMessage(4, 'audit bob raw denied revenue'), [denied]);
  await bob.post([call(5, 'pickModel'), getDataMessage(6, 'audit bob batch denied'), cancelled,
    call(7, 'searchOmniDocs', { question: 'what is a topic' })], [{}, denied, {}]);
  // alice in a raw 2025-03-26 session, a batch with a data query and a ping: 4 records
  const aliceRaw = await rawMember('alice', { protocolVersion: '2025-03-26' });
  await aliceRaw.post([getDataMessage(2, 'audit alice batch revenue'), call(3, 'pickModel')]);
  await aliceRaw.post(rpc(4, 'ping'));
  // carol in a raw session (the latest protocol): 3 records
  const carolRaw = await rawMember('carol');
  await carolRaw.post(rpc(2, 'tools/list'));
  await carolRaw.post(getDataMessage(3, 'audit carol raw invoices'));
  // bob through the SDK: 3 records
  const bobSdk = await sdkMember('bob');
  await bobSdk.listTools();
  await bobSdk.tool('pickModel');
  // Last, a data query of alice: its answer completes only once its record is in every sink,
  // and every earlier request's record was queued before it (each ended before it began).
  await aliceRaw.post(getDataMessage(5, 'audit alice raw last'));

  for (const c of [alice, carol, bobSdk]) await c.close();
  upstreamMessages = (await fake.mcpRequests()).filter((r) => r.method === 'POST').flatMap((r) => (Array.isArray(r.body) ? r.body : [r.body]));
});
after(async () => {
  try {
    await env.cleanup();
  } finally {
    await redis?.stop();
  }
});

describe('records of mixed requests from three members', () => {
  it('the plan has 30 JSON-RPC requests, and the upstream got every allowed one and no denied one', () => {
    assert.equal(expected.length, 30, 'the test itself: 30 requests');
    const upstreamCalls = upstreamMessages.filter((m) => m.method === 'tools/call' && m.id !== undefined).map((m) => m.params.name);
    const allowedCalls = expected.filter((e) => e.method === 'tools/call' && e.decision === 'allow').map((e) => e.tool);
    assert.deepEqual(upstreamCalls.sort(), allowedCalls.sort(), 'tools/call messages that reached Omni');
  });

  it('the file holds exactly one record per request, in order, with the right member, method and tool', () => {
    const records = auditFileRecords(auditFile);
    assert.equal(records.length, expected.length, `records in the file:\n${records.map((r) => JSON.stringify(r)).join('\n')}`);
    assert.deepEqual(records.map((r) => [r.member, r.method, r.tool]), expected.map((e) => [e.member, e.method, e.tool]));
    records.forEach((r, i) => {
      const e = expected[i];
      const where = `record ${i + 1} (${e.member} ${e.method} ${e.tool ?? ''})`;
      assert.equal(r.omni_user_id, OMNI.users[e.member].id, `${where}: omni_user_id`);
      assert.equal(r.credential, CREDENTIAL[e.member], `${where}: credential`);
      assert.equal(r.decision, e.decision, `${where}: decision`);
      // The rule that decided: bob's tool calls are decided by his group, the rest by the
      // default rule (members without a group or rule of their own).
      if (e.rule) assert.equal(r.rule, e.rule, `${where}: rule`);
      else if (e.method === 'tools/call') assert.equal(r.rule, e.member === 'bob' ? 'group:interns' : 'default', `${where}: rule`);
      else assert.ok(typeof r.rule === 'string' && r.rule.length > 0, `${where}: rule ${JSON.stringify(r.rule)}`);
      assert.equal(r.http_status, 200, `${where}: http_status`);
      assert.equal(r.client_name, e.client, `${where}: client_name`);
      assert.equal(r.client_addr, '127.0.0.1', `${where}: client_addr`);
      assert.match(r.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, `${where}: time`);
      assert.equal(typeof r.request_id, 'string', `${where}: request_id`);
      assert.ok(r.request_id.length > 0, `${where}: request_id`);
      if (e.requestId) assert.equal(r.request_id, e.requestId, `${where}: request_id is the response's X-Request-Id`);
      if (e.sessionId) assert.equal(r.session_id, e.sessionId, `${where}: session_id`);
      if (e.method !== 'initialize') assert.ok(r.session_id, `${where}: session_id`);
      if (e.protocolVersion) assert.equal(r.protocol_version, e.protocolVersion, `${where}: protocol_version`);
      assert.equal(typeof r.response_bytes, 'number', `${where}: response_bytes`);
      assert.equal(typeof r.duration_ms, 'number', `${where}: duration_ms`);
      assert.equal(r.cache_hit, false, `${where}: cache_hit (the cache is off)`);
      if (e.args) assert.deepEqual(r.arguments, e.args, `${where}: arguments`);
      if (e.decision === 'allow' && e.result) assert.equal(r.is_error, e.result.isError === true, `${where}: is_error`);
    });
  });

  it('data queries carry the generated Omni query and the row count the client received', () => {
    const records = auditFileRecords(auditFile);
    let checked = 0;
    records.forEach((r, i) => {
      const e = expected[i];
      const where = `record ${i + 1} (${e.member} ${e.tool})`;
      if (!DATA_QUERIES.has(e.tool)) {
        assert.ok(!('omni_query' in r) && !('rows' in r), `${where}: only data queries carry omni_query and rows`);
        return;
      }
      assert.ok('omni_query' in r && 'rows' in r, `${where}: omni_query and rows: ${JSON.stringify(r)}`);
      if (e.tool === 'getData' && e.decision === 'allow') {
        const answer = toolJson(e.result);
        assert.ok(answer.query && Array.isArray(answer.result), `${where}: the client's answer: ${JSON.stringify(answer)}`);
        assert.deepEqual(r.omni_query, answer.query, `${where}: omni_query`);
        assert.equal(r.rows, answer.result.length, `${where}: rows`);
        assert.equal(r.arguments.prompt, e.args.prompt, `${where}: the prompt`);
        checked++;
      } else {
        // askOmni answers with a job, and a denied call never reached Omni: no query, no rows.
        assert.equal(r.omni_query, null, `${where}: omni_query`);
        assert.equal(r.rows, null, `${where}: rows`);
      }
    });
    assert.equal(checked, 6, 'allowed getData records checked');
  });

  it('`audit verify` confirms the file\'s chain', async () => {
    const v = await auditVerify(auditFile);
    assert.equal(v.code, 0, `audit verify: ${v.stdout}${v.stderr}`);
    assert.match(v.stdout, /^ok: 30 records, chain intact \(seq 1\.\.30\)$/m);
    checkFileChain(auditFileLines(auditFile).lines);
  });

  it('the Redis stream holds the same 30 records in the same order, in one chain of its own (seq 1..30)', async () => {
    const entries = await streamEntries(redis, STREAM_KEY);
    assert.equal(entries.length, expected.length, `stream entries: ${entries.length}`);
    const chains = checkStreamChains(entries);
    assert.equal(chains.size, 1, `one gateway, one connection: one chain; got ${[...chains.keys()]}`);
    const records = auditFileRecords(auditFile);
    assert.deepEqual(entries.map((e) => recordBody(e.record)), records.map(recordBody), 'stream and file agree record by record');
    assert.deepEqual(entries.map((e) => [e.record.member, e.record.method, e.record.tool]), expected.map((x) => [x.member, x.method, x.tool]));
  });
});

describe('a denied call', () => {
  it('is recorded with decision "deny", its rule and the error the member got', () => {
    const records = auditFileRecords(auditFile);
    const deny = records.filter((r) => r.decision === 'deny');
    assert.equal(deny.length, 2, `denied records: ${JSON.stringify(deny)}`);
    for (const r of deny) {
      assert.equal(r.member, 'bob');
      assert.equal(r.method, 'tools/call');
      assert.equal(r.tool, 'getData');
      assert.equal(r.rule, 'group:interns');
      assert.equal(r.rpc_error, -32030);
      assert.equal(r.http_status, 200);
      assert.match(r.arguments.prompt, /^audit bob (raw|batch) denied/);
    }
    const bobAnswers = expected.filter((e) => e.decision === 'deny').map((e) => e.error?.code);
    assert.deepEqual(bobAnswers, [-32030, -32030], 'what bob was answered');
  });
});

describe('secrets', () => {
  it('no PAT, org key or member token is in the file or the stream', async () => {
    const names = Object.keys(env.secrets);
    for (const m of ['alice', 'bob', 'carol']) assert.ok(names.includes(`member token of ${m}`), `${m}'s token is checked`);
    for (const m of ['alice', 'bob']) assert.ok(names.includes(`PAT of member ${m}`), `${m}'s PAT is checked`);
    assert.ok(names.includes('org key'));
    const fileText = readFileSync(auditFile, 'utf8');
    const streamText = JSON.stringify(await redis.command('XRANGE', STREAM_KEY, '-', '+'));
    assert.deepEqual(findSecrets(fileText, env.secrets), [], 'secrets in the audit file');
    assert.deepEqual(findSecrets(streamText, env.secrets), [], 'secrets in the audit stream');
    assert.doesNotMatch(fileText, /Bearer|authorization/i);
    assert.doesNotMatch(streamText, /Bearer|authorization/i);
  });
});

describe('tampering with a copy of the file', () => {
  let original;
  let n;
  before(() => {
    original = readFileSync(auditFile, 'utf8');
    n = auditFileLines(auditFile).lines.length;
  });

  /** Writes text to a copy and runs `audit verify` on it. */
  async function verifyText(name, text) {
    const copy = join(env.dir, `tampered-${name}.jsonl`);
    writeFileSync(copy, text);
    return auditVerify(copy);
  }

  it('an untouched copy verifies', async () => {
    const copy = join(env.dir, 'copy.jsonl');
    copyFileSync(auditFile, copy);
    const v = await auditVerify(copy);
    assert.equal(v.code, 0, v.stdout);
  });

  // Line 1 has no line before it, so it is tested on its own below.
  for (const where of ['second', 'middle', 'next-to-last']) {
    const lineOf = () => (where === 'second' ? 2 : where === 'middle' ? Math.floor(n / 2) : n - 1);

    it(`editing one byte inside a value of the ${where} line: verify fails at the line after it (its prev no longer matches)`, async () => {
      const k = lineOf();
      // alice → blice, bob → cob, carol → darol: still valid JSON, so line k itself parses and
      // keeps its own prev; the line after it names it.
      const text = editLine(original, k, (l) => l.replace(/"member":"(.)/, (_, c) => `"member":"${String.fromCharCode(c.charCodeAt(0) + 1)}`));
      assert.notEqual(text, original);
      const v = await verifyText(`value-${k}`, text);
      assert.equal(v.code, 1, v.stdout);
      assert.equal(v.line, k + 1, v.stdout);
      assert.match(v.stdout, new RegExp(`^line ${k + 1}: prev does not match line ${k} `, 'm'));
    });

    it(`editing one byte of the JSON of the ${where} line: verify fails at that line`, async () => {
      const k = lineOf();
      const text = editLine(original, k, (l) => `${l.slice(0, -1)}]`); // the closing brace
      const v = await verifyText(`byte-${k}`, text);
      assert.equal(v.code, 1, v.stdout);
      assert.equal(v.line, k, v.stdout);
    });

    it(`editing the seq of the ${where} line: verify fails at that line`, async () => {
      const k = lineOf();
      const text = editLine(original, k, (l) => l.replace(/"seq":(\d+)/, (_, s) => `"seq":${Number(s) + 1}`));
      const v = await verifyText(`seq-${k}`, text);
      assert.equal(v.code, 1, v.stdout);
      assert.equal(v.line, k, v.stdout);
    });

    it(`deleting the ${where} line: verify fails at that line`, async () => {
      const k = lineOf();
      const v = await verifyText(`delete-${k}`, deleteLine(original, k));
      assert.equal(v.code, 1, v.stdout);
      assert.equal(v.line, k, v.stdout);
      assert.match(v.stdout, /missing|removed/);
    });

    it(`swapping the ${where} line with the next: verify fails at that line`, async () => {
      const k = lineOf();
      const v = await verifyText(`swap-${k}`, swapLines(original, k));
      assert.equal(v.code, 1, v.stdout);
      assert.equal(v.line, k, v.stdout);
      assert.match(v.stdout, /reordered/);
    });
  }
});

describe('tampering with the first line of a copy', () => {
  // A file may legitimately start past seq 1 (it continues a rotated one), so a file whose first
  // line is gone is not a broken chain to `audit verify`; it says where the file starts.
  let original;
  before(() => { original = readFileSync(auditFile, 'utf8'); });

  it('editing a value of line 1: verify fails at line 2', async () => {
    const copy = join(env.dir, 'tampered-first-value.jsonl');
    writeFileSync(copy, editLine(original, 1, (l) => l.replace('"member":"alice"', '"member":"blice"')));
    const v = await auditVerify(copy);
    assert.equal(v.code, 1, v.stdout);
    assert.equal(v.line, 2, v.stdout);
  });

  it('swapping lines 1 and 2: verify fails at line 2 (line 1 reads as the start of a rotated file)', async () => {
    const copy = join(env.dir, 'tampered-first-swap.jsonl');
    writeFileSync(copy, swapLines(original, 1));
    const v = await auditVerify(copy);
    assert.equal(v.code, 1, v.stdout);
    assert.equal(v.line, 2, v.stdout);
  });

  it('deleting line 1: verify reports that the file starts at seq 2, not at 1', async () => {
    const copy = join(env.dir, 'tampered-first-delete.jsonl');
    writeFileSync(copy, deleteLine(original, 1));
    const v = await auditVerify(copy);
    assert.match(v.stdout, /starts at seq 2\b/, v.stdout);
  });
});

describe('audit tail', () => {
  const aliceGetData = () => auditFileRecords(auditFile).filter((r) => r.member === 'alice' && r.tool === 'getData');

  /** Asserts that rows are exactly alice's getData records, in order. */
  function assertAliceGetDataRows(rows, source) {
    const want = aliceGetData();
    assert.equal(want.length, 3, 'alice made 3 getData calls');
    assert.equal(rows.length, want.length, `${source}: rows:\n${rows.join('\n')}`);
    rows.forEach((row, i) => {
      const [time, member, tool] = row.split(/\s+/);
      assert.equal(member, 'alice', `${source}: ${row}`);
      assert.equal(tool, 'getData', `${source}: ${row}`);
      assert.equal(time, want[i].time, `${source}: ${row}`);
      assert.ok(row.includes(want[i].arguments.prompt), `${source}: the prompt "${want[i].arguments.prompt}" in ${row}`);
      assert.match(row, /\ballow\b/, `${source}: ${row}`);
    });
  }

  it('--user alice --tool getData on the file prints only alice\'s getData rows', async () => {
    const t = await auditTail([auditFile, '--user', 'alice', '--tool', 'getData']);
    assert.equal(t.code, 0, t.stderr);
    assertAliceGetDataRows(t.rows, 'file');
  });

  it('--user alice --tool getData on the stream (-c CONFIG) prints the same rows', async () => {
    const t = await auditTail(['-c', gw.configFile, '--user', 'alice', '--tool', 'getData']);
    assert.equal(t.code, 0, t.stderr);
    assertAliceGetDataRows(t.rows, 'stream');
  });

  it('--user bob prints bob\'s rows, the denied ones with their rule', async () => {
    const t = await auditTail([auditFile, '--user', 'bob']);
    assert.equal(t.code, 0, t.stderr);
    const bobRecords = auditFileRecords(auditFile).filter((r) => r.member === 'bob');
    assert.equal(t.rows.length, bobRecords.length, t.stdout);
    assert.ok(t.rows.every((row) => row.split(/\s+/)[1] === 'bob'), t.stdout);
    assert.equal(t.rows.filter((row) => /deny group:interns/.test(row)).length, 2, t.stdout);
  });
});
