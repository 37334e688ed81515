/** `medledger tui --api URL [--keystores DIR] [--genesis FILE]`: the terminal UI, until the user quits (q, Esc or Ctrl-C). */
export async function runTui(opts: { api: string; keystores?: string; genesis?: string }): Promise<void> {
  if (!process.stdin.isTTY) throw new Error('the terminal UI needs an interactive terminal (use the record/grant/audit commands in scripts)');
  // Ink draws only a final frame when the CI variable is set; the UI already requires a terminal, so it
  // is interactive even inside a CI job. Ink reads the variable when it is first imported.
  process.env.CI = 'false';
  process.env.CONTINUOUS_INTEGRATION = 'false';
  const [{ createElement }, { render }, { App }] = await Promise.all([import('react'), import('ink'), import('../../tui/App.js')]);
  const app = render(
    createElement(App, {
      apiUrl: opts.api,
      ...(opts.keystores ? { keystoreDir: opts.keystores } : {}),
      ...(opts.genesis ? { genesisFile: opts.genesis } : {}),
    }),
    { exitOnCtrlC: true },
  );
  await app.waitUntilExit();
  // Pending fetches of the status poll must not keep the process alive after the UI is gone.
  process.exit(0);
}
