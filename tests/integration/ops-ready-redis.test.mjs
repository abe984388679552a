// /readyz with Redis gone: upstream, the fake Omni; config, a gateway with the admin listener
// and a redis-server for its cache; client, curl-like requests and admin GETs. Redis down is
// not a reason to pull a replica out of the load balancer: the cache steps aside and rate
// limits fall back to the replica's own counts, so every request is still served.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestEnv, waitFor } from './lib/harness.mjs';
import { initializeMessage } from './lib/mcp.mjs';
import { adminGet, adminUrl } from './lib/prometheus.mjs';
import { startRedis } from './lib/redis.mjs';

const env = new TestEnv('ops-ready-redis');
let fake;
let redis;
let gw;
let admin;

before(async () => {
  fake = await env.startFake();
  redis = await startRedis();
  gw = await env.startGateway({
    upstreamUrl: fake.mcpUrl,
    config: { admin: { listen: '127.0.0.1:0' }, redis: { url: redis.url(), timeout_ms: 200 } },
  });
  admin = await adminUrl(gw);
});
after(async () => {
  await redis?.stop().catch(() => {});
  await env.cleanup();
});

describe('readiness with Redis gone', () => {
  it('/readyz stays 200 and says Redis is down, and requests are still served', async () => {
    await waitFor(async () => (await adminGet(admin, '/readyz')).status === 200,
      { timeoutMs: 15000, message: '/readyz 200 with Omni and Redis up' });
    await redis.stop();
    const res = await waitFor(async () => {
      const r = await adminGet(admin, '/readyz');
      return /redis: not connected/.test(r.body) ? r : null;
    }, { timeoutMs: 15000, message: '/readyz to report Redis down' });
    assert.equal(res.status, 200, `/readyz with Redis down: ${res.status} ${res.body}`);
    await fake.reset();
    const mcp = await gw.request({ member: 'alice', body: initializeMessage(7) });
    assert.equal(mcp.status, 200, mcp.body);
    assert.equal((await fake.mcpRequests()).length, 1, 'the request reached Omni');
  });
});
