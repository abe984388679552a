// Helpers for the audit tests (issue 5): the audit config for a gateway, the file's lines and
// records, the Redis stream's entries (XRANGE through lib/redis.mjs) with an independent check of
// each chain, `audit verify` / `audit tail`, line tampering, and a request that tells whether its
// response arrived whole (for the crash test).
import assert from 'node:assert/strict';
import https from 'node:https';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { gatewayEnv } from './gateway.mjs';
import { gatewayBin, REPO_ROOT } from './paths.mjs';
import { sha256Hex } from './util.mjs';

export const ZERO_HASH = '0'.repeat(64);

/**
 * The config overrides for an audited gateway: the file sink, the stream sink on `redis` (a
 * handle from lib/redis.mjs) under `key`, and the top-level "redis" the stream uses. The
 * metadata cache is off, so that every allowed request reaches the upstream.
 */
export function auditConfig({ file, redis, key, fsync = 'always', onFailure = 'refuse', maxlen = 100000, extra = {} }) {
  return {
    cache: { enabled: false },
    redis: { url: redis.url(0) },
    audit: { file, fsync, redis_stream: { key, maxlen }, on_failure: onFailure, ...extra },
  };
}

/** The file's whole lines (without their newline) and what follows the last newline. */
export function auditFileLines(file) {
  if (!existsSync(file)) return { lines: [], partial: '' };
  const text = readFileSync(file, 'utf8');
  const parts = text.split('\n');
  const partial = parts.pop();
  return { lines: parts, partial };
}

/** The file's records, parsed (whole lines only). */
export function auditFileRecords(file) {
  return auditFileLines(file).lines.map((l, i) => {
    try { return JSON.parse(l); } catch { throw new Error(`${file} line ${i + 1} is not JSON: ${l}`); }
  });
}

/**
 * The stream's entries, oldest first: { id, chain, seq, line, record } ("record" field parsed).
 * Every entry must have the three fields the module writes.
 */
export async function streamEntries(redis, key) {
  const raw = await redis.command('XRANGE', key, '-', '+');
  return raw.map(([id, fields]) => {
    const f = {};
    for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]] = fields[i + 1];
    assert.ok(f.chain && f.seq && f.record, `stream entry ${id} lacks chain, seq or record: ${JSON.stringify(fields)}`);
    return { id, chain: f.chain, seq: Number(f.seq), line: f.record, record: JSON.parse(f.record) };
  });
}

/**
 * Checks the stream's chains independently of the gateway: per chain ID, in stream order, seq
 * runs 1..n, the fields agree with the record's own seq and chain, the first prev is 64 zeros
 * and each prev is the SHA-256 of the chain's previous record line. Returns chain → entries.
 */
export function checkStreamChains(entries) {
  const chains = new Map();
  for (const e of entries) {
    if (!chains.has(e.chain)) chains.set(e.chain, []);
    const list = chains.get(e.chain);
    const where = `stream entry ${e.id} (chain ${e.chain})`;
    assert.equal(e.seq, list.length + 1, `${where}: seq`);
    assert.equal(e.record.seq, e.seq, `${where}: the record's seq`);
    assert.equal(e.record.chain, e.chain, `${where}: the record's chain`);
    const prev = list.length ? sha256Hex(list[list.length - 1].line) : ZERO_HASH;
    assert.equal(e.record.prev, prev, `${where}: prev must be the SHA-256 of the chain's previous record`);
    list.push(e);
  }
  return chains;
}

/** Checks the file's chain independently of `audit verify`: seq from `firstSeq` on, prev hashes. */
export function checkFileChain(lines, { firstSeq = 1 } = {}) {
  let prev = ZERO_HASH;
  lines.forEach((line, i) => {
    const rec = JSON.parse(line);
    assert.equal(rec.seq, firstSeq + i, `file line ${i + 1}: seq`);
    if (i > 0 || firstSeq === 1) assert.equal(rec.prev, prev, `file line ${i + 1}: prev`);
    prev = sha256Hex(line);
  });
}

/** A record without what the sink adds (seq, prev, chain): what both sinks must agree on. */
export function recordBody(rec) {
  const { seq, prev, chain, ...rest } = rec;
  return rest;
}

/**
 * Runs `omni-mcp-gateway ...args` to its end: { code, signal, stdout, stderr }. Like
 * runGatewayCli, but with stdin closed from the start: these commands read no input, and a
 * write to the stdin of a command that already exited can fail with EPIPE.
 */
export function runCli(args, { timeoutMs = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(gatewayBin(), args, { env: gatewayEnv({}), cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`omni-mcp-gateway ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.stdout.on('data', (c) => { stdout += c; });
    child.stderr.on('data', (c) => { stderr += c; });
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
  });
}

/**
 * `omni-mcp-gateway audit verify FILE`: { code, stdout, stderr, line } where line is the line
 * number of the first problem ("line N: ...") or null.
 */
export async function auditVerify(file) {
  const r = await runCli(['audit', 'verify', file]);
  const m = r.stdout.match(/^line (\d+): /m);
  return { ...r, line: m ? Number(m[1]) : null };
}

/** `omni-mcp-gateway audit tail ...args`: { code, stdout, stderr, rows } (rows: the lines after the header). */
export async function auditTail(args) {
  const r = await runCli(['audit', 'tail', ...args]);
  const lines = r.stdout.split('\n').filter((l) => l.length);
  if (r.code === 0) assert.match(lines[0] ?? '', /^TIME\s+MEMBER\s+TOOL\s+DECISION\s+STATUS\s+ROWS\s+MS\s+PROMPT/, `audit tail header: ${r.stdout}`);
  return { ...r, rows: lines.slice(1) };
}

/** The file's text with one line (1-based) changed by fn(line) → new line. */
export function editLine(text, k, fn) {
  const lines = text.split('\n');
  lines[k - 1] = fn(lines[k - 1]);
  return lines.join('\n');
}

/** The file's text without line k (1-based). */
export function deleteLine(text, k) {
  const lines = text.split('\n');
  lines.splice(k - 1, 1);
  return lines.join('\n');
}

/** The file's text with lines k and k+1 (1-based) swapped. */
export function swapLines(text, k) {
  const lines = text.split('\n');
  [lines[k - 1], lines[k]] = [lines[k], lines[k - 1]];
  return lines.join('\n');
}

/**
 * One request on a fresh connection that always resolves: { status, headers, body, complete,
 * error }. complete is true only when the response ended normally (for a chunked response: its
 * final chunk arrived), as opposed to a connection cut mid-response or no response at all.
 */
export function requestOutcome(url, { method = 'POST', headers = {}, body, ca, timeoutMs = 20000 } = {}) {
  return new Promise((resolve) => {
    let settled = false;
    const out = { status: null, headers: {}, body: '', complete: false, error: null };
    const settle = (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err && !out.error) out.error = err.message ?? String(err);
      resolve(out);
    };
    const h = { ...headers };
    if (body !== undefined) h['Content-Length'] = String(Buffer.byteLength(body));
    const req = https.request(url, { method, headers: h, ca, agent: false });
    const timer = setTimeout(() => { req.destroy(new Error(`no complete answer within ${timeoutMs} ms`)); }, timeoutMs);
    req.on('error', settle);
    req.on('response', (res) => {
      out.status = res.statusCode;
      out.headers = res.headers;
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        out.body = Buffer.concat(chunks).toString('utf8');
        out.complete = res.complete;
        settle();
      });
      res.on('aborted', () => { out.body = Buffer.concat(chunks).toString('utf8'); settle(new Error('response aborted')); });
      res.on('error', (err) => { out.body = Buffer.concat(chunks).toString('utf8'); settle(err); });
      res.on('close', () => {
        out.body = Buffer.concat(chunks).toString('utf8');
        out.complete = res.complete;
        settle(res.complete ? null : new Error('connection closed before the response ended'));
      });
    });
    req.end(body);
  });
}
