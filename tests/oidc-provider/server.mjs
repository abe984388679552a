#!/usr/bin/env node
// The test OpenID provider on its own, for demos and manual runs. See README.md beside this file.
//   node tests/oidc-provider/server.mjs [--port 0] [--client-id omni-mcp-gateway]
//        [--client-secret S | --public] [--redirect-uri URI]... [--users FILE] [--base-path /p]
//        [--alg RS256|ES256]
// Prints one JSON line on stdout when ready: {"listening":true,"port":…,"url":…,"issuer":…,
// "client_id":…,"client_secret":…,"redirect_uris":[…]}. SIGTERM or SIGINT stops it.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { randomToken } from './jose.mjs';
import { PEOPLE, startProvider } from './provider.mjs';

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'client-id': { type: 'string', default: 'omni-mcp-gateway' },
    'client-secret': { type: 'string' },
    public: { type: 'boolean', default: false },
    // The demo gateway (make run) listens on https://127.0.0.1:8443.
    'redirect-uri': { type: 'string', multiple: true, default: ['https://127.0.0.1:8443/oauth/callback'] },
    users: { type: 'string' },
    'base-path': { type: 'string', default: '' },
    alg: { type: 'string', default: 'RS256' },
  },
});

const clientSecret = opts.public ? null : (opts['client-secret'] ?? randomToken(24));
const provider = await startProvider({
  port: Number(opts.port),
  basePath: opts['base-path'],
  alg: opts.alg,
  users: opts.users ? JSON.parse(readFileSync(opts.users, 'utf8')) : PEOPLE,
  clients: [{ clientId: opts['client-id'], clientSecret, redirectUris: opts['redirect-uri'] }],
});
process.stdout.write(`${JSON.stringify({
  listening: true, port: provider.port, url: provider.url, issuer: provider.issuer,
  client_id: opts['client-id'], client_secret: clientSecret, redirect_uris: opts['redirect-uri'],
})}\n`);

const stop = async () => { await provider.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
