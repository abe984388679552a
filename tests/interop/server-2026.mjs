// A 2026-07-28 MCP server on the official SDK 2.x (@modelcontextprotocol/server, createMcpHandler,
// mounted on node:http with toNodeHandler from @modelcontextprotocol/node), for the
// interoperability tests. Start it under tests/interop/recorder.mjs with PORT=0.
//
//   /mcp      createMcpHandler(factory): 2026-07-28, and 2025 clients through the SDK's stateless
//             legacy fallback (the default)
//   /strict   createMcpHandler(factory, { legacy: 'reject' }): 2026-07-28 only; a 2025 request
//             gets the SDK's unsupported-protocol-version answer (what clients read to tell eras)
//   POST /_notify/tools-changed   handler.notify.toolsChanged() on both (for subscriptions/listen)
//
// Tools: echo {text}; forecast {city, days} whose arguments are marked `x-mcp-header` (City,
// Days), so a 2026 client mirrors them as Mcp-Param-City / Mcp-Param-Days; wait-for-cancel
// {label}, which reports interopEvent {type: 'started', label}, sends one progress notification
// when the call has a progress token (the response becomes an SSE stream), then waits until its
// request is cancelled (interopEvent {type: 'aborted', label}) or 30 s pass. A resource
// interop://greeting and a prompt haiku {topic}.
import http from 'node:http';
import { McpServer, createMcpHandler, fromJsonSchema } from '@modelcontextprotocol/server';
import { toNodeHandler } from '@modelcontextprotocol/node';
import * as z from 'zod';

const report = (event) => globalThis.interopEvent?.(event);

function factory() {
  const server = new McpServer(
    { name: 'interop-2026', version: '1.0.0' },
    { capabilities: { tools: { listChanged: true }, resources: {}, prompts: {} } },
  );
  server.registerTool('echo', {
    description: 'Echoes its text',
    inputSchema: z.object({ text: z.string() }),
  }, async ({ text }) => ({ content: [{ type: 'text', text: `echo: ${text}` }] }));

  server.registerTool('forecast', {
    description: 'A made-up forecast; city and days travel as Mcp-Param-City and Mcp-Param-Days too',
    inputSchema: fromJsonSchema({
      type: 'object',
      properties: {
        city: { type: 'string', 'x-mcp-header': 'City' },
        days: { type: 'integer', 'x-mcp-header': 'Days' },
      },
      required: ['city'],
    }),
  }, async ({ city, days }) => ({
    content: [{ type: 'text', text: `${city}: sunny for ${days ?? 1} day(s)` }],
    structuredContent: undefined,
  }));

  server.registerTool('wait-for-cancel', {
    description: 'Waits until cancelled (at most 30 s)',
    inputSchema: z.object({ label: z.string() }),
  }, async ({ label }, ctx) => {
    report({ type: 'started', label });
    // With a progress token the response becomes an SSE stream now; without one nothing is sent
    // before the result, so the response head is still pending while the tool waits.
    const progressToken = ctx.mcpReq._meta?.progressToken;
    if (progressToken !== undefined) {
      await ctx.mcpReq.notify({ method: 'notifications/progress', params: { progressToken, progress: 0, message: `waiting: ${label}` } });
    }
    const aborted = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), 30000);
      const onAbort = () => { clearTimeout(timer); resolve(true); };
      if (ctx.mcpReq.signal.aborted) onAbort();
      else ctx.mcpReq.signal.addEventListener('abort', onAbort, { once: true });
    });
    report({ type: aborted ? 'aborted' : 'timed-out', label });
    return { content: [{ type: 'text', text: `done: ${label}` }] };
  });

  server.registerResource('greeting', 'interop://greeting', { mimeType: 'text/plain', description: 'A greeting' },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: 'text/plain', text: 'grüezi from 2026-07-28' }] }));

  server.registerPrompt('haiku', {
    description: 'A haiku about a topic',
    argsSchema: z.object({ topic: z.string() }),
  }, ({ topic }) => ({ messages: [{ role: 'user', content: { type: 'text', text: `Write a haiku about ${topic}.` } }] }));
  return server;
}

const onerror = (err) => process.stderr.write(`server-2026: ${err?.message ?? err}\n`);
const lenient = createMcpHandler(factory, { onerror });
const strict = createMcpHandler(factory, { legacy: 'reject', onerror });
const serveLenient = toNodeHandler(lenient, { onerror });
const serveStrict = toNodeHandler(strict, { onerror });

http.createServer((req, res) => {
  const path = req.url.split('?')[0];
  if (path === '/_notify/tools-changed' && req.method === 'POST') {
    lenient.notify.toolsChanged();
    strict.notify.toolsChanged();
    res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok');
    return;
  }
  if (path === '/mcp') return void serveLenient(req, res);
  if (path === '/strict') return void serveStrict(req, res);
  res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
}).listen(Number(process.env.PORT ?? 0));
