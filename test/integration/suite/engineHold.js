// Holding the engine still: a test stops the engine host process (SIGSTOP) so that nothing
// sent to it can start, progress or finish until the test lets it go on (SIGCONT). Requests
// sent meanwhile wait in its input, in the order they were sent, and are handled once it is
// released. This is how the tests keep the engine "busy" for exactly as long as they need,
// on any machine, instead of giving it work and hoping it is still at it.
//
// While held, the engine answers nothing: do not await engineStats() or anything else that
// needs an answer from it. The harness releases every held engine after each test, so a
// failing test never leaves it stopped for the next one. POSIX only (Linux, macOS).
'use strict';

const assert = require('node:assert/strict');

/** Process ids held now. */
const held = new Set();

function signal(pid, name) {
  try {
    process.kill(pid, name);
    return true;
  } catch {
    return false; // already gone (e.g. the test killed it)
  }
}

/**
 * Stops the engine host process of `api` until `release()` is called.
 * @param {{ getState(): { enginePid?: number } }} api
 * @returns {{ pid: number, release(): void }}
 */
function holdEngine(api) {
  const pid = api.getState().enginePid;
  assert.ok(pid, 'no engine process to hold');
  assert.ok(signal(pid, 'SIGSTOP'), `could not stop the engine process ${pid}`);
  held.add(pid);
  return {
    pid,
    release() {
      if (!held.delete(pid)) return;
      signal(pid, 'SIGCONT');
    },
  };
}

/** Lets every held engine go on; the harness calls this after each test. */
function releaseHeldEngines() {
  for (const pid of held) signal(pid, 'SIGCONT');
  held.clear();
}

module.exports = { holdEngine, releaseHeldEngines };
