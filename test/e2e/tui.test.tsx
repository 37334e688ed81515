import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TestNetwork, TEST_PASSWORD } from '../support/testNetwork.js';
import { KEY, TuiDriver } from '../support/tuiDriver.js';

/**
 * README.md "Terminal UI" and issue #4: the terminal UI, rendered in a test against a real node process,
 * for every role — login, the role's menu, records, grants, requests, the audit table with a denial,
 * enrolment and registration. Nothing of ours is mocked: every action is a signed transaction that the
 * node commits.
 */
describe('terminal UI against a real node', () => {
  let net: TestNetwork;
  let api: string;
  let tui: TuiDriver | undefined;
  let record = '';

  beforeAll(async () => {
    net = await TestNetwork.create(1);
    await net.start();
    api = net.node(0).apiUrl;
    await net.staff(0, 'dr-house', 'doctor');
    await net.staff(0, 'dr-other', 'doctor');
    await net.staff(0, 'aud-ada', 'auditor');
    await net.patient(0, 'pat-alice');
  }, 60_000);

  afterEach(() => {
    tui?.unmount();
    tui = undefined;
  });

  afterAll(async () => {
    await net?.destroy();
  });

  const open = () => (tui = new TuiDriver(api));

  it('login: a wrong password and an unknown user fail cleanly; the right password opens the patient menu', async () => {
    const t = open();
    await t.waitFor(/node hosp-a \(hosp-a\) · peers 0\/0 · height \d+ · finalized \d+/);
    await t.login('pat-alice', 'Not-The-Password-1');
    await t.waitFor('Login unsuccessful: wrong password');
    await t.press(KEY.up, KEY.ctrlU);
    await t.type('pat-nobody', KEY.enter);
    await t.type(TEST_PASSWORD);
    await t.waitFor('Login unsuccessful: unknown user pat-nobody');
    await t.press(KEY.up, KEY.ctrlU);
    await t.type('pat-alice', KEY.enter);
    await t.press(KEY.ctrlU);
    await t.type(TEST_PASSWORD);
    const menu = await t.waitFor('Patient menu — pat-alice');
    expect(menu).toContain('[r] My records');
    expect(menu).toContain('[w] Who accessed my data (audit trail)');
    expect(t.allFrames()).not.toContain(TEST_PASSWORD);
    expect(t.allFrames()).not.toContain('Not-The-Password-1');
  });

  it('the patient creates a record with vital signs (bad input is refused inline) and sees it in the list', async () => {
    const t = open();
    await t.login('pat-alice', TEST_PASSWORD);
    await t.waitFor('Patient menu');
    await t.press('r');
    await t.waitFor('no records yet');
    await t.press('c');
    await t.waitFor('New record for pat-alice');
    await t.type('Admission');
    await t.type('36.9');
    await t.type('80/120');
    await t.waitFor('✖ blood pressure: systolic must exceed diastolic');
    await t.press(KEY.ctrlU);
    await t.type('120/80');
    await t.type('72');
    await t.type('Patient feels well');
    await t.type('');
    const created = await t.waitFor(/✔ Created record rec-[0-9a-f]{16}/);
    record = /Created record (rec-[0-9a-f]{16})/.exec(created)![1]!;
    await t.waitFor(new RegExp(`› ${record} \\| .* \\| pat-alice\\s+\\| 1\\s+\\| 0`));
    await t.press(KEY.enter);
    const view = await t.waitFor('Blood pressure 120/80 mmHg');
    expect(view).toContain('Temperature    36.9 °C');
    expect(view).toContain('Notes          Patient feels well');
  });

  it('the patient grants a doctor on the access screen', async () => {
    const t = open();
    await t.login('pat-alice', TEST_PASSWORD);
    await t.waitFor('Patient menu');
    await t.press('a');
    await t.waitFor('nobody has access');
    await t.press('g');
    await t.waitFor('Grant access to my records');
    await t.type('dr-house');
    await t.waitFor('✔ Granted dr-house access to your records');
    await t.waitFor(/dr-house\s+\| doctor\s+\| has access/);
  });

  it('the doctor finds the patient and reads the record, decrypted on the client', async () => {
    const t = open();
    await t.login('dr-house', TEST_PASSWORD);
    await t.waitFor('Doctor menu — dr-house');
    await t.waitFor('Patients who granted you access: pat-alice');
    await t.press('m');
    await t.waitFor(/› pat-alice\s+\| granted/);
    await t.press(KEY.enter);
    await t.waitFor(`› ${record}`);
    await t.press(KEY.enter);
    const view = await t.waitFor('Blood pressure 120/80 mmHg');
    expect(view).toContain(`Record ${record} of pat-alice`);
    expect(view).toContain('Title          Admission');
  });

  it('a doctor without a grant is denied, and the TUI says so', async () => {
    const t = open();
    await t.login('dr-other', TEST_PASSWORD);
    await t.waitFor('Doctor menu — dr-other');
    await t.press('o');
    await t.waitFor("Open a patient's records");
    await t.type('pat-alice');
    await t.waitFor('Denied by the ledger: no-grant (the attempt is recorded in the audit trail)');
  });

  it("the patient's audit table shows the create, the doctor's read and the denied attempt, newest first", async () => {
    const t = open();
    await t.login('pat-alice', TEST_PASSWORD);
    await t.waitFor('Patient menu');
    await t.press('w');
    await t.waitFor('Audit trail of pat-alice — newest first');
    await t.waitFor(/Datetime\s*\|\s*User\s*\|\s*Role\s*\|\s*Patient\s*\|\s*Action\s*\|\s*Outcome/);
    const f = await t.waitFor('denied: no-grant');
    const rows = f.split('\n').filter((l) => /^\S?\s+\d{4}-\d{2}-\d{2} /.test(l) || /^› \d{4}/.test(l));
    const summary = rows.map((l) =>
      l
        .split('|')
        .map((c) => c.trim())
        .slice(1)
        .join(' '),
    );
    expect(summary).toContain('dr-other doctor pat-alice list records denied: no-grant');
    expect(summary).toContain('dr-house doctor pat-alice read record success');
    expect(summary).toContain('pat-alice patient pat-alice create record success');
    expect(summary).toContain('pat-alice patient pat-alice grant access success');
    // Newest first: the denied list (last action) is above the doctor's read, which is above the create.
    const at = (s: string) => summary.indexOf(s);
    expect(at('dr-other doctor pat-alice list records denied: no-grant')).toBeLessThan(at('dr-house doctor pat-alice read record success'));
    expect(at('dr-house doctor pat-alice read record success')).toBeLessThan(at('pat-alice patient pat-alice create record success'));
  });

  it('an auditor requests access, the patient approves, and the auditor filters the trail and views records read-only', async () => {
    let t = open();
    await t.login('aud-ada', TEST_PASSWORD);
    await t.waitFor('Auditor menu — aud-ada');
    await t.press('x');
    await t.type('pat-alice');
    await t.waitFor('✔ Access requested from pat-alice');
    t.unmount();

    t = open();
    await t.login('pat-alice', TEST_PASSWORD);
    await t.waitFor('Pending requests: aud-ada (auditor)');
    await t.press('a');
    await t.waitFor(/aud-ada\s+\| auditor\s+\| requests access/);
    await t.press(KEY.down, 'a');
    await t.waitFor("✔ Approved aud-ada's request");
    await t.waitFor(/aud-ada\s+\| auditor\s+\| has access/);
    t.unmount();

    t = open();
    await t.login('aud-ada', TEST_PASSWORD);
    await t.waitFor('Patients who granted you access: pat-alice');
    await t.press('t');
    await t.waitFor('Audit trail — choose a patient and filters');
    await t.waitFor('Patient         : pat-alice');
    // Outcome filter: Enter through patient, user, record, action; → twice on outcome = "denied".
    await t.press(KEY.enter, KEY.enter, KEY.enter, KEY.enter, KEY.right, KEY.right, KEY.enter, KEY.enter, KEY.enter);
    await t.waitFor('filters: patient=pat-alice · outcome=denied');
    const filtered = await t.waitFor('denied: no-grant');
    // Every row is a denial: dr-other's attempt, the only denied event on pat-alice's trail.
    const rows = filtered.split('\n').filter((l) => /^\S?\s+\d{4}-\d{2}-\d{2} /.test(l) || /^› \d{4}/.test(l));
    expect(
      rows.map((l) =>
        l
          .split('|')
          .map((c) => c.trim())
          .slice(1)
          .join(' '),
      ),
    ).toEqual(['dr-other doctor pat-alice list records denied: no-grant']);
    await t.press(KEY.esc);
    await t.waitFor('Auditor menu');
    await t.press('m');
    await t.waitFor(/› pat-alice\s+\| granted/);
    await t.press(KEY.enter);
    await t.waitFor(`› ${record}`);
    expect(t.frame()).not.toContain('c create');
    await t.press(KEY.enter);
    const view = await t.waitFor('Blood pressure 1');
    expect(view).not.toContain('u update');

    // Verify replicas: this node's URL is offered, and its one healthy replica verifies from genesis.
    await t.press(KEY.esc, KEY.esc, KEY.esc);
    await t.waitFor('Auditor menu');
    await t.press('v');
    await t.waitFor(`Node API URLs: ${api}`);
    await t.press(KEY.enter);
    // Wait for whichever result comes, so that a wrong one fails with the screen in the message.
    const report = await t.waitFor(/All replicas agree|DIFFER|could not complete|Error:/);
    expect(report).toContain('All replicas agree and verify.');
    const row = report.split('\n').find((l) => l.includes(api));
    expect(row, report).toMatch(/\| hosp-a\s*\| yes \| [1-9]\d*\s*\|\s*$/);
  });

  it('the admin invites a doctor and sees a one-time code; the doctor activates with Ctrl-A (own password), then logs in; deactivation and node status', async () => {
    let t = open();
    await t.login('admin-a', TEST_PASSWORD);
    await t.waitFor('Admin menu — admin-a');
    await t.press('e');
    await t.waitFor('Enrol a doctor or auditor at hosp-a');
    await t.type('dr-new');
    await t.type('', KEY.enter); // role: doctor
    const shown = await t.waitFor(/[0-9A-Z]{4}(-[0-9A-Z]{4}){4}/);
    const code = /[0-9A-Z]{4}(?:-[0-9A-Z]{4}){4}/.exec(shown)![0];
    expect(shown).toContain('Activation code for dr-new');
    // The admin's side holds no keystore of the new doctor: only the code exists so far.
    expect(existsSync(join(net.node(0).keystoreDir, 'dr-new.keystore.json'))).toBe(false);
    await t.press(KEY.enter);
    await t.waitFor('Staff of hosp-a');
    await t.press(KEY.esc);
    await t.waitFor('Admin menu — admin-a');
    await t.press('s');
    await t.waitFor('Node status');
    await t.waitFor(`keystores   ${net.node(0).keystoreDir}`);
    t.unmount();

    t = open();
    await t.waitFor('Log in to MedLedger');
    await t.press(KEY.ctrlA);
    await t.waitFor('Activate your staff account');
    await t.type('dr-new');
    await t.type(code);
    await t.type('weakpass');
    await t.waitFor('✖ shorter than 12 characters');
    await t.press(KEY.ctrlU);
    await t.type('Fresh-Start-2025!');
    await t.type('Fresh-Start-2025!');
    await t.waitFor('✔ Activated dr-new as doctor at hosp-a');
    await t.waitFor('Doctor menu — dr-new');
    expect(existsSync(join(net.node(0).keystoreDir, 'dr-new.keystore.json'))).toBe(false);
    t.unmount();

    t = open();
    await t.login('dr-new', 'Fresh-Start-2025!');
    await t.waitFor('Doctor menu — dr-new');
    t.unmount();

    t = open();
    await t.login('admin-a', TEST_PASSWORD);
    await t.waitFor('Admin menu');
    await t.press('d');
    await t.waitFor(/dr-new\s+\| doctor\s+\| active/);
    for (let i = 0; i < 6 && !/› dr-new/.test(t.frame()); i++) await t.press(KEY.down);
    await t.waitFor(/› dr-new/);
    await t.press('x');
    await t.waitFor('Deactivate dr-new (doctor)?');
    await t.press('y');
    await t.waitFor('✔ Deactivated dr-new');
    await t.waitFor(/dr-new\s+\| doctor\s+\| inactive/);
    t.unmount();

    t = open();
    await t.login('dr-new', 'Fresh-Start-2025!');
    await t.waitFor('Login unsuccessful: dr-new was deactivated');
  });

  it('a new patient registers with Ctrl-R (password policy enforced) and lands in the patient menu', async () => {
    const t = open();
    await t.waitFor('Log in to MedLedger');
    await t.press(KEY.ctrlR);
    await t.waitFor('Register as a new patient');
    await t.type('pat-bob');
    await t.type('password');
    await t.waitFor('✖ shorter than 12 characters');
    await t.press(KEY.ctrlU);
    await t.type('Bob-Is-Here-2025');
    await t.type('Bob-Is-Here-2025!');
    await t.waitFor('✖ the two passwords differ');
    await t.press(KEY.ctrlU);
    await t.type('Bob-Is-Here-2025');
    await t.waitFor('✔ Registered pat-bob as a patient at hosp-a');
    // The recovery kit (issue 10): the code is shown once, until Enter.
    await t.waitFor('Your recovery code: write this down');
    expect(t.frame()).toMatch(/\b[0-9A-Z]{4}(-[0-9A-Z]{4}){5}\b/);
    expect(t.frame()).not.toContain('Patient menu');
    await t.press(KEY.enter);
    await t.waitFor('Patient menu — pat-bob');
  });

  it('[c] Change password: the old password is required, a weak new one is refused inline, then only the new one logs in', async () => {
    let t = open();
    await t.login('pat-bob', 'Bob-Is-Here-2025');
    await t.waitFor('Patient menu — pat-bob');
    await t.press('c');
    await t.waitFor('Change password — pat-bob');
    await t.type('Not-The-Password-1');
    await t.type('Password123!');
    await t.waitFor('✖ too easy to guess');
    expect(t.frame()).not.toContain('Password123!');
    await t.press(KEY.ctrlU);
    await t.type('Quartz-Lantern-Ferry-31');
    await t.type('Quartz-Lantern-Ferry-31');
    await t.waitFor('Password unchanged: the current password is wrong');
    t.unmount();

    t = open();
    await t.login('pat-bob', 'Bob-Is-Here-2025');
    await t.waitFor('Patient menu — pat-bob');
    await t.press('c');
    await t.type('Bob-Is-Here-2025');
    await t.type('Quartz-Lantern-Ferry-31');
    await t.type('Quartz-Lantern-Ferry-31');
    await t.waitFor('✔ Password changed for pat-bob');
    await t.waitFor('Patient menu — pat-bob');
    t.unmount();

    t = open();
    await t.login('pat-bob', 'Bob-Is-Here-2025');
    await t.waitFor('Login unsuccessful: wrong password');
    t.unmount();
    t = open();
    await t.login('pat-bob', 'Quartz-Lantern-Ferry-31');
    await t.waitFor('Patient menu — pat-bob');
  });

  it('appointments: the patient books a doctor, who sees it and cancels it', async () => {
    const when = new Date(Date.now() + 3 * 86_400_000);
    const pad = (n: number) => String(n).padStart(2, '0');
    const text = `${when.getFullYear()}-${pad(when.getMonth() + 1)}-${pad(when.getDate())} 10:30`;
    let t = open();
    await t.login('pat-alice', TEST_PASSWORD);
    await t.waitFor('Patient menu');
    await t.press('p');
    await t.waitFor('My appointments');
    await t.press('b');
    await t.type('dr-house');
    await t.type('2001-01-01 10:00');
    await t.waitFor('✖ the time must be in the future');
    await t.press(KEY.ctrlU);
    await t.type(text);
    await t.waitFor(`✔ Booked dr-house on ${text}`);
    await t.waitFor(new RegExp(`${text}\\s+\\| dr-house\\s+\\| booked`));
    t.unmount();

    t = open();
    await t.login('dr-house', TEST_PASSWORD);
    await t.waitFor('Doctor menu');
    await t.press('p');
    await t.waitFor(new RegExp(`› ${text}\\s+\\| pat-alice\\s+\\| booked`));
    await t.press('c');
    await t.waitFor('Cancel the appointment of pat-alice with dr-house');
    await t.press('y');
    await t.waitFor('✔ Cancelled appointment');
    await t.waitFor(new RegExp(`${text}\\s+\\| pat-alice\\s+\\| cancelled`));
  });

  it('the patient updates, copies and deletes records, and attaches, saves and removes a file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'medledger-tui-files-'));
    writeFileSync(join(dir, 'ecg.txt'), 'sinus rhythm\n');
    const t = open();
    await t.login('pat-alice', TEST_PASSWORD);
    await t.waitFor('Patient menu');
    await t.press('r');
    await t.waitFor(`› ${record}`);
    await t.press(KEY.enter);
    await t.waitFor('Blood pressure 120/80 mmHg');
    await t.press('u');
    await t.waitFor(`Update record ${record}`);
    await t.waitFor('Blood pressure: 120/80');
    await t.press(KEY.enter, KEY.enter, KEY.ctrlU);
    await t.type('118/76');
    await t.press(KEY.enter, KEY.enter);
    await t.waitFor(`✔ Saved version 2 of ${record}`);
    await t.waitFor('Blood pressure 118/76 mmHg');
    expect(t.frame()).toContain('version 2');

    await t.press('a');
    await t.waitFor('Attach a file');
    await t.type(join(dir, 'missing.txt'));
    await t.waitFor('✖ no such file');
    await t.press(KEY.ctrlU);
    await t.type(join(dir, 'ecg.txt'));
    await t.waitFor(/✔ Attached .*ecg.txt as file-[0-9a-f]{16}/);
    await t.waitFor('› ecg.txt  (text/plain, 13 B, v1)');
    await t.press('s');
    await t.waitFor('Save ecg.txt to disk');
    await t.type(join(dir, 'saved.txt'));
    await t.waitFor('✔ Saved ecg.txt to');
    expect(readFileSync(join(dir, 'saved.txt'), 'utf8')).toBe('sinus rhythm\n');
    await t.waitFor('› ecg.txt');
    await t.press('x');
    await t.waitFor('Remove ecg.txt from');
    await t.press('y');
    await t.waitFor(/✔ Removed file-[0-9a-f]{16}/);
    await t.waitFor('none — press a to attach');
    await t.waitFor('Blood pressure 118/76 mmHg');

    await t.press('y');
    const copied = await t.waitFor(/✔ Copied rec-[0-9a-f]{16} to rec-[0-9a-f]{16}/);
    const copy = /to (rec-[0-9a-f]{16})/.exec(copied)![1]!;
    await t.press(KEY.esc);
    await t.waitFor(copy);
    for (let i = 0; i < 4 && !t.frame().includes(`› ${copy}`); i++) await t.press(KEY.down);
    await t.waitFor(`› ${copy}`);
    await t.press('d');
    await t.waitFor(`Delete record ${copy} of pat-alice?`);
    await t.press('y');
    await t.waitFor(`✔ Deleted ${copy}`);
    await t.waitFor(`› ${record}`);
    expect(t.frame()).not.toContain(`${copy} |`);
    rmSync(dir, { recursive: true, force: true });
  });
  it('[y] Rotate my keys: a patient rotates through the TUI (old password required), logs in again and reads their record', async () => {
    const patient = await net.patient(0, 'pat-rota');
    const created = await patient.createRecord('pat-rota', { title: 'Before rotation', vitals: { temperature: 37.1 }, notes: 'rotated safely' });
    expect(created.denied).toBeUndefined();
    let t = open();
    await t.login('pat-rota', TEST_PASSWORD);
    const menu = await t.waitFor('Patient menu — pat-rota');
    expect(menu).toContain('[y] Rotate my keys');
    await t.press('y');
    const confirm = await t.waitFor('Rotate keys — pat-rota');
    expect(confirm).toContain('your old key stops working from the next block');
    expect(confirm).toContain('your recovery kit (the printed code) keeps working');
    await t.type('Not-The-Password-1');
    await t.waitFor('Keys not rotated: the current password is wrong');
    await t.press(KEY.ctrlU);
    await t.type(TEST_PASSWORD);
    const done = await t.waitFor('Keys rotated — pat-rota', 30_000);
    expect(done).toMatch(/[1-9]\d* data keys? (was|were) re-wrapped/);
    expect(t.allFrames()).not.toContain(TEST_PASSWORD);
    expect(t.allFrames()).not.toContain('Not-The-Password-1');
    await t.press(KEY.enter);
    await t.waitFor('Keys rotated: log in again as pat-rota (same password)');
    await t.waitFor('Log in to MedLedger');
    // The old keys are no longer the user's on the ledger: the stale session's key is refused.
    await expect(patient.createRecord('pat-rota', { title: 'With the old key', vitals: {} })).rejects.toThrow();
    await t.type('pat-rota');
    await t.type(TEST_PASSWORD);
    await t.waitFor('Patient menu — pat-rota');
    await t.press('r');
    await t.waitFor(`› ${created.value}`);
    await t.press(KEY.enter);
    const view = await t.waitFor('Title          Before rotation');
    expect(view).toContain('Notes          rotated safely');
    t.unmount();

    // The admin's menu has no rotation (admins' keys are in the genesis file).
    t = open();
    await t.login(net.node(0).admin.id, net.node(0).admin.password);
    const admin = await t.waitFor('Admin menu');
    expect(admin).not.toContain('Rotate my keys');
  }, 60_000);

  it('Ctrl-K on the login screen: a patient recovers with the printed code into a fresh keystore directory and logs in with the new password', async () => {
    const first = mkdtempSync(join(tmpdir(), 'medledger-tui-ks-'));
    const fresh = mkdtempSync(join(tmpdir(), 'medledger-tui-fresh-'));
    try {
      let t = (tui = new TuiDriver(api, { keystoreDir: first }));
      await t.waitFor('Log in to MedLedger');
      await t.press(KEY.ctrlR);
      await t.waitFor('Register as a new patient');
      await t.type('pat-carol');
      await t.type('Carol-Sings-Loudly-77');
      await t.type('Carol-Sings-Loudly-77');
      const kit = await t.waitFor('Your recovery code: write this down');
      const code = /\b[0-9A-Z]{4}(?:-[0-9A-Z]{4}){5}\b/.exec(kit)![0];
      await t.press(KEY.enter);
      await t.waitFor('Patient menu — pat-carol');
      t.unmount();

      t = tui = new TuiDriver(api, { keystoreDir: fresh });
      await t.login('pat-carol', 'Carol-Sings-Loudly-77');
      await t.waitFor('Login unsuccessful: unknown user pat-carol');
      expect(t.frame()).toContain('Ctrl-K recover with the recovery code');
      await t.press(KEY.ctrlK);
      await t.waitFor('Recover your keys with the recovery code');
      await t.type('pat-carol');
      await t.type('ABCD');
      await t.waitFor('✖ the code is 24 letters and digits');
      await t.press(KEY.ctrlU);
      const wrong = (code[0] === 'A' ? 'B' : 'A') + code.slice(1);
      await t.type(wrong);
      await t.type('password');
      await t.waitFor('✖ shorter than 12 characters');
      await t.press(KEY.ctrlU);
      await t.type('Violet-Harbour-Kite-58');
      await t.type('Violet-Harbour-Kite-58');
      await t.waitFor('Recovery unsuccessful: wrong recovery code for pat-carol', 30_000);
      expect(existsSync(join(fresh, 'pat-carol.keystore.json'))).toBe(false);
      await t.press(KEY.up, KEY.up, KEY.ctrlU);
      await t.type(code);
      await t.press(KEY.enter, KEY.enter);
      await t.waitFor('pat-carol recovered: log in with your new password', 30_000);
      await t.waitFor('Log in to MedLedger');
      expect(existsSync(join(fresh, 'pat-carol.keystore.json'))).toBe(true);
      for (const secret of [code, wrong, 'Violet-Harbour-Kite-58']) expect(t.allFrames()).not.toContain(secret);
      await t.type('pat-carol');
      await t.type('Violet-Harbour-Kite-58');
      await t.waitFor('Patient menu — pat-carol', 30_000);
    } finally {
      tui?.unmount();
      tui = undefined;
      rmSync(first, { recursive: true, force: true });
      rmSync(fresh, { recursive: true, force: true });
    }
  }, 90_000);
});
