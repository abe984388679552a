// For the interoperability tests: real MCP servers from npm (and small servers built on the
// official SDKs in tests/interop/) as the gateway's upstream, each started under
// tests/interop/recorder.mjs, which keeps it on 127.0.0.1 and records what it received. A test
// runs the same client scenario twice, directly against the server and through the gateway, and
// compares the two; `route` describes one of the two ways in.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startProcess } from './procs.mjs';
import { request, tlsFetch } from './http.mjs';
import { waitFor } from './util.mjs';
import { REPO_ROOT } from './paths.mjs';

export const INTEROP_DIR = join(REPO_ROOT, 'tests/interop');
const RECORDER = pathToFileURL(join(INTEROP_DIR, 'recorder.mjs')).href;

/** The directory of an installed npm package of tests/ (e.g. '@modelcontextprotocol/server-everything'). */
export function packageDir(name) {
  const dir = join(REPO_ROOT, 'tests/node_modules', name);
  if (!existsSync(join(dir, 'package.json'))) throw new Error(`npm package ${name} is not installed in tests/: run (cd tests && npm ci)`);
  return dir;
}

/** The installed version of an npm package of tests/. */
export function packageVersion(name) {
  return JSON.parse(readFileSync(join(packageDir(name), 'package.json'), 'utf8')).version;
}

/**
 * Starts `node --import recorder.mjs script ...args` with PORT=0 and resolves once it listens on
 * loopback, to { name, origin, mcpUrl (origin + mcpPath), proc, stderr(), stdout(), stop(),
 * requests(), mcpRequests(), events(), reset() }. The handle is added to env's upstream
 * processes, so env.cleanup() stops it. nodeBin: another Node binary for this process only.
 */
export async function startRecordedServer(env, { script, args = [], name, mcpPath = '/mcp', nodeBin = process.execPath, extraEnv = {} }) {
  const proc = await startProcess(nodeBin, ['--import', RECORDER, script, ...args], {
    env: { ...process.env, PORT: '0', ...extraEnv },
    cwd: dirname(script),
    stream: 'stderr',
    ready: /interop-recorder: listening on (http:\/\/127\.0\.0\.1:\d+)/,
    name,
    timeoutMs: 20000,
  });
  const origin = proc.match[1];
  const control = async (method, path) => {
    const res = await request(`${origin}${path}`, { method });
    assert.equal(res.status, 200, `${name} ${method} ${path}: ${res.status} ${res.body}`);
    return JSON.parse(res.body);
  };
  const server = {
    name,
    origin,
    mcpUrl: `${origin}${mcpPath}`,
    proc,
    stderr: () => proc.stderr(),
    stdout: () => proc.stdout(),
    stop: () => proc.stop(),
    /** Every request the server received (recorder records), oldest first. */
    requests: () => control('GET', '/_rec/requests'),
    /** The requests on the MCP path (or on `path`), each with `json` (the parsed body, or undefined). */
    async mcpRequests({ path = mcpPath } = {}) {
      const all = await server.requests();
      return all.filter((r) => r.path.split('?')[0] === path).map((r) => {
        let json;
        try { json = r.body ? JSON.parse(r.body) : undefined; } catch { json = undefined; }
        return { ...r, json };
      });
    },
    /** Events the server script reported (globalThis.interopEvent). */
    events: () => control('GET', '/_rec/events'),
    reset: () => control('POST', '/_rec/reset'),
  };
  // env.cleanup() stops every process in env.fakes; the real server is this file's upstream.
  env.fakes.push(server);
  return server;
}

/** Whether a recorded request came through the gateway (it adds X-Request-Id). */
export const viaGateway = (rec) => rec.headers['x-request-id'] !== undefined;

/** The JSON-RPC messages in a recorded body (one object or a batch), or []. */
export function recordedMessages(rec) {
  if (rec.json === undefined) return [];
  return Array.isArray(rec.json) ? rec.json : [rec.json];
}

/**
 * The two ways to one server: { name: 'direct', url, ca, headers, gateway: false } straight to
 * the server (at `path` instead of its MCP path when given: gw's upstream URL must be the same),
 * and { name: 'gateway', ... gateway: true } through gw as `member` (the member's token as
 * Authorization).
 */
export function routes(server, gw, { member = 'alice', path } = {}) {
  return [
    { name: 'direct', url: path ? `${server.origin}${path}` : server.mcpUrl, origin: server.origin, ca: undefined, headers: {}, gateway: false },
    { name: 'gateway', url: gw.url, origin: gw.origin, ca: gw.ca, headers: gw.auth(member), gateway: true },
  ];
}

/** A fetch for the route (TLS trusting the test CA for the gateway, plain HTTP direct). */
export function routeFetch(route) {
  return tlsFetch(route.ca);
}

/** Waits until the server's MCP requests satisfy pred (polled); resolves to the list. */
export function waitForRequests(server, pred, message, timeoutMs = 10000) {
  return waitFor(async () => {
    const reqs = await server.mcpRequests();
    return pred(reqs) ? reqs : null;
  }, { timeoutMs, message });
}

export const EVERYTHING_SCRIPT = () => join(packageDir('@modelcontextprotocol/server-everything'), 'dist/index.js');
