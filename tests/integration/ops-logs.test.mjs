// Structured logs (issue 6): with "log": {"format": "json"} every line the gateway writes is one
// JSON object, and each request gets exactly one access line with its id (= X-Request-Id),
// member, peer, method, path, rpc, tool, status, bytes, durations and cache outcome, and never a
// token or PAT. With "log": {"file": ...}, SIGUSR1 reopens the file: after logrotate renamed it,
// the next lines go to a new file at the configured path.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OMNI, TestEnv, openStream, rawConnect, waitFor } from './lib/harness.mjs';
import { getDataMessage, initializeMessage, rawSession, rpc } from './lib/mcp.mjs';
import { startGatewayLoggingTo } from './lib/logfile.mjs';

const env = new TestEnv('ops-logs');
let fake;

before(async () => {
  fake = await env.startFake();
});
after(async () => {
  await fake?.release().catch(() => {});
  await env.cleanup();
});
beforeEach(() => fake.reset());

const ACCESS_FIELDS = ['time', 'level', 'msg', 'req', 'member', 'peer', 'method', 'path', 'rpc', 'tool', 'status', 'bytes', 'ms', 'upstream_ms', 'cache'];
const WRONG_TOKEN = 'gwt_this-is-a-wrong-token-0123456789abcdef';

/** The lines of text, each parsed as JSON; throws listing every line that is not a JSON object. */
function jsonLines(text, what) {
  const bad = [];
  const out = text.split('\n').filter((l) => l !== '').map((l, i) => {
    let v = null;
    try { v = JSON.parse(l); } catch { /* listed below */ }
    if (!v || typeof v !== 'object' || Array.isArray(v)) bad.push(`line ${i + 1}: ${l}`);
    return v;
  });
  assert.deepEqual(bad, [], `${what}: lines that are not a JSON object`);
  return out;
}

describe('log.format json', () => {
  let gw;
  const responses = []; // every response the traffic got, with what the request was

  before(async () => {
    gw = await env.startGateway({ upstreamUrl: fake.mcpUrl, config: { log: { format: 'json' } }, name: 'gateway-json' });
    env.secret('wrong token', WRONG_TOKEN);
    // Traffic through every kind of ending: served, cached, refused, malformed, not found, streamed.
    const alice = await rawSession(gw.url, { ca: gw.ca, headers: gw.auth('alice') });
    responses.push(alice.initResponse);
    const note = (what, res) => { responses.push(Object.assign(res, { what })); return res; };
    note('tools/list', await alice.post(rpc(2, 'tools/list')));
    note('tools/list hit', await alice.post(rpc(3, 'tools/list')));
    note('getData', await alice.post(getDataMessage(4)));
    note('odd tool', await alice.post(rpc(5, 'tools/call', { name: 'get"Da\\ta\n\u0001', arguments: {} })));
    note('bob getData', await (await rawSession(gw.url, { ca: gw.ca, headers: gw.auth('bob') })).post(getDataMessage(6)));
    note('carol', await gw.request({ member: 'carol', body: rpc(7, 'tools/list') }));
    note('wrong token', await gw.request({ headers: { Authorization: `Bearer ${WRONG_TOKEN}` }, body: rpc(8, 'tools/list') }));
    note('no token', await gw.request({ body: rpc(9, 'tools/list') }));
    note('bad json', await gw.request({ member: 'alice', body: '{"jsonrpc": "2.0", "id": ' }));
    note('404', await gw.request({ method: 'GET', path: '/elsewhere', member: 'alice' }));
    // alice's GET stream, which she closes (as every GET stream ends), and a POST stream she
    // leaves while its getData is held.
    const get = await openStream(gw.url, { method: 'GET', headers: { ...alice.headers(), Accept: 'text/event-stream' }, ca: gw.ca });
    responses.push(Object.assign({ headers: get.headers }, { what: 'GET stream' }));
    await waitFor(async () => (await fake.requests()).some((r) => r.method === 'GET'), { message: 'the GET stream upstream' });
    get.close();
    await fake.hold();
    const held = await alice.stream(getDataMessage(10));
    responses.push(Object.assign({ headers: held.headers }, { what: 'left stream' }));
    await held.nextEvent();
    held.close();
    await waitFor(async () => (await fake.events()).filter((e) => e.type === 'response-closed-early').length === 2, { message: 'both streams closed upstream' });
    await fake.release();
    note('delete', await gw.request({ method: 'DELETE', headers: { ...alice.headers() }, member: 'alice' }));
    // A request target with a quote and a backslash in its path, on a raw connection.
    const raw = await rawConnect(gw.port, { ca: gw.ca });
    raw.socket.write('GET /a"b\\c HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    await raw.closed;
    // A reload logs too (and its problems): a broken file, then the good one again.
    const good = readFileSync(gw.configFile, 'utf8');
    writeFileSync(gw.configFile, JSON.stringify({ ...gw.config, bogus: 1 }));
    let mark = gw.stderr().length;
    gw.signal('SIGHUP');
    await gw.waitForLog(/kept the running config/, { since: mark });
    writeFileSync(gw.configFile, good);
    mark = gw.stderr().length;
    gw.signal('SIGHUP');
    await gw.waitForLog(/config applied/, { since: mark });
    await waitFor(() => /"path":"\/a\\"b/.test(gw.stderr()), { message: 'the access line of the odd path' });
  });

  it('every line on stderr is one JSON object with time, level and msg (start-up lines included)', () => {
    const lines = jsonLines(gw.stderr(), 'stderr');
    assert.ok(lines.length > responses.length, `${lines.length} lines`);
    for (const l of lines) {
      assert.match(String(l.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, JSON.stringify(l));
      assert.ok(['debug', 'info', 'warn', 'error'].includes(l.level), JSON.stringify(l));
      assert.equal(typeof l.msg, 'string', JSON.stringify(l));
    }
  });

  it('one access line per request, with its id, member, peer, method, path, rpc, tool, status, bytes, durations and cache outcome', () => {
    // The lines that are JSON (the start-up check above covers the others).
    const lines = gw.stderr().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    const access = lines.filter((l) => l.msg === 'access');
    for (const a of access) {
      assert.deepEqual(Object.keys(a), ACCESS_FIELDS, `fields of ${JSON.stringify(a)}`);
      assert.match(a.req, /^[0-9a-f]{16}$/, JSON.stringify(a));
      assert.equal(a.peer, '127.0.0.1');
      for (const k of ['status', 'bytes', 'ms', 'upstream_ms']) assert.ok(Number.isInteger(a[k]), `${k} of ${JSON.stringify(a)}`);
      assert.ok(a.ms >= 0 && a.bytes >= 0 && a.upstream_ms >= -1, JSON.stringify(a));
      assert.ok(a.member === null || ['alice', 'bob', 'carol'].includes(a.member), JSON.stringify(a));
      assert.ok([null, 'hit', 'miss'].includes(a.cache), JSON.stringify(a));
    }
    const byReq = (res) => {
      const id = res.headers['x-request-id'];
      assert.ok(id, `X-Request-Id of ${res.what}: ${JSON.stringify(res.headers)}`);
      const found = access.filter((a) => a.req === id);
      assert.equal(found.length, 1, `one access line for ${res.what ?? 'initialize'} (${id}):\n${access.map((a) => JSON.stringify(a)).join('\n')}`);
      return found[0];
    };
    const find = (what) => byReq(responses.find((r) => r.what === what));
    assert.deepEqual(pick(byReq(responses[0])), { member: 'alice', method: 'POST', path: '/mcp', rpc: 'initialize', tool: null, status: 200, cache: null });
    assert.deepEqual(pick(find('tools/list')), { member: 'alice', method: 'POST', path: '/mcp', rpc: 'tools/list', tool: null, status: 200, cache: 'miss' });
    assert.deepEqual(pick(find('tools/list hit')), { member: 'alice', method: 'POST', path: '/mcp', rpc: 'tools/list', tool: null, status: 200, cache: 'hit' });
    assert.equal(find('tools/list hit').upstream_ms, -1, 'a hit never asked Omni');
    const gd = find('getData');
    assert.deepEqual(pick(gd), { member: 'alice', method: 'POST', path: '/mcp', rpc: 'tools/call', tool: 'getData', status: 200, cache: null });
    assert.ok(gd.upstream_ms >= 0 && gd.upstream_ms <= gd.ms, JSON.stringify(gd));
    assert.ok(gd.bytes > 100, `bytes of getData's answer: ${gd.bytes}`);
    assert.equal(find('odd tool').tool, 'get"Da\\ta\n\u0001', 'a client-chosen tool name survives JSON escaping');
    assert.equal(find('bob getData').member, 'bob');
    assert.equal(find('carol').member, 'carol');
    // The body of a request without a valid token is never read: rpc is the HTTP method.
    assert.deepEqual(pick(find('wrong token')), { member: null, method: 'POST', path: '/mcp', rpc: 'POST', tool: null, status: 401, cache: null });
    assert.equal(find('no token').status, 401);
    assert.equal(find('bad json').status, 400);
    assert.deepEqual(pick(find('404')), { member: null, method: 'GET', path: '/elsewhere', rpc: 'GET', tool: null, status: 404, cache: null });
    assert.equal(find('delete').method, 'DELETE');
    assert.ok(access.some((a) => a.path === '/a"b\\c' && a.status === 404), `the odd path, escaped and read back: ${access.map((a) => a.path).join(' ')}`);
  });

  it('a stream the client closes (alice\'s GET stream; a POST stream left while held) also gets its one access line', async () => {
    const accessOf = (what) => {
      const id = responses.find((r) => r.what === what).headers['x-request-id'];
      return gw.stderr().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).filter((a) => a.msg === 'access' && a.req === id);
    };
    for (const what of ['GET stream', 'left stream']) {
      const found = await waitFor(() => accessOf(what).length > 0 && accessOf(what), { timeoutMs: 3000, message: `the access line of alice's ${what}` }).catch(() => []);
      const id = responses.find((r) => r.what === what).headers['x-request-id'];
      assert.equal(found.length, 1, `one access line for alice's ${what} (req ${id}); its lines:\n${gw.stderr().split('\n').filter((l) => l.includes(id)).join('\n')}`);
      assert.equal(found[0].member, 'alice');
      assert.equal(found[0].status, 200);
      // The left POST stream had sent its first event ("getData started"); the GET stream maybe nothing.
      if (what === 'left stream') assert.ok(found[0].bytes > 0, `bytes sent before the close: ${JSON.stringify(found[0])}`);
    }
  });

  it('no line holds a member token, the wrong token, a PAT, the org key or a Bearer credential', () => {
    const text = gw.stderr();
    for (const [name, value] of Object.entries({ ...env.secrets, ...Object.fromEntries(Object.entries(gw.tokens).map(([m, t]) => [`token of ${m}`, t])) })) {
      if (value && value.length >= 8) assert.equal(text.includes(value), false, `${name} in the log`);
    }
    assert.doesNotMatch(text, /Bearer/i);
  });
});

/** Just the fields compared as a whole. */
function pick(a) {
  return { member: a.member, method: a.method, path: a.path, rpc: a.rpc, tool: a.tool, status: a.status, cache: a.cache };
}

describe('log.file and SIGUSR1', () => {
  it('after the file is renamed, SIGUSR1 makes the next lines go to a new file at the configured path', async () => {
    const logFile = join(env.dir, 'gateway.log');
    const rotated = `${logFile}.1`;
    const gw = await startGatewayLoggingTo(env, { upstreamUrl: fake.mcpUrl, logFile, config: { log: { format: 'json' } } });
    gw.alsoLogsTo(rotated);
    const reqLine = (file, res) => {
      const id = res.headers['x-request-id'];
      return (existsSync(file) ? readFileSync(file, 'utf8') : '').split('\n').filter((l) => l.includes(`"req":"${id}"`));
    };
    const list = (id) => gw.request({ member: 'alice', body: initializeMessage(id) });

    const first = await list(1);
    assert.equal(first.status, 200, first.body);
    await waitFor(() => reqLine(logFile, first).length === 1, { message: 'the first access line in the log file' });

    // logrotate's rename: the gateway still writes to the same (renamed) file until told.
    renameSync(logFile, rotated);
    const second = await list(2);
    await waitFor(() => reqLine(rotated, second).length === 1, { message: 'the access line before SIGUSR1 in the renamed file' });
    assert.equal(existsSync(logFile), false, 'nothing recreated the file before SIGUSR1');

    gw.signal('SIGUSR1');
    await waitFor(() => existsSync(logFile), { message: 'a new file at the configured path after SIGUSR1' });
    const third = await list(3);
    await waitFor(() => reqLine(logFile, third).length === 1, { message: 'the access line after SIGUSR1 in the new file' });
    assert.equal(reqLine(rotated, third).length, 0, 'the renamed file got no line after SIGUSR1');
    assert.equal(reqLine(logFile, second).length, 0);
    // Every line of both files is JSON, and none of the gateway's log lines went to stderr.
    jsonLines(readFileSync(rotated, 'utf8'), rotated);
    jsonLines(readFileSync(logFile, 'utf8'), logFile);
    assert.doesNotMatch(gw.processStderr(), /access|listening on/, `stderr: ${gw.processStderr()}`);
    // The org key and PATs appear nowhere (cleanup checks both files too).
    assert.equal(readFileSync(rotated, 'utf8').includes(OMNI.users.alice.pat), false);
  });
});
