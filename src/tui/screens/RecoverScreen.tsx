import { Text } from 'ink';
import { newPasswordProblems } from '../../client/accounts.js';
import { parseUserId } from '../../client/inputs.js';
import { resolveKeystoreDir } from '../../client/keystoreFiles.js';
import { recoverKeystore } from '../../client/recovery.js';
import { isRecoveryCode, RECOVERY_CODE_LENGTH } from '../../records/recovery.js';
import { PASSWORD_POLICY } from '../../records/password.js';
import { check, Form } from '../components/Form.js';
import { Screen } from '../components/Screen.js';
import { useApp } from '../context.js';
import { FORM_HELP } from './FormScreen.js';

/** scrypt blocks the event loop for a moment: let the "Recover…" frame reach the terminal first. */
const yieldToRender = () => new Promise((r) => setTimeout(r, 20));

/**
 * Recover with the recovery code (issue 10; `medledger recover` in the TUI), from the login screen: the key
 * backup on the node, opened with the code, becomes a new keystore on this computer sealed under a new password
 * (forgotten password, or a new computer). Nothing is written on a wrong code, and an existing keystore is never
 * overwritten. Then the user logs in with the new password.
 */
export function RecoverForm({ onDone }: { onDone(): void }) {
  const { apiUrl, keystoreDir, status, setFlash } = useApp();
  return (
    <Screen title="Recover your keys with the recovery code" help={FORM_HELP}>
      <Text dimColor>
        Your key backup on the node is opened with the code you wrote down at registration and sealed on this computer under a new password. Password:{' '}
        {PASSWORD_POLICY}.
      </Text>
      <Form
        fields={[
          { name: 'user', label: 'User id', validate: check(parseUserId) },
          {
            name: 'code',
            label: 'Recovery code',
            kind: 'password',
            validate: (v) => (isRecoveryCode(v) ? undefined : `the code is ${RECOVERY_CODE_LENGTH} letters and digits, e.g. ABCD-EFGH-…`),
          },
          { name: 'password', label: 'New password', kind: 'password', validate: (v, all) => newPasswordProblems(all.user ?? '', v)[0] },
          { name: 'repeat', label: 'Repeat password', kind: 'password', validate: (v, all) => (v === all.password ? undefined : 'the two passwords differ') },
        ]}
        submitLabel="Recover"
        onCancel={onDone}
        onSubmit={async (v) => {
          await yieldToRender();
          const userId = v.user!.trim();
          // The directory login will look in: the explicit one, else ~/.medledger/keystores (or the node's, for a local cluster).
          const dir = resolveKeystoreDir(keystoreDir, userId, status?.keystoreDir);
          try {
            await recoverKeystore({ apiUrl, userId, code: v.code!, newPassword: v.password!, keystoreDir: dir });
          } catch (err) {
            const message = (err as Error).message;
            return message.startsWith('Recovery unsuccessful') ? message : `Recovery unsuccessful: ${message}`;
          }
          setFlash({ kind: 'success', text: `${userId} recovered: log in with your new password` });
          onDone();
        }}
      />
    </Screen>
  );
}
