// Child processes for the tests: start one, wait for the line that says it is ready, keep all of
// its output, stop it. Every process started here is killed when the test process exits.
import { spawn } from 'node:child_process';

const live = new Set();
process.on('exit', () => {
  for (const p of live) {
    try { p.child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

/**
 * Starts cmd with args and resolves once a line of `stream` ('stdout' or 'stderr') matches `ready`.
 * Resolves to a handle { child, match, stdout(), stderr(), exited, stop() }. Rejects after
 * timeoutMs, or if the process exits first, with an error that quotes its output.
 */
export function startProcess(cmd, args, { env = process.env, cwd, stream = 'stdout', ready, timeoutMs = 15000, name = cmd } = {}) {
  const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  let stopping = false;
  let exitInfo = null;
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => { exitInfo = { code, signal }; live.delete(handle); resolve(exitInfo); });
  });
  const handle = {
    name,
    child,
    match: null,
    stdout: () => out.stdout,
    stderr: () => out.stderr,
    exited,
    /** The exit status if the process has already ended, else null. */
    exitInfo: () => exitInfo,
    /** True if the process ended without stop() having been called. */
    diedUnexpectedly: () => exitInfo !== null && !stopping,
    /** SIGTERM, then SIGKILL if it has not ended after graceMs. Resolves to the exit status. */
    async stop(graceMs = 5000) {
      stopping = true;
      if (exitInfo) return exitInfo;
      child.kill('SIGTERM');
      let timer;
      const killed = new Promise((resolve) => {
        timer = setTimeout(() => { child.kill('SIGKILL'); resolve(); }, graceMs);
      });
      await Promise.race([exited, killed]);
      clearTimeout(timer);
      return exited;
    },
  };
  live.add(handle);
  return new Promise((resolve, reject) => {
    let pending = '';
    let done = false;
    const describe = (why) => new Error(`${name} ${why}\n--- ${name} stdout ---\n${out.stdout}\n--- ${name} stderr ---\n${out.stderr}`);
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      child.kill('SIGKILL');
      reject(describe(`did not print a line matching ${ready} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onData = (which) => (chunk) => {
      const text = chunk.toString('utf8');
      out[which] += text;
      if (done || which !== stream) return;
      pending += text;
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        const m = line.match(ready);
        if (m) {
          done = true;
          clearTimeout(timer);
          handle.match = m;
          resolve(handle);
          return;
        }
      }
    };
    child.stdout.on('data', onData('stdout'));
    child.stderr.on('data', onData('stderr'));
    child.on('error', (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(describe(`could not be started: ${err.message}`));
    });
    exited.then(({ code, signal }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(describe(`exited (code ${code}, signal ${signal}) before printing a line matching ${ready}`));
    });
  });
}

/** Runs a command to its end; resolves to { code, signal, stdout, stderr }. Never rejects on a non-zero exit. */
export function runProcess(cmd, args, { env = process.env, cwd, input, timeoutMs = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.stdout.on('data', (c) => { stdout += c; });
    child.stderr.on('data', (c) => { stderr += c; });
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
    // A command that exits before reading its input must not fail the test with EPIPE.
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
  });
}
