#!/usr/bin/env node
// Benchmark of the metadata cache (issue 4): how many upstream round trips the cache saves, and
// the latency of a hit against a miss, with the fake Omni answering every MCP request after
// BENCH_DELAY_MS (default 100 ms) and the gateway serving TLS, as in production. It prints a
// table and asserts nothing. Run it with `make bench`; see README.md beside this file.
//
//   BENCH_N=50 BENCH_K=20 BENCH_DELAY_MS=100 GATEWAY_BIN=build/omni-mcp-gateway node tests/bench/cache.mjs
import https from 'node:https';
import { TestEnv, OMNI, gatewayBin } from '../integration/lib/harness.mjs';
import { initializeMessage, rpc } from '../integration/lib/mcp.mjs';
import { requireRedisServer, startRedis } from '../integration/lib/redis.mjs';

const N = Number(process.env.BENCH_N ?? 50);          // hits per scenario
const K = Number(process.env.BENCH_K ?? 20);          // misses per scenario
const DELAY = Number(process.env.BENCH_DELAY_MS ?? 100);
const MEMBER = 'alice';

/** An MCP session over ONE kept-alive TLS connection, so that latency is the gateway's, not a handshake's. */
async function keepAliveSession(gw) {
  const agent = new https.Agent({ ca: gw.ca, keepAlive: true, maxSockets: 1 });
  const url = new URL(gw.url);
  const headers = { Authorization: `Bearer ${gw.tokens[MEMBER]}`, Accept: 'application/json, text/event-stream', 'Content-Type': 'application/json' };
  const post = (message, extra = {}) => new Promise((resolve, reject) => {
    const body = JSON.stringify(message);
    const t0 = process.hrtime.bigint();
    const req = https.request(url, { method: 'POST', agent, headers: { ...headers, ...extra, 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({
        status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'),
        ms: Number(process.hrtime.bigint() - t0) / 1e6,
      }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
  const init = await post(initializeMessage(1));
  if (init.status !== 200) throw new Error(`initialize: ${init.status} ${init.body}`);
  const sid = init.headers['mcp-session-id'];
  headers['Mcp-Session-Id'] = sid;
  const version = JSON.parse(/data: (.*)/.exec(init.body)?.[1] ?? init.body).result.protocolVersion;
  headers['MCP-Protocol-Version'] = version;
  const ok = await post({ jsonrpc: '2.0', method: 'notifications/initialized' });
  if (ok.status !== 202) throw new Error(`notifications/initialized: ${ok.status} ${ok.body}`);
  return { post, close: () => agent.destroy() };
}

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1];
}

/** Runs `count` sequential requests made by make(i); returns latencies and upstream round trips. */
async function phase(fake, session, count, make) {
  await fake.clearRequests();
  const ms = [];
  for (let i = 0; i < count; i++) {
    const res = await session.post(make(i));
    if (res.status !== 200 || !/"result"/.test(res.body)) throw new Error(`request ${i}: ${res.status} ${res.body.slice(0, 300)}`);
    ms.push(res.ms);
  }
  const upstream = (await fake.requests()).filter((r) => r.path.startsWith('/mcp') && ['tools/list', 'tools/call'].includes(r.body?.method)).length;
  ms.sort((a, b) => a - b);
  return { requests: count, upstream, p50: percentile(ms, 50), p99: percentile(ms, 99) };
}

const toolsList = (i) => rpc(1000 + i, 'tools/list');
const pickModel = (args) => (i) => rpc(2000 + i, 'tools/call', { name: 'pickModel', arguments: args(i) });

async function main() {
  const env = new TestEnv('bench');
  const rows = [];
  let redis = null;
  try {
    const fake = await env.startFake();
    const members = [{ name: MEMBER, pat: OMNI.users[MEMBER].pat, userId: OMNI.users[MEMBER].id }];
    const backends = [['lru', {}]];
    try {
      requireRedisServer();
      redis = await startRedis({ name: 'bench-redis' });
      backends.push(['redis', { redis: { url: redis.url(0), timeout_ms: 50 } }]);
    } catch (err) {
      console.log(`# no Redis row: ${err.message}`);
    }
    backends.push(['off', { cache: { enabled: false } }]);

    for (const [backend, config] of backends) {
      const gw = await env.startGateway({ upstreamUrl: fake.mcpUrl, members, config, name: `bench-${backend}` });
      await fake.setConfig({ delayMs: 0 });
      const session = await keepAliveSession(gw);
      await fake.setConfig({ delayMs: DELAY });
      const add = (scenario, kind, r) => rows.push({ backend, scenario, kind, ...r });
      const stored = async (n) => {
        for (let i = 0; backend === 'redis' && (await redis.keys('omnigw:*')).length < n; i++) {
          if (i > 500) throw new Error(`Redis never held ${n} cache keys`);
          await new Promise((r) => setTimeout(r, 10));
        }
      };
      if (backend === 'off') {
        add('tools/list, cache disabled', 'miss', await phase(fake, session, K, toolsList));
      } else {
        add('tools/list, first call', 'miss', await phase(fake, session, 1, toolsList));
        await stored(1); // Redis writes are fire and forget: let them land before counting hits
        add('tools/list, repeated', 'hit', await phase(fake, session, N, toolsList));
        // Distinct arguments are distinct keys: K misses with the cache on (lookup + store included).
        add('pickModel, distinct arguments', 'miss', await phase(fake, session, K, pickModel((i) => ({ bench: `${backend}-${i}` }))));
        await stored(1 + K);
        add('pickModel, repeated', 'hit', await phase(fake, session, N, pickModel((i) => ({ bench: `${backend}-0` }))));
      }
      session.close();
      await fake.setConfig({ delayMs: 0 });
    }
  } finally {
    await env.cleanup();
    await redis?.stop();
  }
  printTable(rows);
}

function printTable(rows) {
  const fmt = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-');
  const head = ['backend', 'scenario', 'kind', 'requests', 'upstream round trips', 'saved', 'p50 ms', 'p99 ms'];
  const body = rows.map((r) => [r.backend, r.scenario, r.kind, r.requests, r.upstream, r.requests - r.upstream, fmt(r.p50), fmt(r.p99)].map(String));
  const total = rows.reduce((t, r) => ({ requests: t.requests + r.requests, upstream: t.upstream + r.upstream }), { requests: 0, upstream: 0 });
  body.push(['all', '', '', total.requests, total.upstream, total.requests - total.upstream, '', ''].map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => (i >= 3 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ')} |`;
  console.log(`\nmetadata cache benchmark: fake Omni answers after ${DELAY} ms, gateway over TLS (kept-alive connection), ${gatewayBin()}`);
  console.log(line(head));
  console.log(`|${widths.map((w, i) => (i >= 3 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`);
  for (const b of body) console.log(line(b));
  for (const backend of new Set(rows.map((r) => r.backend))) {
    const misses = rows.filter((r) => r.backend === backend && r.kind === 'miss' && r.requests > 1);
    const hits = rows.filter((r) => r.backend === backend && r.kind === 'hit');
    if (!misses.length || !hits.length) continue;
    const miss = Math.max(...misses.map((r) => r.p50));
    const hit = Math.max(...hits.map((r) => r.p50));
    console.log(`${backend}: p50 of a miss ${fmt(miss)} ms, of a hit ${fmt(hit)} ms (${(miss / hit).toFixed(0)}x faster)`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
