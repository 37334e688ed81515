import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, ApiError } from '../../src/client/apiClient.js';
import { unlockKeystore } from '../../src/client/keystoreFiles.js';
import { toBase64, toHex } from '../../src/records/crypto/bytes.js';
import { createSigner } from '../../src/records/crypto/signature.js';
import { newRecoveryCode, normalizeRecoveryCode, recoverySigner } from '../../src/records/recovery.js';
import { cli } from '../support/cliRunner.js';
import { TestNetwork } from '../support/testNetwork.js';

/** Every file under `dir`, recursively, as bytes. */
function filesUnder(dir: string): { path: string; bytes: Buffer }[] {
  const out: { path: string; bytes: Buffer }[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) out.push(...filesUnder(p));
    else if (st.isFile()) out.push({ path: p, bytes: readFileSync(p) });
  }
  return out;
}

/**
 * Issue 10, recovery: a patient registers (and gets a recovery code), loses the keystore directory, and
 * restores it in a fresh directory with the code — then logs in and reads their record. A wrong code writes
 * nothing; the node holds no key in clear and serves the backup to nobody without the code.
 */
describe('recovery kit: register, lose the keystore, recover with the code', () => {
  let net: TestNetwork;
  let api: string;
  let root: string;
  let code = '';
  let record = '';
  const user = 'pat-lost';
  const NEW_PASSWORD = 'Velvet-Harbour-Compass-42';

  beforeAll(async () => {
    net = await TestNetwork.create(1);
    await net.start();
    api = net.node(0).apiUrl;
    root = mkdtempSync(join(tmpdir(), 'medledger-recovery-'));
  }, 60_000);

  afterAll(async () => {
    await net?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('registration prints a recovery code once; then the keystore directory is lost', async () => {
    const first = join(root, 'first-computer');
    const reg = await cli(['register', '--api', api, '--user', user, '--keystores', first]);
    expect(reg.stderr).toBe('');
    expect(reg.code).toBe(0);
    expect(reg.stdout).toContain('write this down');
    const m = /\b([0-9A-Z]{4}(?:-[0-9A-Z]{4}){5})\b/.exec(reg.stdout);
    expect(m).not.toBeNull();
    code = m![1]!;
    expect(normalizeRecoveryCode(code)).toHaveLength(24);
    const created = await cli([
      'record',
      'create',
      '--api',
      api,
      '--user',
      user,
      '--keystores',
      first,
      '--title',
      'Allergy',
      '--notes',
      'penicillin',
      '--json',
    ]);
    expect(created.code).toBe(0);
    record = (JSON.parse(created.stdout) as { record: string }).record;
    rmSync(first, { recursive: true, force: true });
    const gone = await cli(['record', 'show', record, '--api', api, '--user', user, '--keystores', first]);
    expect(gone.code).toBe(2);
  }, 60_000);

  it('(b) a wrong recovery code fails clearly and writes nothing', async () => {
    const dir = join(root, 'wrong-code');
    const wrong = await cli(['recover', '--api', api, '--user', user, '--keystores', dir], {
      MEDLEDGER_RECOVERY_CODE: newRecoveryCode(),
      MEDLEDGER_NEW_PASSWORD: NEW_PASSWORD,
    });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain(`Recovery unsuccessful: wrong recovery code for ${user}`);
    expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
    const malformed = await cli(['recover', '--api', api, '--user', user, '--keystores', dir], {
      MEDLEDGER_RECOVERY_CODE: 'ABCD-EFGH',
      MEDLEDGER_NEW_PASSWORD: NEW_PASSWORD,
    });
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain('24 letters and digits');
    expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
  }, 60_000);

  it('(a) recover with the code under a new password in a fresh directory; the patient logs in and reads the record', async () => {
    const dir = join(root, 'new-computer');
    const rec = await cli(['recover', '--api', api, '--user', user, '--keystores', dir], {
      MEDLEDGER_RECOVERY_CODE: code.toLowerCase(),
      MEDLEDGER_NEW_PASSWORD: NEW_PASSWORD,
    });
    expect(rec.stderr).toBe('');
    expect(rec.code).toBe(0);
    expect(rec.stdout).toContain(`recovered ${user}`);
    const oldPassword = await cli(['record', 'show', record, '--api', api, '--user', user, '--keystores', dir]);
    expect(oldPassword.code).toBe(2);
    expect(oldPassword.stderr).toContain('wrong password');
    const shown = await cli(['record', 'show', record, '--api', api, '--user', user, '--keystores', dir], { MEDLEDGER_PASSWORD: NEW_PASSWORD });
    expect(shown.stderr).toBe('');
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('penicillin');

    // A second computer, same (new) password: the password-sealed copy, refreshed by the recovery above.
    const other = join(root, 'second-computer');
    const kept = await cli(['recover', '--api', api, '--user', user, '--keystores', other, '--keep-password'], {
      MEDLEDGER_RECOVERY_CODE: code,
      MEDLEDGER_PASSWORD: NEW_PASSWORD,
    });
    expect(kept.stderr).toBe('');
    expect(kept.code).toBe(0);
    const again = await cli(['record', 'show', record, '--api', api, '--user', user, '--keystores', other], { MEDLEDGER_PASSWORD: NEW_PASSWORD });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('penicillin');
    // An existing keystore is never overwritten.
    const twice = await cli(['recover', '--api', api, '--user', user, '--keystores', other], {
      MEDLEDGER_RECOVERY_CODE: code,
      MEDLEDGER_NEW_PASSWORD: NEW_PASSWORD,
    });
    expect(twice.code).toBe(2);
    expect(twice.stderr).toContain('already exists');
  }, 90_000);

  it('a password change with --api refreshes the password copy: a new computer then opens it with the newest password', async () => {
    const NEWEST = 'Granite-Meadow-Lantern-77';
    const pw = await cli(['passwd', '--api', api, '--user', user, '--keystores', join(root, 'new-computer')], {
      MEDLEDGER_PASSWORD: NEW_PASSWORD,
      MEDLEDGER_NEW_PASSWORD: NEWEST,
    });
    expect(pw.stderr).toBe('');
    expect(pw.code).toBe(0);
    expect(pw.stdout).toContain('key backup on the node was updated');
    const third = join(root, 'third-computer');
    const stale = await cli(['recover', '--api', api, '--user', user, '--keystores', third, '--keep-password'], {
      MEDLEDGER_RECOVERY_CODE: code,
      MEDLEDGER_PASSWORD: NEW_PASSWORD,
    });
    expect(stale.code).toBe(2);
    expect(stale.stderr).toContain('wrong password');
    expect(existsSync(third) ? readdirSync(third) : []).toEqual([]);
    const kept = await cli(['recover', '--api', api, '--user', user, '--keystores', third, '--keep-password'], {
      MEDLEDGER_RECOVERY_CODE: code,
      MEDLEDGER_PASSWORD: NEWEST,
    });
    expect(kept.code).toBe(0);
    const shown = await cli(['record', 'show', record, '--api', api, '--user', user, '--keystores', third], { MEDLEDGER_PASSWORD: NEWEST });
    expect(shown.stdout).toContain('penicillin');
  }, 90_000);

  it('after a key rotation the same printed code recovers the new keys (the backup is re-sealed for them)', async () => {
    const NEWEST = 'Granite-Meadow-Lantern-77';
    const home = join(root, 'third-computer');
    const rotated = await cli(['rotate-keys', '--api', api, '--user', user, '--keystores', home], { MEDLEDGER_PASSWORD: NEWEST });
    expect(rotated.code).toBe(0);
    const fourth = join(root, 'fourth-computer');
    const rec = await cli(['recover', '--api', api, '--user', user, '--keystores', fourth, '--keep-password'], {
      MEDLEDGER_RECOVERY_CODE: code,
      MEDLEDGER_PASSWORD: NEWEST,
    });
    expect(rec.stderr).toBe('');
    expect(rec.code).toBe(0);
    const recovered = unlockKeystore(fourth, user, NEWEST);
    expect(toHex(recovered.signPublic)).toBe(toHex(unlockKeystore(home, user, NEWEST).signPublic));
    const shown = await cli(['record', 'show', record, '--api', api, '--user', user, '--keystores', fourth], { MEDLEDGER_PASSWORD: NEWEST });
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('penicillin');
  }, 90_000);

  it('(c) the node holds no key or code in clear, and serves the backup to nobody without the code', async () => {
    const keys = unlockKeystore(join(root, 'third-computer'), user, 'Granite-Meadow-Lantern-77');
    const secrets = [keys.signSecret, keys.encSecret!];
    const needles = [
      ...secrets.map((s) => Buffer.from(s)),
      ...secrets.map((s) => Buffer.from(toBase64(s))),
      ...secrets.map((s) => Buffer.from(toHex(s))),
      Buffer.from(normalizeRecoveryCode(code)),
      Buffer.from(code),
    ];
    const files = filesUnder(net.node(0).dir);
    const backups = files.filter((f) => f.path.includes(`${join('backups', user)}.json`));
    expect(backups).toHaveLength(1);
    for (const f of files) for (const n of needles) expect(f.bytes.includes(n), `${f.path} holds a secret in clear`).toBe(false);

    const client = new ApiClient(api);
    const noAuth = await fetch(`${api}/v1/backup/${user}`);
    expect(noAuth.status).toBe(403);
    // Another patient's valid signature is no proof either, and nor is a wrong code.
    const other = await net.patient(0, 'pat-other');
    const asOther = await client.getBackup(user, createSigner(other.keys.signSecret)).catch((e: unknown) => e);
    expect(asOther).toBeInstanceOf(ApiError);
    expect((asOther as ApiError).status).toBe(403);
    const wrong = await client.getBackup(user, recoverySigner(newRecoveryCode(), user)).catch((e: unknown) => e);
    expect((wrong as ApiError).status).toBe(403);
    // Only the owner may replace it: a backup signed by someone else is refused.
    const replace = await client.putBackup(user, createSigner(other.keys.signSecret), JSON.parse(backups[0]!.bytes.toString('utf8'))).catch((e: unknown) => e);
    expect(replace).toBeInstanceOf(ApiError);
    // With the code, it comes back.
    const ok = await client.getBackup(user, recoverySigner(code, user));
    expect((ok.backup as { userId: string }).userId).toBe(user);
  }, 60_000);
});
