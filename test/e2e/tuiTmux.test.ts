import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_ENTRY } from '../../src/cli/nodeProcess.js';
import { TestNetwork, TEST_PASSWORD } from '../support/testNetwork.js';

/**
 * `medledger tui` as a user runs it: the built binary in a real pseudo-terminal (tmux), driven with
 * keystrokes and checked on the screen text — login, create a record, the audit table — and the
 * scripting CLI's no-echo password prompt in the same kind of terminal. The tmux server runs on a
 * socket of its own and is the only one this test stops.
 */
const TMUX = '/usr/bin/tmux';
const hasTmux = existsSync(TMUX);
const SOCKET = `medledger-test-${process.pid}`;

const tmux = (...args: string[]) => execFileSync(TMUX, ['-L', SOCKET, ...args], { encoding: 'utf8' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const screen = (target: string) => tmux('capture-pane', '-p', '-t', target);
let socketPath = '';

function newSession(name: string, width: number, height: number, command: string): void {
  tmux('new-session', '-d', '-s', name, '-x', String(width), '-y', String(height), command);
  socketPath ||= tmux('display-message', '-p', '-t', name, '#{socket_path}').trim();
}
const alive = (session: string) => spawnSync(TMUX, ['-L', SOCKET, 'has-session', '-t', session]).status === 0;

async function waitForScreen(target: string, what: string | RegExp, timeoutMs = 15_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = screen(target);
    if (typeof what === 'string' ? s.includes(what) : what.test(s)) return s;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${String(what)}; screen:\n${s}`);
    await sleep(100);
  }
}

/** Types text then presses a key, with a pause as a person would leave between fields. */
async function type(target: string, text: string, key = 'Enter'): Promise<void> {
  if (text) tmux('send-keys', '-t', target, '-l', text);
  tmux('send-keys', '-t', target, key);
  await sleep(150);
}

describe.skipIf(!hasTmux)('medledger tui in a real terminal (tmux)', () => {
  let net: TestNetwork;
  let api: string;

  beforeAll(async () => {
    net = await TestNetwork.create(1);
    await net.start();
    api = net.node(0).apiUrl;
    await net.patient(0, 'pat-tmux');
  }, 60_000);

  afterAll(async () => {
    if (hasTmux) {
      spawnSync(TMUX, ['-L', SOCKET, 'kill-server']);
      // A server that exits with its last session leaves its socket file behind.
      if (socketPath.endsWith(SOCKET)) rmSync(socketPath, { force: true });
    }
    await net?.destroy();
  });

  it('logs in, creates a record with vital signs, and shows it in the audit table', async () => {
    newSession('tui', 160, 50, `${process.execPath} ${CLI_ENTRY} tui --api ${api}`);
    await waitForScreen('tui', 'Log in to MedLedger');
    await waitForScreen('tui', /node hosp-a \(hosp-a\) · peers 0\/0 · height \d+/);

    await type('tui', 'pat-tmux');
    await type('tui', TEST_PASSWORD);
    const menu = await waitForScreen('tui', 'Patient menu — pat-tmux');
    expect(menu).toContain('[n] New record');
    expect(menu).not.toContain(TEST_PASSWORD);

    tmux('send-keys', '-t', 'tui', 'n');
    await waitForScreen('tui', 'New record for pat-tmux');
    await type('tui', 'Night shift check');
    await type('tui', '37.8');
    await type('tui', '135/88');
    await type('tui', '');
    await type('tui', 'Mild fever');
    await type('tui', '');
    const done = await waitForScreen('tui', /✔ Created record rec-[0-9a-f]{16}/);
    const record = /Created record (rec-[0-9a-f]{16})/.exec(done)![1]!;

    tmux('send-keys', '-t', 'tui', 'r');
    await waitForScreen('tui', new RegExp(`› ${record}`));
    tmux('send-keys', '-t', 'tui', 'Enter');
    const view = await waitForScreen('tui', 'Blood pressure 135/88 mmHg');
    expect(view).toContain('Temperature    37.8 °C');
    tmux('send-keys', '-t', 'tui', 'Escape');
    await sleep(300);
    tmux('send-keys', '-t', 'tui', 'Escape');
    await waitForScreen('tui', 'Patient menu');

    tmux('send-keys', '-t', 'tui', 'w');
    const audit = await waitForScreen('tui', /read record\s+\| success/);
    expect(audit).toMatch(/Datetime\s+\| User\s+\| Role\s+\| Patient\s+\| Action\s+\| Outcome/);
    expect(audit).toMatch(/pat-tmux\s+\| patient \| pat-tmux\s+\| create record\s+\| success/);
    expect(audit).toMatch(/pat-tmux\s+\| patient \| pat-tmux\s+\| register\s+\| success/);
    expect(audit).not.toContain(TEST_PASSWORD);

    // q on the main menu quits: the process ends and with it the tmux session.
    tmux('send-keys', '-t', 'tui', 'Escape');
    await waitForScreen('tui', 'Patient menu');
    tmux('send-keys', '-t', 'tui', 'q');
    const deadline = Date.now() + 5_000;
    while (alive('tui') && Date.now() < deadline) await sleep(100);
    expect(alive('tui')).toBe(false);
  });

  it('the scripting CLI reads the password from the terminal without echoing it', async () => {
    newSession('cli', 160, 20, `env -u MEDLEDGER_PASSWORD ${process.execPath} ${CLI_ENTRY} record list --api ${api} --user pat-tmux; sleep 30`);
    await waitForScreen('cli', 'Password for pat-tmux:');
    await type('cli', TEST_PASSWORD);
    const out = await waitForScreen('cli', /Record\s+\| Created/);
    expect(out).toMatch(/rec-[0-9a-f]{16} \|/);
    expect(out).not.toContain(TEST_PASSWORD);
    tmux('kill-session', '-t', 'cli');
  });
});
