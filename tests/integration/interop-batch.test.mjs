// Interoperability, protocol revision 2025-03-26: a client that sends JSON-RPC batch arrays (raw
// HTTP, as 2025-03-26 allows), against a real SDK 1.x server (McpServer +
// StreamableHTTPServerTransport, tests/interop/server-2025.mjs), which still accepts them; once
// with the server answering in SSE and once in JSON. Through the gateway the client gets the same
// responses as directly, and the server receives the same batch.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { TestEnv, request, parseSse } from './lib/harness.mjs';
import { INTEROP_DIR, recordedMessages, routes, startRecordedServer, viaGateway } from './lib/interop.mjs';

const env = new TestEnv('interop-batch');
let server;
const gws = {};

before(async () => {
  server = await startRecordedServer(env, { script: join(INTEROP_DIR, 'server-2025.mjs'), name: 'server-2025' });
  for (const path of ['/mcp', '/mcp-json']) {
    gws[path] = await env.startGateway({ upstreamUrl: `${server.origin}${path}`, config: { cache: { enabled: false } }, name: `gw${path.replace('/', '-')}` });
  }
});
after(() => env.cleanup());
beforeEach(() => server.reset());

/** The JSON-RPC messages of a response (JSON object or array, or SSE events), sorted by id. */
function messagesOf(res) {
  if (!res.body) return [];
  const type = String(res.headers['content-type'] ?? '');
  let msgs;
  if (type.includes('text/event-stream')) msgs = parseSse(res.body.endsWith('\n\n') ? res.body : `${res.body}\n\n`).events.filter((e) => e.data).map((e) => e.json());
  else {
    const parsed = JSON.parse(res.body);
    msgs = Array.isArray(parsed) ? parsed : [parsed];
  }
  return msgs.sort((a, b) => String(a.id).localeCompare(String(b.id)));
}

/** A 2025-03-26 session by hand on route: initialize, initialized, then the batches; DELETE at the end. */
async function batchSession(route) {
  const base = { ...route.headers, Accept: 'application/json, text/event-stream', 'Content-Type': 'application/json' };
  const post = (body, extra = {}) => request(route.url, { method: 'POST', headers: { ...base, ...extra }, body: JSON.stringify(body), ca: route.ca });
  // SSE events come in the order the server finished the requests, which may vary; a JSON body is
  // one array in request order, compared byte for byte.
  const pick = (res) => ({
    status: res.status,
    type: res.headers['content-type'] ?? null,
    bodyEmpty: res.body === '',
    messages: messagesOf(res),
    jsonBody: String(res.headers['content-type']).includes('application/json') ? res.body : undefined,
  });

  const init = await post({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'interop-batch', version: '1.0.0' } } });
  const sid = init.headers['mcp-session-id'];
  assert.ok(sid, `${route.name}: initialize gave a session: ${init.status} ${init.body}`);
  const s = { 'Mcp-Session-Id': sid }; // 2025-03-26 has no MCP-Protocol-Version header
  const out = { init: pick(init) };
  out.initialized = pick(await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, s));
  out.batch = pick(await post([
    { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'add', arguments: { a: 40, b: 2 } } },
    { jsonrpc: '2.0', id: 'three', method: 'resources/read', params: { uri: 'interop://motd' } },
    { jsonrpc: '2.0', method: 'notifications/roots/list_changed' },
  ], s));
  out.mixed = pick(await post([
    { jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'echo', arguments: { text: 'ça va' } } },
    { jsonrpc: '2.0', id: 5, method: 'no/such/method' },
    { jsonrpc: '2.0', id: 6, method: 'prompts/get', params: { name: 'greet', arguments: { name: 'Grace' } } },
  ], s));
  out.notificationsOnly = pick(await post([
    { jsonrpc: '2.0', method: 'notifications/roots/list_changed' },
    { jsonrpc: '2.0', method: 'notifications/roots/list_changed' },
  ], s));
  out.delete = (await request(route.url, { method: 'DELETE', headers: { ...route.headers, ...s }, ca: route.ca })).status;
  return out;
}

describe('2025-03-26 batch arrays through the gateway, SDK 1.x server', () => {
  for (const path of ['/mcp', '/mcp-json']) {
    it(`server answering in ${path === '/mcp' ? 'SSE' : 'JSON'}: the same responses as directly, and the server received the same batches`, async () => {
      const out = {};
      for (const route of routes(server, gws[path], { path })) out[route.name] = await batchSession(route);
      if (process.env.INTEROP_DEBUG) console.log(JSON.stringify(out, null, 1).slice(0, 5000));
      const { direct, gateway } = out;
      assert.equal(direct.init.messages[0].result.protocolVersion, '2025-03-26');
      assert.equal(direct.batch.status, 200);
      assert.deepEqual(direct.batch.messages.map((m) => m.id), [2, 'three']);
      assert.deepEqual(direct.batch.messages[0].result.content, [{ type: 'text', text: '42' }]);
      assert.deepEqual(direct.mixed.messages.map((m) => m.id), [4, 5, 6]);
      assert.equal(direct.mixed.messages[1].error.code, -32601);
      assert.equal(direct.notificationsOnly.status, 202);
      assert.deepEqual(gateway, direct);

      const reqs = await server.mcpRequests({ path });
      const batches = (fromGw) => reqs.filter((r) => viaGateway(r) === fromGw && Array.isArray(r.json)).map((r) => r.json);
      assert.equal(batches(true).length, 3, 'three batch arrays reached the server through the gateway');
      assert.deepEqual(batches(true), batches(false), 'the server received the same batch arrays, element for element');
      const gwNotifs = reqs.filter(viaGateway).flatMap(recordedMessages).filter((m) => m.method === 'notifications/roots/list_changed');
      assert.equal(gwNotifs.length, 3);
    });
  }
});
