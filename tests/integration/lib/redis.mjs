// A real redis-server for the cache tests (and the benchmark): started on a loopback port chosen
// at run time, without persistence, and stopped, killed, paused or restarted on the same port by
// the test. A tiny RESP client (no dependency) lets a test look at the keys the gateway wrote.
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { closedPort } from './util.mjs';
import { startProcess } from './procs.mjs';

const READY = /Ready to accept connections/;

/** Throws with what to do when redis-server is not installed (`make test-deps` installs it). */
export function requireRedisServer() {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error('redis-server is not on the PATH: the cache tests need a real Redis (make test-deps, or apt-get install redis-server)');
  }
  return r.stdout.trim();
}

function launch(port, name) {
  // --save '' and --appendonly no: nothing on disk; --dir /tmp in case a SAVE is ever asked for.
  return startProcess('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', '/tmp', '--protected-mode', 'yes', '--loglevel', 'notice',
  ], { stream: 'stdout', ready: READY, name, timeoutMs: 10000 });
}

/**
 * Starts redis-server on a free loopback port (or `port`). Resolves to a handle:
 * { port, url(db), proc, command(...args), commandIn(db, ...args), keys(pattern, db), stop(), kill(),
 * restart(), pause(), resume() }.
 * kill() is SIGKILL (an outage); restart() starts a new redis-server on the same port, empty.
 */
export async function startRedis({ port, name = 'redis-server' } = {}) {
  requireRedisServer();
  let proc;
  let chosen = port;
  // A port found free may be taken by someone else before redis binds it: try another.
  for (let attempt = 0; !proc; attempt++) {
    chosen = port ?? await closedPort();
    try {
      proc = await launch(chosen, name);
    } catch (err) {
      if (port !== undefined || attempt >= 4) throw err;
    }
  }
  let paused = false;
  const handle = {
    port: chosen,
    get proc() { return proc; },
    /** redis://127.0.0.1:PORT/DB */
    url: (db = 0) => `redis://127.0.0.1:${chosen}/${db}`,
    /** One command on a fresh connection; resolves to the decoded reply (errors reject). */
    command: (...args) => redisCommand(chosen, args),
    /** The same in database db. */
    commandIn: (db, ...args) => redisCommand(chosen, args, db),
    /** The keys matching pattern in db (SCAN, so it works on any size). */
    async keys(pattern = '*', db = 0) {
      const found = [];
      let cursor = '0';
      do {
        const [next, batch] = await redisCommand(chosen, ['SCAN', cursor, 'MATCH', pattern, 'COUNT', '1000'], db);
        found.push(...batch);
        cursor = next;
      } while (cursor !== '0');
      return found.sort();
    },
    /** SIGTERM (SIGKILL after a grace period). */
    async stop() {
      if (paused) handle.resume();
      return proc.stop();
    },
    /** SIGKILL: Redis goes away at once, as in a crash. */
    async kill() {
      if (paused) handle.resume();
      proc.child.kill('SIGKILL');
      await proc.exited;
    },
    /** A new, empty redis-server on the same port (after stop or kill). */
    async restart() {
      let last;
      for (let attempt = 0; attempt < 20; attempt++) {
        try {
          proc = await launch(chosen, name);
          return handle;
        } catch (err) {
          last = err; // the port may still be held for a moment
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      throw last;
    },
    /** SIGSTOP: Redis keeps its connections but answers nothing (a slow Redis). */
    pause() { proc.child.kill('SIGSTOP'); paused = true; },
    resume() { proc.child.kill('SIGCONT'); paused = false; },
  };
  return handle;
}

/** Sends one command (after SELECT db when db is not 0) and resolves to the decoded reply. */
export function redisCommand(port, args, db = 0, { timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const cmds = db ? [['SELECT', String(db)], args] : [args];
    const replies = [];
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`redis ${args[0]}: no answer within ${timeoutMs} ms`)); }, timeoutMs);
    const fail = (err) => { clearTimeout(timer); sock.destroy(); reject(err); };
    sock.on('error', fail);
    sock.on('connect', () => sock.write(Buffer.concat(cmds.map(encode))));
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const parsed = decode(buf, 0);
        if (!parsed) return;
        buf = buf.subarray(parsed.end);
        replies.push(parsed.value);
        if (replies.length === cmds.length) {
          clearTimeout(timer);
          sock.end();
          const bad = replies.find((r) => r instanceof Error);
          if (bad) reject(bad); else resolve(replies[replies.length - 1]);
          return;
        }
      }
    });
  });
}

function encode(args) {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) {
    const b = Buffer.from(String(a));
    parts.push(`$${b.length}\r\n`, b, '\r\n');
  }
  return Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))));
}

// RESP2: returns { value, end } or null when buf does not hold a whole reply yet.
function decode(buf, at) {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[at]);
  const line = buf.toString('utf8', at + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+': return { value: line, end: next };
    case '-': return { value: new Error(`redis: ${line}`), end: next };
    case ':': return { value: Number(line), end: next };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      if (buf.length < next + n + 2) return null;
      return { value: buf.toString('utf8', next, next + n), end: next + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      const items = [];
      let pos = next;
      for (let i = 0; i < n; i++) {
        const item = decode(buf, pos);
        if (!item) return null;
        items.push(item.value);
        pos = item.end;
      }
      return { value: items, end: pos };
    }
    default: throw new Error(`redis: unexpected reply type ${JSON.stringify(type)}`);
  }
}
