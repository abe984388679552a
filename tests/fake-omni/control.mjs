// Test-facing state of the fake: request log, lifecycle events, hold/release, flood, run-time
// config, and the /_fake/ HTTP API over them (no auth: it listens on 127.0.0.1 only).

// A flood is held in the fake's memory until the peer reads it (the SDK queues SSE events
// without waiting): keep it well below what the fake can hold.
const MAX_FLOOD_BYTES = 512 * 1024 * 1024;

export class Control {
  constructor(defaults) {
    this.defaults = { ...defaults };
    this.config = { ...defaults };
    this.requests = [];
    this.events = [];
    this.seq = 0;
    // streams: one entry per held getData, {runAs, send} (its own SSE stream), for /_fake/list-changed.
    this.hold = { armed: false, waiters: new Set(), streams: new Set() };
    // flood.armed: {bytes, chunk} for the next getData, or null; flood.runs: one record per flood.
    this.flood = { armed: null, runs: [] };
    this.responses = new Map(); // log seq -> the response still being written for that request
  }

  // Logged as soon as the headers are in, before auth or the SDK can refuse the request, so that
  // refused requests are visible too. The body is filled in once read (see server.mjs).
  record(req, url) {
    const entry = { seq: ++this.seq, method: req.method, path: url.pathname, url: req.url,
      headers: headersAsReceived(req.rawHeaders), body: null, t: Date.now() };
    this.requests.push(entry);
    return entry;
  }

  // 'close' without 'finish' means the peer went away before the server completed the response:
  // the evidence that a gateway closed its upstream transfer when its client disconnected.
  track(entry, res) {
    const base = { seq: entry.seq, path: entry.path, method: entry.method };
    this.responses.set(entry.seq, res);
    res.on('close', () => {
      this.responses.delete(entry.seq);
      const type = res.writableFinished ? 'response-finished' : 'response-closed-early';
      this.event({ type, ...base, status: res.headersSent ? res.statusCode : null });
    });
  }

  event(e) {
    this.events.push({ ...e, t: Date.now() });
  }

  // Resolves on /_fake/release, or when the request is cancelled (notifications/cancelled).
  waitForRelease(signal) {
    return new Promise(resolve => {
      const done = () => { this.hold.waiters.delete(done); resolve(); };
      this.hold.waiters.add(done);
      if (signal?.aborted) return done();
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  release() {
    const n = this.hold.waiters.size;
    this.hold.armed = false;
    for (const done of [...this.hold.waiters]) done();
    return n;
  }

  armFlood(spec) {
    const { bytes, chunk } = spec ?? {};
    for (const [key, v] of Object.entries({ bytes, chunk })) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`${key} must be a positive integer`);
    }
    if (bytes > MAX_FLOOD_BYTES) throw new Error(`bytes must be at most ${MAX_FLOOD_BYTES}`);
    this.flood.armed = { bytes, chunk };
    return { armed: this.flood.armed };
  }

  // Disarms the flood and returns its record for the getData call that takes it (or null).
  // `flushed` counts the bytes of that call's response the fake has handed to the kernel since
  // the flood began (the socket's written bytes minus what still waits in Node's buffers): how
  // much of the flood the peer has actually taken so far.
  takeFlood(seq, runAs) {
    const spec = this.flood.armed;
    if (!spec) return null;
    this.flood.armed = null;
    const res = this.responses.get(seq);
    const socket = res?.socket;
    const handed = () => (socket ? socket.bytesWritten - socket.writableLength : 0);
    const start = handed();
    let final = null; // fixed once the response is over (the connection may carry later ones)
    const freeze = () => { final ??= handed() - start; };
    res?.once('finish', freeze);
    res?.once('close', freeze);
    const run = { seq, runAs, target: spec.bytes, chunk: spec.chunk, count: 0, bytes: 0, done: false,
      get flushed() { return final ?? handed() - start; } };
    this.flood.runs.push(run);
    return run;
  }

  floodState() {
    return { armed: this.flood.armed, runs: this.flood.runs.map(r => ({ ...r })) };
  }

  setConfig(patch) {
    for (const key of ['userRequiredStatus', 'delayMs']) {
      if (patch[key] === undefined) continue;
      if (!Number.isInteger(patch[key]) || patch[key] < 0) throw new Error(`${key} must be a non-negative integer`);
      this.config[key] = patch[key];
    }
    return this.config;
  }

  // notifications/tools/list_changed, as Omni sends when a modeler publishes: on the GET streams
  // of the sessions of runAs (default: every session; a session without an open GET stream drops
  // it, as the SDK does), or with on: "held" on the own SSE stream of each held getData of runAs.
  async listChanged({ runAs, on = 'get' }, sessions) {
    if (runAs !== undefined && typeof runAs !== 'string') throw new Error('runAs must be a user id');
    let sent = 0;
    if (on === 'get') {
      sent = await sessions.toolListChanged(runAs);
    } else if (on === 'held') {
      for (const s of [...this.hold.streams]) {
        if (runAs !== undefined && s.runAs !== runAs) continue;
        await s.send({ method: 'notifications/tools/list_changed' });
        sent += 1;
      }
    } else {
      throw new Error('on must be "get" or "held"');
    }
    this.event({ type: 'list-changed-sent', on, runAs: runAs ?? null, sent });
    return { sent };
  }

  // sessions: { list(), closeAll(), toolListChanged(runAs) } from server.mjs.
  async handle(req, res, url, body, sessions) {
    const route = `${req.method} ${url.pathname}`;
    switch (route) {
      case 'GET /_fake/requests': return sendJson(res, 200, this.requests);
      case 'DELETE /_fake/requests': this.requests = []; return sendJson(res, 200, { cleared: true });
      case 'GET /_fake/events': return sendJson(res, 200, this.events);
      case 'DELETE /_fake/events': this.events = []; return sendJson(res, 200, { cleared: true });
      case 'POST /_fake/hold': this.hold.armed = true; return sendJson(res, 200, { armed: true });
      case 'POST /_fake/release': return sendJson(res, 200, { released: this.release() });
      case 'POST /_fake/flood':
        try { return sendJson(res, 200, this.armFlood(JSON.parse(body || '{}'))); }
        catch (e) { return sendJson(res, 400, { error: e.message }); }
      case 'GET /_fake/flood': return sendJson(res, 200, this.floodState());
      case 'GET /_fake/config': return sendJson(res, 200, this.config);
      case 'POST /_fake/config':
        try { return sendJson(res, 200, this.setConfig(JSON.parse(body || '{}'))); }
        catch (e) { return sendJson(res, 400, { error: e.message }); }
      case 'POST /_fake/list-changed':
        try { return sendJson(res, 200, await this.listChanged(JSON.parse(body || '{}'), sessions)); }
        catch (e) { return sendJson(res, 400, { error: e.message }); }
      case 'GET /_fake/sessions': return sendJson(res, 200, sessions.list());
      case 'DELETE /_fake/sessions': return sendJson(res, 200, { closed: await sessions.closeAll() });
      case 'POST /_fake/reset':
        this.requests = []; this.events = []; this.release(); this.config = { ...this.defaults };
        this.flood = { armed: null, runs: [] };
        return sendJson(res, 200, { reset: true });
      default: return sendJson(res, 404, { error: `no control route ${route}` });
    }
  }
}

// {lowercased name: value} from the raw header list, so nothing Node would merge or drop is lost:
// a header received more than once becomes an array of its values, in order.
function headersAsReceived(rawHeaders) {
  const headers = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    const value = rawHeaders[i + 1];
    if (!(name in headers)) headers[name] = value;
    else headers[name] = [].concat(headers[name], value);
  }
  return headers;
}

export function sendJson(res, status, obj, headers = {}) {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(obj);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
