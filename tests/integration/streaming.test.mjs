// Streaming: SSE is relayed event by event while the upstream still holds the stream; the GET
// stream and DELETE carry Mcp-Session-Id; a client that goes away closes the upstream transfer.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OMNI, TestEnv, openStream, request, waitFor } from './lib/harness.mjs';
import { getDataMessage, rawSession, rpc, sdkConnect, toolJson } from './lib/mcp.mjs';

const env = new TestEnv('streaming');
let fake;
let gw;

before(async () => {
  fake = await env.startFake();
  gw = await env.startGateway({ upstreamUrl: fake.mcpUrl });
});
after(async () => {
  await fake?.release().catch(() => {});
  await env.cleanup();
});
beforeEach(() => fake.reset());

const aliceSession = () => rawSession(gw.url, { ca: gw.ca, headers: gw.auth('alice') });

/** The fake's log entry for the tools/call with this JSON-RPC id. */
async function upstreamCall(id) {
  return waitFor(async () => (await fake.rpcRequests('tools/call', id))[0], { message: `upstream tools/call id ${id}` });
}

describe('SSE relayed as it arrives', () => {
  it('the first event reaches the client while the upstream still holds the stream (raw)', async () => {
    await fake.hold();
    const s = await aliceSession();
    const stream = await s.stream(getDataMessage(2));
    try {
      assert.equal(stream.status, 200);
      assert.match(String(stream.headers['content-type']), /^text\/event-stream/);

      const first = await stream.nextEvent(10000);
      assert.ok(first, `stream ended before any event: ${stream.text()}`);
      assert.equal(first.json().method, 'notifications/message');
      assert.equal(first.json().params.data, 'getData started');
      // Upstream still holds: its response is not finished and ours has not ended.
      const call = await upstreamCall(2);
      const events = await fake.events();
      assert.ok(events.some((e) => e.type === 'hold-waiting' && e.seq === call.seq), 'upstream is waiting in its hold');
      assert.ok(!events.some((e) => e.seq === call.seq && e.type.startsWith('response-')), 'upstream response already over');
      assert.equal(stream.isEnded(), false);

      await fake.release();
      const rest = await stream.rest(10000);
      const result = rest.map((e) => e.json()).find((m) => m.id === 2);
      assert.ok(result, `no result after release: ${stream.text()}`);
      assert.equal(toolJson(result.result).runAs, OMNI.users.alice.id);
      assert.equal(call.headers.authorization, `Bearer ${OMNI.users.alice.pat}`);
    } finally {
      stream.close();
    }
  });

  it('the SDK client gets progress and a log message before the held result', async () => {
    await fake.hold();
    const c = await sdkConnect(gw, 'alice');
    try {
      const progress = [];
      let settled = false;
      const call = c.client.callTool({ name: 'getData', arguments: { prompt: 'held' } }, undefined,
        { onprogress: (p) => progress.push(p), timeout: 30000 });
      call.then(() => { settled = true; }, () => { settled = true; });

      await waitFor(() => c.logs.length > 0 && progress.length > 0, { timeoutMs: 10000, message: 'log message and progress' });
      assert.equal(settled, false, 'the call finished while the upstream was held');
      assert.equal(c.logs[0].data, 'getData started');

      await fake.release();
      const result = await call;
      assert.equal(toolJson(result).runAs, OMNI.users.alice.id);
      const [up] = await fake.rpcRequests('tools/call');
      assert.ok(up.body.params._meta?.progressToken !== undefined, 'progress token reached upstream');
    } finally {
      await fake.release();
      await c.close();
    }
  });

  it('a held stream does not hold up other members', async () => {
    await fake.hold();
    const s = await aliceSession();
    const stream = await s.stream(getDataMessage(2));
    try {
      assert.ok(await stream.nextEvent(10000), 'no first event');

      const c = await sdkConnect(gw, 'carol');
      try {
        const tools = (await c.client.listTools()).tools.map((t) => t.name);
        assert.ok(tools.includes('getData'));
        const models = toolJson(await c.client.callTool({ name: 'pickModel', arguments: {} }));
        assert.equal(models.runAs, OMNI.users.carol.id);
      } finally {
        await c.close();
      }
      assert.equal(stream.isEnded(), false, 'alice\'s held stream ended meanwhile');
    } finally {
      await fake.release();
      stream.close();
    }
  });

  it('response headers of the SSE stream are passed on', async () => {
    const s = await aliceSession();
    const direct = await request(fake.mcpUrl, {
      method: 'POST', body: JSON.stringify(rpc(3, 'tools/list')),
      headers: { ...s.headers({ Authorization: `Bearer ${OMNI.users.alice.pat}` }) },
    });
    const res = await s.post(rpc(3, 'tools/list'));

    assert.equal(res.status, direct.status);
    for (const h of ['content-type', 'cache-control', 'x-accel-buffering']) {
      assert.equal(res.headers[h], direct.headers[h], `response header ${h}`);
    }
  });
});

describe('client disconnect', () => {
  it('closing the client connection closes the upstream transfer', async () => {
    await fake.hold();
    const s = await aliceSession();
    const stream = await s.stream(getDataMessage(4));
    let call;
    try {
      const first = await stream.nextEvent(10000);
      assert.ok(first, 'no first event');
      call = await upstreamCall(4);
    } finally {
      stream.close();
    }

    const closed = await waitFor(async () => (await fake.events()).find((e) => e.seq === call.seq && e.type.startsWith('response-')),
      { timeoutMs: 2000, message: `upstream response of request #${call.seq} to be closed` });
    assert.equal(closed.type, 'response-closed-early', `upstream saw ${JSON.stringify(closed)}`);
  });

  it('the gateway still serves the member after the disconnect', async () => {
    const s = await aliceSession();
    const res = await s.post(getDataMessage(5));
    assert.equal(res.status, 200, res.body);
  });
});

describe('GET stream and DELETE with Mcp-Session-Id', () => {
  it('GET opens an SSE stream through the gateway, and upstream saw the session id', async () => {
    const s = await aliceSession();
    const get = await openStream(gw.url, {
      method: 'GET', ca: gw.ca,
      headers: { ...gw.auth('alice'), Accept: 'text/event-stream', 'Mcp-Session-Id': s.sessionId, 'MCP-Protocol-Version': s.protocolVersion },
    });
    try {
      assert.equal(get.status, 200, get.text());
      assert.match(String(get.headers['content-type']), /^text\/event-stream/);
      const up = await waitFor(async () => (await fake.mcpRequests()).find((r) => r.method === 'GET'), { message: 'upstream GET' });
      assert.equal(up.headers['mcp-session-id'], s.sessionId);
      assert.equal(up.headers['mcp-protocol-version'], s.protocolVersion);
      assert.match(String(up.headers.accept), /text\/event-stream/);
      assert.equal(up.headers.authorization, `Bearer ${OMNI.users.alice.pat}`);
      assert.equal(get.isEnded(), false, 'the GET stream stays open');
    } finally {
      get.close();
    }
  });

  it('DELETE ends the session upstream; the next request gets upstream\'s answer unchanged', async () => {
    const s = await aliceSession();
    const sessionHeaders = { 'Mcp-Session-Id': s.sessionId, 'MCP-Protocol-Version': s.protocolVersion };

    const del = await gw.request({ method: 'DELETE', member: 'alice', headers: sessionHeaders });
    assert.ok(del.status >= 200 && del.status < 300, `DELETE → ${del.status} ${del.body}`);
    const upDel = (await fake.mcpRequests()).find((r) => r.method === 'DELETE');
    assert.ok(upDel, 'DELETE reached upstream');
    assert.equal(upDel.headers['mcp-session-id'], s.sessionId);
    await waitFor(async () => (await fake.events()).some((e) => e.type === 'session-closed' && e.sessionId === s.sessionId),
      { message: 'session closed upstream' });

    const after = await s.post(rpc(6, 'tools/list'));
    const direct = await request(fake.mcpUrl, {
      method: 'POST', body: JSON.stringify(rpc(6, 'tools/list')),
      headers: s.headers({ Authorization: `Bearer ${OMNI.users.alice.pat}` }),
    });
    assert.ok(direct.status === 404 || direct.status === 400, `upstream answers an ended session with ${direct.status}`);
    assert.equal(after.status, direct.status, `gateway: ${after.status} ${after.body}`);
    assert.equal(after.body, direct.body, 'body passed through byte for byte');
    assert.equal(after.headers['content-type'], direct.headers['content-type']);
  });
});
