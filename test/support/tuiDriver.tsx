import { render } from 'ink-testing-library';
import { App } from '../../src/tui/App.js';

/**
 * Drives the real TUI (the App component, as `medledger tui` renders it) in ink-testing-library against
 * a real node: keys in through stdin, assertions on the rendered frames.
 */
export const KEY = {
  enter: '\r',
  esc: '\u001B',
  tab: '\t',
  up: '\u001B[A',
  down: '\u001B[B',
  right: '\u001B[C',
  left: '\u001B[D',
  ctrlU: '\u0015',
  ctrlR: '\u0012',
  ctrlA: '\u0001',
  ctrlK: '\u000b',
} as const;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class TuiDriver {
  private readonly r: ReturnType<typeof render>;

  constructor(apiUrl: string, opts: { keystoreDir?: string } = {}) {
    this.r = render(<App apiUrl={apiUrl} statusIntervalMs={300} {...(opts.keystoreDir ? { keystoreDir: opts.keystoreDir } : {})} />);
  }

  frame(): string {
    return this.r.lastFrame() ?? '';
  }

  /** Every frame rendered so far (to check that something never appeared). */
  allFrames(): string {
    return this.r.frames.join('\n');
  }

  /** Sends keys one at a time, letting Ink render between them as a person typing would. */
  async press(...keys: string[]): Promise<void> {
    for (const k of keys) {
      this.r.stdin.write(k);
      await sleep(k === KEY.esc ? 60 : 25);
    }
  }

  async type(text: string, then: string = KEY.enter): Promise<void> {
    await this.press(text, then);
  }

  async waitFor(what: string | RegExp, timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frame();
      if (typeof what === 'string' ? f.includes(what) : what.test(f)) return f;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${String(what)}; screen:\n${f}`);
      await sleep(25);
    }
  }

  async login(user: string, password: string): Promise<void> {
    await this.waitFor('Log in to MedLedger');
    await this.type(user);
    await this.type(password);
  }

  unmount(): void {
    this.r.unmount();
    this.r.cleanup();
  }
}
