// HTTP clients for the tests: a fetch that trusts the test CA (for the SDK client), a raw request
// that returns status, headers and exact body, an SSE stream reader, curl, and raw TLS sockets.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { Readable } from 'node:stream';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

function headersToObject(h) {
  if (!h) return {};
  if (typeof h.forEach === 'function' && !Array.isArray(h)) {
    const o = {};
    h.forEach((v, k) => { o[k] = v; });
    return o;
  }
  if (Array.isArray(h)) return Object.fromEntries(h);
  return { ...h };
}

/**
 * A fetch(url, init) built on node:https that trusts `ca` (PEM). The SDK's
 * StreamableHTTPClientTransport takes it as its `fetch` option. Bodies stream as they arrive.
 * The returned object has destroy() to close its kept-alive connections.
 */
export function tlsFetch(ca) {
  const agent = new https.Agent({ ca, keepAlive: true });
  const f = (input, init = {}) => new Promise((resolve, reject) => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    const signal = init.signal;
    if (signal?.aborted) {
      reject(signal.reason ?? new DOMException('aborted', 'AbortError'));
      return;
    }
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request(url, {
      method: init.method ?? 'GET',
      headers: headersToObject(init.headers),
      agent: url.protocol === 'https:' ? agent : undefined,
    });
    const onAbort = () => {
      const err = signal.reason ?? new DOMException('aborted', 'AbortError');
      req.destroy(err);
      reject(err);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (err) => { signal?.removeEventListener('abort', onAbort); reject(err); });
    req.on('response', (res) => {
      const headers = new Headers();
      for (let i = 0; i < res.rawHeaders.length; i += 2) headers.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
      res.on('close', () => signal?.removeEventListener('abort', onAbort));
      let body = null;
      if (!NULL_BODY_STATUSES.has(res.statusCode) && init.method !== 'HEAD') body = Readable.toWeb(res);
      else res.resume();
      resolve(new Response(body, { status: res.statusCode, statusText: res.statusMessage, headers }));
    });
    if (init.body !== undefined && init.body !== null) req.end(init.body);
    else req.end();
  });
  f.destroy = () => agent.destroy();
  return f;
}

/**
 * One request on a fresh connection. headers: object, or an array of [name, value] pairs (sent in
 * that order, duplicates allowed). body: string or Buffer. chunked: send the body without
 * Content-Length. Resolves to { status, headers (lowercased object), rawHeaders, body (string) }.
 */
export function request(url, { method = 'GET', headers = {}, body, chunked = false, ca, timeoutMs = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const flat = Array.isArray(headers) ? headers.flat() : Object.entries(headers).flat();
    const has = (name) => flat.some((v, i) => i % 2 === 0 && String(v).toLowerCase() === name);
    const hasLength = has('content-length');
    // Node adds no Host when headers are given as a list.
    if (!has('host')) flat.unshift('Host', u.host);
    if (body !== undefined && !chunked && !hasLength) flat.push('Content-Length', String(Buffer.byteLength(body)));
    const req = mod.request(u, { method, headers: flat, ca, agent: false });
    const timer = setTimeout(() => {
      req.destroy(new Error(`${method} ${url} got no complete answer within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', (err) => { clearTimeout(timer); reject(err); });
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', (err) => { clearTimeout(timer); reject(err); });
    });
    if (body !== undefined && chunked) {
      // Two writes force chunked transfer encoding.
      const buf = Buffer.from(body);
      const half = Math.floor(buf.length / 2);
      req.write(buf.subarray(0, half));
      req.end(buf.subarray(half));
    } else {
      req.end(body);
    }
  });
}

/** Parses complete SSE events out of text; returns { events, rest }. */
export function parseSse(text) {
  const events = [];
  const norm = text.replace(/\r\n/g, '\n').replace(/\r/g, '\n');
  const blocks = norm.split('\n\n');
  const rest = blocks.pop();
  for (const block of blocks) {
    const ev = { event: 'message', data: '', id: undefined, retry: undefined, comments: [] };
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) { ev.comments.push(line.slice(1)); continue; }
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') data.push(value);
      else if (field === 'event') ev.event = value;
      else if (field === 'id') ev.id = value;
      else if (field === 'retry') ev.retry = value;
    }
    ev.data = data.join('\n');
    if (data.length === 0 && ev.id === undefined && ev.retry === undefined && ev.comments.length === 0) continue;
    ev.json = () => JSON.parse(ev.data);
    events.push(ev);
  }
  return { events, rest };
}

/**
 * Opens a request whose response is read as it arrives (SSE or not). Resolves when the response
 * head is in, to { status, headers, nextEvent(timeoutMs), rest(timeoutMs), text(), ended, close() }.
 * nextEvent resolves to the next SSE event with data, or null once the stream has ended.
 * close() destroys the connection (a client that goes away).
 */
export function openStream(url, { method = 'POST', headers = {}, body, ca, headTimeoutMs = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const h = { ...headers };
    if (body !== undefined) h['Content-Length'] = String(Buffer.byteLength(body));
    const req = mod.request(u, { method, headers: h, ca, agent: false });
    const timer = setTimeout(() => req.destroy(new Error(`${method} ${url}: no response head within ${headTimeoutMs} ms`)), headTimeoutMs);
    req.on('error', (err) => { clearTimeout(timer); reject(err); });
    req.on('response', (res) => {
      clearTimeout(timer);
      let raw = '';
      let pending = '';
      const queue = [];
      const waiters = [];
      let endedFlag = false;
      let endError = null;
      const flush = () => {
        while (waiters.length && (queue.length || endedFlag)) {
          const w = waiters.shift();
          clearTimeout(w.timer);
          if (queue.length) w.resolve(queue.shift());
          else if (endError) w.reject(endError);
          else w.resolve(null);
        }
      };
      let endResolve;
      const ended = new Promise((r) => { endResolve = r; });
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        raw += chunk;
        pending += chunk;
        const { events, rest } = parseSse(pending);
        pending = rest;
        queue.push(...events);
        flush();
      });
      const finish = (err) => {
        if (endedFlag) return;
        endedFlag = true;
        endError = err ?? null;
        endResolve({ error: endError });
        flush();
      };
      res.on('end', () => finish());
      res.on('error', (err) => finish(err));
      res.on('close', () => finish());
      resolve({
        status: res.statusCode,
        headers: res.headers,
        text: () => raw,
        ended,
        isEnded: () => endedFlag,
        nextEvent(timeoutMs = 10000) {
          return new Promise((resolveEv, rejectEv) => {
            const w = { resolve: resolveEv, reject: rejectEv };
            w.timer = setTimeout(() => {
              const i = waiters.indexOf(w);
              if (i >= 0) waiters.splice(i, 1);
              rejectEv(new Error(`no SSE event within ${timeoutMs} ms; received so far:\n${raw}`));
            }, timeoutMs);
            waiters.push(w);
            flush();
          });
        },
        /** Reads events until the stream ends; resolves to the list. */
        async rest(timeoutMs = 10000) {
          const all = [];
          for (;;) {
            const ev = await this.nextEvent(timeoutMs);
            if (!ev) return all;
            all.push(ev);
          }
        },
        close() { req.destroy(); res.destroy(); },
      });
    });
    req.end(body);
  });
}

/**
 * Runs curl against url. args are extra curl arguments (-X, -H, --data-binary ...). Resolves to
 * { status, headers (lowercased object of the last response), body, stderr }.
 */
export function curl(url, { ca, args = [], timeoutMs = 15000 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'curl-'));
  const headerFile = join(dir, 'headers');
  const bodyFile = join(dir, 'body');
  const all = ['-sS', '--max-time', String(Math.ceil(timeoutMs / 1000)), '-D', headerFile, '-o', bodyFile,
    '-w', '%{http_code}', ...(ca ? ['--cacert', ca] : []), ...args, url];
  return new Promise((resolve, reject) => {
    execFile('curl', all, { timeout: timeoutMs + 2000 }, (err, stdout, stderr) => {
      try {
        if (err && !stdout) {
          reject(new Error(`curl ${all.join(' ')} failed: ${stderr || err.message}`));
          return;
        }
        const rawHead = readFileSync(headerFile, 'utf8');
        const blocks = rawHead.split(/\r?\n\r?\n/).filter((b) => b.trim());
        const last = blocks[blocks.length - 1] ?? '';
        const headers = {};
        for (const line of last.split(/\r?\n/).slice(1)) {
          const i = line.indexOf(':');
          if (i > 0) {
            const k = line.slice(0, i).trim().toLowerCase();
            const v = line.slice(i + 1).trim();
            headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
          }
        }
        resolve({ status: Number(stdout), headers, body: readFileSync(bodyFile, 'utf8'), stderr });
      } catch (e) {
        reject(e);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

/**
 * Opens a raw connection (TLS when tlsOptions is given, else plain TCP) to host:port and collects
 * everything it receives. Resolves once connected (after the handshake for TLS) to
 * { socket, received(), closed (promise of { data, error }), isClosed() }.
 * With handshake: false, resolves as soon as TCP is connected and starts no TLS.
 */
export function rawConnect(port, { host = '127.0.0.1', ca, handshake = true, timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const socket = ca && handshake
      ? tls.connect({ host, port, ca, servername: 'localhost' })
      : net.connect({ host, port });
    let data = '';
    let closedFlag = false;
    let closeResolve;
    const closed = new Promise((r) => { closeResolve = r; });
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`could not connect to ${host}:${port} within ${timeoutMs} ms`)); }, timeoutMs);
    socket.on('data', (c) => { data += c.toString('latin1'); });
    let lastError = null;
    socket.on('error', (err) => { lastError = err; clearTimeout(timer); if (!connected) reject(err); });
    socket.on('close', () => { closedFlag = true; closeResolve({ data, error: lastError }); });
    let connected = false;
    socket.once(ca && handshake ? 'secureConnect' : 'connect', () => {
      connected = true;
      clearTimeout(timer);
      resolve({ socket, received: () => data, closed, isClosed: () => closedFlag });
    });
  });
}
