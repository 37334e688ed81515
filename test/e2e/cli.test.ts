import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unlockKeystore } from '../../src/client/keystoreFiles.js';
import { activationCodeKey } from '../../src/records/activation.js';
import type { AuditEvent } from '../../src/records/audit.js';
import { bytesEqual, toBase64, toHex } from '../../src/records/crypto/bytes.js';
import { cli } from '../support/cliRunner.js';
import { TestNetwork, TEST_PASSWORD } from '../support/testNetwork.js';

/**
 * The TUI's non-interactive twins, run as the built `medledger` binary against a real node: records,
 * grants, requests, appointments, audit queries, registration and enrolment, with the exit codes
 * scripts rely on (0 ok, 1 denied by the ledger, 2 usage or other errors).
 */
describe('CLI twins of the TUI against a real node', () => {
  let net: TestNetwork;
  let api: string;
  let dir: string;
  let record = '';
  const as = (user: string) => ['--api', api, '--user', user];

  beforeAll(async () => {
    net = await TestNetwork.create(1);
    await net.start();
    api = net.node(0).apiUrl;
    await net.staff(0, 'dr-house', 'doctor');
    await net.staff(0, 'aud-ada', 'auditor');
    dir = mkdtempSync(join(tmpdir(), 'medledger-cli-'));
  }, 60_000);

  afterAll(async () => {
    await net?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('registers a patient (password policy enforced: exit 2)', async () => {
    const [weak, ok] = await Promise.all([cli(['register', ...as('pat-cli')], { MEDLEDGER_PASSWORD: 'short' }), cli(['register', ...as('pat-cli')])]);
    expect(weak.code).toBe(2);
    expect(weak.stderr).toContain('password does not meet the policy');
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('registered pat-cli as a patient at hosp-a');
    const again = await cli(['register', ...as('pat-cli')]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('already taken');
  });

  it('refuses a wrong password or an unknown user cleanly (exit 2)', async () => {
    const [wrong, unknown] = await Promise.all([
      cli(['record', 'list', ...as('pat-cli')], { MEDLEDGER_PASSWORD: 'Wrong-Password-9' }),
      cli(['record', 'list', ...as('pat-ghost')]),
    ]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('Login unsuccessful: wrong password');
    expect(wrong.stderr).not.toContain('Wrong-Password-9');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('Login unsuccessful: unknown user pat-ghost');
  });

  it('creates, lists, shows, updates, copies and deletes records; bad input is a usage error', async () => {
    const attachment = join(dir, 'lab.txt');
    writeFileSync(attachment, 'HbA1c 5.4%\n');
    const [bad, created] = await Promise.all([
      cli(['record', 'create', ...as('pat-cli'), '--bp', '120-80']),
      cli([
        'record',
        'create',
        ...as('pat-cli'),
        '--title',
        'Checkup',
        '--temperature',
        '37.4',
        '--bp',
        '120/80',
        '--notes',
        'fine',
        '--file',
        attachment,
        '--json',
      ]),
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--bp: blood pressure must look like 120/80');
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const out = JSON.parse(created.stdout) as { record: string; files: string[] };
    record = out.record;
    expect(record).toMatch(/^rec-[0-9a-f]{16}$/);
    expect(out.files).toHaveLength(1);

    const list = await cli(['record', 'list', ...as('pat-cli')]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/Record\s+\| Created\s+\| Updated\s+\| By\s+\| Version \| Files/);
    expect(list.stdout).toMatch(new RegExp(`${record} \\| .* \\| pat-cli \\| 1\\s+\\| 1`));

    const updated = await cli(['record', 'update', record, ...as('pat-cli'), '--bp', '130/85', '--clear', 'notes']);
    expect(updated.code).toBe(0);
    expect(updated.stdout).toContain(`updated ${record} to version 2`);

    const saveDir = mkdtempSync(join(dir, 'save-'));
    const [shown, text] = await Promise.all([
      cli(['record', 'show', record, ...as('pat-cli'), '--json', '--save-files', saveDir]),
      cli(['record', 'show', record, ...as('pat-cli'), '--version', '1']),
    ]);
    expect(shown.code).toBe(0);
    const rec = JSON.parse(shown.stdout) as { meta: { version: number }; content: unknown; files: { name: string; size: number }[] };
    expect(rec.meta.version).toBe(2);
    expect(rec.content).toEqual({ title: 'Checkup', vitals: { temperature: 37.4, bloodPressure: '130/85' } });
    expect(rec.files).toEqual([expect.objectContaining({ name: 'lab.txt', size: 11 })]);
    expect(readFileSync(join(saveDir, 'lab.txt'), 'utf8')).toBe('HbA1c 5.4%\n');

    expect(text.stdout).toContain('blood pressure 120/80 mmHg');
    expect(text.stdout).toContain('temperature    37.4 °C');

    const copied = await cli(['record', 'copy', record, ...as('pat-cli'), '--json']);
    expect(copied.code).toBe(0);
    const copy = (JSON.parse(copied.stdout) as { record: string }).record;
    const deleted = await cli(['record', 'delete', copy, ...as('pat-cli')]);
    expect(deleted.code).toBe(0);
    expect(deleted.stdout).toContain(`deleted ${copy}`);
    const gone = await cli(['record', 'show', copy, ...as('pat-cli')]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('denied: record-deleted');
  });

  it('grant and revoke decide what a doctor may read; denials exit 1 with the reason', async () => {
    const [before, staffWithoutPatient] = await Promise.all([
      cli(['record', 'show', record, ...as('dr-house'), '--patient', 'pat-cli']),
      cli(['record', 'list', ...as('dr-house')]),
    ]);
    expect(before.code).toBe(1);
    expect(before.stderr).toContain('denied: no-grant');

    expect((await cli(['grant', 'dr-house', ...as('pat-cli')])).code).toBe(0);
    const read = await cli(['record', 'show', record, ...as('dr-house'), '--patient', 'pat-cli']);
    expect(read.code).toBe(0);
    expect(read.stdout).toContain('blood pressure 130/85 mmHg');

    expect(staffWithoutPatient.code).toBe(2);
    expect(staffWithoutPatient.stderr).toContain('--patient is required');

    expect((await cli(['revoke', 'dr-house', ...as('pat-cli')])).code).toBe(0);
    const after = await cli(['record', 'show', record, ...as('dr-house'), '--patient', 'pat-cli']);
    expect(after.code).toBe(1);
    expect(after.stderr).toContain('denied: no-grant');
  });

  it('an auditor requests access, the patient approves, and the auditor queries the trail with filters', async () => {
    expect((await cli(['request', 'pat-cli', ...as('aud-ada')])).code).toBe(0);
    const who = await cli(['whoami', ...as('pat-cli'), '--json']);
    expect(JSON.parse(who.stdout).requests).toEqual([expect.objectContaining({ user: 'aud-ada', kind: 'auditor' })]);
    expect((await cli(['approve', 'aud-ada', ...as('pat-cli')])).code).toBe(0);

    const denied = await cli(['audit', ...as('aud-ada'), '--patient', 'pat-cli', '--outcome', 'denied', '--format', 'json']);
    expect(denied.code).toBe(0);
    const events = (JSON.parse(denied.stdout) as { events: AuditEvent[] }).events;
    expect(events.length).toBeGreaterThanOrEqual(3);
    expect(events.every((e) => e.outcome === 'denied')).toBe(true);
    expect(events.map((e) => `${e.agent.user}:${e.type}:${e.reason}`)).toContain('dr-house:readRecord:no-grant');

    const table = await cli(['audit', ...as('aud-ada'), '--patient', 'pat-cli', '--actor', 'dr-house', '--format', 'table']);
    expect(table.code).toBe(0);
    const lines = table.stdout.split('\n');
    expect(lines[0]).toMatch(/^Datetime\s+\| User\s+\| Role\s+\| Patient\s+\| Action\s+\| Outcome$/);
    expect(table.stdout).toMatch(/dr-house \| doctor \| pat-cli\s+\| read record\s+\| denied: no-grant/);
    expect(table.stdout).toMatch(/dr-house \| doctor \| pat-cli\s+\| read record\s+\| success/);
    // Newest first.
    const times = lines
      .slice(2)
      .filter((l) => /^\d{4}-/.test(l))
      .map((l) => l.slice(0, 19));
    expect([...times].sort().reverse()).toEqual(times);

    const [noPatient, badFormat, foreign] = await Promise.all([
      cli(['audit', ...as('aud-ada')]),
      cli(['audit', ...as('pat-cli'), '--format', 'xml']),
      cli(['audit', ...as('dr-house'), '--patient', 'pat-cli']),
    ]);
    expect(noPatient.code).toBe(2);
    expect(badFormat.code).toBe(2);
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toContain('denied: no-grant');
  });

  it('pages through the audit trail with --limit/--cursor and --all', async () => {
    const page = async (...args: string[]) =>
      JSON.parse((await cli(['audit', ...as('pat-cli'), '--format', 'json', ...args])).stdout) as { events: AuditEvent[]; cursor?: string };
    const ids = (p: { events: AuditEvent[] }) => p.events.map((e) => e.tx);
    const first = await page('--limit', '3');
    expect(first.events).toHaveLength(3);
    expect(first.cursor).toBeTruthy();
    const second = await page('--limit', '3', '--cursor', first.cursor!);
    expect(second.events).toHaveLength(3);
    // Page 2 goes on where page 1 stopped: other events, none of page 1's.
    expect(ids(second)).not.toEqual(ids(first));
    expect(ids(second).filter((id) => ids(first).includes(id))).toEqual([]);
    const all = await page('--limit', '5', '--all');
    expect(all.cursor).toBeUndefined();
    expect(new Set(ids(all)).size).toBe(all.events.length);
    expect(all.events.map((e) => e.type)).toContain('registerPatient');
    // Together the two pages are the full trail's events in its order, from page 1's newest on. Each query is
    // itself audited and final before it answers: above that sit only the two later queries (page 2's and
    // the first of --all's pages).
    const start = ids(all).indexOf(ids(first)[0]!);
    expect(all.events.slice(0, start).map((e) => `${e.agent.user}:${e.type}`)).toEqual(['pat-cli:queryAudit', 'pat-cli:queryAudit']);
    expect(ids(all).slice(start, start + 6)).toEqual([...ids(first), ...ids(second)]);
  });

  it('appointments: book, list and cancel', async () => {
    const at = new Date(Date.now() + 2 * 86_400_000);
    const pad = (n: number) => String(n).padStart(2, '0');
    const when = `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} 09:15`;
    const [past, booked] = await Promise.all([
      cli(['appointment', 'book', ...as('pat-cli'), '--doctor', 'dr-house', '--at', '2000-01-01 09:00']),
      cli(['appointment', 'book', ...as('pat-cli'), '--doctor', 'dr-house', '--at', when, '--json']),
    ]);
    expect(past.code).toBe(2);
    expect(booked.code).toBe(0);
    const id = (JSON.parse(booked.stdout) as { appointment: string }).appointment;
    const list = await cli(['appointment', 'list', ...as('dr-house')]);
    expect(list.stdout).toMatch(new RegExp(`pat-cli\\s+\\| dr-house \\| booked\\s+\\| ${id}`));
    const cancelled = await cli(['appointment', 'cancel', id, ...as('dr-house')]);
    expect(cancelled.code).toBe(0);
    const twice = await cli(['appointment', 'cancel', id, ...as('pat-cli')]);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain('denied: already-cancelled');
  });

  it('the admin invites staff and gets a one-time code; the member activates on their own computer; the admin never holds their keys', async () => {
    const adminDir = net.node(0).keystoreDir;
    const staffDir = mkdtempSync(join(dir, 'staff-computer-')); // the staff member's own computer
    const filesBefore = readdirSync(adminDir).sort();
    const enrolled = await cli(['enrol', ...as('admin-a'), '--id', 'dr-cli', '--role', 'doctor', '--json']);
    expect(enrolled.stderr).toBe('');
    expect(enrolled.code).toBe(0);
    const { code } = JSON.parse(enrolled.stdout) as { code: string };
    expect(code).toMatch(/^[0-9A-Z]{4}(-[0-9A-Z]{4}){4}$/);
    // The admin's run wrote nothing: no keystore of the new member beside the admin's.
    expect(readdirSync(adminDir).sort()).toEqual(filesBefore);
    expect(existsSync(join(adminDir, 'dr-cli.keystore.json'))).toBe(false);

    const wrong = await cli(['activate', '--api', api, '--user', 'dr-cli', '--keystores', staffDir], {
      MEDLEDGER_ACTIVATION_CODE: 'AAAA-AAAA-AAAA-AAAA-AAAA',
      MEDLEDGER_PASSWORD: 'First-Day-2025!',
    });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('wrong activation code');
    const activated = await cli(['activate', '--api', api, '--user', 'dr-cli', '--keystores', staffDir], {
      MEDLEDGER_ACTIVATION_CODE: code,
      MEDLEDGER_PASSWORD: 'First-Day-2025!',
    });
    expect(activated.stderr).toBe('');
    expect(activated.code).toBe(0);
    expect(activated.stdout).toContain('activated dr-cli as doctor of hosp-a');
    const again = await cli(['activate', '--api', api, '--user', 'dr-cli', '--keystores', mkdtempSync(join(dir, 'thief-'))], {
      MEDLEDGER_ACTIVATION_CODE: code,
      MEDLEDGER_PASSWORD: 'Second-Try-2025!',
    });
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('already used');

    // The keys exist only on the staff member's computer, made after the admin's process had exited; the
    // ledger holds their public key, which is not the code's key (the code alone cannot sign as dr-cli).
    const keys = unlockKeystore(staffDir, 'dr-cli', 'First-Day-2025!');
    expect(keys.role).toBe('doctor');
    const onLedger = await (await net.admin(0)).api.user('dr-cli');
    expect(onLedger.signKey).toBe(toBase64(keys.signPublic));
    expect(bytesEqual(activationCodeKey(code, 'dr-cli'), keys.signPublic)).toBe(false);
    const secrets = [keys.signSecret, keys.encSecret!].flatMap((k) => [toHex(k), toBase64(k), Buffer.from(k).toString('base64url')]);
    const adminSide = [
      enrolled.stdout,
      enrolled.stderr,
      ...readdirSync(adminDir)
        .filter((f) => statSync(join(adminDir, f)).isFile())
        .map((f) => readFileSync(join(adminDir, f), 'utf8')),
    ].join('\n');
    for (const s of secrets) expect(adminSide.includes(s)).toBe(false);
    expect(readdirSync(adminDir).some((f) => f.startsWith('dr-cli'))).toBe(false);

    const [who, byPatient] = await Promise.all([
      cli(['whoami', ...as('dr-cli'), '--keystores', staffDir], { MEDLEDGER_PASSWORD: 'First-Day-2025!' }),
      cli(['deactivate', 'dr-cli', ...as('pat-cli')]),
    ]);
    expect(who.stdout).toContain('dr-cli  doctor  hosp-a');
    expect(byPatient.code).toBe(1);
    expect(byPatient.stderr).toContain('denied: role-not-allowed');
    expect((await cli(['deactivate', 'dr-cli', ...as('admin-a')])).code).toBe(0);
    const after = await cli(['whoami', ...as('dr-cli'), '--keystores', staffDir], { MEDLEDGER_PASSWORD: 'First-Day-2025!' });
    expect(after.code).toBe(2);
    expect(after.stderr).toContain('Login unsuccessful: dr-cli was deactivated');

    const staffAudit = await cli(['audit', ...as('admin-a'), '--format', 'json']);
    expect((JSON.parse(staffAudit.stdout) as { events: AuditEvent[] }).events.map((e) => e.type)).toEqual(
      expect.arrayContaining(['inviteUser', 'deactivateUser']),
    );
  });

  it('passwd re-seals the keystore (in ~/.medledger/keystores by default): the new password logs in, the old one no longer does', async () => {
    const weak = await cli(['passwd', '--user', 'pat-cli'], { MEDLEDGER_NEW_PASSWORD: 'Password123!' });
    expect(weak.code).toBe(2);
    expect(weak.stderr).toContain('too easy to guess');
    expect(weak.stderr).not.toContain('Password123!');
    const wrong = await cli(['passwd', '--user', 'pat-cli'], { MEDLEDGER_PASSWORD: 'Wrong-Password-9', MEDLEDGER_NEW_PASSWORD: 'Quartz-Lantern-Ferry-31' });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('wrong password');
    const ok = await cli(['passwd', '--user', 'pat-cli'], { MEDLEDGER_NEW_PASSWORD: 'Quartz-Lantern-Ferry-31' });
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(`password changed for pat-cli; keystore in ${join(process.env.HOME!, '.medledger', 'keystores')}`);
    const [oldOne, newOne] = await Promise.all([
      cli(['record', 'list', ...as('pat-cli')]),
      cli(['record', 'list', ...as('pat-cli'), '--json'], { MEDLEDGER_PASSWORD: 'Quartz-Lantern-Ferry-31' }),
    ]);
    expect(oldOne.code).toBe(2);
    expect(oldOne.stderr).toContain('Login unsuccessful: wrong password');
    expect(newOne.code).toBe(0);
  });

  it("rotate-keys (issue 10): the old key's new transactions are refused (KEY_MISMATCH) and the patient reads the old record with the new keys", async () => {
    const rotDir = mkdtempSync(join(dir, 'rot-'));
    const oldDir = mkdtempSync(join(dir, 'rot-old-'));
    const ks = ['--keystores', rotDir];
    expect((await cli(['register', ...as('pat-rot'), ...ks])).code).toBe(0);
    const created = await cli(['record', 'create', ...as('pat-rot'), ...ks, '--title', 'Before rotation', '--bp', '118/76', '--json']);
    expect(created.code).toBe(0);
    const rec = (JSON.parse(created.stdout) as { record: string }).record;
    writeFileSync(join(oldDir, 'pat-rot.keystore.json'), readFileSync(join(rotDir, 'pat-rot.keystore.json')));
    const oldKeys = unlockKeystore(oldDir, 'pat-rot', TEST_PASSWORD);

    const rotated = await cli(['rotate-keys', ...as('pat-rot'), ...ks, '--json']);
    expect(rotated.stderr).toBe('');
    expect(rotated.code).toBe(0);
    const out = JSON.parse(rotated.stdout) as { rewrapped: number; signKey: string };
    expect(out.rewrapped).toBe(1);
    const newKeys = unlockKeystore(rotDir, 'pat-rot', TEST_PASSWORD); // same password, new keys
    expect(toHex(newKeys.signPublic)).toBe(out.signKey);
    expect(bytesEqual(newKeys.signPublic, oldKeys.signPublic)).toBe(false);
    expect(existsSync(join(rotDir, 'pat-rot.keystore.json.next'))).toBe(false);

    // The old key: a signed transaction of it is refused at admission.
    const { Session } = await import('../../src/client/session.js');
    const { ApiClient } = await import('../../src/client/apiClient.js');
    const stale = new Session(new ApiClient(api), oldKeys, 'hosp-a');
    await expect(stale.listRecords('pat-rot')).rejects.toMatchObject({ code: 'KEY_MISMATCH' });
    const staleLogin = await cli(['record', 'list', ...as('pat-rot'), '--keystores', oldDir]);
    expect(staleLogin.code).toBe(2);

    // The new keys read the record written before the rotation.
    const shown = await cli(['record', 'show', rec, ...as('pat-rot'), ...ks, '--json']);
    expect(shown.stderr).toBe('');
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('Before rotation');
    // The key proof the node serves is now the rotation's.
    const proof = (await (await fetch(`${api}/v1/users/pat-rot/key-proof`)).json()) as { proof: { claim: { type: string } } };
    expect(proof.proof.claim.type).toBe('rotateKeys');
  });

  it('without MEDLEDGER_PASSWORD and without a terminal, it asks for one instead of hanging (exit 2)', async () => {
    const r = await cli(['record', 'list', ...as('pat-cli')], { MEDLEDGER_PASSWORD: '' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no password: set MEDLEDGER_PASSWORD');
  });
});
