// Where things are: the repository root and the gateway binary.
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');

/** $GATEWAY_BIN, or build/omni-mcp-gateway under the repository root. */
export function gatewayBin() {
  return process.env.GATEWAY_BIN || join(REPO_ROOT, 'build/omni-mcp-gateway');
}
