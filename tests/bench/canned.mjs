// What the benchmarks share (proxy.mjs, callgrind.mjs): the canned upstream answer, Omni's
// getData result (a query and 10 rows as its text content) in JSON and in SSE framing, the
// nginx configs of the canned upstream and of nginx as the gateway's plain equivalent, and
// waiting for the servers.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

export const CANNED_DATA = {
  modelId: '4f1c2a8e-5b0d-4e8a-9c61-2f7d3a1b9e10',
  topic: 'orders',
  query: { table: 'orders', fields: ['orders.month', 'customers.name', 'orders.revenue'], filters: {},
    sorts: [{ column_name: 'orders.revenue', sort_descending: true }], limit: 10 },
  result: Array.from({ length: 10 }, (_, i) => ({ 'orders.month': `2025-${String(i + 1).padStart(2, '0')}`,
    'customers.name': `Customer ${i + 1}`, 'orders.revenue': 100000 - i * 7919 })),
};
export const CANNED_JSON = JSON.stringify({ jsonrpc: '2.0', id: 1, result: {
  content: [{ type: 'text', text: JSON.stringify(CANNED_DATA) }], isError: false } });
export const CANNED_SSE = `event: message\ndata: ${CANNED_JSON}\n\n`;

/** s as a single-quoted nginx string (for a `return` directive). */
export const nginxQuote = (s) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')}'`;

/** The top of an nginx config: one process in the foreground, its files under dir. */
function nginxCommon(dir, name) {
  const tmp = join(dir, `${name}-tmp`);
  mkdirSync(tmp, { recursive: true });
  return `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/${name}.pid;
error_log ${dir}/${name}-error.log warn;
events { worker_connections 20000; }
http {
  client_body_temp_path ${tmp}/body; proxy_temp_path ${tmp}/proxy; fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi; scgi_temp_path ${tmp}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
`;
}

/** The fast fixed upstream: nginx answering every POST /mcp with the canned getData result,
 *  in SSE framing for the session "bench-sse" and in JSON otherwise. */
export function upstreamConf(dir, port) {
  return `${nginxCommon(dir, 'upstream')}  access_log off;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location = /mcp {
      if ($http_mcp_session_id = "bench-sse") { rewrite ^ /canned-sse last; }
      rewrite ^ /canned-json last;
    }
    location = /canned-json { internal; default_type application/json; return 200 ${nginxQuote(CANNED_JSON)}; }
    location = /canned-sse {
      internal; default_type text/event-stream; add_header Cache-Control no-cache;
      return 200 ${nginxQuote(CANNED_SSE)};
    }
  }
}
`;
}

/** nginx as the closest plain equivalent of the gateway: TLS, member token → PAT (401 for an
 *  unknown token), kept-alive upstream connections, no response buffering, an access log.
 *  members: [{token, pat, userId}]. */
export function proxyConf(dir, port, upstreamPort, certs, members) {
  const map = (field) => members.map((m) => `    "Bearer ${m.token}" "${m[field]}";`).join('\n');
  return `${nginxCommon(dir, 'nginx')}  access_log ${dir}/nginx-access.log;
  map_hash_bucket_size 128;
  map $http_authorization $omni_pat {
    default "";
${map('pat')}
  }
  map $http_authorization $omni_user_id {
    default "";
${map('userId')}
  }
  upstream omni {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port} ssl backlog=4096;
    ssl_certificate ${certs.certFile};
    ssl_certificate_key ${certs.keyFile};
    ssl_protocols TLSv1.2 TLSv1.3;
    client_max_body_size 4m;
    location = /mcp {
      if ($omni_pat = "") { return 401; }
      proxy_pass http://omni;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer $omni_pat";
      proxy_set_header X-MCP-User-ID $omni_user_id;
      proxy_set_header Cookie "";
      proxy_buffering off;
    }
  }
}
`;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** fn's first truthy value, polled every 50 ms; throws after timeoutMs, or at once when child
 *  (a process started with an exitInfo set on exit) has exited. */
export async function waitFor(what, fn, timeoutMs = 30000, child = null) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (child?.exitInfo) throw new Error(`${what}: the process exited (${JSON.stringify(child.exitInfo)})`);
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export const tcpOpen = (port) => new Promise((resolve) => {
  const s = net.connect(port, '127.0.0.1');
  s.on('connect', () => { s.destroy(); resolve(true); });
  s.on('error', () => resolve(false));
});

/** A file's text, or '' when it does not exist (yet). */
export const readText = (f) => (existsSync(f) ? readFileSync(f, 'utf8') : '');
