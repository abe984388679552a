// A strict reader of the Prometheus text exposition format (version 0.0.4), for the admin
// listener's /metrics: every line is checked, and a page that a Prometheus server would refuse
// (or read differently) throws with the line number. Also the admin listener's address, found
// in the gateway's log.
import assert from 'node:assert/strict';
import { request } from './http.mjs';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/** A sample value: a Go float (decimal, exponent), +Inf, -Inf or NaN. */
function parseValue(text, where) {
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) throw new Error(`${where}: bad sample value ${JSON.stringify(text)}`);
  return Number(text);
}

/** The HELP docstring: only \\ and \n are escapes. */
function unescapeHelp(text, where) {
  return text.replace(/\\(.?)/g, (m, c) => {
    if (c === '\\') return '\\';
    if (c === 'n') return '\n';
    throw new Error(`${where}: bad escape ${JSON.stringify(m)} in HELP`);
  });
}

/**
 * Reads `{name="value",...}` from line at i (just after the metric name). Label values may hold
 * any UTF-8 but a backslash, a double quote and a line feed, which come as \\, \" and \n.
 * Returns { labels, next }.
 */
function parseLabels(line, i, where) {
  const labels = {};
  i++; // '{'
  for (;;) {
    while (line[i] === ' ') i++;
    if (line[i] === '}') return { labels, next: i + 1 };
    const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i));
    if (!m) throw new Error(`${where}: bad label name at column ${i + 1}`);
    const name = m[0];
    i += name.length;
    while (line[i] === ' ') i++;
    if (line[i] !== '=') throw new Error(`${where}: expected = after label ${name}`);
    i++;
    while (line[i] === ' ') i++;
    if (line[i] !== '"') throw new Error(`${where}: label ${name}: value is not quoted`);
    i++;
    let value = '';
    for (;;) {
      if (i >= line.length) throw new Error(`${where}: label ${name}: unterminated value`);
      const c = line[i];
      if (c === '"') { i++; break; }
      if (c === '\\') {
        const e = line[i + 1];
        if (e === '\\') value += '\\';
        else if (e === '"') value += '"';
        else if (e === 'n') value += '\n';
        else throw new Error(`${where}: label ${name}: bad escape \\${e ?? ''}`);
        i += 2;
        continue;
      }
      value += c;
      i++;
    }
    if (name in labels) throw new Error(`${where}: label ${name} repeated`);
    if (name.startsWith('__')) throw new Error(`${where}: label ${name} is reserved`);
    labels[name] = value;
    while (line[i] === ' ') i++;
    if (line[i] === ',') { i++; continue; }
    if (line[i] === '}') return { labels, next: i + 1 };
    throw new Error(`${where}: expected , or } after label ${name}`);
  }
}

/** The family a sample name belongs to, given the TYPEs declared so far. */
function familyOf(name, families) {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length);
      const f = families.get(base);
      if (f && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return base;
    }
  }
  return name;
}

const seriesKey = (name, labels) => `${name}{${Object.keys(labels).sort().map((k) => `${k}=${JSON.stringify(labels[k])}`).join(',')}}`;

/**
 * Parses a /metrics page. Throws on anything a strict reader refuses: a line that is not HELP,
 * TYPE, another comment or a sample; a TYPE after its family's samples, or twice; a family whose
 * samples are not together; the same series twice; a negative or non-finite counter; a histogram
 * without +Inf, with buckets out of order or decreasing, or whose +Inf bucket differs from
 * _count, or without _sum/_count. Returns { families: Map(name → {type, help, samples}),
 * samples: [{name, labels, value}], value(name, labels) }.
 */
export function parsePrometheus(text) {
  assert.ok(text.length === 0 || text.endsWith('\n'), 'the page ends with a newline');
  const families = new Map();
  const samples = [];
  const seen = new Set();
  const closed = new Set(); // families whose samples have ended (another family came after)
  let current = null;
  const family = (name) => {
    if (!families.has(name)) families.set(name, { name, type: 'untyped', help: undefined, samples: [], typed: false });
    return families.get(name);
  };
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((line, idx) => {
    const where = `/metrics line ${idx + 1} ${JSON.stringify(line)}`;
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
      if (!m) return; // another comment
      const [, kind, name, rest = ''] = m;
      if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad metric name in ${kind}`);
      const f = family(name);
      if (kind === 'HELP') {
        if (f.help !== undefined) throw new Error(`${where}: second HELP for ${name}`);
        f.help = unescapeHelp(rest, where);
      } else {
        if (f.typed) throw new Error(`${where}: second TYPE for ${name}`);
        if (f.samples.length) throw new Error(`${where}: TYPE for ${name} after its samples`);
        if (!TYPES.has(rest.trim())) throw new Error(`${where}: unknown type ${JSON.stringify(rest)}`);
        f.type = rest.trim();
        f.typed = true;
      }
      return;
    }
    const nm = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    if (!nm) throw new Error(`${where}: not a sample line`);
    const name = nm[0];
    let i = name.length;
    let labels = {};
    if (line[i] === '{') ({ labels, next: i } = parseLabels(line, i, where));
    if (line[i] !== ' ' && line[i] !== '\t') throw new Error(`${where}: expected a blank before the value`);
    const fields = line.slice(i).trim().split(/[ \t]+/);
    if (fields.length < 1 || fields.length > 2) throw new Error(`${where}: expected value [timestamp]`);
    const value = parseValue(fields[0], where);
    if (fields.length === 2 && !/^-?\d+$/.test(fields[1])) throw new Error(`${where}: bad timestamp`);
    const fname = familyOf(name, families);
    const f = family(fname);
    if (current !== fname) {
      if (closed.has(fname)) throw new Error(`${where}: samples of ${fname} are not together`);
      if (current) closed.add(current);
      current = fname;
    }
    const key = seriesKey(name, labels);
    if (seen.has(key)) throw new Error(`${where}: series ${key} appears twice`);
    seen.add(key);
    if (f.type === 'counter' && !(value >= 0 && Number.isFinite(value))) throw new Error(`${where}: counter value ${value}`);
    if (f.type === 'histogram' && name === `${fname}_bucket` && !('le' in labels)) throw new Error(`${where}: bucket without le`);
    if (f.type === 'histogram' && name === fname) throw new Error(`${where}: bare sample of histogram ${fname}`);
    const s = { name, labels, value };
    f.samples.push(s);
    samples.push(s);
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return {
    families,
    samples,
    /** The value of the series name{labels} (exact label set), or undefined. */
    value(name, labels = {}) {
      const key = seriesKey(name, labels);
      return samples.find((s) => seriesKey(s.name, s.labels) === key)?.value;
    },
  };
}

/** Buckets per label set (without le): le increasing, counts non-decreasing, +Inf = _count, _sum present. */
function checkHistogram(f) {
  const groups = new Map();
  const groupOf = (labels) => {
    const rest = { ...labels };
    delete rest.le;
    const k = seriesKey('', rest);
    if (!groups.has(k)) groups.set(k, { buckets: [], sum: undefined, count: undefined });
    return groups.get(k);
  };
  for (const s of f.samples) {
    const g = groupOf(s.labels);
    if (s.name === `${f.name}_bucket`) g.buckets.push({ le: parseValue(s.labels.le, `${f.name} le`), count: s.value });
    else if (s.name === `${f.name}_sum`) g.sum = s.value;
    else if (s.name === `${f.name}_count`) g.count = s.value;
  }
  assert.ok(groups.size > 0, `histogram ${f.name} has no samples`);
  for (const [k, g] of groups) {
    const what = `histogram ${f.name}${k}`;
    assert.ok(g.buckets.length > 0, `${what}: no buckets`);
    for (let i = 1; i < g.buckets.length; i++) {
      assert.ok(g.buckets[i].le > g.buckets[i - 1].le, `${what}: le ${g.buckets[i].le} after ${g.buckets[i - 1].le}`);
      assert.ok(g.buckets[i].count >= g.buckets[i - 1].count, `${what}: bucket le=${g.buckets[i].le} count ${g.buckets[i].count} < ${g.buckets[i - 1].count}`);
    }
    for (const b of g.buckets) assert.ok(Number.isInteger(b.count) && b.count >= 0, `${what}: bucket count ${b.count}`);
    const last = g.buckets[g.buckets.length - 1];
    assert.equal(last.le, Infinity, `${what}: the last bucket is le="+Inf"`);
    assert.notEqual(g.count, undefined, `${what}: no _count`);
    assert.notEqual(g.sum, undefined, `${what}: no _sum`);
    assert.equal(last.count, g.count, `${what}: +Inf bucket ${last.count} != _count ${g.count}`);
    assert.ok(g.sum >= 0 && Number.isFinite(g.sum), `${what}: _sum ${g.sum}`);
  }
}

/**
 * The admin listener of a gateway started with "admin": {"listen": "127.0.0.1:0"}: its base URL
 * from the `admin listening on http://HOST:PORT/` line (the bound port, not the configured 0).
 */
export async function adminUrl(gw) {
  const line = await gw.waitForLog(/admin listening on http:\/\//);
  const m = /admin listening on (http:\/\/[^\s"/]+)\//.exec(line);
  assert.ok(m, `admin address in ${line}`);
  assert.doesNotMatch(m[1], /:0$/, `the admin line names the bound port: ${line}`);
  return m[1];
}

/** GET on the admin listener: { status, headers, body }. */
export function adminGet(base, path, { timeoutMs = 5000 } = {}) {
  return request(`${base}${path}`, { method: 'GET', timeoutMs });
}

/** GET /metrics, checked (200, text/plain) and parsed strictly. */
export async function scrape(base) {
  const res = await adminGet(base, '/metrics');
  assert.equal(res.status, 200, `/metrics: ${res.status} ${res.body}`);
  assert.match(String(res.headers['content-type']), /^text\/plain(;|$)/, `/metrics content-type ${res.headers['content-type']}`);
  return parsePrometheus(res.body);
}
