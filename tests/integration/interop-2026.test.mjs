// Interoperability, protocol revision 2026-07-28: a server on the official SDK 2.x
// (@modelcontextprotocol/server's createMcpHandler, tests/interop/server-2026.mjs) and the SDK 2.x
// client (@modelcontextprotocol/client, versionNegotiation 'auto': server/discover first, 2025
// fallback) through the gateway, compared with the same client straight to the server. Also the
// era detection across the two eras: a 2026 client against a 2025 server (SDK 1.x,
// tests/interop/server-2025.mjs) and a 2025 client against a 2026-only endpoint, where the
// client decides from the body of a 400/404, which must come through byte for byte.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Client as Client1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as StreamableHTTPClientTransport1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { TestEnv, waitFor, request } from './lib/harness.mjs';
import {
  INTEROP_DIR, packageVersion, recordedMessages, routeFetch, routes, startRecordedServer, viaGateway, waitForRequests,
} from './lib/interop.mjs';

const env = new TestEnv('interop-2026');
let s26; // 2026-07-28 server (SDK 2.x): /mcp with the 2025 stateless fallback, /strict without
let s25; // 2025 server (SDK 1.x, sessions)
let gw26;
let gwStrict;
let gw25;

const noCache = { cache: { enabled: false } };

before(async () => {
  s26 = await startRecordedServer(env, { script: join(INTEROP_DIR, 'server-2026.mjs'), name: 'server-2026' });
  s25 = await startRecordedServer(env, { script: join(INTEROP_DIR, 'server-2025.mjs'), name: 'server-2025' });
  gw26 = await env.startGateway({ upstreamUrl: s26.mcpUrl, config: noCache, name: 'gw-2026' });
  gwStrict = await env.startGateway({ upstreamUrl: `${s26.origin}/strict`, config: noCache, name: 'gw-2026-strict' });
  gw25 = await env.startGateway({ upstreamUrl: s25.mcpUrl, config: noCache, name: 'gw-2025' });
  console.log(`# @modelcontextprotocol/server ${packageVersion('@modelcontextprotocol/server')}, client ${packageVersion('@modelcontextprotocol/client')}, node ${packageVersion('@modelcontextprotocol/node')}, sdk ${packageVersion('@modelcontextprotocol/sdk')}; Node ${process.version}`);
});
after(() => env.cleanup());
beforeEach(async () => { await s26.reset(); await s25.reset(); });

/** The SDK 2.x client on route, negotiating ('auto'). Resolves to { client, transport, notes, errors, close() }. */
async function connect(route, { mode = 'auto' } = {}) {
  const fetch = routeFetch(route);
  const transport = new StreamableHTTPClientTransport(new URL(route.url), { fetch, requestInit: { headers: { ...route.headers } } });
  const client = new Client({ name: 'interop-sdk2', version: '2.0.0' }, { versionNegotiation: { mode } });
  const notes = [];
  const errors = [];
  client.onerror = (e) => { errors.push(e); };
  client.setNotificationHandler('notifications/tools/list_changed', (n) => { notes.push(n); });
  await client.connect(transport);
  return {
    client,
    transport,
    notes,
    errors,
    async close() {
      try { await client.close(); } finally { fetch.destroy(); }
    },
  };
}

async function both(server, gw, scenario, opts) {
  const out = {};
  for (const route of routes(server, gw, opts)) out[route.name] = await scenario(route);
  if (process.env.INTEROP_DEBUG) console.log(JSON.stringify(out, null, 1).slice(0, 4000));
  return out;
}

/** The MCP request headers of a recorded request: MCP-Protocol-Version, Mcp-Method, Mcp-Name, Mcp-Param-*, as sent (name case kept). */
function mcpHeaders(rec) {
  const out = [];
  for (let i = 0; i < rec.rawHeaders.length; i += 2) {
    const k = rec.rawHeaders[i];
    if (/^(mcp-protocol-version|mcp-method|mcp-name|mcp-param-.*)$/i.test(k)) out.push(`${k.toLowerCase()}: ${rec.rawHeaders[i + 1]}`);
  }
  return out.sort();
}

const ENVELOPE = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientInfo': { name: 'interop-raw', version: '1.0.0' },
  'io.modelcontextprotocol/clientCapabilities': {},
};

/** One raw POST on route: status, content type and the exact body. */
async function rawPost(route, message, headers = {}) {
  const res = await request(route.url, {
    method: 'POST',
    headers: { ...route.headers, Accept: 'application/json, text/event-stream', 'Content-Type': 'application/json', ...headers },
    body: typeof message === 'string' ? message : JSON.stringify(message),
    ca: route.ca,
  });
  return { status: res.status, type: res.headers['content-type'], allow: res.headers.allow, body: res.body };
}

describe('2026-07-28 server and client (SDK 2.x) through the gateway', () => {
  it('server/discover, tools, resources and prompts: the same answers, and the same Mcp-* headers reached the server', async () => {
    const { direct, gateway } = await both(s26, gw26, async (route) => {
      const c = await connect(route);
      try {
        const { client } = c;
        return {
          era: client.getProtocolEra(),
          version: client.getNegotiatedProtocolVersion(),
          discover: client.getDiscoverResult(),
          tools: await client.listTools(),
          echo: await client.callTool({ name: 'echo', arguments: { text: 'über → 2026' } }),
          forecastAscii: await client.callTool({ name: 'forecast', arguments: { city: 'Bern', days: 2 } }),
          forecastUtf8: await client.callTool({ name: 'forecast', arguments: { city: 'Zürich', days: 3 } }),
          resources: await client.listResources(),
          read: await client.readResource({ uri: 'interop://greeting' }),
          prompts: await client.listPrompts(),
          prompt: await client.getPrompt({ name: 'haiku', arguments: { topic: 'gateways' } }),
          errors: c.errors.map(String),
        };
      } finally {
        await c.close();
      }
    });
    assert.equal(direct.era, 'modern');
    assert.equal(direct.version, '2026-07-28');
    assert.deepEqual(direct.discover.supportedVersions, ['2026-07-28']);
    assert.deepEqual(direct.forecastUtf8.content, [{ type: 'text', text: 'Zürich: sunny for 3 day(s)' }]);
    assert.deepEqual(gateway, direct);

    const posts = await s26.mcpRequests();
    const headersOf = (fromGw) => posts.filter((r) => viaGateway(r) === fromGw && r.method === 'POST').map((r) => mcpHeaders(r));
    const viaGw = headersOf(true);
    assert.deepEqual(viaGw, headersOf(false), 'the server received the same MCP headers, request by request');
    const flat = viaGw.flat();
    for (const h of ['mcp-method: server/discover', 'mcp-method: tools/call', 'mcp-name: forecast', 'mcp-name: interop://greeting',
      'mcp-name: haiku', 'mcp-param-city: Bern', 'mcp-param-days: 2', 'mcp-param-city: =?base64?WsO8cmljaA==?=', 'mcp-protocol-version: 2026-07-28']) {
      assert.ok(flat.includes(h), `the server received "${h}" through the gateway; it got ${JSON.stringify(viaGw)}`);
    }
  });

  it('an unknown Mcp-Param-* header and a disagreeing one are forwarded; the server\'s answers come back byte for byte', async () => {
    const call = (city) => ({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'forecast', arguments: { city }, _meta: ENVELOPE } });
    const base = { 'MCP-Protocol-Version': '2026-07-28', 'Mcp-Method': 'tools/call', 'Mcp-Name': 'forecast' };
    const { direct, gateway } = await both(s26, gw26, async (route) => ({
      extra: await rawPost(route, call('Basel'), { ...base, 'Mcp-Param-City': 'Basel', 'Mcp-Param-X-Trace-Color': 'teal' }),
      mismatch: await rawPost(route, call('Basel'), { ...base, 'Mcp-Param-City': 'Genf' }),
      missing: await rawPost(route, call('Basel'), base),
    }));
    assert.equal(direct.mismatch.status, 400);
    assert.match(direct.mismatch.body, /-32020/);
    assert.deepEqual(gateway, direct);
    const gwReqs = (await s26.mcpRequests()).filter(viaGateway);
    assert.equal(gwReqs.length, 3, 'all three reached the server');
    assert.equal(gwReqs[0].headers['mcp-param-x-trace-color'], 'teal');
    assert.equal(gwReqs[1].headers['mcp-param-city'], 'Genf');
  });

  it('subscriptions/listen: the long-lived SSE response to a POST carries the ack and a change notification; closing it ends the request at the server', async () => {
    const { direct, gateway } = await both(s26, gw26, async (route) => {
      const c = await connect(route);
      try {
        const sub = await c.client.listen({ toolsListChanged: true });
        const notify = await request(`${s26.origin}/_notify/tools-changed`, { method: 'POST' });
        assert.equal(notify.status, 200);
        await waitFor(() => c.notes.length > 0, { message: `tools/list_changed via ${route.name}` });
        const side = route.gateway;
        const listen = (await s26.mcpRequests()).find((r) => viaGateway(r) === side && recordedMessages(r).some((m) => m.method === 'subscriptions/listen'));
        const openWhileSubscribed = !listen.finished && !listen.closedEarly;
        await sub.close();
        const closedHow = await sub.closed;
        const reqs = await waitForRequests(s26, (rs) => rs.some((r) => r.seq === listen.seq && r.closedEarly)
          && rs.some((r) => viaGateway(r) === side && recordedMessages(r).some((m) => m.method === 'notifications/cancelled')),
        `the listen request ended at the server (${route.name})`);
        const ended = reqs.find((r) => r.seq === listen.seq);
        return {
          honored: sub.honoredFilter,
          notes: c.notes.map((n) => n.method),
          openWhileSubscribed,
          closedHow,
          listenHeaders: mcpHeaders(listen),
          responseType: ended.headers.accept,
          serverSentAck: /notifications\/subscriptions\/acknowledged/.test(ended.response),
          cancelledId: reqs.filter((r) => viaGateway(r) === side).flatMap(recordedMessages).find((m) => m.method === 'notifications/cancelled').params.requestId,
        };
      } finally {
        await c.close();
      }
    });
    assert.deepEqual(direct.honored, { toolsListChanged: true });
    assert.deepEqual(direct.notes, ['notifications/tools/list_changed']);
    assert.equal(direct.openWhileSubscribed, true);
    assert.equal(direct.closedHow, 'local');
    assert.equal(direct.serverSentAck, true);
    assert.deepEqual(gateway, direct);
  });

  it('cancellation by closing the stream: the server sees its request end (mid-stream, and before the response head)', async () => {
    const { direct, gateway } = await both(s26, gw26, async (route) => {
      const c = await connect(route);
      const side = route.gateway ? 'gw' : 'direct';
      try {
        const out = {};
        for (const when of ['mid-stream', 'before-head']) {
          const label = `${side}-${when}`;
          const ac = new AbortController();
          let first;
          const gotProgress = new Promise((r) => { first = r; });
          const opts = { signal: ac.signal, timeout: 20000 };
          if (when === 'mid-stream') opts.onprogress = () => first();
          const call = c.client.callTool({ name: 'wait-for-cancel', arguments: { label } }, opts);
          const outcome = call.then(() => 'resolved', (e) => `rejected: ${e.name}`);
          if (when === 'mid-stream') await gotProgress;
          else await waitFor(async () => (await s26.events()).some((e) => e.type === 'started' && e.label === label), { message: `${label} started` });
          ac.abort();
          const result = await outcome;
          const events = await waitFor(async () => {
            const evs = (await s26.events()).filter((e) => e.label === label);
            return evs.some((e) => e.type === 'aborted') ? evs : null;
          }, { timeoutMs: 5000, message: `the server's handler saw ${label} cancelled` });
          const rec = (await s26.mcpRequests()).find((r) => recordedMessages(r).some((m) => m.params?.arguments?.label === label));
          out[when] = {
            result,
            handler: events.map((e) => e.type),
            requestEndedEarly: rec.closedEarly,
            streamStarted: rec.status,
            notificationsCancelled: (await s26.mcpRequests()).flatMap(recordedMessages).filter((m) => m.method === 'notifications/cancelled' && m.params?.requestId === recordedMessages(rec)[0].id && viaGateway(rec) === route.gateway).length,
          };
        }
        return out;
      } finally {
        await c.close();
      }
    });
    assert.deepEqual(direct['mid-stream'], { result: 'rejected: SdkError', handler: ['started', 'aborted'], requestEndedEarly: true, streamStarted: 200, notificationsCancelled: 0 });
    assert.deepEqual(direct['before-head'], { result: 'rejected: SdkError', handler: ['started', 'aborted'], requestEndedEarly: true, streamStarted: null, notificationsCancelled: 0 });
    assert.deepEqual(gateway, direct);
  });
});

describe('era detection: error bodies pass through unchanged', () => {
  it('a 2026 client against a 2025 server: the server/discover probe gets the same 400 body, and the client falls back to 2025', async () => {
    const probe = { jsonrpc: '2.0', id: 'server-discover-probe-1', method: 'server/discover', params: { _meta: ENVELOPE } };
    const { direct, gateway } = await both(s25, gw25, async (route) => {
      const raw = await rawPost(route, probe, { 'MCP-Protocol-Version': '2026-07-28', 'Mcp-Method': 'server/discover' });
      const c = await connect(route);
      try {
        return { raw, era: c.client.getProtocolEra(), version: c.client.getNegotiatedProtocolVersion(), tools: (await c.client.listTools()).tools.map((t) => t.name) };
      } finally {
        await c.close();
      }
    });
    assert.equal(direct.raw.status, 400);
    assert.equal(direct.era, 'legacy');
    assert.deepEqual(gateway, direct);
    const probes = (await s25.mcpRequests()).filter((r) => viaGateway(r) && recordedMessages(r).some((m) => m.method === 'server/discover'));
    assert.equal(probes.length, 2, 'both probes (raw and the client\'s) reached the 2025 server');
  });

  it('a 2025 client against a 2026-only endpoint gets the same -32022 body (supported versions); an unknown version too', async () => {
    const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'interop-raw', version: '1.0.0' } } };
    const future = { jsonrpc: '2.0', id: 2, method: 'server/discover', params: { _meta: { ...ENVELOPE, 'io.modelcontextprotocol/protocolVersion': '2099-01-01' } } };
    const { direct, gateway } = await both(s26, gwStrict, async (route) => ({
      init: await rawPost(route, init),
      future: await rawPost(route, future, { 'MCP-Protocol-Version': '2099-01-01', 'Mcp-Method': 'server/discover' }),
      get: await request(route.url, { method: 'GET', headers: { ...route.headers, Accept: 'text/event-stream' }, ca: route.ca }).then((r) => ({ status: r.status, allow: r.headers.allow, body: r.body })),
    }), { path: '/strict' });
    assert.equal(direct.init.status, 400);
    assert.match(direct.init.body, /"code":-32022/);
    assert.match(direct.init.body, /"supported":\["2026-07-28"\]/);
    assert.deepEqual(gateway, direct);
  });

  it('a 2025 client (SDK 1.x) against the 2026 server is served by its stateless 2025 fallback, the same way', async () => {
    const { direct, gateway } = await both(s26, gw26, async (route) => {
      const fetch = routeFetch(route);
      const transport = new StreamableHTTPClientTransport1(new URL(route.url), { fetch, requestInit: { headers: { ...route.headers } } });
      const client = new Client1({ name: 'interop-sdk1', version: '1.0.0' });
      client.onerror = () => {};
      try {
        await client.connect(transport);
        return {
          version: transport.protocolVersion,
          session: transport.sessionId ?? null,
          tools: (await client.listTools()).tools.map((t) => t.name),
          echo: await client.callTool({ name: 'echo', arguments: { text: 'from 2025' } }),
        };
      } finally {
        await client.close();
        fetch.destroy();
      }
    });
    assert.equal(direct.version, '2025-11-25');
    assert.equal(direct.session, null, 'stateless: no session');
    assert.deepEqual(direct.echo.content, [{ type: 'text', text: 'echo: from 2025' }]);
    assert.deepEqual(gateway, direct);
    const gwReqs = (await s26.mcpRequests()).filter(viaGateway);
    assert.ok(gwReqs.some((r) => recordedMessages(r).some((m) => m.method === 'initialize')), 'initialize reached the server');
    const gets = gwReqs.filter((r) => r.method === 'GET');
    assert.ok(gets.every((r) => r.status === 405), 'the GET stream was refused by the server itself (405), as directly');
  });

  it('a 2025 session that the server does not know gets the same 404 body (the client re-initializes on it)', async () => {
    const { direct, gateway } = await both(s25, gw25, async (route) => ({
      post: await rawPost(route, { jsonrpc: '2.0', id: 3, method: 'tools/list' }, { 'Mcp-Session-Id': 'c0ffee00-0000-4000-8000-000000000000', 'MCP-Protocol-Version': '2025-11-25' }),
      noSession: await rawPost(route, { jsonrpc: '2.0', id: 4, method: 'tools/list' }, { 'MCP-Protocol-Version': '2025-11-25' }),
    }));
    assert.equal(direct.post.status, 404);
    assert.equal(direct.noSession.status, 400);
    assert.deepEqual(gateway, direct);
  });
});
