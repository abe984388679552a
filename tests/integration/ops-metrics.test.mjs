// The admin listener (issue 6): /healthz, /readyz and /metrics on "admin": {"listen":
// "127.0.0.1:0"} (the log names the bound port). /metrics is read with a strict Prometheus text
// parser (lib/prometheus.mjs), and its counters are compared with the traffic the test made and
// with what the fake Omni received: requests by member/method/tool/status, the latency
// histograms, cache hits and misses, rate-limit refusals, reloads, open streams.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { OMNI, TEAM, TestEnv, closedPort, openStream, waitFor } from './lib/harness.mjs';
import { getDataMessage, rawSession, responseMessage, rpc } from './lib/mcp.mjs';
import { adminGet, adminUrl, parsePrometheus, scrape } from './lib/prometheus.mjs';

const asAlice = (name, more = {}) => ({ name, pat: OMNI.users.alice.pat, userId: OMNI.users.alice.id, ...more });
const MEMBERS = [...TEAM, asAlice('rita', { rule: { rate: { tool_calls_per_minute: 1, burst: 1 } } })];
const ADMIN = { admin: { listen: '127.0.0.1:0' } };

const env = new TestEnv('ops-metrics');
let fake;
let gw;
let admin; // http://127.0.0.1:PORT

before(async () => {
  fake = await env.startFake();
  gw = await env.startGateway({ upstreamUrl: fake.mcpUrl, members: MEMBERS, config: ADMIN });
  admin = await adminUrl(gw);
});
after(async () => {
  await fake?.release().catch(() => {});
  await env.cleanup();
});
beforeEach(() => fake.reset());

const session = (member) => rawSession(gw.url, { ca: gw.ca, headers: gw.auth(member) });
const pickModel = (id) => rpc(id, 'tools/call', { name: 'pickModel', arguments: {} });

/** requests_total of one series (0 when the series does not exist yet). */
const requests = (m, member, method, tool, status) => m.value('omni_gw_requests_total', { member, method, tool, status: String(status) }) ?? 0;
/** The sum of every omni_gw_requests_total series. */
const allRequests = (m) => m.families.get('omni_gw_requests_total').samples.reduce((a, s) => a + s.value, 0);
const counter = (m, name, labels = {}) => m.value(name, labels) ?? 0;

/** The fake's MCP requests, without the gateway's readiness probes. */
async function upstreamMcpRequests() {
  return (await fake.mcpRequests()).filter((r) => !/readiness probe/.test(String(r.headers['user-agent'] ?? '')));
}

/** The access log lines (text format) of the responses in `responses`, found by X-Request-Id. */
async function accessLines(responses) {
  const lines = [];
  for (const res of responses) {
    const id = res.headers['x-request-id'];
    assert.ok(id, `X-Request-Id in ${JSON.stringify(res.headers)}`);
    lines.push(await gw.waitForLog(new RegExp(`access req=${id.replace(/[^\w-]/g, '.')} `)));
  }
  return lines;
}

describe('health and readiness', () => {
  it('/healthz answers 200; /readyz answers 200 once Omni (the fake) has answered; other paths 404', async () => {
    const health = await adminGet(admin, '/healthz');
    assert.equal(health.status, 200, health.body);

    // The first probe is sent at start-up: ready as soon as the fake has answered it.
    const ready = await waitFor(async () => {
      const r = await adminGet(admin, '/readyz');
      return r.status === 200 && r;
    }, { timeoutMs: 10000, message: '/readyz 200 with the fake up' });
    assert.match(ready.body, /ready/);

    const other = await adminGet(admin, '/mcp');
    assert.equal(other.status, 404, other.body);
    assert.equal((await adminGet(admin, '/metricsx')).status, 404);
  });

  it('/readyz is 503 (naming the upstream) for a gateway whose upstream port is closed, while /healthz is 200', async () => {
    const port = await closedPort();
    const down = await env.startGateway({ upstreamUrl: `http://127.0.0.1:${port}/mcp/https`, config: ADMIN, name: 'gateway-upstream-down' });
    const base = await adminUrl(down);
    // Wait for the first probe to fail (its log line), then ask: no 30 s window to sit out.
    await down.waitForLog(/upstream: .*(refused|connect)/i, { timeoutMs: 10000 });
    const ready = await adminGet(base, '/readyz');
    assert.equal(ready.status, 503, `readyz with the upstream down: ${ready.status} ${ready.body}`);
    assert.match(ready.body, /upstream/i, ready.body);
    assert.equal((await adminGet(base, '/healthz')).status, 200);
    // And the MCP side says why a request cannot be served: 502 -32011.
    const s = await down.request({ member: 'alice', body: rpc(1, 'tools/list') });
    assert.equal(s.status, 502, s.body);
    await down.stop();
  });
});

describe('/metrics', () => {
  it('parses as Prometheus text: HELP and TYPE for every family, the families of issue 6 are there, histograms are consistent', async () => {
    // Some traffic first, so that the request series and histograms are not empty.
    const s = await session('alice');
    assert.equal((await s.post(rpc(2, 'tools/list'))).status, 200);

    const res = await adminGet(admin, '/metrics');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/, res.headers['content-type']);
    const m = parsePrometheus(res.body);
    const want = {
      omni_gw_requests_total: 'counter',
      omni_gw_request_duration_seconds: 'histogram',
      omni_gw_upstream_duration_seconds: 'histogram',
      omni_gw_rate_limited_total: 'counter',
      omni_gw_config_reloads_total: 'counter',
      omni_gw_open_streams: 'gauge',
      omni_gw_client_connections: 'gauge',
      omni_gw_upstream_connections_total: 'counter',
      omni_gw_cache_hits_total: 'counter',
      omni_gw_cache_misses_total: 'counter',
    };
    for (const [name, type] of Object.entries(want)) {
      const f = m.families.get(name);
      assert.ok(f, `family ${name} in:\n${res.body}`);
      assert.equal(f.type, type, `TYPE of ${name}`);
    }
    for (const f of m.families.values()) {
      assert.ok(f.typed, `${f.name} has a TYPE line`);
      assert.ok(f.help && f.help.length > 0, `${f.name} has a HELP line`);
      assert.ok(f.name.startsWith('omni_gw_'), `${f.name} is namespaced omni_gw_`);
    }
    assert.ok(requests(m, 'alice', 'tools/list', '', 200) >= 1, 'alice\'s tools/list is counted');
    assert.equal(counter(m, 'omni_gw_request_duration_seconds_count'), allRequests(m), 'every counted request is in the latency histogram');
    assert.equal(m.value('omni_gw_config_reloads_total', { result: 'ok' }), 0);
    assert.equal(m.value('omni_gw_config_reloads_total', { result: 'failed' }), 0);
  });

  it('the strict parser refuses what a Prometheus server would refuse', () => {
    const ok = '# HELP a_total A.\n# TYPE a_total counter\na_total{x="q\\"\\\\\\n"} 1\n';
    assert.equal(parsePrometheus(ok).value('a_total', { x: 'q"\\\n' }), 1);
    const bad = [
      'a_total{x="q\\t"} 1\n', // unknown escape
      'a_total{x="q} 1\n', // unterminated
      'a_total 1\na_total 2\n', // duplicate series
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', // decreasing
      '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n', // +Inf != count
      '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', // no +Inf
      '# TYPE c counter\nc -1\n', // negative counter
      'a 1\nb 1\na{x="y"} 1\n', // family not together
      'a 1\n# TYPE a gauge\n', // TYPE after samples
      'a one\n',
      'a 1', // no final newline
    ];
    for (const text of bad) assert.throws(() => parsePrometheus(text), `refused: ${JSON.stringify(text)}`);
  });

  it('counters move with traffic: requests by member/method/tool/status exactly, histograms, cache hits and misses, upstream connections', async () => {
    const before = await scrape(admin);
    const s = await session('alice');
    const responses = [];
    const post = async (msg) => {
      const res = await s.post(msg);
      assert.equal(res.status, 200, `${msg.method}: ${res.status} ${res.body}`);
      assert.ok(responseMessage(res, msg.id).result, res.body);
      responses.push(res);
      return res;
    };
    const GETDATA = 3;
    await post(rpc(10, 'tools/list'));
    for (let i = 0; i < GETDATA; i++) await post(getDataMessage(20 + i));
    await post(rpc(11, 'tools/list'));
    await post(pickModel(30));
    await post(pickModel(31));
    // bob's getData is refused by Omni inside a 200 (he is a Viewer): counted under bob, not alice.
    const bobS = await session('bob');
    await bobS.post(getDataMessage(40));

    const m = await scrape(admin);
    const d = (member, method, tool, status) => requests(m, member, method, tool, status) - requests(before, member, method, tool, status);
    assert.equal(d('alice', 'tools/call', 'getData', 200), GETDATA, 'alice\'s getData calls');
    assert.equal(d('alice', 'tools/list', '', 200), 2, 'alice\'s tools/list');
    assert.equal(d('alice', 'tools/call', 'pickModel', 200), 2, 'alice\'s pickModel');
    assert.equal(d('alice', 'initialize', '', 200), 1, 'alice\'s initialize');
    assert.equal(d('alice', 'notifications/initialized', '', 202), 1, 'alice\'s notifications/initialized');
    assert.equal(d('bob', 'tools/call', 'getData', 200), 1, 'bob\'s getData');
    assert.equal(d('bob', 'initialize', '', 200), 1, 'bob\'s initialize');
    assert.equal(allRequests(m) - allRequests(before), 1 + 1 + 7 + 1 + 1 + 1, 'nothing else was counted');

    // Every request is observed once by the gateway histogram.
    const hc = (x, name) => counter(x, `${name}_count`);
    assert.equal(hc(m, 'omni_gw_request_duration_seconds') - hc(before, 'omni_gw_request_duration_seconds'), 12);
    assert.equal(hc(m, 'omni_gw_request_duration_seconds'), allRequests(m));
    assert.ok(counter(m, 'omni_gw_request_duration_seconds_sum') >= counter(before, 'omni_gw_request_duration_seconds_sum'));

    // Cache: what the access log says of each of alice's requests is what the counters say.
    // The repeated tools/list and pickModel are hits; the first ones may be hits as well when
    // an earlier test cached alice's answers.
    const lines = await accessLines(responses);
    const outcome = (l) => / cache=(hit|miss)\b/.exec(l)?.[1] ?? 'none';
    assert.deepEqual(lines.map(outcome).filter((o, i) => [4, 6].includes(i)), ['hit', 'hit'], `the second tools/list and the second pickModel are hits:\n${lines.join('\n')}`);
    assert.deepEqual(lines.map(outcome).filter((o, i) => [1, 2, 3].includes(i)), ['none', 'none', 'none'], `getData never looks in the cache:\n${lines.join('\n')}`);
    const hits = lines.filter((l) => outcome(l) === 'hit').length;
    const misses = lines.filter((l) => outcome(l) === 'miss').length;
    assert.equal(hits + misses, 4, `4 metadata requests looked in the cache:\n${lines.join('\n')}`);
    assert.equal(counter(m, 'omni_gw_cache_hits_total') - counter(before, 'omni_gw_cache_hits_total'), hits, 'cache hits');
    // bob's getData is not cacheable: no lookup. Only alice's 4 metadata requests looked.
    assert.equal(counter(m, 'omni_gw_cache_misses_total') - counter(before, 'omni_gw_cache_misses_total'), misses, 'cache misses');

    // The upstream histogram counts the requests that reached Omni: all but the hits.
    const upstream = await upstreamMcpRequests();
    assert.equal(upstream.length, 12 - hits, `upstream requests: ${upstream.map((r) => r.body?.method).join(', ')}`);
    assert.equal(hc(m, 'omni_gw_upstream_duration_seconds') - hc(before, 'omni_gw_upstream_duration_seconds'), upstream.length, 'upstream histogram');
    // Each upstream transfer used a new or a reused connection.
    const conns = (x) => counter(x, 'omni_gw_upstream_connections_total', { connection: 'new' }) + counter(x, 'omni_gw_upstream_connections_total', { connection: 'reused' });
    assert.ok(conns(m) - conns(before) >= upstream.length, `upstream connections ${conns(before)} → ${conns(m)}`);
    assert.ok(counter(m, 'omni_gw_upstream_connections_total', { connection: 'reused' }) > counter(before, 'omni_gw_upstream_connections_total', { connection: 'reused' }), 'kept-alive upstream connections are reused');
  });

  it('rate-limit refusals are counted by member, and the refused request is counted with status 429', async () => {
    const before = await scrape(admin);
    const s = await session('rita');
    assert.equal((await s.post(pickModel(1))).status, 200);
    const refused = await s.post(pickModel(2));
    assert.equal(refused.status, 429, refused.body);
    assert.equal(JSON.parse(refused.body).error.code, -32029);

    const m = await scrape(admin);
    assert.equal(counter(m, 'omni_gw_rate_limited_total', { member: 'rita' }) - counter(before, 'omni_gw_rate_limited_total', { member: 'rita' }), 1, 'rate_limited_total of rita');
    assert.equal(requests(m, 'rita', 'tools/call', 'pickModel', 429) - requests(before, 'rita', 'tools/call', 'pickModel', 429), 1, 'the 429 in requests_total');
    assert.equal(counter(m, 'omni_gw_rate_limited_total', { member: 'alice' }), 0, 'alice was never limited');
  });

  it('a label value with a quote, a backslash, a newline and UTF-8 (a client-chosen method) is escaped and reads back unchanged', async () => {
    const odd = 'odd"me\\thod\nline2-é';
    const s = await session('alice');
    const res = await s.post(rpc(5, odd));
    assert.equal(res.status, 200, res.body); // Omni answers -32601 inside a 200

    const page = (await adminGet(admin, '/metrics')).body;
    assert.ok(page.includes('method="odd\\"me\\\\thod\\nline2-é"'), `escaped label in:\n${page}`);
    const m = parsePrometheus(page);
    assert.equal(requests(m, 'alice', odd, '', 200), 1, 'the series reads back with the original value');
  });

  it('open streams: 1 while alice\'s getData is held, 0 after it is released', async () => {
    const s = await session('alice');
    await fake.hold();
    const held = await s.stream(getDataMessage(50));
    try {
      assert.equal(held.status, 200);
      await held.nextEvent(); // "getData started": the request is in flight
      const m = await scrape(admin);
      assert.equal(m.value('omni_gw_open_streams'), 1, 'open streams while held');
      assert.ok(m.value('omni_gw_client_connections') >= 1, 'client connections while held');
    } finally {
      await fake.release();
    }
    const events = await held.rest();
    assert.ok(events.map((e) => e.json()).find((x) => x.id === 50)?.result, held.text());
    await waitFor(async () => (await scrape(admin)).value('omni_gw_open_streams') === 0, { message: 'open streams back to 0' });
  });

  it('a GET stream that the client closes is counted (requests_total, latency histogram) once it is gone', async () => {
    const before = await scrape(admin);
    const s = await session('alice');
    const get = await openStream(gw.url, { method: 'GET', headers: { ...s.headers(), Accept: 'text/event-stream' }, ca: gw.ca });
    assert.equal(get.status, 200);
    await waitFor(async () => (await fake.requests()).some((r) => r.method === 'GET'), { message: 'the GET stream upstream' });
    get.close();
    await waitFor(async () => (await fake.events()).some((e) => e.type === 'response-closed-early'), { message: 'the gateway closed the upstream GET' });
    await waitFor(async () => (await scrape(admin)).value('omni_gw_open_streams') === 0, { message: 'open streams back to 0' });
    const counted = await waitFor(async () => {
      const m = await scrape(admin);
      return requests(m, 'alice', 'GET', '', 200) - requests(before, 'alice', 'GET', '', 200) === 1 && m;
    }, { timeoutMs: 3000, message: 'alice\'s GET stream in omni_gw_requests_total{member="alice",method="GET",tool="",status="200"}' });
    assert.equal(counter(counted, 'omni_gw_request_duration_seconds_count'), allRequests(counted));
  });

  it('config reloads: a good SIGHUP counts ok, a broken config counts failed', async () => {
    const before = await scrape(admin);
    const ok = (x) => x.value('omni_gw_config_reloads_total', { result: 'ok' });
    const failed = (x) => x.value('omni_gw_config_reloads_total', { result: 'failed' });

    let mark = gw.stderr().length;
    gw.signal('SIGHUP'); // the same file: a good reload
    await gw.waitForLog(/reload: config applied/, { since: mark });
    let m = await scrape(admin);
    assert.equal(ok(m) - ok(before), 1, 'ok after a good reload');
    assert.equal(failed(m) - failed(before), 0, 'failed after a good reload');

    const good = JSON.stringify(gw.config, null, 2);
    writeFileSync(gw.configFile, '{ "listen": ');
    try {
      mark = gw.stderr().length;
      gw.signal('SIGHUP');
      await gw.waitForLog(/reload: kept the running config/, { since: mark });
    } finally {
      writeFileSync(gw.configFile, good);
    }
    m = await scrape(admin);
    assert.equal(ok(m) - ok(before), 1, 'ok after a bad reload');
    assert.equal(failed(m) - failed(before), 1, 'failed after a bad reload');
    // Still serving with the running config.
    const s = await session('alice');
    assert.equal((await s.post(rpc(2, 'tools/list'))).status, 200);
  });
});
