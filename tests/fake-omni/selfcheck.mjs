#!/usr/bin/env node
// Proves the fake Omni speaks MCP to the real SDK client: starts the fake, connects as several
// identities, lists and calls tools, exercises the hold hook. Exits non-zero on any failure.
//   node tests/fake-omni/selfcheck.mjs
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

function startFake() {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./server.mjs', import.meta.url)), '--port', '0'],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('exit', code => reject(new Error(`fake exited early (${code})`)));
    createInterface({ input: child.stdout }).once('line', line => resolve({ child, ...JSON.parse(line) }));
  });
}

async function connect(url, headers) {
  const client = new Client({ name: 'selfcheck', version: '1' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
  return client;
}

const parse = result => JSON.parse(result.content[0].text);
const names = tools => tools.tools.map(t => t.name).sort();

async function check({ url }) {
  const base = new URL(url).origin;
  const alice = await connect(url, { Authorization: 'Bearer pat-alice-0001' });
  assert.deepEqual(names(await alice.listTools()),
    ['askOmni', 'checkStatus', 'getData', 'pickModel', 'pickTopic', 'searchOmniDocs']);
  const data = parse(await alice.callTool({ name: 'getData', arguments: { prompt: 'revenue by region' } }));
  assert.equal(data.runAs, 'u-alice');
  assert.ok(data.result.length > 0 && data.query.table, 'getData returns rows and the query');

  const bob = await connect(url, { Authorization: 'Bearer pat-bob-0002', 'X-MCP-User-ID': 'u-alice' });
  assert.deepEqual(names(await bob.listTools()), ['checkStatus', 'pickModel', 'pickTopic', 'searchOmniDocs']);
  assert.equal(parse(await bob.callTool({ name: 'pickModel', arguments: {} })).runAs, 'u-bob', 'a PAT ignores X-MCP-User-ID');

  const carol = await connect(url, { Authorization: 'Bearer org-key-0003', 'X-MCP-User-ID': 'u-carol' });
  assert.equal(parse(await carol.callTool({ name: 'getData', arguments: { prompt: 'invoices' } })).runAs, 'u-carol');

  // The hold hook: progress and a log message arrive on the call's stream while it is held.
  await fetch(`${base}/_fake/hold`, { method: 'POST' });
  const started = new Promise(resolve =>
    alice.setNotificationHandler(LoggingMessageNotificationSchema, n => resolve(n.params.data)));
  let onprogress;
  const progressed = new Promise(resolve => { onprogress = resolve; });
  let finished = false;
  const call = alice.callTool({ name: 'getData', arguments: { prompt: 'revenue' } }, undefined, { onprogress });
  call.then(() => { finished = true; }, () => { finished = true; });
  assert.equal(await started, 'getData started');
  await progressed;
  await new Promise(resolve => setTimeout(resolve, 200));
  assert.equal(finished, false, 'getData waits for /_fake/release');
  await fetch(`${base}/_fake/release`, { method: 'POST' });
  assert.equal(parse(await call).runAs, 'u-alice');

  const log = await (await fetch(`${base}/_fake/requests`)).json();
  assert.ok(log.some(r => r.headers['x-mcp-user-id'] === 'u-carol'), 'request log keeps headers');
  await Promise.all([alice.close(), bob.close(), carol.close()]);
}

const fake = await startFake();
try {
  await check(fake);
  console.log('selfcheck: ok');
} catch (err) {
  console.error('selfcheck: FAILED', err);
  process.exitCode = 1;
} finally {
  fake.child.removeAllListeners('exit');
  fake.child.kill('SIGTERM');
}
