#!/usr/bin/env node
// The upstream of the stream benchmark (tests/bench/proxy.mjs): an MCP server that holds GET
// streams. Every GET /mcp gets a text/event-stream that stays open; every EVENT_MS all open
// streams get one event (a notifications/message numbered by round). GET /count answers how
// many streams are open; a POST /mcp gets a small JSON result at once. Prints `listening <port>`
// when ready.
//
//   node tests/bench/stream-upstream.mjs [EVENT_MS]
import http from 'node:http';

const EVENT_MS = Number(process.argv[2] ?? 2000);
const streams = new Set();
let round = 0;

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/count') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ open: streams.size, round }));
    return;
  }
  if (req.method === 'POST' && req.url.startsWith('/mcp')) {
    // A POST (the benchmark's probe of request latency while the streams are open) gets a
    // small JSON-RPC result at once.
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}],"isError":false}}');
    });
    return;
  }
  // The gateway's readiness probe (admin listener) GETs the upstream URL now and then: it gets
  // a 405 like a server without GET streams, and is not counted as a stream.
  const probe = /readiness probe/.test(req.headers['user-agent'] ?? '');
  if (req.method !== 'GET' || !req.url.startsWith('/mcp') || probe) {
    res.writeHead(405, { 'Content-Type': 'application/json', Allow: 'GET' });
    res.end('{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"GET streams only"}}');
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
  res.flushHeaders();
  // A comment line at once, so the stream's first body bytes do not wait for the first round.
  res.write(': open\n\n');
  streams.add(res);
  const gone = () => streams.delete(res);
  res.on('close', gone);
  req.on('close', gone);
});
server.keepAliveTimeout = 0;
server.headersTimeout = 0;
server.requestTimeout = 0;
server.maxHeadersCount = 100;

setInterval(() => {
  round++;
  const event = `event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","logger":"bench","data":"tick ${round}"}}\n\n`;
  for (const res of streams) res.write(event);
}, EVENT_MS);

server.listen(0, '127.0.0.1', 4096, () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
