// A plain-HTTP pass-through in front of the fake Omni that adds request headers the gateway
// would not forward (e.g. the fake's `X-Fake-Json: 1`, which makes a session answer
// application/json instead of SSE). Bodies stream both ways; it keeps the status and
// Content-Type of every response, so a test can show how the upstream framed its answer.
import http from 'node:http';

/**
 * Starts the proxy on a free loopback port, forwarding to the origin of `target` (an http URL)
 * with `addHeaders` added to every request. Resolves to
 * { url (target's path on the proxy), origin, responses (array of { method, path, status,
 * contentType }), stop() }.
 */
export function startHeaderProxy(target, addHeaders = {}) {
  const up = new URL(target);
  const responses = [];
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const headers = { ...req.headers, host: up.host, ...addHeaders };
    const out = http.request({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers, agent: false }, (ures) => {
      responses.push({ method: req.method, path: req.url, status: ures.statusCode, contentType: ures.headers['content-type'] ?? null });
      // Hop-by-hop headers belong to each connection: the upstream's `Connection: close` (it
      // answers a connection used once) must not close the gateway's kept-alive one.
      const hop = new Set(['connection', 'keep-alive', 'transfer-encoding']);
      const headers = [];
      for (let i = 0; i < ures.rawHeaders.length; i += 2) {
        if (!hop.has(ures.rawHeaders[i].toLowerCase())) headers.push(ures.rawHeaders[i], ures.rawHeaders[i + 1]);
      }
      res.writeHead(ures.statusCode, headers);
      res.flushHeaders();
      ures.pipe(res);
    });
    out.on('error', () => res.destroy());
    res.on('close', () => out.destroy()); // the gateway went away: so does the upstream request
    req.pipe(out);
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const origin = `http://127.0.0.1:${server.address().port}`;
      resolve({
        origin,
        url: `${origin}${up.pathname}`,
        responses,
        stop: () => new Promise((r) => {
          for (const s of sockets) s.destroy();
          server.close(() => r());
        }),
      });
    });
  });
}
