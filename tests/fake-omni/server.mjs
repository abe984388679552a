#!/usr/bin/env node
// Fake Omni upstream for the omni-mcp-gateway tests. See README.md beside this file.
//   node tests/fake-omni/server.mjs [--port 0] [--tls-cert F --tls-key F] [--data F]
//                                   [--user-required-status 403]
import http from 'node:http';
import https from 'node:https';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { Directory } from './directory.mjs';
import { Control, sendJson } from './control.mjs';
import { buildMcpServer } from './tools.mjs';
import { handleRest } from './rest.mjs';

const MCP_PATH = '/mcp/https';
const MAX_BODY_BYTES = 16 * 1024 * 1024;

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    data: { type: 'string', default: fileURLToPath(new URL('./data.json', import.meta.url)) },
    'user-required-status': { type: 'string', default: '403' },
  },
});

const directory = new Directory(JSON.parse(readFileSync(opts.data, 'utf8')));
const control = new Control({ userRequiredStatus: Number(opts['user-required-status']), delayMs: 0 });
const jobs = new Map();      // askOmni jobs, shared by all sessions (checkStatus may come from another)
const sessions = new Map();  // Mcp-Session-Id -> { transport, server, runAs, role, seq }

const sessionAdmin = {
  list: () => [...sessions].map(([sessionId, s]) => ({ sessionId, runAs: s.runAs, role: s.role, seq: s.seq })),
  // How many sessions were told (each on its GET stream, when one is open).
  toolListChanged: async (runAs) => {
    const all = [...sessions.values()].filter(s => runAs === undefined || s.runAs === runAs);
    await Promise.all(all.map(s => s.server.server.sendToolListChanged().catch(() => {})));
    return all.length;
  },
  closeAll: async () => {
    const all = [...sessions.values()];
    await Promise.all(all.map(s => s.transport.close()));
    return all.length;
  },
};

async function onRequest(req, res) {
  const url = parseTarget(req.url);
  if (url.pathname.startsWith('/_fake/')) {
    return control.handle(req, res, url, (await readBody(req)).toString('utf8'), sessionAdmin);
  }
  const entry = control.record(req, url);
  control.track(entry, res);
  const raw = await readBody(req);
  const parsed = parseJson(raw);
  entry.body = parsed === undefined ? raw.toString('utf8') : parsed;

  if (url.pathname === MCP_PATH) return handleMcp(req, res, entry, raw, parsed);
  const auth = directory.authenticate(entry.headers, control.config);
  if (auth.status) return refuse(res, auth);
  if (url.pathname.startsWith('/api/')) return handleRest(req, res, url, auth.identity, directory);
  return sendJson(res, 404, { detail: 'Not found', status: 404 });
}

async function handleMcp(req, res, entry, raw, parsed) {
  if (control.config.delayMs > 0) await sleep(control.config.delayMs);
  if (res.destroyed) return; // the peer gave up during the delay; track() has recorded it

  const auth = directory.authenticate(entry.headers, control.config);
  if (auth.status) return refuse(res, auth);
  const { user, token } = auth.identity;

  // The SDK hands req.auth to tool handlers as extra.authInfo: the way tools learn the log seq.
  req.auth = { token, clientId: user.id, scopes: [], extra: { seq: entry.seq } };
  // @hono/node-server (under the SDK transport) reads req.rawBody when the stream was consumed, so
  // a body that is not JSON still reaches the SDK, which then gives its own parse error.
  req.rawBody = raw;

  // null (empty body) is not a JSON-RPC message: let the SDK read and judge the bytes itself.
  const sdkBody = parsed ?? undefined;
  const sessionId = typeof entry.headers['mcp-session-id'] === 'string' ? entry.headers['mcp-session-id'] : undefined;
  if (sessionId !== undefined) {
    const session = sessions.get(sessionId);
    if (!session) return (await endedTransport()).handleRequest(req, res, sdkBody);
    // Sessions are bound to the identity that opened them (the MCP spec's advice against session
    // hijacking); a gateway that mixes members' sessions gets refused here instead of served.
    if (session.runAs !== user.id) {
      control.event({ type: 'session-identity-mismatch', seq: entry.seq, sessionId, owner: session.runAs, runAs: user.id });
      return sendJson(res, 403, { detail: 'Forbidden: session belongs to another user', status: 403 });
    }
    return session.transport.handleRequest(req, res, sdkBody);
  }
  if (req.method === 'POST' && containsInitialize(parsed)) return startSession(req, res, entry, auth.identity, sdkBody);
  // Anything else without a session (a 2026-07-28 stateless request, a GET, a stray
  // notification...): a fresh transport lets the SDK give its own answer (400 and so on).
  return newTransport(false).handleRequest(req, res, sdkBody);
}

async function startSession(req, res, entry, identity, parsed) {
  const { user } = identity;
  const server = buildMcpServer(identity, { directory, control, jobs });
  // X-Fake-Json: 1 on initialize makes the whole session answer application/json instead of SSE.
  const transport = newTransport(entry.headers['x-fake-json'] === '1', id => {
    sessions.set(id, { transport, server, runAs: user.id, role: user.role, seq: entry.seq });
    control.event({ type: 'session-created', seq: entry.seq, sessionId: id, runAs: user.id });
  });
  transport.onclose = () => {
    if (!sessions.delete(transport.sessionId)) return;
    control.event({ type: 'session-closed', sessionId: transport.sessionId, runAs: user.id });
  };
  await server.connect(transport);
  return transport.handleRequest(req, res, parsed);
}

// DNS-rebinding protection stays off (the default): the gateway rewrites Host to our authority,
// and the tests assert on the Host it sent via the request log instead.
function newTransport(enableJsonResponse, onsessioninitialized) {
  return new StreamableHTTPServerTransport({ sessionIdGenerator: randomUUID, enableJsonResponse, onsessioninitialized });
}

// A closed transport answers every request the way the SDK answers for an ended session: 404.
async function endedTransport() {
  const transport = newTransport(false);
  await transport.close();
  return transport;
}

function refuse(res, { status, body }) {
  const headers = status === 401 ? { 'WWW-Authenticate': 'Bearer realm="omni"' } : {};
  return sendJson(res, status, body, headers);
}

function containsInitialize(body) {
  return Array.isArray(body) ? body.some(isInitializeRequest) : isInitializeRequest(body);
}

// Path and query exactly as sent (new URL() would normalise '..' or read '//x' as a host), so the
// log shows the path the gateway really forwarded.
function parseTarget(target) {
  const q = target.indexOf('?');
  return { pathname: q < 0 ? target : target.slice(0, q), searchParams: new URLSearchParams(q < 0 ? '' : target.slice(q + 1)) };
}

function parseJson(buf) {
  if (buf.length === 0) return null;
  try { return JSON.parse(buf.toString('utf8')); } catch { return undefined; }
}

// Reads the whole body (tests send small ones); a peer that aborts leaves what arrived.
function readBody(req) {
  return new Promise(resolve => {
    const chunks = [];
    let size = 0;
    req.on('data', c => { size += c.length; if (size <= MAX_BODY_BYTES) chunks.push(c); });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', () => resolve(Buffer.concat(chunks)));
    req.on('aborted', () => resolve(Buffer.concat(chunks)));
  });
}

function start() {
  const tls = opts['tls-cert'] && { cert: readFileSync(opts['tls-cert']), key: readFileSync(opts['tls-key']) };
  const listener = (req, res) => onRequest(req, res).catch(err => {
    console.error('fake-omni: request failed:', err);
    sendJson(res, 500, { detail: String(err?.message ?? err), status: 500 });
  });
  const server = tls ? https.createServer(tls, listener) : http.createServer(listener);
  server.listen(Number(opts.port), '127.0.0.1', () => {
    const { port } = server.address();
    const scheme = tls ? 'https' : 'http';
    console.log(JSON.stringify({ listening: true, port, url: `${scheme}://127.0.0.1:${port}${MCP_PATH}` }));
  });
  const stop = () => {
    control.release();
    sessionAdmin.closeAll().finally(() => { server.closeAllConnections(); server.close(() => process.exit(0)); });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

start();
