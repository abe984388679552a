// Interoperability: @modelcontextprotocol/server-everything (the MCP reference server, 2025 session
// era, streamable HTTP) as the gateway's upstream, driven by the official SDK 1.x client
// (Client + StreamableHTTPClientTransport). Every scenario runs twice, straight to the server and
// through the gateway, and the two outcomes must be equal; the server's own record of what it
// received (tests/interop/recorder.mjs) shows that the gateway's traffic reached it.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CallToolResultSchema, CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema, LoggingMessageNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { TestEnv, waitFor, request } from './lib/harness.mjs';
import {
  EVERYTHING_SCRIPT, packageVersion, recordedMessages, routeFetch, routes, startRecordedServer, viaGateway, waitForRequests,
} from './lib/interop.mjs';

const env = new TestEnv('interop-everything');
let server;
let gw; // cache off: every request reaches the server
let gwCached; // cache on (default TTLs), topic tools off: tools/list hits are served by the gateway

before(async () => {
  server = await startRecordedServer(env, { script: EVERYTHING_SCRIPT(), args: ['streamableHttp'], name: 'server-everything' });
  gw = await env.startGateway({ upstreamUrl: server.mcpUrl, config: { cache: { enabled: false } }, name: 'gw-nocache' });
  gwCached = await env.startGateway({ upstreamUrl: server.mcpUrl, config: { cache: { enabled: true, topic_tools: false } }, name: 'gw-cache' });
  console.log(`# @modelcontextprotocol/server-everything ${packageVersion('@modelcontextprotocol/server-everything')}, @modelcontextprotocol/sdk ${packageVersion('@modelcontextprotocol/sdk')}`);
});
after(() => env.cleanup());
beforeEach(() => server.reset());

/**
 * The SDK 1.x client on `route`. capabilities: what the client declares; handlers: [schema, fn]
 * pairs for server-to-client requests; fetchWrap(fetch) may wrap the transport's fetch.
 * Resolves to { client, transport, logs, errors, close() }.
 */
async function connect(route, { capabilities = {}, handlers = [], fetchWrap, reconnectionOptions } = {}) {
  const fetch = routeFetch(route);
  const transport = new StreamableHTTPClientTransport(new URL(route.url), {
    fetch: fetchWrap ? fetchWrap(fetch) : fetch,
    requestInit: { headers: { ...route.headers } },
    reconnectionOptions: reconnectionOptions ?? { maxRetries: 0, initialReconnectionDelay: 1000, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1 },
  });
  const client = new Client({ name: 'interop-sdk1', version: '1.0.0' }, { capabilities });
  const logs = [];
  const errors = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => { logs.push(n.params); });
  for (const [schema, fn] of handlers) client.setRequestHandler(schema, fn);
  client.onerror = (e) => { errors.push(e); };
  await client.connect(transport);
  return {
    client,
    transport,
    logs,
    errors,
    async close() {
      try { await client.close(); } finally { fetch.destroy(); }
    },
  };
}

/** Runs scenario(route) directly and through the gateway; resolves to { direct, gateway }. */
async function both(scenario, gateway = gw) {
  const out = {};
  for (const route of routes(server, gateway)) out[route.name] = await scenario(route);
  if (process.env.INTEROP_DEBUG) console.log(JSON.stringify(out, null, 1).slice(0, 3000));
  return out;
}

/** The JSON-RPC methods (requests and notifications) the server received from one side, in order. */
async function methodsReceived(fromGateway) {
  const reqs = await server.mcpRequests();
  return reqs.filter((r) => viaGateway(r) === fromGateway && r.method === 'POST')
    .flatMap((r) => recordedMessages(r).map((m) => m.method ?? 'response'));
}

describe('server-everything through the gateway, SDK 1.x client', () => {
  it('tools, resources and prompts: the same answers as directly, and every request reached the server', async () => {
    const { direct, gateway } = await both(async (route) => {
      const c = await connect(route);
      try {
        const { client } = c;
        const out = {
          protocolVersion: c.transport.protocolVersion,
          serverVersion: client.getServerVersion(),
          capabilities: client.getServerCapabilities(),
          instructions: client.getInstructions(),
          tools: await client.listTools(),
          echo: await client.callTool({ name: 'echo', arguments: { message: 'héllo → wörld' } }),
          sum: await client.callTool({ name: 'get-sum', arguments: { a: 19, b: 23 } }),
          image: await client.callTool({ name: 'get-tiny-image', arguments: {} }),
          badArgs: await client.callTool({ name: 'get-sum', arguments: { a: 'x' } }),
          resources: await client.listResources(),
          templates: await client.listResourceTemplates(),
          prompts: await client.listPrompts(),
          simplePrompt: await client.getPrompt({ name: 'simple-prompt' }),
          argsPrompt: await client.getPrompt({ name: 'args-prompt', arguments: { city: 'Zürich', state: 'ZH' } }),
        };
        const doc = out.resources.resources.find((r) => r.uri.startsWith('demo://resource/static/document/'));
        assert.ok(doc, `a static document resource in ${JSON.stringify(out.resources)}`);
        out.read = await client.readResource({ uri: doc.uri });
        out.ping = await client.ping();
        return out;
      } finally {
        await c.close();
      }
    });
    assert.equal(direct.protocolVersion, '2025-11-25');
    assert.ok(direct.tools.tools.some((t) => t.name === 'echo'), 'the server offers echo');
    assert.deepEqual(direct.echo.content, [{ type: 'text', text: 'Echo: héllo → wörld' }]);
    assert.equal(direct.badArgs.isError, true, 'get-sum with a string is a tool error');
    assert.deepEqual(gateway, direct, 'every answer through the gateway equals the direct one');

    const direct_ = await methodsReceived(false);
    const via = await methodsReceived(true);
    assert.ok(via.includes('tools/call') && via.includes('resources/read') && via.includes('prompts/get'), `server received ${via}`);
    assert.deepEqual(via, direct_, 'the server received the same JSON-RPC methods in the same order through the gateway');
    const gwReqs = (await server.mcpRequests()).filter(viaGateway);
    for (const r of gwReqs) {
      assert.equal(r.headers.host, new URL(server.origin).host, 'Host rewritten to the upstream authority');
      assert.ok(!String(r.headers.authorization ?? '').includes(gw.tokens.alice), 'the member token never reaches the server');
    }
  });

  it('progress notifications of a long-running tool arrive, in order, before its result', async () => {
    const { direct, gateway } = await both(async (route) => {
      const c = await connect(route);
      try {
        const progress = [];
        const result = await c.client.callTool(
          { name: 'trigger-long-running-operation', arguments: { duration: 0.8, steps: 4 } },
          CallToolResultSchema,
          { onprogress: (p) => progress.push(p) },
        );
        return { progress, result };
      } finally {
        await c.close();
      }
    });
    assert.deepEqual(direct.progress.map((p) => p.progress), [1, 2, 3, 4]);
    assert.deepEqual(gateway, direct);
    const calls = (await server.mcpRequests()).filter((r) => viaGateway(r) && recordedMessages(r).some((m) => m.method === 'tools/call'));
    assert.equal(calls.length, 1);
    assert.ok(recordedMessages(calls[0])[0].params._meta?.progressToken !== undefined, 'the progress token reached the server');
    assert.match(String(calls[0].headers.accept), /text\/event-stream/);
  });

  it('sampling and elicitation requests from the server (on the POST\'s SSE stream) reach the client, and its answers reach the server', async () => {
    const capabilities = { sampling: {}, elicitation: { form: {} } };
    const { direct, gateway } = await both(async (route) => {
      const seen = [];
      const c = await connect(route, {
        capabilities,
        handlers: [
          [CreateMessageRequestSchema, (req) => {
            seen.push({ method: req.method, params: req.params });
            return { model: 'interop-model', role: 'assistant', content: { type: 'text', text: `sampled ${req.params.messages.length} message(s)` }, stopReason: 'endTurn' };
          }],
          [ElicitRequestSchema, (req) => {
            seen.push({ method: req.method, params: req.params });
            return { action: 'accept', content: { name: 'Ada Lovelace', check: true, integer: 7 } };
          }],
        ],
      });
      try {
        const tools = (await c.client.listTools()).tools.map((t) => t.name);
        const sampling = await c.client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'two words', maxTokens: 5 } });
        const elicitation = await c.client.callTool({ name: 'trigger-elicitation-request', arguments: {} });
        return { tools, sampling, elicitation, seen, errors: c.errors.map(String) };
      } finally {
        await c.close();
      }
    });
    assert.ok(direct.tools.includes('trigger-sampling-request') && direct.tools.includes('trigger-elicitation-request'), `conditional tools offered: ${direct.tools}`);
    assert.deepEqual(direct.seen.map((s) => s.method), ['sampling/createMessage', 'elicitation/create']);
    assert.match(direct.sampling.content[0].text, /interop-model/);
    assert.match(JSON.stringify(direct.elicitation), /Ada Lovelace/);
    assert.deepEqual(gateway, direct);

    // What the server received through the gateway: the client's two answers, as JSON-RPC responses.
    const answers = (await server.mcpRequests()).filter(viaGateway).flatMap(recordedMessages).filter((m) => m.method === undefined);
    assert.equal(answers.length, 2, `responses from the client: ${JSON.stringify(answers)}`);
    assert.equal(answers[0].result.model, 'interop-model');
    assert.equal(answers[1].result.action, 'accept');
  });

  it('a server request on the GET stream (roots/list, sent 350 ms after initialized) is not lost', async () => {
    const { direct, gateway } = await both(async (route) => {
      let asked = 0;
      const c = await connect(route, {
        capabilities: { roots: { listChanged: true } },
        handlers: [[ListRootsRequestSchema, () => { asked += 1; return { roots: [{ uri: 'file:///srv/interop', name: 'interop' }] }; }]],
      });
      try {
        // The server asks once, on the standalone GET stream, then logs that the roots arrived.
        await waitFor(() => c.logs.some((l) => /Roots updated/.test(String(l.data))), { timeoutMs: 10000, message: `roots/list answered via ${route.name}` });
        return { asked, logs: c.logs.filter((l) => /Roots/.test(String(l.data))) };
      } finally {
        await c.close();
      }
    });
    assert.equal(direct.asked, 1);
    assert.deepEqual(gateway, direct);
    const reqs = (await server.mcpRequests()).filter(viaGateway);
    assert.ok(reqs.some((r) => r.method === 'GET' && /text\/event-stream/.test(String(r.headers.accept))), 'the GET stream reached the server');
    const rootsAnswer = reqs.flatMap(recordedMessages).find((m) => m.result?.roots);
    assert.deepEqual(rootsAnswer?.result.roots, [{ uri: 'file:///srv/interop', name: 'interop' }], 'the server received the roots');
  });

  it('cancellation: aborting a long-running call sends notifications/cancelled, which reaches the server', async () => {
    const { direct, gateway } = await both(async (route) => {
      const c = await connect(route);
      try {
        const ac = new AbortController();
        let first;
        const firstProgress = new Promise((r) => { first = r; });
        const call = c.client.callTool(
          { name: 'trigger-long-running-operation', arguments: { duration: 3, steps: 30 } },
          CallToolResultSchema,
          { signal: ac.signal, onprogress: () => first() },
        );
        const outcome = call.then(() => 'resolved', (e) => `rejected: ${e.name ?? 'Error'}`);
        await firstProgress;
        ac.abort('the user gave up');
        const result = await outcome;
        const gwSide = route.gateway;
        const reqs = await waitForRequests(server,
          (rs) => rs.some((r) => viaGateway(r) === gwSide && recordedMessages(r).some((m) => m.method === 'notifications/cancelled')),
          `notifications/cancelled at the server (${route.name})`);
        const mine = reqs.filter((r) => viaGateway(r) === gwSide);
        const callId = mine.flatMap(recordedMessages).find((m) => m.method === 'tools/call').id;
        const cancel = mine.find((r) => recordedMessages(r).some((m) => m.method === 'notifications/cancelled'));
        return {
          result,
          cancelled: recordedMessages(cancel)[0].params,
          callId,
          cancelStatus: await waitFor(async () => (await server.mcpRequests()).find((r) => r.seq === cancel.seq)?.status, { message: 'the cancel POST answered' }),
        };
      } finally {
        await c.close();
      }
    });
    assert.match(direct.result, /^rejected/);
    assert.equal(direct.cancelled.requestId, direct.callId, 'the cancel names the call');
    assert.equal(direct.cancelStatus, 202);
    assert.deepEqual(gateway, direct);
  });

  it('resumption: after the client drops a POST stream, GET with Last-Event-ID replays what it missed', async () => {
    // The transport's fetch passes the long call's SSE stream on up to the first progress event, then
    // holds back the rest until the result has gone over the wire, and breaks the stream (a network
    // drop). The SDK reconnects on its own with GET + Last-Event-ID = the id of the last event it got;
    // server-everything's event store replays the events after it, and the call completes.
    const { direct, gateway } = await both(async (route) => {
      const dropped = { lastIdSeen: null, heldBack: 0, missedProgress: 0 };
      const fetchWrap = (fetch) => async (url, init = {}) => {
        const res = await fetch(url, init);
        const isLongCall = init.method === 'POST' && String(init.body).includes('trigger-long-running-operation');
        if (!isLongCall || !String(res.headers.get('content-type')).includes('text/event-stream')) return res;
        return new Response(dropAfterFirstProgress(res.body, dropped), { status: res.status, headers: res.headers });
      };
      const c = await connect(route, {
        fetchWrap,
        reconnectionOptions: { maxRetries: 2, initialReconnectionDelay: 10, maxReconnectionDelay: 10, reconnectionDelayGrowFactor: 1 },
      });
      try {
        const progress = [];
        const tokens = [];
        const result = await c.client.callTool(
          { name: 'trigger-long-running-operation', arguments: { duration: 0.4, steps: 4 } },
          CallToolResultSchema,
          { onprogress: (p) => progress.push(p.progress), onresumptiontoken: (t) => tokens.push(t), timeout: 15000 },
        );
        const gwSide = route.gateway;
        const reqs = (await server.mcpRequests()).filter((r) => viaGateway(r) === gwSide);
        const resume = reqs.find((r) => r.method === 'GET' && r.headers['last-event-id'] !== undefined);
        return {
          progress,
          result,
          missedProgress: dropped.missedProgress,
          resumedFrom: resume ? resume.headers['last-event-id'] === dropped.lastIdSeen : 'no GET with Last-Event-ID',
          tokensIncludeDropPoint: tokens.includes(dropped.lastIdSeen),
        };
      } finally {
        await c.close();
      }
    });
    assert.equal(direct.missedProgress, 3, 'progress 2..4 and the result never reached the client on the dropped stream');
    assert.deepEqual(direct.progress, [1, 2, 3, 4], 'progress 2..4 came from the replay');
    assert.equal(direct.resumedFrom, true, 'the server got GET with Last-Event-ID = the last event the client saw');
    assert.deepEqual(gateway, direct);
  });

  it('an unknown session gets server-everything\'s 400 (not 404), byte for byte; DELETE ends a session the same way', async () => {
    const { direct, gateway } = await both(async (route) => {
      const h = { ...route.headers, Accept: 'application/json, text/event-stream', 'Content-Type': 'application/json', 'Mcp-Session-Id': 'no-such-session', 'MCP-Protocol-Version': '2025-11-25' };
      const post = await request(route.url, { method: 'POST', headers: h, body: JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/list' }), ca: route.ca });
      const get = await request(route.url, { method: 'GET', headers: { ...h, Accept: 'text/event-stream' }, ca: route.ca });
      // A real session, ended with DELETE: the next request on it is an unknown session.
      const c = await connect(route);
      const sid = c.transport.sessionId;
      await c.transport.terminateSession();
      const afterDelete = await request(route.url, { method: 'POST', headers: { ...h, 'Mcp-Session-Id': sid }, body: JSON.stringify({ jsonrpc: '2.0', id: 6, method: 'tools/list' }), ca: route.ca });
      await c.close();
      const pick = (r) => ({ status: r.status, type: r.headers['content-type'], body: r.body });
      return { post: pick(post), get: pick(get), afterDelete: pick(afterDelete) };
    });
    assert.equal(direct.post.status, 400);
    assert.equal(direct.afterDelete.status, 400);
    assert.deepEqual(gateway, direct);
    const deletes = (await server.mcpRequests()).filter((r) => viaGateway(r) && r.method === 'DELETE');
    assert.equal(deletes.length, 1, 'the DELETE reached the server');
  });

  it('with the gateway cache on, a second session\'s tools/list is a hit: same list, no upstream call', async () => {
    const lists = [];
    for (const route of [routes(server, gw)[0], routes(server, gwCached)[1], routes(server, gwCached)[1]]) {
      const c = await connect(route);
      try { lists.push(await c.client.listTools()); } finally { await c.close(); }
    }
    assert.deepEqual(lists[1], lists[0], 'the first list through the caching gateway equals the direct one');
    assert.deepEqual(lists[2], lists[0], 'the cached list equals the direct one');
    const toolsLists = (await server.mcpRequests()).filter(viaGateway).flatMap(recordedMessages).filter((m) => m.method === 'tools/list');
    assert.equal(toolsLists.length, 1, 'one tools/list reached the server, the second was served from the cache');
    await gwCached.waitForLog(/cache=hit/);
  });

  // server-everything offers trigger-sampling-request / trigger-elicitation-request only to a
  // session whose client declared sampling / elicitation. The gateway's cache keys tools/list by
  // the member's identity, not by session, so a second session of the same member is served the
  // first one's list. Kept as a TODO (reported, not failing `make test`): see the gateway's README,
  // Cache; Omni's own tool list does not depend on client capabilities.
  it('with the cache on, each session gets the tools/list its own capabilities give it, as directly', {
    todo: 'gateway bug with capability-dependent servers: cached tools/list is keyed by member, not by session/capabilities',
  }, async () => {
    const gwCaps = await env.startGateway({ upstreamUrl: server.mcpUrl, config: { cache: { enabled: true, topic_tools: false } }, name: 'gw-cache-caps' });
    const { direct, gateway } = await both(async (route) => {
      const names = {};
      for (const [label, capabilities] of [['with sampling+elicitation', { sampling: {}, elicitation: {} }], ['without', {}]]) {
        const c = await connect(route, { capabilities });
        try { names[label] = (await c.client.listTools()).tools.map((t) => t.name).sort(); } finally { await c.close(); }
      }
      return names;
    }, gwCaps);
    assert.ok(!direct.without.includes('trigger-sampling-request'), 'directly, a client without sampling is not offered the sampling tool');
    assert.deepEqual(gateway, direct);
  });
});

/**
 * A ReadableStream that passes `source` (SSE bytes) on event by event up to and including the
 * first event carrying notifications/progress, then keeps the rest back until a JSON-RPC result
 * has arrived in it (or the source ended), and then errors (the connection dropped). Notes the
 * id of the last event passed on in dropped.lastIdSeen, how many bytes were kept back, and how many
 * progress notifications were among them (dropped.missedProgress).
 */
function dropAfterFirstProgress(source, dropped) {
  const reader = source.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let passing = true;
  let held = '';
  let dropNow = false;
  const drop = async (controller) => {
    dropped.missedProgress = (held.match(/notifications\/progress/g) ?? []).length;
    await reader.cancel().catch(() => {});
    controller.error(new TypeError('interop test: connection dropped'));
  };
  return new ReadableStream({
    async pull(controller) {
      if (dropNow) {
        await drop(controller);
        return;
      }
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          controller.error(new TypeError('interop test: connection dropped'));
          return;
        }
        const text = decoder.decode(value, { stream: true });
        if (!passing) {
          held += text;
          dropped.heldBack += text.length;
          if (/"result"\s*:/.test(held)) {
            await drop(controller);
            return;
          }
          continue;
        }
        buf += text;
        let out = '';
        let idx;
        while (passing && (idx = buf.search(/\r?\n\r?\n/)) >= 0) {
          const m = buf.slice(idx).match(/^\r?\n\r?\n/);
          const block = buf.slice(0, idx + m[0].length);
          buf = buf.slice(idx + m[0].length);
          out += block;
          const id = block.match(/^id: ?(.*)$/m);
          if (id) dropped.lastIdSeen = id[1].trim();
          if (block.includes('notifications/progress')) {
            passing = false;
            held = buf;
            dropped.heldBack += buf.length;
            buf = '';
          }
        }
        if (out) {
          controller.enqueue(new TextEncoder().encode(out));
          // The result came in the same read: drop on the next pull (erroring now would discard `out`).
          if (!passing && /"result"\s*:/.test(held)) dropNow = true;
          return;
        }
      }
    },
    cancel(reason) { return reader.cancel(reason); },
  });
}
