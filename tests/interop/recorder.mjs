// Preload for the interoperability tests' real MCP servers (`node --import <this file> server.js`):
//
// - Loopback only: a server that listens on a port without naming a host (Express's
//   `app.listen(PORT)`, as in @modelcontextprotocol/server-everything, which has no host option)
//   is made to listen on 127.0.0.1 instead of every interface. Start it with PORT=0: the real port
//   is printed as `interop-recorder: listening on http://127.0.0.1:PORT` on stderr.
// - Records what the server received: every HTTP request (method, path, headers, raw header
//   pairs, body) and how its response ended (status, `finished` when the server ended it,
//   `closedEarly` when the connection went away first, e.g. a client or gateway that cancelled),
//   and the first 256 KiB of the response body the server wrote (`response`: SSE events too).
//   The request body is copied as the server's own stack reads it (IncomingMessage#push), so
//   nothing is consumed or delayed.
// - Control endpoints, answered before the server sees the request:
//     GET  /_rec/requests   the records, oldest first (JSON array)
//     GET  /_rec/events     events the server script reported with globalThis.interopEvent(obj)
//     POST /_rec/reset      forgets both
import http from 'node:http';
import net from 'node:net';

const requests = [];
const events = [];
let seq = 0;
const RESPONSE_KEEP = 256 * 1024;

globalThis.interopEvent = (event) => { events.push({ ...event, at: Date.now() }); };

const origListen = net.Server.prototype.listen;
net.Server.prototype.listen = function listen(...args) {
  const first = args[0];
  if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    if (typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1');
  } else if (first && typeof first === 'object' && first.host === undefined && first.path === undefined && first.port !== undefined) {
    args[0] = { ...first, host: '127.0.0.1' };
  }
  if (this instanceof http.Server) {
    this.once('listening', () => {
      const a = this.address();
      process.stderr.write(`interop-recorder: listening on http://${a.address}:${a.port}\n`);
    });
  }
  return origListen.apply(this, args);
};

function control(req, res) {
  const send = (status, obj) => {
    const body = JSON.stringify(obj);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  };
  req.resume();
  const path = req.url.split('?')[0];
  if (req.method === 'GET' && path === '/_rec/requests') return send(200, requests);
  if (req.method === 'GET' && path === '/_rec/events') return send(200, events);
  if (req.method === 'POST' && path === '/_rec/reset') {
    requests.length = 0;
    events.length = 0;
    return send(200, { ok: true });
  }
  return send(404, { error: `no control endpoint ${req.method} ${path}` });
}

const origEmit = http.Server.prototype.emit;
http.Server.prototype.emit = function emit(event, req, res, ...rest) {
  if (event !== 'request') return origEmit.call(this, event, req, res, ...rest);
  if (req.url.startsWith('/_rec/')) {
    control(req, res);
    return true;
  }
  const rec = {
    seq: ++seq,
    at: Date.now(),
    method: req.method,
    path: req.url,
    headers: { ...req.headers },
    rawHeaders: [...req.rawHeaders],
    body: '',
    bodyComplete: false,
    status: null,
    finished: false,
    closedEarly: false,
    endedAt: null,
    response: '',
  };
  requests.push(rec);
  const chunks = [];
  const origPush = req.push;
  req.push = function push(chunk, encoding) {
    if (chunk === null) {
      rec.body = Buffer.concat(chunks).toString('utf8');
      rec.bodyComplete = true;
    } else if (chunk !== undefined) {
      chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, encoding));
      rec.body = Buffer.concat(chunks).toString('utf8');
    }
    return origPush.call(this, chunk, encoding);
  };
  const keep = (chunk, encoding) => {
    if (chunk === undefined || chunk === null || typeof chunk === 'function' || rec.response.length >= RESPONSE_KEEP) return;
    let text;
    if (typeof chunk === 'string') text = Buffer.from(chunk, typeof encoding === 'string' ? encoding : 'utf8').toString('utf8');
    else if (chunk instanceof Uint8Array) text = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('utf8');
    else return;
    rec.response += text.slice(0, RESPONSE_KEEP - rec.response.length);
  };
  const origWrite = res.write;
  res.write = function write(chunk, encoding, cb) { keep(chunk, encoding); return origWrite.call(this, chunk, encoding, cb); };
  const origEnd = res.end;
  res.end = function end(chunk, encoding, cb) { keep(chunk, encoding); return origEnd.call(this, chunk, encoding, cb); };
  res.on('finish', () => { rec.finished = true; rec.status = res.statusCode; rec.endedAt = Date.now(); });
  res.on('close', () => {
    if (!rec.finished) { rec.closedEarly = true; rec.status = res.headersSent ? res.statusCode : null; rec.endedAt = Date.now(); }
  });
  return origEmit.call(this, event, req, res, ...rest);
};
