// The gateway under test as a child process: config files, start, members, CLI sub-commands.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gatewayBin, REPO_ROOT } from './paths.mjs';
import { runProcess, startProcess } from './procs.mjs';
import { newMemberToken } from './util.mjs';

function requireBin() {
  const bin = gatewayBin();
  if (!existsSync(bin)) throw new Error(`gateway binary ${bin} is missing: run \`make\` at the repo root or set GATEWAY_BIN`);
  return bin;
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Deep-merges b into a copy of a; a null in b deletes the key. */
export function merge(a, b) {
  const out = { ...a };
  for (const [k, v] of Object.entries(b ?? {})) {
    if (v === null) delete out[k];
    else if (isPlainObject(v) && isPlainObject(out[k])) out[k] = merge(out[k], v);
    else out[k] = v;
  }
  return out;
}

/**
 * Turns member specs into config `users` entries, the env vars that carry their PATs, and their
 * plain tokens. A spec: { name, pat?, userId?, userRequired?, groups?, rule?, token?, extra? }.
 * The PAT goes in env var OMNI_PAT_<NAME>; groups and rule become the entry's policy keys;
 * extra is merged into the entry as is (to write odd configs).
 */
export function buildMembers(specs) {
  const users = [];
  const env = {};
  const tokens = {};
  for (const m of specs) {
    const { token, sha256 } = m.token ? { token: m.token, sha256: m.tokenSha256 } : newMemberToken();
    tokens[m.name] = token;
    const entry = { name: m.name, token_sha256: sha256 };
    if (m.pat) {
      const envName = `OMNI_PAT_${m.name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
      entry.omni_pat_env = envName;
      env[envName] = m.pat;
    }
    if (m.userId) entry.omni_user_id = m.userId;
    if (m.userRequired !== undefined) entry.user_required = m.userRequired;
    if (m.groups !== undefined) entry.groups = m.groups;
    if (m.rule !== undefined) entry.rule = m.rule;
    users.push(merge(entry, m.extra));
  }
  return { users, env, tokens };
}

/** The config every test starts from; `overrides` is deep-merged over it (null deletes a key). */
export function baseConfig({ certs, upstreamUrl, users, overrides }) {
  const cfg = {
    listen: '127.0.0.1:0',
    tls: { cert: certs.certFile, key: certs.keyFile },
    mcp_path: '/mcp',
    upstream: { url: upstreamUrl, ca_file: null, connect_timeout_ms: 5000, idle_timeout_ms: 300000 },
    allowed_origins: ['https://app.example'],
    user_required: false,
    max_body_bytes: 4194304,
    omni_api_key_env: 'OMNI_ORG_KEY',
    log_level: 'info',
    users,
  };
  return merge(cfg, overrides);
}

/** The environment for a gateway: ours, minus any OMNI_* we inherited, plus `extra`. */
export function gatewayEnv(extra) {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('OMNI_')) delete env[k];
  return { ...env, ...extra };
}

/**
 * Writes config to <dir>/<name>.json and starts the gateway with it. Resolves once it printed
 * `listening on <url>` on stderr, to { url, origin, port, configFile, proc, stderr(), stop() }.
 */
export async function launchGateway({ dir, name, config, env }) {
  const bin = requireBin();
  const configFile = join(dir, `${name}.json`);
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const proc = await startProcess(bin, ['-c', configFile], {
    env, cwd: REPO_ROOT, stream: 'stderr', ready: /listening on (https?:\/\/[^\s"']+)/, name: `gateway ${name}`,
  });
  const url = new URL(proc.match[1].replace(/[.,;)]+$/, ''));
  return {
    name,
    url: url.href,
    origin: url.origin,
    port: Number(url.port),
    configFile,
    proc,
    stderr: () => proc.stderr(),
    /** Sends a signal (e.g. 'SIGHUP') to the running gateway. */
    signal: (sig) => proc.child.kill(sig),
    /**
     * Waits until the gateway's stderr, from character offset `since` on (a previous
     * stderr().length), has a line matching `pattern`; resolves to that line.
     */
    waitForLog: (pattern, { since = 0, timeoutMs = 10000 } = {}) => waitForLine(proc, pattern, since, timeoutMs),
    stop: () => proc.stop(),
  };
}

async function waitForLine(proc, pattern, since, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = proc.stderr().slice(since).split('\n').find((l) => pattern.test(l));
    if (line !== undefined) return line;
    if (proc.exitInfo()) throw new Error(`gateway exited (${JSON.stringify(proc.exitInfo())}) before logging a line matching ${pattern}\n--- stderr since the mark ---\n${proc.stderr().slice(since)}`);
    if (Date.now() >= deadline) throw new Error(`no gateway log line matching ${pattern} within ${timeoutMs} ms\n--- stderr since the mark ---\n${proc.stderr().slice(since)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Runs `omni-mcp-gateway ...args` to its end: { code, stdout, stderr }. */
export function runGatewayCli(args, { env } = {}) {
  return runProcess(requireBin(), args, { env: gatewayEnv(env), cwd: REPO_ROOT });
}
