// Two gateway behaviours an operator relies on: new TLS certificates taken on SIGHUP (for new
// connections, without a restart), and allowed_hosts refusing a foreign Host. Upstream, the fake
// Omni; config, the team with TLS; client, raw HTTPS requests trusting one CA or the other.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { TestEnv, assertNothingUpstream, assertRpcError, merge, request } from './lib/harness.mjs';
import { makeCerts } from './lib/certs.mjs';
import { initializeMessage } from './lib/mcp.mjs';

const env = new TestEnv('ops-tls-hosts');
let fake;

before(async () => {
  fake = await env.startFake();
});
after(() => env.cleanup());
beforeEach(() => fake.reset());

describe('TLS certificates on SIGHUP', () => {
  it('new connections get the new certificate; the old one is no longer served', async () => {
    const gw = await env.startGateway({ upstreamUrl: fake.mcpUrl });
    const fresh = makeCerts(env.dir, 'renewed-'); // another CA: clients trusting only it tell which is served
    const ask = (ca) => request(`${gw.origin}${gw.mcpPath}`, {
      method: 'POST', ca, body: JSON.stringify(initializeMessage(1)),
      headers: { ...gw.auth('alice'), Accept: 'application/json, text/event-stream', 'Content-Type': 'application/json' },
    });

    assert.equal((await ask(gw.ca)).status, 200, 'served with the first certificate');
    await assert.rejects(ask(fresh.ca), 'the renewed CA does not verify the first certificate');

    const cfg = merge(gw.config, { tls: { cert: fresh.certFile, key: fresh.keyFile } });
    writeFileSync(gw.configFile, JSON.stringify(cfg, null, 2));
    const mark = gw.stderr().length;
    gw.signal('SIGHUP');
    await gw.waitForLog(/reload: config applied/, { since: mark });

    assert.equal((await ask(fresh.ca)).status, 200, 'a new connection gets the renewed certificate');
    await assert.rejects(ask(gw.ca), 'the first certificate is no longer served');
  });

  it('a reload naming unreadable certificate files is refused and the old certificate stays', async () => {
    const gw = await env.startGateway({ upstreamUrl: fake.mcpUrl, name: 'gateway-badcert' });
    const cfg = merge(gw.config, { tls: { cert: `${env.dir}/missing-cert.pem`, key: `${env.dir}/missing-key.pem` } });
    writeFileSync(gw.configFile, JSON.stringify(cfg, null, 2));
    const mark = gw.stderr().length;
    gw.signal('SIGHUP');
    await gw.waitForLog(/reload: kept the running config/, { since: mark });
    const res = await request(`${gw.origin}${gw.mcpPath}`, {
      method: 'POST', ca: gw.ca, body: JSON.stringify(initializeMessage(2)),
      headers: { ...gw.auth('alice'), Accept: 'application/json, text/event-stream', 'Content-Type': 'application/json' },
    });
    assert.equal(res.status, 200, 'still served with the old certificate');
  });
});

describe('allowed_hosts', () => {
  it('a Host not listed gets 403 -32003 and nothing reaches Omni; a listed one passes', async () => {
    const gw = await env.startGateway({ upstreamUrl: fake.mcpUrl, config: { allowed_hosts: ['mcp.team.example'] }, name: 'gateway-hosts' });
    const foreign = await gw.request({ member: 'alice', headers: { Host: 'attacker.example' }, body: initializeMessage(3) });

    assertRpcError(foreign, { status: 403, code: -32003, id: 3 });
    await assertNothingUpstream(fake, 'foreign Host');
    const listed = await gw.request({ member: 'alice', headers: { Host: 'mcp.team.example' }, body: initializeMessage(4) });
    assert.equal(listed.status, 200, listed.body);
    assert.equal((await fake.mcpRequests()).length, 1, 'the listed Host reached Omni');
  });
});
