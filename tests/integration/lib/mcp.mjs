// MCP clients for the tests: the official SDK client through the gateway, and a raw session
// (initialize, then hand-made requests) for cases where the test needs the bytes.
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LATEST_PROTOCOL_VERSION, LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { openStream, parseSse, request, tlsFetch } from './http.mjs';
import { MCP_ACCEPT } from './harness.mjs';

export { LATEST_PROTOCOL_VERSION };

/**
 * Connects the official SDK client to the gateway as `member`, sending `headers` on every
 * request on top of the member's Authorization. onLogging receives logging notifications.
 * Resolves to { client, transport, logs (array), close() }.
 */
export async function sdkConnect(gw, member, { headers = {}, token } = {}) {
  const fetch = tlsFetch(gw.ca);
  const transport = new StreamableHTTPClientTransport(new URL(gw.url), {
    fetch,
    requestInit: { headers: { Authorization: `Bearer ${token ?? gw.tokens[member]}`, ...headers } },
    reconnectionOptions: { maxRetries: 0, initialReconnectionDelay: 1000, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1 },
  });
  const client = new Client({ name: 'omni-gw-itest', version: '1.0.0' });
  const logs = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => { logs.push(n.params); });
  client.onerror = () => {}; // the GET stream ending at close() is not a test failure
  try {
    await client.connect(transport);
  } catch (err) {
    fetch.destroy();
    throw err;
  }
  return {
    client,
    transport,
    logs,
    async close() {
      try { await client.close(); } finally { fetch.destroy(); }
    },
  };
}

/** The JSON object inside a tool result's first text content. */
export function toolJson(result) {
  assert.ok(Array.isArray(result.content) && result.content[0]?.type === 'text', `tool result without text content: ${JSON.stringify(result)}`);
  return JSON.parse(result.content[0].text);
}

export function rpc(id, method, params = {}) {
  return { jsonrpc: '2.0', id, method, params };
}

export function initializeMessage(id = 1, protocolVersion = LATEST_PROTOCOL_VERSION) {
  return rpc(id, 'initialize', { protocolVersion, capabilities: {}, clientInfo: { name: 'omni-gw-itest-raw', version: '1.0.0' } });
}

export function getDataMessage(id, prompt = 'revenue by region', extra = {}) {
  return rpc(id, 'tools/call', { name: 'getData', arguments: { prompt, ...extra } });
}

/**
 * The JSON-RPC message with `id` in a response body, whether it came as application/json or as
 * SSE. Throws with the body if there is none.
 */
export function responseMessage(res, id) {
  const type = String(res.headers['content-type'] ?? '');
  let messages;
  if (type.includes('text/event-stream')) {
    messages = parseSse(res.body.endsWith('\n\n') ? res.body : `${res.body}\n\n`).events.filter((e) => e.data).map((e) => e.json());
  } else {
    const parsed = JSON.parse(res.body);
    messages = Array.isArray(parsed) ? parsed : [parsed];
  }
  const m = messages.find((x) => x.id === id && ('result' in x || 'error' in x));
  assert.ok(m, `no JSON-RPC response with id ${id} in (${res.status}, ${type}): ${res.body}`);
  return m;
}

/**
 * Initializes a session on `url` with raw requests (initialize + notifications/initialized).
 * headers: sent on every request (e.g. the member's Authorization). protocolVersion: the one
 * initialize asks for (default the SDK's latest); later requests carry the negotiated one. Returns
 * { sessionId, protocolVersion, headers(extra), post(message, extra), stream(message, extra) }.
 */
export async function rawSession(url, { ca, headers = {}, protocolVersion: asked } = {}) {
  const base = { Accept: MCP_ACCEPT, 'Content-Type': 'application/json', ...headers };
  const init = await request(url, { method: 'POST', headers: base, body: JSON.stringify(initializeMessage(1, asked)), ca });
  assert.equal(init.status, 200, `initialize through ${url}: ${init.status} ${init.body}`);
  const sessionId = init.headers['mcp-session-id'];
  assert.ok(sessionId, `initialize response carries no Mcp-Session-Id: ${JSON.stringify(init.headers)}`);
  const result = responseMessage(init, 1).result;
  assert.ok(result, `initialize failed: ${init.body}`);
  const protocolVersion = result.protocolVersion;
  const session = {
    sessionId,
    protocolVersion,
    initResponse: init,
    headers: (extra = {}) => ({ ...base, 'Mcp-Session-Id': sessionId, 'MCP-Protocol-Version': protocolVersion, ...extra }),
    post: (message, extra = {}) => request(url, { method: 'POST', headers: session.headers(extra), body: JSON.stringify(message), ca }),
    stream: (message, extra = {}) => openStream(url, { method: 'POST', headers: session.headers(extra), body: JSON.stringify(message), ca }),
  };
  const initialized = await session.post({ jsonrpc: '2.0', method: 'notifications/initialized' });
  assert.equal(initialized.status, 202, `notifications/initialized: ${initialized.status} ${initialized.body}`);
  return session;
}
