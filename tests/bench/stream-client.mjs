#!/usr/bin/env node
// The client of the stream benchmark (tests/bench/proxy.mjs): opens N GET SSE streams to the
// gateway over TLS, one socket each (members' tokens in turn), and counts the events each
// stream receives. Driven by lines on stdin, answering one JSON line on stdout per command:
//   (start)  opens the streams, at most CONCURRENT handshakes at a time, then prints
//            {"opened":n,"failed":n,"errors":[...],"ms":t} once every stream has its 200 head
//   mark     starts a counting window: {"marked":n}
//   count    ends it: {"streams":n,"alive":n,"min":e,"max":e,"total":e,"without":k} where
//            min/max/total are events per stream in the window and `without` the streams that
//            got none
//   exit     closes everything and exits
//
//   node tests/bench/stream-client.mjs '{"port":8443,"n":1000,"tokens":["gwt_..."],"caFile":"ca.pem"}'
import { readFileSync } from 'node:fs';
import readline from 'node:readline';
import tls from 'node:tls';

const opts = JSON.parse(process.argv[2]);
const HOST = opts.host ?? '127.0.0.1';
const PATH = opts.path ?? '/mcp';
const CONCURRENT = opts.concurrent ?? 128;
const OPEN_TIMEOUT_MS = opts.openTimeoutMs ?? 180000;
// One secure context for every socket (a `ca` option per connect would parse the PEM each time).
const secureContext = tls.createSecureContext({ ca: readFileSync(opts.caFile) });
const MARK = 'tick ';

const streams = [];
const errors = new Map();
let opened = 0;
let failed = 0;

function say(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function noteError(msg) {
  errors.set(msg, (errors.get(msg) ?? 0) + 1);
}

/** Opens stream i; resolves when its head arrived (true) or it failed (false). */
function openOne(i) {
  return new Promise((resolve) => {
    const s = { events: 0, mark: 0, alive: true, head: false };
    let head = '';
    let tail = '';
    let settled = false;
    const settle = (ok, why) => {
      if (settled) return;
      settled = true;
      if (ok) opened++;
      else { failed++; noteError(why); }
      resolve(ok);
    };
    const sock = tls.connect({ host: HOST, port: opts.port, secureContext, servername: 'localhost' }, () => {
      sock.write(`GET ${PATH} HTTP/1.1\r\nHost: ${HOST}:${opts.port}\r\n` +
        `Authorization: Bearer ${opts.tokens[i % opts.tokens.length]}\r\n` +
        'Accept: text/event-stream\r\nMcp-Session-Id: bench-stream\r\n' +
        'MCP-Protocol-Version: 2025-06-18\r\n\r\n');
    });
    sock.setEncoding('latin1');
    sock.on('data', (chunk) => {
      let text = chunk;
      if (!s.head) {
        head += text;
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const status = head.slice(0, head.indexOf('\r\n'));
        if (!/^HTTP\/1\.1 200 /.test(status)) {
          sock.destroy();
          settle(false, `status: ${status}`);
          return;
        }
        s.head = true;
        settle(true);
        text = head.slice(end + 4);
        head = '';
      }
      // Count MARK occurrences, including one split across two chunks.
      const joined = tail + text;
      let at = joined.indexOf(MARK);
      while (at >= 0) {
        s.events++;
        at = joined.indexOf(MARK, at + MARK.length);
      }
      tail = joined.slice(-(MARK.length - 1));
    });
    sock.on('error', (err) => settle(false, err.code ?? err.message));
    sock.on('close', () => { s.alive = false; settle(false, 'closed before the head'); });
    s.sock = sock;
    streams.push(s);
  });
}

async function openAll() {
  const t0 = Date.now();
  let next = 0;
  const worker = async () => {
    while (next < opts.n) await openOne(next++);
  };
  const timeout = new Promise((r) => setTimeout(r, OPEN_TIMEOUT_MS, 'timeout'));
  const done = Promise.all(Array.from({ length: Math.min(CONCURRENT, opts.n) }, worker));
  const why = await Promise.race([done, timeout]);
  say({ opened, failed: failed + (why === 'timeout' ? opts.n - opened - failed : 0),
    errors: [...errors].map(([m, k]) => `${m} (x${k})`).slice(0, 5), ms: Date.now() - t0 });
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const cmd = line.trim();
  if (cmd === 'mark') {
    for (const s of streams) s.mark = s.events;
    say({ marked: streams.length });
  } else if (cmd === 'count') {
    const got = streams.filter((s) => s.head).map((s) => s.events - s.mark);
    say({
      streams: got.length,
      alive: streams.filter((s) => s.head && s.alive).length,
      min: got.length ? Math.min(...got) : 0,
      max: got.length ? Math.max(...got) : 0,
      total: got.reduce((a, b) => a + b, 0),
      without: got.filter((e) => e === 0).length,
    });
  } else if (cmd === 'exit') {
    for (const s of streams) s.sock.destroy();
    process.exit(0);
  }
});
rl.on('close', () => process.exit(0));
openAll();
