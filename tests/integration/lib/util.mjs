// Small helpers: member tokens, polling with a deadline, free ports, secret scanning.
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';

/** A new random member token and the sha256 hex that goes into the gateway config. */
export function newMemberToken() {
  const token = `gwt_${randomBytes(32).toString('base64url')}`;
  return { token, sha256: sha256Hex(token) };
}

export function sha256Hex(text) {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * Calls fn (sync or async) until it returns a truthy value, and resolves to that value. Throws
 * after timeoutMs with `message` and the last value seen. Never used as a timing assertion:
 * deadlines are generous and only bound how long a broken gateway can hang a test.
 */
export async function waitFor(fn, { timeoutMs = 5000, intervalMs = 25, message = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${message}; last value: ${JSON.stringify(last)}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A loopback port that nothing listens on (bound, then closed). */
export function closedPort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Returns the names of the secrets (a map name → value) that occur in text. Short values are
 * skipped so that a secret of a few characters cannot match by chance.
 */
export function findSecrets(text, secrets) {
  const found = [];
  for (const [name, value] of Object.entries(secrets)) {
    if (value && value.length >= 8 && text.includes(value)) found.push(name);
  }
  return found;
}
