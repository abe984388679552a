// A 2025-era MCP server on the official SDK 1.x (@modelcontextprotocol/sdk: McpServer +
// StreamableHTTPServerTransport with sessions, on the SDK's createMcpExpressApp, which refuses a
// Host other than 127.0.0.1/localhost), for the interoperability tests. It still accepts
// 2025-03-26 JSON-RPC batch arrays. Start it under tests/interop/recorder.mjs with PORT=0.
//
//   /mcp        answers requests as SSE streams (the SDK's default)
//   /mcp-json   answers requests as application/json (enableJsonResponse)
//
// Tools: echo {text}, add {a, b}. A resource interop://motd and a prompt greet {name}.
import { randomUUID } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import * as z from 'zod';

function newServer() {
  const server = new McpServer({ name: 'interop-2025', version: '1.0.0' }, { capabilities: { logging: {} } });
  server.registerTool('echo', { description: 'Echoes its text', inputSchema: { text: z.string() } },
    async ({ text }) => ({ content: [{ type: 'text', text: `echo: ${text}` }] }));
  server.registerTool('add', { description: 'Adds two numbers', inputSchema: { a: z.number(), b: z.number() } },
    async ({ a, b }) => ({ content: [{ type: 'text', text: String(a + b) }] }));
  server.registerResource('motd', 'interop://motd', { mimeType: 'text/plain' },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: 'text/plain', text: 'message of the day' }] }));
  server.registerPrompt('greet', { description: 'Greets someone', argsSchema: { name: z.string() } },
    ({ name }) => ({ messages: [{ role: 'user', content: { type: 'text', text: `Say hello to ${name}.` } }] }));
  return server;
}

const app = createMcpExpressApp({ host: '127.0.0.1' });

function mount(path, enableJsonResponse) {
  const transports = new Map();
  const sessionTransport = (req, res) => {
    const sid = req.headers['mcp-session-id'];
    const t = sid ? transports.get(sid) : undefined;
    if (t) return t;
    res.status(sid ? 404 : 400).json({ jsonrpc: '2.0', error: { code: -32000, message: sid ? 'Session not found' : 'Bad Request: No valid session ID provided' }, id: null });
    return undefined;
  };
  app.post(path, async (req, res) => {
    const sid = req.headers['mcp-session-id'];
    const first = Array.isArray(req.body) ? req.body[0] : req.body;
    if (!sid && isInitializeRequest(first)) {
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse,
        onsessioninitialized: (id) => { transports.set(id, transport); },
      });
      transport.onclose = () => { if (transport.sessionId) transports.delete(transport.sessionId); };
      await newServer().connect(transport);
      await transport.handleRequest(req, res, req.body);
      return;
    }
    const transport = sessionTransport(req, res);
    if (transport) await transport.handleRequest(req, res, req.body);
  });
  for (const method of ['get', 'delete']) {
    app[method](path, async (req, res) => {
      const transport = sessionTransport(req, res);
      if (transport) await transport.handleRequest(req, res);
    });
  }
}
mount('/mcp', false);
mount('/mcp-json', true);

app.listen(Number(process.env.PORT ?? 0), '127.0.0.1');
