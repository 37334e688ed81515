import { render } from 'ink-testing-library';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup } from 'ink-testing-library';
import type { Key } from 'ink';
import { optional, parseBloodPressure, parseDateTime, parseTemperature, parseUserId } from '../../src/client/inputs.js';
import type { StatusResponse } from '../../src/api/contract.js';
import type { AuditEvent } from '../../src/records/audit.js';
import { AuditTable } from '../../src/tui/components/AuditTable.js';
import { check, Form } from '../../src/tui/components/Form.js';
import { Menu } from '../../src/tui/components/Menu.js';
import { StatusBar } from '../../src/tui/components/StatusBar.js';
import { expandInput } from '../../src/tui/hooks/useKeys.js';

/** The TUI's building blocks rendered on their own (no node needed): keys in, frames out. */
const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms));
const ENTER = '\r';
const TAB = '\t';
const RIGHT = '\u001B[C';

async function keys(stdin: { write(s: string): void }, ...seq: string[]) {
  for (const s of seq) {
    stdin.write(s);
    await tick();
  }
}

afterEach(() => cleanup());

describe('Form', () => {
  const fields = [
    { name: 'user', label: 'User id', validate: check(parseUserId) },
    { name: 'password', label: 'Password', kind: 'password' as const, validate: (v: string) => (v ? undefined : 'enter your password') },
  ];

  it('masks passwords and never renders them', async () => {
    const r = render(<Form fields={fields} submitLabel="Log in" onSubmit={() => {}} />);
    await keys(r.stdin, 'pat-alice', ENTER, 'S3cret-Value!');
    expect(r.lastFrame()).toContain('Password: *************');
    expect(r.frames.join('\n')).not.toContain('S3cret');
  });

  it('shows inline errors and submits only valid values', async () => {
    const submitted: Record<string, string>[] = [];
    const r = render(
      <Form
        fields={[
          { name: 'temperature', label: 'Temperature', validate: check(optional(parseTemperature)) },
          { name: 'bp', label: 'Blood pressure', validate: check(optional(parseBloodPressure)) },
        ]}
        submitLabel="Create"
        onSubmit={(v) => {
          submitted.push(v);
        }}
      />,
    );
    await keys(r.stdin, 'hot', ENTER);
    expect(r.lastFrame()).toContain('✖ temperature must be a number');
    await keys(r.stdin, '\u0015', '38.5', ENTER, '120-80', ENTER);
    expect(r.lastFrame()).toContain('✖ blood pressure must look like 120/80');
    expect(submitted).toEqual([]);
    await keys(r.stdin, '\u0015', '120/80', ENTER);
    expect(submitted).toEqual([{ temperature: '38.5', bp: '120/80' }]);
  });

  it('shows the error the submit handler returns', async () => {
    const r = render(<Form fields={fields} submitLabel="Log in" onSubmit={() => 'Login unsuccessful: wrong password'} />);
    await keys(r.stdin, 'pat-alice', ENTER, 'x', ENTER);
    expect(r.lastFrame()).toContain('Login unsuccessful: wrong password');
  });

  it('cycles choices with arrows and handles keys that arrive in one chunk', async () => {
    const submitted: Record<string, string>[] = [];
    const r = render(
      <Form
        fields={[
          { name: 'role', label: 'Role', kind: 'choice', options: ['doctor', 'auditor'] },
          { name: 'id', label: 'Id' },
        ]}
        submitLabel="Enrol"
        onSubmit={(v) => {
          submitted.push(v);
        }}
      />,
    );
    await keys(r.stdin, RIGHT);
    expect(r.lastFrame()).toContain('‹ auditor ›');
    // A fast terminal may deliver "Tab, text, Enter" in one read.
    await keys(r.stdin, `${TAB}aud-x${ENTER}`);
    expect(submitted).toEqual([{ role: 'auditor', id: 'aud-x' }]);
  });
});

describe('Menu', () => {
  it('selects by hotkey and by arrows + Enter', async () => {
    const chosen: string[] = [];
    const r = render(
      <Menu
        items={[
          { hotkey: 'r', label: 'My records', onSelect: () => chosen.push('records') },
          { hotkey: 'w', label: 'Who accessed my data', onSelect: () => chosen.push('audit') },
        ]}
      />,
    );
    expect(r.lastFrame()).toContain('› [r] My records');
    await keys(r.stdin, 'w', '\u001B[B', ENTER);
    expect(chosen).toEqual(['audit', 'audit']);
  });
});

const event = (over: Partial<AuditEvent>): AuditEvent => ({
  tx: 'ab'.repeat(32),
  height: 7,
  index: 0,
  type: 'readRecord',
  action: 'R',
  recorded: new Date(2025, 2, 14, 9, 30, 5).getTime(),
  outcome: 'success',
  agent: { user: 'dr-house', role: 'doctor', hospital: 'hosp-a' },
  patient: 'pat-alice',
  record: 'rec-0123456789abcdef',
  source: 'hosp-a',
  ...over,
});

describe('AuditTable', () => {
  it('has the six columns, one row per event, and the reason of a denial', () => {
    const r = render(
      <AuditTable
        events={[event({ outcome: 'denied', reason: 'no-grant', agent: { user: 'dr-who', role: 'doctor', hospital: 'hosp-b' } }), event({})]}
        selected={0}
      />,
    );
    const frame = r.lastFrame()!;
    expect(frame).toMatch(/Datetime\s*\|\s*User\s*\|\s*Role\s*\|\s*Patient\s*\|\s*Action\s*\|\s*Outcome/);
    expect(frame).toMatch(/2025-03-14 09:30:05 \| dr-who\s*\| doctor\s*\| pat-alice\s*\| read record\s*\| denied: no-grant/);
    expect(frame).toMatch(/dr-house\s*\| doctor\s*\| pat-alice\s*\| read record\s*\| success/);
    // The highlighted row's details: record, source hospital, block.
    expect(frame).toContain('DENIED: no-grant · record rec-0123456789abcdef · via hosp-a · agent hospital hosp-b · block 7');
  });
});

const status = (over: Partial<StatusResponse>): StatusResponse => ({
  node: 'hosp-a',
  hospital: 'hosp-a',
  network: 'test',
  peerId: 'peer',
  height: 42,
  headHash: 'h',
  finalizedHeight: 41,
  finalizedHash: 'f',
  peers: ['p1', 'p2', 'p3'],
  validators: 4,
  round: 0,
  mempool: 0,
  integrity: { ok: true, verifiedHeight: 41 },
  keystoreDir: '/tmp/k',
  ...over,
});

describe('StatusBar', () => {
  it('shows node, peers, height and finalized height', () => {
    const r = render(<StatusBar node={{ status: status({}) }} />);
    expect(r.lastFrame()).toContain('node hosp-a (hosp-a) · peers 3/3 · height 42 · finalized 41 · integrity ok (verified to 41)');
  });

  it('raises the integrity alert with its height', () => {
    const r = render(
      <StatusBar
        node={{ status: status({ integrity: { ok: false, verifiedHeight: 12, alert: { height: 13, problem: 'block hash mismatch', since: 1 } } }) }}
      />,
    );
    expect(r.lastFrame()).toContain("No data integrity in the server's database: block hash mismatch (height 13)");
  });

  it('says when the node cannot be reached', () => {
    const r = render(<StatusBar node={{ error: 'cannot reach node' }} />);
    expect(r.lastFrame()).toContain('Node unreachable: cannot reach node');
  });
});

describe('input parsing', () => {
  it('checks ids, numbers, blood pressure and dates', () => {
    expect(parseUserId('Bad Id').ok).toBe(false);
    expect(parseTemperature('37,2')).toEqual({ ok: true, value: 37.2 });
    expect(parseTemperature('99').ok).toBe(false);
    expect(parseBloodPressure('120/80').ok).toBe(true);
    expect(parseBloodPressure('80/120').ok).toBe(false);
    expect(parseDateTime('2025-02-30').ok).toBe(false);
    expect(parseDateTime('2025-03-01', { endOfDay: true })).toEqual({ ok: true, value: new Date(2025, 2, 1, 23, 59, 59, 999).getTime() });
  });

  it('splits a chunk of keys into single keys', () => {
    const none = { return: false, tab: false, backspace: false, delete: false, ctrl: false, shift: false, meta: false, escape: false } as Key;
    const got = expandInput('a\t\r\u007f\u0012', none).map(([i, k]) => (k.return ? 'ENTER' : k.tab ? 'TAB' : k.backspace ? 'BS' : k.ctrl ? `C-${i}` : i));
    expect(got).toEqual(['a', 'TAB', 'ENTER', 'BS', 'C-r']);
  });
});
