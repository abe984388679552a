// The fake Omni upstream (tests/fake-omni/server.mjs) as a child process, with its control API.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startProcess } from './procs.mjs';
import { request } from './http.mjs';
import { REPO_ROOT } from './paths.mjs';

/** Identities canned in tests/fake-omni/data.json (see the contract). */
export const OMNI = Object.freeze({
  orgKey: 'org-key-0003',
  users: Object.freeze({
    alice: Object.freeze({ id: 'u-alice', role: 'Querier', pat: 'pat-alice-0001' }),
    bob: Object.freeze({ id: 'u-bob', role: 'Viewer', pat: 'pat-bob-0002' }),
    carol: Object.freeze({ id: 'u-carol', role: 'Querier', pat: null }),
    admin: Object.freeze({ id: 'u-admin', role: 'Admin', pat: null }),
  }),
});

/**
 * Starts the fake Omni on a free loopback port. With certs, it speaks HTTPS with them.
 * Resolves to a handle: { port, mcpUrl, base, requests(), mcpRequests(), clearRequests(),
 * events(), hold(), release(), setConfig(obj), stop(), proc }.
 */
export async function startFake({ certs, port = 0, extraArgs = [], name = 'fake-omni' } = {}) {
  const server = join(REPO_ROOT, 'tests/fake-omni/server.mjs');
  if (!existsSync(server)) throw new Error(`${server} is missing: the fake Omni is not written yet`);
  const args = [server, '--port', String(port)];
  const data = join(REPO_ROOT, 'tests/fake-omni/data.json');
  if (existsSync(data)) args.push('--data', data);
  if (certs) args.push('--tls-cert', certs.certFile, '--tls-key', certs.keyFile);
  args.push(...extraArgs);
  const proc = await startProcess(process.execPath, args, {
    cwd: REPO_ROOT, stream: 'stdout', ready: /^\s*\{.*"listening"\s*:\s*true.*\}\s*$/, name,
  });
  const info = JSON.parse(proc.match[0]);
  const base = new URL(info.url).origin;
  const ca = certs?.ca;
  const control = async (method, path, body) => {
    const res = await request(`${base}/_fake/${path}`, {
      method, ca, body: body === undefined ? undefined : JSON.stringify(body),
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    });
    if (res.status >= 300) throw new Error(`fake ${method} /_fake/${path} → ${res.status} ${res.body}`);
    return res.body ? JSON.parse(res.body) : null;
  };
  return {
    proc,
    port: info.port,
    mcpUrl: info.url,
    base,
    /** Every request the fake received on /mcp/https and /api/, oldest first. */
    requests: () => control('GET', 'requests'),
    /** The requests the fake received on its MCP endpoint. */
    async mcpRequests() { return (await control('GET', 'requests')).filter((r) => r.path.startsWith('/mcp')); },
    clearRequests: () => control('DELETE', 'requests'),
    events: () => control('GET', 'events'),
    hold: () => control('POST', 'hold', {}),
    release: () => control('POST', 'release', {}),
    setConfig: (obj) => control('POST', 'config', obj),
    /** Clears requests and events, releases holds and restores the start-up config. */
    reset: () => control('POST', 'reset', {}),
    /** The upstream requests whose JSON-RPC body has this method (and id, when given). */
    async rpcRequests(method, id) {
      return (await control('GET', 'requests')).filter((r) => r.body && r.body.method === method && (id === undefined || r.body.id === id));
    },
    stop: () => proc.stop(),
  };
}
