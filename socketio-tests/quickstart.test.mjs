// The migration guide's example (docs/socketio.md, "The example, end to end"): runs
// quickstart.mjs as a user would, against a fresh server, and expects it to succeed.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Palaver } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

describe('the migration guide', () => {
  let srv;
  before(async () => {
    srv = await Palaver.start('quickstart');
  });
  after(async () => {
    await srv?.close();
  });

  it('quickstart.mjs runs to completion against Palaver', async () => {
    const child = spawn(process.execPath, [path.join(HERE, 'quickstart.mjs')], {
      env: { ...process.env, PALAVER_URL: srv.url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const code = await new Promise((resolve) => child.on('exit', resolve));
    assert.equal(code, 0, `quickstart.mjs failed:\n${output}`);
    assert.match(output, /quickstart: ok/);
  });
});
