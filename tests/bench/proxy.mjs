#!/usr/bin/env node
// Benchmark of the gateway against nginx (issue 7): the same MCP load, side by side in one run,
// against a canned upstream directly, nginx set up as the closest plain equivalent of the gateway,
// and the gateway; then N concurrent GET SSE streams through the gateway (resident memory per
// stream, every stream still getting its events); then a callgrind (or perf) profile of the
// gateway under the c=32 load. Prints tables and asserts nothing. `make bench` runs it; see
// README.md beside this file and docs/benchmarks.md.
//
//   BENCH_SECONDS=10 BENCH_STREAMS=1000,10000 BENCH_PROFILE=callgrind node tests/bench/proxy.mjs
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { makeCerts } from '../integration/lib/certs.mjs';
import { request } from '../integration/lib/http.mjs';
import { gatewayBin, REPO_ROOT } from '../integration/lib/paths.mjs';
import { closedPort, newMemberToken } from '../integration/lib/util.mjs';
import { proxyConf, readText, tcpOpen, upstreamConf, waitFor } from './canned.mjs';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);            // each wrk run
const STREAMS = (process.env.BENCH_STREAMS ?? '1000,10000').split(',').map(Number).filter((n) => n > 0);
const EVENT_MS = Number(process.env.BENCH_EVENT_MS ?? 2000);        // stream upstream: one event per stream this often
const WINDOW_ROUNDS = Number(process.env.BENCH_WINDOW_ROUNDS ?? 3);  // event rounds counted per stream
const PROFILE = process.env.BENCH_PROFILE ?? 'callgrind';            // callgrind | perf | none
const PROFILE_SECONDS = Number(process.env.BENCH_PROFILE_SECONDS ?? 10);
const PROFILE_TOP = Number(process.env.BENCH_PROFILE_TOP ?? 25);
const PROBE_SECONDS = Number(process.env.BENCH_PROBE_SECONDS ?? 5);    // POSTs at c=1 beside the open streams
const EXTRA_ROW = process.env.BENCH_EXTRA_ROW !== '0';                // the gateway with pickModel too (JSON)
const UPSTREAM_MAX_CONNECTIONS = Number(process.env.BENCH_UPSTREAM_MAX_CONNECTIONS ?? 64); // the gateway's upstream.max_connections
const HERE = join(REPO_ROOT, 'tests/bench');
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

const MEMBERS = ['alice', 'bob', 'carol'].map((name, i) => ({
  name, ...newMemberToken(), pat: `omni_pat_bench_${name}_${i}`, userId: `u-bench-${name}`,
}));
const FRAMINGS = ['json', 'sse'];
const TARGETS = ['direct', 'nginx', 'gateway'];

const SESSION = { json: 'bench-json', sse: 'bench-sse' };

// ---------------------------------------------------------------------------------------------
// Processes

const children = new Set();
process.on('exit', () => { for (const c of children) try { c.kill('SIGKILL'); } catch { /* gone */ } });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Spawns cmd with the soft file-descriptor limit raised to the hard one (streams need many). */
function spawnWide(cmd, args, { stdout = 'ignore', stderr = 'ignore', env = process.env, stdin = 'ignore' } = {}) {
  const child = spawn('bash', ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'bench', cmd, ...args],
    { stdio: [stdin, stdout, stderr], env, cwd: REPO_ROOT });
  children.add(child);
  child.exitInfo = null;
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => {
    child.exitInfo = { code, signal };
    children.delete(child);
    resolve(child.exitInfo);
  }));
  return child;
}

async function stop(child, graceMs = 15000) {
  if (!child || child.exitInfo) return;
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await child.exited;
  clearTimeout(t);
}




/** utime + stime of a process (all its threads), in seconds. */
function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch { return NaN; }
}

function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readText(`/proc/${pid}/status`));
  return m ? Number(m[1]) : NaN;
}

function fdCount(pid) {
  try { return readdirSync(`/proc/${pid}/fd`).length; } catch { return NaN; }
}

/** A tool by name on PATH, else in /usr/sbin (nginx is there, and a user's PATH may lack it). */
function findTool(name) {
  const found = spawnSync('bash', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim();
  if (found) return found;
  if (existsSync(`/usr/sbin/${name}`)) return `/usr/sbin/${name}`;
  throw new Error(`${name} is missing: run \`deploy/install-deps.sh bench\` (make bench does)`);
}

const hardNofile = () => Number(spawnSync('bash', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim()) || 1024;

// ---------------------------------------------------------------------------------------------
// The three servers



async function startNginx(dir, name, conf, port) {
  const file = join(dir, `${name}.conf`);
  writeFileSync(file, conf);
  const child = spawnWide(findTool('nginx'), ['-e', join(dir, `${name}-error.log`), '-p', dir, '-c', file]);
  try {
    await waitFor(`${name} listening on ${port}`, () => tcpOpen(port), 15000, child);
  } catch (err) {
    throw new Error(`${err.message}\n${readText(join(dir, `${name}-error.log`))}`);
  }
  child.port = port;
  return child;
}

/** The gateway's config: TLS, 3 members in a policy group, audit to a file, cache off. */
function gatewayConfig(dir, name, upstreamUrl, certs) {
  return {
    listen: '127.0.0.1:0',
    tls: { cert: certs.certFile, key: certs.keyFile },
    mcp_path: '/mcp',
    upstream: { url: upstreamUrl, connect_timeout_ms: 5000, idle_timeout_ms: 300000, max_connections: UPSTREAM_MAX_CONNECTIONS },
    max_connections: 20000,
    log_level: 'info',
    admin: { listen: '127.0.0.1:0' },
    groups: {
      analysts: { tools: { allow: ['getData', 'pick*', 'searchOmniDocs'], deny: ['askOmni'] }, topics: ['orders', 'fin_*'] },
    },
    users: MEMBERS.map((m) => ({
      name: m.name, token_sha256: m.sha256, omni_pat_env: `OMNI_PAT_${m.name.toUpperCase()}`,
      omni_user_id: m.userId, groups: ['analysts'],
    })),
    audit: { file: join(dir, `${name}-audit.jsonl`), fsync: 'interval', fsync_interval_ms: 1000 },
    cache: { enabled: false },
  };
}

/** Starts the gateway (optionally under `wrap`, e.g. valgrind); its log goes to a file. */
async function startGateway(dir, name, upstreamUrl, certs, { wrap = [], timeoutMs = 20000 } = {}) {
  const cfgFile = join(dir, `${name}.json`);
  const logFile = join(dir, `${name}.log`);
  writeFileSync(cfgFile, JSON.stringify(gatewayConfig(dir, name, upstreamUrl, certs), null, 2));
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('OMNI_')) delete env[k];
  for (const m of MEMBERS) env[`OMNI_PAT_${m.name.toUpperCase()}`] = m.pat;
  const log = openSync(logFile, 'w');
  const bin = gatewayBin();
  const child = wrap.length ? spawnWide(wrap[0], [...wrap.slice(1), bin, '-c', cfgFile], { stderr: log, stdout: log, env })
    : spawnWide(bin, ['-c', cfgFile], { stderr: log, env });
  closeSync(log);
  const m = await waitFor(`gateway ${name} listening`, () => /listening on https:\/\/127\.0\.0\.1:(\d+)/.exec(readText(logFile)), timeoutMs, child)
    .catch((err) => { throw new Error(`${err.message}\n${readText(logFile)}`); });
  child.port = Number(m[1]);
  child.adminPort = Number((await waitFor(`gateway ${name} admin`, () => /admin listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(readText(logFile)), timeoutMs, child))[1]);
  child.logFile = logFile;
  child.auditFile = join(dir, `${name}-audit.jsonl`);
  return child;
}

// ---------------------------------------------------------------------------------------------
// Load

function targetUrl(target, ports) {
  return target === 'direct' ? `http://127.0.0.1:${ports.direct}/mcp` : `https://127.0.0.1:${ports[target]}/mcp`;
}

/** One request per member through a target: it must come back 200 with the canned answer in the
 *  framing asked for; an unknown token must get 401 from nginx and the gateway. */
async function checkTarget(target, ports, ca) {
  for (const framing of FRAMINGS) {
    for (const m of MEMBERS) {
      const res = await request(targetUrl(target, ports), {
        method: 'POST', ca, body: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"getData","arguments":{"prompt":"check","topicName":"orders"}}}',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream',
          Authorization: `Bearer ${m.token}`, 'Mcp-Session-Id': SESSION[framing], 'MCP-Protocol-Version': '2025-06-18' },
      });
      const type = framing === 'sse' ? 'text/event-stream' : 'application/json';
      if (res.status !== 200 || !String(res.headers['content-type']).startsWith(type) || !res.body.includes('Customer 10')) {
        throw new Error(`${target} (${framing}, ${m.name}): expected 200 ${type} with the canned answer, got ${res.status} ${res.headers['content-type']}: ${res.body.slice(0, 300)}`);
      }
    }
  }
  if (target !== 'direct') {
    const res = await request(targetUrl(target, ports), { method: 'POST', ca, body: '{}',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer not-a-member' } });
    if (res.status !== 401) throw new Error(`${target}: an unknown token got ${res.status}, not 401`);
  }
}

/** The gateway's upstream transfers so far, by connection: { new, reused } (from /metrics). */
async function upstreamConnections(gw) {
  const res = await request(`http://127.0.0.1:${gw.adminPort}/metrics`);
  const get = (kind) => Number(new RegExp(`omni_gw_upstream_connections_total\\{connection="${kind}"\\} (\\S+)`).exec(res.body)?.[1] ?? NaN);
  return { new: get('new'), reused: get('reused') };
}

const UNIT_MS = { us: 0.001, ms: 1, s: 1000, m: 60000 };
const toMs = (v, unit) => Number(v) * UNIT_MS[unit];

function parseWrk(out) {
  const num = (re) => { const m = re.exec(out); return m ? Number(m[1]) : 0; };
  const lat = (p) => { const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out); return m ? toMs(m[1], m[2]) : NaN; };
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    requests: num(/(\d+) requests in/),
    p50: lat(50), p99: lat(99),
    errors: num(/Non-2xx or 3xx responses: (\d+)/) + (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0),
  };
}

async function runWrk(url, framing, conns, seconds, tool = 'getData') {
  const threads = conns > 1 ? 2 : 1;
  const child = spawn(findTool('wrk'), [`-t${threads}`, `-c${conns}`, `-d${seconds}s`, '--latency', '--timeout', '5s',
    '-s', join(HERE, 'mcp-post.lua'), url], {
    env: { ...process.env, BENCH_TOKENS: MEMBERS.map((m) => m.token).join(','), BENCH_SESSION: SESSION[framing], BENCH_TOOL: tool },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const code = await new Promise((r) => child.on('exit', r));
  children.delete(child);
  if (code !== 0) throw new Error(`wrk exited ${code}:\n${out}`);
  return { ...parseWrk(out), raw: out };
}

// ---------------------------------------------------------------------------------------------
// Streams

/** The stream client as a child: commands on stdin, one JSON answer line each on stdout. */
function startStreamClient(port, n, caFile) {
  const child = spawnWide(process.execPath, [join(HERE, 'stream-client.mjs'),
    JSON.stringify({ port, n, tokens: MEMBERS.map((m) => m.token), caFile })], { stdin: 'pipe', stdout: 'pipe', stderr: 'inherit' });
  const lines = [];
  const waiters = [];
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = JSON.parse(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      if (waiters.length) waiters.shift()(line); else lines.push(line);
    }
  });
  child.next = (timeoutMs = 300000) => (lines.length ? Promise.resolve(lines.shift()) : new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('stream client: no answer')), timeoutMs);
    waiters.push((l) => { clearTimeout(t); resolve(l); });
  }));
  child.send = (cmd) => { child.stdin.write(`${cmd}\n`); return child.next(); };
  return child;
}

async function upstreamCount(port) {
  const res = await request(`http://127.0.0.1:${port}/count`);
  return JSON.parse(res.body);
}

/** POSTs (getData, JSON) at c=1 through a gateway for PROBE_SECONDS, and the upstream
 *  connections its transfers opened meanwhile. */
async function probe(gw) {
  const c0 = await upstreamConnections(gw);
  const w = await runWrk(targetUrl('gateway', { gateway: gw.port }), 'json', 1, PROBE_SECONDS);
  const c1 = await upstreamConnections(gw);
  return { ...w, upNew: c1.new - c0.new, upReused: c1.reused - c0.reused };
}

async function streamRun(dir, certs, upstreamPort, wanted, index) {
  const gw = await startGateway(dir, `gateway-streams-${index}`, `http://127.0.0.1:${upstreamPort}/mcp`, certs);
  try {
    // Warm up (TLS, libcurl, the first stream's allocations), then the idle footprint.
    const warm = startStreamClient(gw.port, 1, certs.caFile);
    const w = await warm.next();
    if (w.opened !== 1) throw new Error(`stream warm-up failed: ${JSON.stringify(w)}`);
    warm.stdin.write('exit\n');
    await warm.exited;
    await waitFor('warm-up stream closed upstream', async () => (await upstreamCount(upstreamPort)).open === 0, 10000);
    await sleep(200);
    const idle = rssKiB(gw.pid);
    const probeIdle = await probe(gw);

    const client = startStreamClient(gw.port, wanted, certs.caFile);
    const opened = await client.next();
    // Every stream through: the upstream holds them all, then a first event round reached them.
    await waitFor('streams held upstream', async () => (await upstreamCount(upstreamPort)).open >= opened.opened, 30000);
    await sleep(EVENT_MS + 500);
    const before = await upstreamCount(upstreamPort);
    await client.send('mark');
    await sleep(WINDOW_ROUNDS * EVENT_MS + EVENT_MS / 4);
    const counted = await client.send('count');
    const after = await upstreamCount(upstreamPort);
    const rss = rssKiB(gw.pid);
    const fds = fdCount(gw.pid);
    const probeOpen = await probe(gw);
    client.stdin.write('exit\n');
    await client.exited;
    const errors = (readText(gw.logFile).match(/^.*\b(ERROR|error|WARN|warn)\b.*$/gm) ?? []).filter((l) => !/plain http/.test(l));
    return { wanted, ...opened, idle, rss, fds, rounds: after.round - before.round, counted, probeIdle, probeOpen, errors: errors.slice(0, 3) };
  } finally {
    await stop(gw);
  }
}

// ---------------------------------------------------------------------------------------------
// Profile

async function profileRun(dir, certs, upstreamPort) {
  if (PROFILE === 'callgrind') {
    const out = join(dir, 'callgrind.out');
    const gw = await startGateway(dir, 'gateway-callgrind', `http://127.0.0.1:${upstreamPort}/mcp`, certs,
      { wrap: ['valgrind', '--tool=callgrind', `--callgrind-out-file=${out}`], timeoutMs: 60000 });
    await checkTarget('gateway', { gateway: gw.port }, certs.ca);
    const zeroed = spawnSync('callgrind_control', ['-z', String(gw.pid)], { encoding: 'utf8', timeout: 20000 }).status === 0;
    const served0 = (readText(gw.auditFile).match(/\n/g) ?? []).length;
    const w = await runWrk(targetUrl('gateway', { gateway: gw.port }), 'json', 32, PROFILE_SECONDS);
    await sleep(500);
    const served = (readText(gw.auditFile).match(/\n/g) ?? []).length - (zeroed ? served0 : 0);
    await stop(gw, 60000);
    const ann = (incl) => spawnSync('callgrind_annotate', [`--inclusive=${incl}`, '--threshold=100', '--auto=no', out],
      { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout ?? '';
    return { kind: 'callgrind', requests: served, rps: w.rps, zeroed, inclusive: parseAnnotate(ann('yes')), self: parseAnnotate(ann('no')) };
  }
  if (PROFILE === 'perf') {
    const gw = await startGateway(dir, 'gateway-perf', `http://127.0.0.1:${upstreamPort}/mcp`, certs);
    const data = join(dir, 'perf.data');
    const rec = spawn('perf', ['record', '-q', '-F', '999', '-g', '-p', String(gw.pid), '-o', data, '--', 'sleep', String(PROFILE_SECONDS)], { stdio: 'ignore' });
    await sleep(300);
    const w = await runWrk(targetUrl('gateway', { gateway: gw.port }), 'json', 32, PROFILE_SECONDS - 1);
    await new Promise((r) => rec.on('exit', r));
    await stop(gw);
    const rep = (children) => spawnSync('perf', ['report', '-i', data, '--stdio', children ? '--children' : '--no-children',
      '--sort', 'symbol', '-g', 'none', '--percent-limit', '0.5'], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout ?? '';
    return { kind: 'perf', rps: w.rps, inclusive: parsePerf(rep(true)), self: parsePerf(rep(false)) };
  }
  return null;
}

/** callgrind_annotate lines "   12,345 (12.3%)  file:function [object]" (or without the %). */
function parseAnnotate(text) {
  const total = /^\s*([\d,]+)\s.*PROGRAM TOTALS/m.exec(text);
  const rows = [];
  for (const line of text.split('\n')) {
    const m = /^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(?:\S*?:)?([^:\s][^\[]*?)\s*(?:\[(.*)\])?\s*$/.exec(line);
    if (!m || /PROGRAM TOTALS/.test(line)) continue;
    // A function can appear twice (its own file, and a header it inlines): keep the larger.
    const fn = m[2].replace(/'\d+$/, '');
    const ir = Number(m[1].replace(/,/g, ''));
    const seen = rows.find((r) => r.fn === fn);
    if (seen) { seen.ir = Math.max(seen.ir, ir); seen.obj ||= (m[3] ?? '').replace(/^.*\//, ''); continue; }
    rows.push({ ir, fn, obj: (m[3] ?? '').replace(/^.*\//, '') });
  }
  rows.sort((a, b) => b.ir - a.ir);
  return { total: total ? Number(total[1].replace(/,/g, '')) : NaN, rows };
}

// The parts of a request's cost named in the callgrind summary: [what, functions].
const COMPONENTS = [
  ['TLS records in and out', ['SSL_read', 'SSL_write']],
  ['TLS handshakes', ['SSL_do_handshake']],
  ['request head and JSON-RPC body', ['read_head', 'gw_rpc_parse']],
  ['member token', ['gw_auth_member']],
  ['policy', ['policy_decide']],
  ['upstream request set-up', ['gw_req_forward']],
  ['libcurl transfer work', ['curl_multi_socket_action']],
  ['upstream transfer clean-up', ['xfer_free']],
  ['response inspection (parse the answer)', ['gw_inspect_json']],
  ['- of which: audit reads the data answer', ['gw_rpc_note_answer']],
  ['response head and framing', ['write_head']],
  ['audit record, loop thread', ['gw_req_audit']],
  ['audit writer thread', ['sink_main']],
  ['- of which: chain hash', ['audit_sha256_hex']],
  ['access log line', ['log_access']],
  ['cJSON parse, print, delete (everywhere)', ['cJSON_ParseWithLengthOpts', 'cJSON_PrintUnformatted', 'cJSON_Delete']],
  ['malloc and free (everywhere)', ['malloc', 'free']],
];

function parsePerf(text) {
  const rows = [];
  for (const line of text.split('\n')) {
    const m = /^\s+([\d.]+)%\s+(?:([\d.]+)%\s+)?\[([.k])\]\s+(.*?)\s*$/.exec(line);
    if (m) rows.push({ pct: Number(m[1]), fn: m[4], kernel: m[3] === 'k' });
  }
  return { rows };
}

// ---------------------------------------------------------------------------------------------
// Output

const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');

function table(head, rows, rightFrom = 0) {
  const body = rows.map((r) => r.map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const right = (i) => i >= rightFrom;
  const line = (cells) => `| ${cells.map((c, i) => (right(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ')} |`;
  return [line(head), `|${widths.map((w, i) => (right(i) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`, ...body.map(line)].join('\n');
}

function machine() {
  const c = cpus();
  const load = readText('/proc/loadavg').split(' ').slice(0, 3).join(' ');
  const v = (cmd, args) => (spawnSync(cmd, args, { encoding: 'utf8' }).stdout + spawnSync(cmd, args, { encoding: 'utf8' }).stderr).split('\n')[0].trim();
  return `${c.length} x ${c[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${readText('/proc/sys/kernel/osrelease').trim()}, ` +
    `load average ${load}; ${v(findTool('nginx'), ['-v'])}, ${v('wrk', ['-v'])}, node ${process.version}`;
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'omni-gw-bench-'));
  const certs = makeCerts(dir);
  const started = Date.now();
  const procs = [];
  console.log(`# gateway vs nginx: ${gatewayBin()}`);
  console.log(`# machine: ${machine()}`);
  try {
    // 1. The canned upstream, nginx in front of it, the gateway in front of it.
    const ports = { direct: await closedPort(), nginx: await closedPort() };
    const upstream = await startNginx(dir, 'upstream', upstreamConf(dir, ports.direct), ports.direct);
    const proxy = await startNginx(dir, 'nginx', proxyConf(dir, ports.nginx, ports.direct, certs, MEMBERS), ports.nginx);
    const gw = await startGateway(dir, 'gateway', `http://127.0.0.1:${ports.direct}/mcp`, certs);
    procs.push(upstream, proxy, gw);
    ports.gateway = gw.port;
    for (const t of TARGETS) await checkTarget(t, ports, certs.ca);
    const pidOf = { direct: upstream.pid, nginx: proxy.pid, gateway: gw.pid };

    // 2. The load, side by side: each (framing, concurrency) against the three targets in turn.
    const results = [];
    for (const framing of FRAMINGS) {
      for (const conns of [1, 32]) {
        // A last row in JSON: the gateway with a metadata tool (pickModel) instead of a data query,
        // whose answer neither waits for its audit record nor has its rows read for the audit.
        const rows = [...TARGETS.map((t) => [t, 'getData']), ...(framing === 'json' && EXTRA_ROW ? [['gateway', 'pickModel']] : [])];
        for (const [target, tool] of rows) {
          const label = tool === 'getData' ? target : `${target} (${tool})`;
          process.stdout.write(`# wrk ${framing} c=${conns} ${label} ... `);
          const cpu0 = cpuSeconds(pidOf[target]);
          const up0 = target === 'gateway' ? await upstreamConnections(gw) : null;
          const r = await runWrk(targetUrl(target, ports), framing, conns, SECONDS, tool);
          const cpu = cpuSeconds(pidOf[target]) - cpu0;
          const up1 = target === 'gateway' ? await upstreamConnections(gw) : null;
          results.push({ framing, conns, target: label, ...r, cpuUs: r.requests ? (cpu * 1e6) / r.requests : NaN,
            upNew: up1 ? up1.new - up0.new : NaN, upReused: up1 ? up1.reused - up0.reused : NaN });
          console.log(`${fmt(r.rps, 0)} req/s`);
        }
      }
    }
    const rssAfterLoad = { nginx: rssKiB(proxy.pid), gateway: rssKiB(gw.pid) };
    await stop(gw);
    await stop(proxy);

    // 3. Streams through a fresh gateway per N.
    const streamUp = spawnWide(process.execPath, [join(HERE, 'stream-upstream.mjs'), String(EVENT_MS)], { stdout: 'pipe' });
    procs.push(streamUp);
    let upOut = '';
    streamUp.stdout.on('data', (d) => { upOut += d; });
    const upPort = Number((await waitFor('stream upstream', () => /listening (\d+)/.exec(upOut), 10000, streamUp))[1]);
    const limit = hardNofile();
    const streamRows = [];
    for (const [i, n] of STREAMS.entries()) {
      // The gateway holds two descriptors per stream (client and upstream socket).
      const fit = Math.floor((limit - 100) / 2);
      const wanted = Math.min(n, fit);
      process.stdout.write(`# streams: ${wanted}${wanted < n ? ` (asked ${n})` : ''} ... `);
      const s = await streamRun(dir, certs, upPort, wanted, i);
      s.asked = n;
      s.limit = limit;
      streamRows.push(s);
      console.log(`${s.opened} open, ${fmt((s.rss - s.idle) / s.opened, 1)} KiB/stream`);
    }
    await stop(streamUp);

    // 4. Profile of the gateway under the c=32 load (JSON framing).
    let profile = null;
    if (PROFILE !== 'none') {
      process.stdout.write(`# profile (${PROFILE}, wrk -t2 -c32 -d${PROFILE_SECONDS}s, JSON) ... `);
      try {
        profile = await profileRun(dir, certs, ports.direct);
        console.log('done');
      } catch (err) {
        console.log(`failed: ${err.message}`);
      }
    }
    await stop(upstream);

    report(results, streamRows, profile, rssAfterLoad);
    console.log(`\n# total ${((Date.now() - started) / 1000).toFixed(0)} s; load average now ${readText('/proc/loadavg').split(' ').slice(0, 3).join(' ')}`);
  } finally {
    for (const p of procs) await stop(p, 5000);
    if (process.env.KEEP_TMP === '1') console.log(`# kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

function report(results, streamRows, profile, rssAfterLoad) {
  const get = (framing, conns, target) => results.find((r) => r.framing === framing && r.conns === conns && r.target === target);
  console.log(`\n## Load: MCP tools/call getData POSTs, wrk ${SECONDS} s per row (c=1: -t1 -c1, c=32: -t2 -c32), 3 member tokens in turn`);
  console.log('direct = the canned upstream (nginx return, plain HTTP); nginx = TLS + token map + keep-alive proxy; gateway = TLS, 3 members, policy group, audit file (fsync interval), cache off');
  console.log('CPU us/req = CPU time of that target\'s own process (the upstream nginx for direct) per request');
  console.log('gateway (pickModel) = the same gateway, a metadata tool instead of getData: no wait for the audit record, no reading of the rows\n');
  const rows = results.map((r) => {
    const d = get(r.framing, r.conns, 'direct');
    return [r.framing, r.conns, r.target, fmt(r.rps, 0), fmt(r.p50, 3), fmt(r.p99, 3),
      r.target === 'direct' ? '' : fmt(r.p50 - d.p50, 3), r.errors, fmt(r.cpuUs, 1)];
  });
  console.log(table(['framing', 'c', 'target', 'req/s', 'p50 ms', 'p99 ms', 'added p50 ms', 'errors', 'CPU us/req'], rows, 3));
  const gwRuns = results.filter((r) => r.target.startsWith('gateway'));
  console.log(`\ngateway upstream transfers during the load: ${gwRuns.reduce((a, r) => a + r.upReused, 0)} on a kept-alive connection, ` +
    `${gwRuns.reduce((a, r) => a + r.upNew, 0)} on a new one`);

  console.log('\n## Ratios (targets: throughput >= 1.00 x nginx; added p50 at c=1 <= 1.00 x nginx; < 16 KiB per stream)\n');
  const ratioRows = [];
  for (const framing of FRAMINGS) {
    for (const conns of [1, 32]) {
      const g = get(framing, conns, 'gateway'), n = get(framing, conns, 'nginx'), d = get(framing, conns, 'direct');
      const ok = g.rps / n.rps >= 1;
      ratioRows.push([`${framing} c=${conns}`, 'throughput gateway / nginx', `${fmt(g.rps, 0)} / ${fmt(n.rps, 0)} req/s`, fmt(g.rps / n.rps), ok ? 'met' : 'NOT met']);
      if (conns === 1) {
        const ga = g.p50 - d.p50, na = n.p50 - d.p50;
        ratioRows.push([`${framing} c=1`, 'added p50 gateway / nginx', `${fmt(ga, 3)} / ${fmt(na, 3)} ms`, fmt(ga / na), ga <= na ? 'met' : 'NOT met']);
      }
      ratioRows.push([`${framing} c=${conns}`, 'CPU per request gateway / nginx', `${fmt(g.cpuUs, 1)} / ${fmt(n.cpuUs, 1)} us`, fmt(g.cpuUs / n.cpuUs), '']);
    }
  }
  for (const s of streamRows) {
    const per = (s.rss - s.idle) / s.opened;
    ratioRows.push([`${s.opened} streams`, 'KiB per open stream / 16 KiB', `${fmt(per, 1)} KiB`, fmt(per / 16), per < 16 ? 'met' : 'NOT met']);
  }
  console.log(table(['load', 'ratio', 'values', 'ratio', 'target'], ratioRows, 3));
  console.log(`\nresident memory after the load: nginx ${fmt(rssAfterLoad.nginx / 1024, 1)} MiB, gateway ${fmt(rssAfterLoad.gateway / 1024, 1)} MiB`);

  console.log(`\n## Streams: N concurrent GET SSE streams through the gateway (TLS), one event per stream every ${EVENT_MS} ms\n`);
  const sRows = streamRows.map((s) => [s.asked, s.opened, s.failed, fmt(s.ms / 1000, 1), fmt(s.idle / 1024, 1), fmt(s.rss / 1024, 1),
    fmt((s.rss - s.idle) / s.opened, 1), s.fds, `${s.rounds}`, `${s.counted.min}..${s.counted.max}`, s.counted.without, s.counted.alive]);
  console.log(table(['N asked', 'open', 'failed', 'open s', 'RSS idle MiB', 'RSS open MiB', 'KiB/stream', 'gateway fds', 'rounds sent',
    'events/stream', 'streams without', 'still open'], sRows, 0));
  console.log(`\nPOSTs beside the streams: wrk -t1 -c1 -d${PROBE_SECONDS}s (getData, JSON) through the same gateway, before the streams open and while they are open\n`);
  const pRows = streamRows.flatMap((s) => [['0', s.probeIdle], [String(s.opened), s.probeOpen]].map(([n, p]) => [s.asked, n, fmt(p.rps, 0),
    fmt(p.p50, 3), fmt(p.p99, 3), p.errors, p.upReused, p.upNew]));
  console.log(table(['N asked', 'streams open', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'upstream kept-alive', 'upstream new'], pRows, 0));
  for (const s of streamRows) {
    if (s.opened < s.asked) {
      console.log(`N=${s.asked}: the gateway holds 2 descriptors per stream (client and upstream socket); this machine's hard RLIMIT_NOFILE is ${s.limit}, so at most ${Math.floor((s.limit - 100) / 2)} streams fit (raising the hard limit needs CAP_SYS_RESOURCE).`);
    }
    if (s.failed) console.log(`N=${s.asked}: failures: ${s.errors.join('; ')}`);
    if (s.errors?.length) console.log(`N=${s.asked}: gateway log: ${s.errors.join(' | ')}`);
  }

  if (!profile) return;
  if (profile.kind === 'callgrind') {
    const { inclusive, self, requests } = profile;
    const perReq = (ir) => (requests ? ir / requests : NaN);
    console.log(`\n## Profile: callgrind, gateway under wrk -t2 -c32 -d${PROFILE_SECONDS}s (JSON framing)`);
    console.log(`${requests} requests served under callgrind (${fmt(profile.rps, 0)} req/s, ~50x slower than native); ` +
      `${(inclusive.total || 0).toLocaleString('en-US')} instructions in all${profile.zeroed ? ' (counters zeroed after start-up)' : ' (start-up included)'}, ` +
      `${Math.round(perReq(inclusive.total)).toLocaleString('en-US')} per request\n`);
    // Wrappers that include everything (main, the loop, thread entry) and unnamed static
    // functions of stripped libraries say nothing: left out.
    const boring = /^(0x[0-9a-f]+|\(below main\)|__libc_start_main.*|__libc_start_call_main|main|gw_server_run|event_base_dispatch|event_base_loop|event_process_active.*|clone3?|start_thread)('\d+)?$/;
    // In the self list a library's static functions stay (named by address: cJSON's parser is one).
    // (callgrind_annotate 3.19 also lists the entry points, with their inclusive cost, among the
    // self costs: a "self" cost above half the total is one of those and is left out.)
    const top = (p, keepStatic) => p.rows.filter((r) => !boring.test(r.fn) || (keepStatic && /^0x/.test(r.fn) && r.ir < p.total / 2)).slice(0, PROFILE_TOP)
      .map((r) => [/^0x/.test(r.fn) ? `(static) ${r.fn.replace(/^0x0*/, '0x')}` : r.fn, r.obj, fmt((100 * r.ir) / p.total, 1), Math.round(perReq(r.ir)).toLocaleString('en-US')]);
    console.log('where a request\'s instructions go (inclusive cost of the named functions; rows overlap):\n');
    const incl = (names) => names.reduce((a, n) => a + (inclusive.rows.find((r) => r.fn === n)?.ir ?? 0), 0);
    console.log(table(['part', 'functions', '% Ir', 'Ir/request'], COMPONENTS.map(([part, names]) => [part, names.join(', '),
      fmt((100 * incl(names)) / inclusive.total, 1), Math.round(perReq(incl(names))).toLocaleString('en-US')]), 2));
    console.log('(SSL_do_handshake: the 32 connections\' handshakes at the start of the run, spread over its requests)\n');
    console.log('top functions by inclusive cost (the function and what it calls):\n');
    console.log(table(['function', 'object', '% Ir', 'Ir/request'], top(inclusive, false), 2));
    console.log('\ntop functions by self cost:\n');
    console.log(table(['function', 'object', '% Ir', 'Ir/request'], top(self, true), 2));
  } else {
    console.log(`\n## Profile: perf record -g, gateway under wrk -t2 -c32 (JSON framing), ${fmt(profile.rps, 0)} req/s\n`);
    const top = (p) => p.rows.slice(0, PROFILE_TOP).map((r) => [r.fn, r.kernel ? 'kernel' : 'user', fmt(r.pct, 1)]);
    console.log('top symbols, children included:\n');
    console.log(table(['symbol', 'space', '%'], top(profile.inclusive), 2));
    console.log('\ntop symbols, self:\n');
    console.log(table(['symbol', 'space', '%'], top(profile.self), 2));
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
