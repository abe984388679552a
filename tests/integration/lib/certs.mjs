// Test-time TLS material: a throw-away CA and a server certificate for 127.0.0.1 and localhost,
// made with the openssl CLI in the test's temp dir. Nothing is reused between runs.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

function openssl(args, cwd) {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new Error(`openssl ${args.join(' ')} failed: ${err.stderr?.toString() ?? err.message}`);
  }
}

/**
 * Makes `<prefix>ca.pem`, `<prefix>cert.pem` and `<prefix>key.pem` in dir.
 * Returns { caFile, certFile, keyFile, ca } where ca is the CA certificate as PEM text.
 */
export function makeCerts(dir, prefix = '') {
  const f = (name) => join(dir, prefix + name);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', f('ca-key.pem'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=omni-mcp-gateway test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', f('key.pem'), '-out', f('server.csr'), '-subj', '/CN=localhost'], dir);
  writeFileSync(f('server.ext'), [
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '',
  ].join('\n'));
  openssl(['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca-key.pem'),
    '-CAcreateserial', '-out', f('cert.pem'), '-days', '2', '-extfile', f('server.ext')], dir);
  return { caFile: f('ca.pem'), certFile: f('cert.pem'), keyFile: f('key.pem'), ca: readFileSync(f('ca.pem'), 'utf8') };
}
