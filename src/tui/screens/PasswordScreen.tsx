import { changeKeystorePassword, readKeystoreFile, resolveKeystoreDir } from '../../client/keystoreFiles.js';
import { refreshBackupPasswordCopy } from '../../client/recovery.js';
import { newPasswordProblems } from '../../client/accounts.js';
import { isMedLedgerError } from '../../records/errors.js';
import { PASSWORD_POLICY } from '../../records/password.js';
import { useApp, useSession } from '../context.js';
import { FormScreen } from './FormScreen.js';

/** scrypt blocks the event loop for a moment (twice here): let the "busy" frame reach the terminal first. */
const yieldToRender = () => new Promise((r) => setTimeout(r, 20));

/** Change password: the keystore on this computer is re-sealed under the new password (the old one required). */
export function PasswordScreen() {
  const session = useSession();
  const app = useApp();
  const userId = session.userId;
  return (
    <FormScreen
      title={`Change password — ${userId}`}
      intro={`Your keystore on this computer is sealed again under the new password. Password: ${PASSWORD_POLICY}.`}
      fields={[
        { name: 'old', label: 'Current password', kind: 'password', validate: (v) => (v ? undefined : 'enter your current password') },
        {
          name: 'password',
          label: 'New password',
          kind: 'password',
          validate: (v, all) => (v && v === all.old ? 'the new password must differ from the old one' : newPasswordProblems(userId, v)[0]),
        },
        { name: 'repeat', label: 'Repeat new password', kind: 'password', validate: (v, all) => (v === all.password ? undefined : 'the two passwords differ') },
      ]}
      submitLabel="Change password"
      onSubmit={async (v) => {
        await yieldToRender();
        const dir = resolveKeystoreDir(app.keystoreDir, userId, app.status?.keystoreDir);
        try {
          changeKeystorePassword(dir, userId, v.old!, v.password!);
        } catch (err) {
          if (isMedLedgerError(err, 'WRONG_PASSWORD')) return 'Password unchanged: the current password is wrong';
          if (isMedLedgerError(err, 'TAMPERED')) return 'Password unchanged: your keystore is damaged or was altered';
          return `Password unchanged: ${(err as Error).message}`;
        }
        // The password copy of the key backup on the node (issue 10) follows the new password.
        const backup = await refreshBackupPasswordCopy(session.api, session.keys, readKeystoreFile(dir, userId)).then(
          (had) => (had ? '; your key backup on the node was updated' : ''),
          (err: unknown) => `; the key backup on the node was NOT updated (${(err as Error).message})`,
        );
        app.setFlash({ kind: 'success', text: `Password changed for ${userId}${backup}` });
        app.back();
      }}
    />
  );
}
