#!/usr/bin/env node
// Instructions per request, counted by callgrind: the gateway (TLS, 3 members, policy, audit to a
// file, cache off) in front of a canned nginx upstream, BENCH_N requests of one shape sent after
// a warm-up over BENCH_C kept-alive connections. Counts are deterministic to about 1%, so two
// builds can be compared on a busy machine. Prints the total and the top functions per request;
// asserts nothing.
//
//   GATEWAY_BIN=build/omni-mcp-gateway BENCH_N=2000 BENCH_C=4 node tests/bench/callgrind.mjs
//   BENCH_TOOL=pickModel BENCH_FRAMING=sse BENCH_TOP=30 KEEP_TMP=1 node tests/bench/callgrind.mjs
//   BENCH_TARGET=nginx node tests/bench/callgrind.mjs   # nginx as proxy.mjs sets it up, instead
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, openSync, closeSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCerts } from '../integration/lib/certs.mjs';
import { gatewayBin } from '../integration/lib/paths.mjs';
import { closedPort, newMemberToken } from '../integration/lib/util.mjs';
import { proxyConf, readText, tcpOpen, upstreamConf, waitFor } from './canned.mjs';

const N = Number(process.env.BENCH_N ?? 2000);
const C = Number(process.env.BENCH_C ?? 4);
const WARM = Number(process.env.BENCH_WARM ?? 20);
const TOOL = process.env.BENCH_TOOL ?? 'getData';
const FRAMING = process.env.BENCH_FRAMING ?? 'json';
const TOP = Number(process.env.BENCH_TOP ?? 25);
const TARGET = process.env.BENCH_TARGET ?? 'gateway'; // gateway | nginx

const MEMBERS = ['alice', 'bob', 'carol'].map((name, i) => ({
  name, ...newMemberToken(), pat: `omni_pat_bench_${name}_${i}`, userId: `u-bench-${name}`,
}));
const BODY = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: TOOL,
  arguments: { prompt: 'Revenue by month for 2025, top 10 customers', topicName: 'orders' } } });

const children = new Set();
process.on('exit', () => { for (const c of children) try { c.kill('SIGKILL'); } catch { /* gone */ } });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function run(cmd, args, { stdout = 'ignore', env = process.env } = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', stdout, stdout], env });
  children.add(child);
  child.exited = new Promise((r) => child.on('exit', (code, signal) => { children.delete(child); r({ code, signal }); }));
  return child;
}




/** Starts nginx (under callgrind when out is given) with conf written to dir/<name>.conf. */
async function startNginx(dir, name, conf, port, out) {
  const file = join(dir, `${name}.conf`);
  const nginx = existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
  const args = ['-e', join(dir, `${name}-error.log`), '-p', dir, '-c', file];
  writeFileSync(file, conf);
  const child = out ? run('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, nginx, ...args]) : run(nginx, args);
  await waitFor(name, () => tcpOpen(port), 60000);
  child.port = port;
  child.out = out;
  return child;
}

/** The canned upstream, as proxy.mjs runs it. */
async function startUpstream(dir) {
  const port = await closedPort();
  return startNginx(dir, 'upstream', upstreamConf(dir, port), port);
}

/** nginx as proxy.mjs's closest plain equivalent of the gateway, under callgrind. */
async function startNginxProxy(dir, certs, upstreamPort) {
  const port = await closedPort();
  return startNginx(dir, 'nginx', proxyConf(dir, port, upstreamPort, certs, MEMBERS), port, join(dir, 'callgrind.out'));
}

async function startGateway(dir, certs, upstreamPort) {
  const cfgFile = join(dir, 'gateway.json');
  const logFile = join(dir, 'gateway.log');
  writeFileSync(cfgFile, JSON.stringify({
    listen: '127.0.0.1:0',
    tls: { cert: certs.certFile, key: certs.keyFile },
    mcp_path: '/mcp',
    upstream: { url: `http://127.0.0.1:${upstreamPort}/mcp`, connect_timeout_ms: 5000, idle_timeout_ms: 300000, max_connections: 64 },
    max_connections: 20000,
    log_level: 'info',
    admin: { listen: '127.0.0.1:0' },
    groups: { analysts: { tools: { allow: ['getData', 'pick*', 'searchOmniDocs'], deny: ['askOmni'] }, topics: ['orders', 'fin_*'] } },
    users: MEMBERS.map((m) => ({ name: m.name, token_sha256: m.sha256, omni_pat_env: `OMNI_PAT_${m.name.toUpperCase()}`,
      omni_user_id: m.userId, groups: ['analysts'] })),
    audit: { file: join(dir, 'audit.jsonl'), fsync: 'interval', fsync_interval_ms: 1000 },
    cache: { enabled: false },
  }, null, 2));
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('OMNI_')) delete env[k];
  for (const m of MEMBERS) env[`OMNI_PAT_${m.name.toUpperCase()}`] = m.pat;
  const log = openSync(logFile, 'w');
  const out = join(dir, 'callgrind.out');
  const child = run('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, gatewayBin(), '-c', cfgFile], { stdout: log, env });
  closeSync(log);
  const m = await waitFor('gateway listening', () => /listening on https:\/\/127\.0\.0\.1:(\d+)/.exec(readText(logFile)), 60000);
  child.port = Number(m[1]);
  child.out = out;
  child.logFile = logFile;
  return child;
}

/** n requests on each of c kept-alive connections, one after the other on each. */
async function load(port, ca, n, c) {
  const agent = new https.Agent({ ca, keepAlive: true, maxSockets: c });
  const one = (i) => new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/mcp', method: 'POST', agent, headers: {
      'Content-Type': 'application/json', Accept: 'application/json, text/event-stream',
      Authorization: `Bearer ${MEMBERS[i % MEMBERS.length].token}`,
      'Mcp-Session-Id': FRAMING === 'sse' ? 'bench-sse' : 'bench-json', 'MCP-Protocol-Version': '2025-06-18' } }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}: ${body}`))));
    });
    req.on('error', reject);
    req.end(BODY);
  });
  let next = 0;
  let last = '';
  await Promise.all(Array.from({ length: c }, async () => {
    while (next < n) last = await one(next++);
  }));
  agent.destroy();
  return last;
}

/** callgrind_annotate rows "   12,345 (12.3%)  file:function [object]". */
function annotate(file, inclusive) {
  const text = spawnSync('callgrind_annotate', [`--inclusive=${inclusive ? 'yes' : 'no'}`, '--threshold=100', '--auto=no', file],
    { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout ?? '';
  const rows = [];
  for (const line of text.split('\n')) {
    const m = /^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(?:\S*?:)?([^:\s][^\[]*?)\s*(?:\[(.*)\])?\s*$/.exec(line);
    if (!m || /PROGRAM TOTALS/.test(line)) continue;
    const fn = m[2].replace(/'\d+$/, '');
    const ir = Number(m[1].replace(/,/g, ''));
    const seen = rows.find((r) => r.fn === fn);
    if (seen) { seen.ir = Math.max(seen.ir, ir); continue; }
    rows.push({ ir, fn, obj: (m[3] ?? '').replace(/^.*\//, '') });
  }
  return rows.sort((a, b) => b.ir - a.ir);
}

const dir = mkdtempSync(join(tmpdir(), 'gw-callgrind-'));
try {
  const certs = makeCerts(dir);
  const up = await startUpstream(dir);
  const gw = TARGET === 'nginx' ? await startNginxProxy(dir, certs, up.port) : await startGateway(dir, certs, up.port);
  await load(gw.port, certs.ca, WARM * C, C);
  if (spawnSync('callgrind_control', ['-z', String(gw.pid)], { timeout: 30000 }).status !== 0) throw new Error('callgrind_control -z failed');
  const t0 = Date.now();
  const last = await load(gw.port, certs.ca, N, C);
  const secs = (Date.now() - t0) / 1000;
  await sleep(1500); // the last audit records, and one fsync interval
  if (spawnSync('callgrind_control', ['-d', String(gw.pid)], { timeout: 60000 }).status !== 0) throw new Error('callgrind_control -d failed');
  const part = readdirSync(dir).filter((f) => /^callgrind\.out\.\d+$/.test(f)).map((f) => join(dir, f))[0];
  gw.kill('SIGTERM');
  await gw.exited;
  up.kill('SIGTERM');
  if (!part) throw new Error('no callgrind dump');
  const totals = /^(?:summary|totals):\s*(\d+)/m.exec(readFileSync(part, 'utf8'));
  const total = Number(totals[1]);
  const logged = TARGET === 'nginx'
    ? `${(readText(join(dir, 'nginx-access.log')).match(/\n/g) ?? []).length - WARM * C} access lines`
    : `${(readText(join(dir, 'audit.jsonl')).match(/\n/g) ?? []).length - WARM * C} audit lines`;
  console.log(`${TARGET === 'nginx' ? 'nginx (proxy.mjs\'s equivalent of the gateway)' : gatewayBin()}\n${TOOL} ${FRAMING}: ${N} requests on ${C} connections in ${secs.toFixed(1)} s under callgrind; ${logged}`);
  console.log(`last answer: ${last.length} bytes`);
  console.log(`total ${total.toLocaleString('en-US')} Ir, ${Math.round(total / N).toLocaleString('en-US')} Ir per request\n`);
  for (const [title, incl] of [['inclusive', true], ['self', false]]) {
    // callgrind_annotate 3.19 also lists the entry points, with their inclusive cost, as self.
    const boring = /^(0x0+|\?\?\?|\(below main\)|start_thread|clone3?|main|__libc_start_main.*|event_base_dispatch|event_base_loop|gw_server_run)$/;
    console.log(`| ${title} | object | Ir/request | % |\n|---|---|---:|---:|`);
    for (const r of annotate(part, incl).filter((r) => !boring.test(r.fn) && (incl || r.ir < total / 2)).slice(0, TOP))
      console.log(`| ${r.fn} | ${r.obj} | ${Math.round(r.ir / N).toLocaleString('en-US')} | ${(100 * r.ir / total).toFixed(1)} |`);
    console.log('');
  }
  if (process.env.KEEP_TMP) console.log(`kept ${dir}`);
} finally {
  for (const c of children) try { c.kill('SIGKILL'); } catch { /* gone */ }
  if (!process.env.KEEP_TMP) rmSync(dir, { recursive: true, force: true });
}
