import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Keystores default to ~/.medledger/keystores (issue 10): every test file, and the processes it starts,
 * gets a home of its own so that nothing is written into the real one.
 */
process.env.HOME = mkdtempSync(join(tmpdir(), 'medledger-home-'));
