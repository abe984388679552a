// A gateway whose config has "log": {"file": ...}: its log lines go to that file, not stderr, so
// it is ready when the file (not stderr) says `listening on`. The handle looks like the one of
// TestEnv.startGateway (request, auth, signal, stop, stderr, proc), and stderr() returns what
// the process wrote to stderr followed by every file it logged to, so that TestEnv.cleanup()
// checks all of it for secrets and sanitizer reports.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { baseConfig, buildMembers, gatewayEnv } from './gateway.mjs';
import { gatewayBin, REPO_ROOT } from './paths.mjs';
import { request } from './http.mjs';
import { MCP_ACCEPT, OMNI, TEAM } from './harness.mjs';
import { waitFor } from './util.mjs';

const read = (f) => (existsSync(f) ? readFileSync(f, 'utf8') : '');

/**
 * Starts a gateway for env (a TestEnv) whose log goes to `logFile` (config.log.file is set to it).
 * Resolves once the file has the `listening on` line. extraLogFiles(): more files to include in
 * stderr() (e.g. the renamed one). The handle is added to env.gateways.
 */
export async function startGatewayLoggingTo(env, { upstreamUrl, logFile, members = TEAM, config = {}, name = 'gateway-logfile' }) {
  const built = buildMembers(members);
  for (const [m, t] of Object.entries(built.tokens)) env.secret(`member token of ${m}`, t);
  const cfg = baseConfig({ certs: env.certs, upstreamUrl, users: built.users, overrides: { ...config, log: { ...(config.log ?? {}), file: logFile } } });
  const configFile = join(env.dir, `${name}.json`);
  writeFileSync(configFile, JSON.stringify(cfg, null, 2));
  const child = spawn(gatewayBin(), ['-c', configFile], {
    env: gatewayEnv({ ...built.env, OMNI_ORG_KEY: OMNI.orgKey }), cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let exitInfo = null;
  let stopping = false;
  const others = new Set();
  child.stderr.on('data', (c) => { stderr += c; });
  child.stdout.on('data', () => {});
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => { exitInfo = { code, signal }; resolve(exitInfo); }));
  process.on('exit', () => { try { child.kill('SIGKILL'); } catch { /* gone */ } });
  const allLogs = () => [stderr, read(logFile), ...[...others].map(read)].join('\n');
  const proc = {
    child,
    exited,
    exitInfo: () => exitInfo,
    diedUnexpectedly: () => exitInfo !== null && !stopping,
    stderr: allLogs,
    async stop(graceMs = 5000) {
      stopping = true;
      if (exitInfo) return exitInfo;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
      return exitInfo;
    },
  };
  const line = await waitFor(() => {
    if (exitInfo) throw new Error(`gateway ${name} exited ${JSON.stringify(exitInfo)} before listening\n--- stderr ---\n${stderr}\n--- ${logFile} ---\n${read(logFile)}`);
    return read(logFile).split('\n').find((l) => /listening on https?:\/\//.test(l));
  }, { timeoutMs: 15000, message: `\`listening on\` in ${logFile}` });
  const url = new URL(/listening on (https?:\/\/[^\s"']+)/.exec(line)[1]);
  const gw = {
    name,
    url: url.href,
    origin: url.origin,
    port: Number(url.port),
    configFile,
    config: cfg,
    proc,
    tokens: built.tokens,
    ca: env.certs.ca,
    stderr: allLogs,
    /** What the process itself wrote to stderr (not the log file). */
    processStderr: () => stderr,
    /** Adds a file (e.g. the rotated log) to what stderr() returns. */
    alsoLogsTo: (f) => others.add(f),
    signal: (sig) => child.kill(sig),
    stop: () => proc.stop(),
    auth: (member) => ({ Authorization: `Bearer ${built.tokens[member]}` }),
  };
  gw.request = ({ method = 'POST', path = url.pathname, member, headers = {}, body } = {}) => {
    const h = { ...(method === 'POST' ? { Accept: MCP_ACCEPT, 'Content-Type': 'application/json' } : {}), ...(member ? gw.auth(member) : {}), ...headers };
    return request(`${gw.origin}${path}`, { method, headers: h, body: body === undefined || typeof body === 'string' ? body : JSON.stringify(body), ca: gw.ca });
  };
  env.gateways.push(gw);
  return gw;
}
