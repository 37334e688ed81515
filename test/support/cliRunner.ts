import { execFile } from 'node:child_process';
import { CLI_ENTRY } from '../../src/cli/nodeProcess.js';
import { TEST_PASSWORD } from './testNetwork.js';

/** One run of the built `medledger` binary, as a script would run it. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `medledger ARGS` with the test password in MEDLEDGER_PASSWORD unless `env` overrides it. */
export function cli(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI_ENTRY, ...args],
      { env: { ...process.env, MEDLEDGER_PASSWORD: TEST_PASSWORD, ...env }, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 2) : 0, stdout, stderr });
      },
    );
  });
}
