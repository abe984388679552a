// Back-pressure: when a client reads slower than the upstream writes, the gateway pauses the
// upstream transfer instead of buffering the stream: its memory stays bounded, other members are
// still served, and once the client reads again it gets every byte and the result.
//
// The fake Omni's /_fake/flood makes the next getData send FLOOD_BYTES of log notifications on
// its SSE stream before its result. The fake produces all of it at once (the SDK queues SSE events
// without waiting) and it leaves the fake as fast as the gateway takes it. Alice's client stops
// reading as soon as the response head is in. A gateway that buffered would soon hold the whole
// flood (~64 MiB); one that pauses holds its 64 KiB high-water mark plus one read, and the rest
// waits in the fake and in the kernel's socket buffers.
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { OMNI, TestEnv, parseSse, request, waitFor } from './lib/harness.mjs';
import { getDataMessage, rawSession, sdkConnect, toolJson } from './lib/mcp.mjs';

const MiB = 1024 * 1024;
const FLOOD_BYTES = 64 * MiB;
const FLOOD_CHUNK = 32 * 1024;
// The gateway may grow by this much while the client is stalled. Pausing costs it well under
// 1 MiB; buffering the flood would cost it FLOOD_BYTES minus what the kernel holds on the client
// side (a few MiB): the limit sits far from both.
const MAX_RSS_GROWTH = 16 * MiB;
// The upstream must have produced at least this much before the gateway's memory is judged.
const MIN_PRODUCED = 48 * MiB;
// The fake's count of bytes handed to the kernel must stay unchanged this long before we call
// the transfer stalled. Only a settling condition, never asserted on.
const SETTLE_MS = 2000;

const env = new TestEnv('backpressure');
let fake;
let gw;

before(async () => {
  fake = await env.startFake();
  gw = await env.startGateway({
    upstreamUrl: fake.mcpUrl,
    // The stalled client must not hit the gateway's write time-out (client_timeout_ms) meanwhile.
    config: { client_timeout_ms: 120000 },
    // A sanitizer build's quarantine of freed memory would show up as resident memory.
    env: { ASAN_OPTIONS: [process.env.ASAN_OPTIONS, 'quarantine_size_mb=1:detect_leaks=1:abort_on_error=1'].filter(Boolean).join(':') },
  });
});
after(() => env.cleanup());

/** Resident memory of a process, in bytes (VmRSS in /proc/<pid>/status). */
function rss(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)\s+kB$/m);
  assert.ok(m, `no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

async function fakeControl(method, path, body) {
  const res = await request(`${fake.base}/_fake/${path}`, {
    method, body: body === undefined ? undefined : JSON.stringify(body),
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
  });
  assert.ok(res.status < 300, `fake ${method} /_fake/${path} → ${res.status} ${res.body}`);
  return JSON.parse(res.body);
}

/**
 * POSTs message on the session through the gateway and resolves once the response head is in,
 * without reading any of the body: { res, status, headers, readAll(timeoutMs) }. readAll starts
 * reading and resolves when the response ends to { flood: {count, bytes, badIndex}, messages,
 * complete } where messages are the JSON-RPC messages other than flood notifications.
 */
function stalledPost(session, message) {
  const body = JSON.stringify(message);
  return new Promise((resolve, reject) => {
    const req = https.request(gw.url, {
      method: 'POST', ca: gw.ca, agent: false,
      headers: { ...session.headers(), 'Content-Length': String(Buffer.byteLength(body)) },
    });
    const timer = setTimeout(() => req.destroy(new Error('no response head within 15 s')), 15000);
    req.on('error', (err) => { clearTimeout(timer); reject(err); });
    req.on('response', (res) => {
      clearTimeout(timer);
      res.pause(); // a client that stops reading: Node stops reading the socket once its buffer is full
      resolve({
        res,
        status: res.statusCode,
        headers: res.headers,
        readAll(timeoutMs) {
          return new Promise((done, fail) => {
            const flood = { count: 0, bytes: 0, badIndex: null };
            const messages = [];
            let pending = '';
            const t = setTimeout(() => {
              res.destroy();
              fail(new Error(`response not complete within ${timeoutMs} ms; got ${flood.count} flood notifications (${flood.bytes} bytes)`));
            }, timeoutMs);
            res.setEncoding('utf8');
            res.on('data', (chunk) => {
              const { events, rest } = parseSse(pending + chunk);
              pending = rest;
              for (const ev of events) {
                if (!ev.data) continue;
                const msg = ev.json();
                if (msg.method === 'notifications/message' && msg.params?.logger === 'fake-flood') {
                  const data = String(msg.params.data);
                  if (flood.badIndex === null && !data.startsWith(`${flood.count}:`)) flood.badIndex = { at: flood.count, got: data.slice(0, 20) };
                  flood.count += 1;
                  flood.bytes += Buffer.byteLength(data);
                } else {
                  messages.push(msg);
                }
              }
            });
            res.on('close', () => {
              clearTimeout(t);
              done({ flood, messages, complete: res.complete, leftover: pending });
            });
            res.resume(); // after an explicit pause(), a 'data' listener alone does not resume
          });
        },
      });
    });
    req.end(body);
  });
}

it('a client that stops reading pauses the upstream transfer; nothing is lost when it reads again', async (t) => {
  const pid = gw.proc.child.pid;
  const alice = await rawSession(gw.url, { ca: gw.ca, headers: gw.auth('alice') });

  // Warm-up: one ordinary streamed getData, so the baseline includes a live upstream connection.
  const warm = await alice.post(getDataMessage(2));
  assert.equal(warm.status, 200, warm.body);

  const armed = await fakeControl('POST', 'flood', { bytes: FLOOD_BYTES, chunk: FLOOD_CHUNK });
  assert.deepEqual(armed.armed, { bytes: FLOOD_BYTES, chunk: FLOOD_CHUNK });
  const rssBefore = rss(pid);

  const stream = await stalledPost(alice, getDataMessage(3));
  assert.equal(stream.status, 200);
  assert.match(String(stream.headers['content-type']), /^text\/event-stream/);

  // Stalled: the fake has produced the flood and the gateway has stopped taking it.
  let peak = rssBefore;
  let lastFlushed = -1;
  let since = Date.now();
  const run = await waitFor(async () => {
    peak = Math.max(peak, rss(pid));
    const r = (await fakeControl('GET', 'flood')).runs.find((x) => x.runAs === OMNI.users.alice.id);
    if (!r) return null;
    if (r.flushed !== lastFlushed) { lastFlushed = r.flushed; since = Date.now(); }
    return r.bytes >= MIN_PRODUCED && Date.now() - since >= SETTLE_MS ? r : null;
  }, { timeoutMs: 60000, intervalMs: 100, message: 'the fake to produce the flood and the gateway to stop taking it' });
  peak = Math.max(peak, rss(pid));
  const growth = peak - rssBefore;
  t.diagnostic(`produced ${(run.bytes / MiB).toFixed(1)} MiB in ${run.count} notifications; ` +
    `left the fake: ${(run.flushed / MiB).toFixed(1)} MiB; gateway RSS ${(rssBefore / MiB).toFixed(1)} → peak ` +
    `${(peak / MiB).toFixed(1)} MiB (growth ${(growth / MiB).toFixed(2)} MiB)`);
  assert.ok(run.bytes >= MIN_PRODUCED, `the upstream produced only ${run.bytes} bytes`);
  assert.ok(growth < MAX_RSS_GROWTH,
    `gateway RSS grew by ${(growth / MiB).toFixed(1)} MiB while the client was stalled and the upstream had produced ` +
    `${(run.bytes / MiB).toFixed(1)} MiB (${(run.flushed / MiB).toFixed(1)} MiB of it left the fake): the stream is buffered, not paused`);
  assert.ok(run.flushed < run.bytes, `the whole flood (${run.flushed} bytes) left the fake while the client read nothing`);
  assert.equal(stream.res.complete, false, 'the response ended while the client was stalled');

  // The loop is not blocked: another member is served meanwhile.
  const carol = await sdkConnect(gw, 'carol');
  try {
    const models = toolJson(await carol.client.callTool({ name: 'pickModel', arguments: {} }));
    assert.equal(models.runAs, OMNI.users.carol.id);
    assert.ok(models.models.length > 0, 'carol sees her models');
  } finally {
    await carol.close();
  }
  const stillStalled = (await fakeControl('GET', 'flood')).runs.find((x) => x.seq === run.seq);
  assert.ok(stillStalled.flushed < stillStalled.bytes, 'alice\'s flood drained although she did not read');

  // Alice reads again: every notification, in order, then the result.
  const got = await stream.readAll(60000);
  assert.equal(got.complete, true, `alice's response was cut off after ${got.flood.count} flood notifications`);
  assert.equal(got.leftover.trim(), '', 'bytes after the last SSE event');
  const result = got.messages.find((m) => m.id === 3);
  assert.ok(result?.result, `no result for the getData call; other messages: ${JSON.stringify(got.messages).slice(0, 500)}`);
  const data = toolJson(result.result);
  assert.equal(data.runAs, OMNI.users.alice.id);
  assert.ok(Array.isArray(data.result) && data.result.length > 0, 'the result carries rows');
  assert.deepEqual(data.flooded, { count: Math.ceil(FLOOD_BYTES / FLOOD_CHUNK), bytes: FLOOD_BYTES });
  assert.equal(got.flood.badIndex, null, `flood notifications out of order: ${JSON.stringify(got.flood.badIndex)}`);
  assert.deepEqual({ count: got.flood.count, bytes: got.flood.bytes }, data.flooded, 'alice got every flood notification');
  const final = (await fakeControl('GET', 'flood')).runs.find((x) => x.seq === run.seq);
  assert.deepEqual({ count: final.count, bytes: final.bytes }, data.flooded);
  t.diagnostic(`alice received ${got.flood.count} notifications, ${got.flood.bytes} bytes; gateway RSS now ${(rss(pid) / MiB).toFixed(1)} MiB`);

  const finished = await waitFor(async () => (await fake.events()).find((e) => e.seq === run.seq && e.type.startsWith('response-')),
    { message: 'the upstream response to end' });
  assert.equal(finished.type, 'response-finished', 'the upstream transfer ran to its end');
});
