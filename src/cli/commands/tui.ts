import { createElement } from 'react';
import { render } from 'ink';
import { App } from '../../tui/App.js';

/** `medledger tui --api URL [--keystores DIR]`: the terminal UI, until the user quits (q, Esc or Ctrl-C). */
export async function runTui(opts: { api: string; keystores?: string }): Promise<void> {
  if (!process.stdin.isTTY) throw new Error('the terminal UI needs an interactive terminal (use the record/grant/audit commands in scripts)');
  const app = render(createElement(App, { apiUrl: opts.api, ...(opts.keystores ? { keystoreDir: opts.keystores } : {}) }), { exitOnCtrlC: true });
  await app.waitUntilExit();
  // Pending fetches of the status poll must not keep the process alive after the UI is gone.
  process.exit(0);
}
