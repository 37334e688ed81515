import { Box, Text } from 'ink';
import { useState } from 'react';
import { LoginError } from '../../client/accounts.js';
import { rotateUserKeys } from '../../client/rotation.js';
import { Form } from '../components/Form.js';
import { Screen } from '../components/Screen.js';
import { useApp, useSession } from '../context.js';
import { useKeys } from '../hooks/useKeys.js';
import { FORM_HELP } from './FormScreen.js';

/** scrypt blocks the event loop for a moment (several times here): let the "Rotate keys…" frame reach the terminal first. */
const yieldToRender = () => new Promise((r) => setTimeout(r, 20));

/**
 * Rotate keys (issue 10), for patients, doctors and auditors (admins' keys are in the genesis file): new keys
 * made on this computer, every data key the user can open re-wrapped for them, and a `rotateKeys` transaction
 * signed by the current key. The session's keys are the old ones, which stop working from the next block, so
 * after a rotation the user logs in again (same password) and the new session holds the new keys.
 */
export function RotateKeysScreen() {
  const session = useSession();
  const app = useApp();
  const userId = session.userId;
  const [rewrapped, setRewrapped] = useState<number>();
  if (rewrapped !== undefined) return <RotatedScreen userId={userId} rewrapped={rewrapped} />;
  return (
    <Screen title={`Rotate keys — ${userId}`} help={FORM_HELP}>
      <Box flexDirection="column" marginBottom={1}>
        <Text>What happens:</Text>
        <Text> • new signing and encryption keys are made on this computer, sealed under your current password;</Text>
        <Text> • every data key you can open is re-wrapped for the new encryption key (signed by your current key);</Text>
        <Text> • your old key stops working from the next block: you log in again afterwards, with the same password;</Text>
        <Text> • your recovery kit (the printed code) keeps working for the new keys.</Text>
      </Box>
      <Form
        fields={[{ name: 'password', label: 'Current password', kind: 'password', validate: (v) => (v ? undefined : 'enter your current password') }]}
        submitLabel="Rotate keys"
        onCancel={app.back}
        isActive={!app.busy}
        onSubmit={async (v) => {
          await yieldToRender();
          try {
            const { outcome } = await rotateUserKeys({
              apiUrl: app.apiUrl,
              userId,
              password: v.password!,
              ...(app.keystoreDir ? { keystoreDir: app.keystoreDir } : {}),
              ...(app.genesisFile ? { genesisFile: app.genesisFile } : {}),
            });
            if (outcome.denied) return `Keys not rotated: denied by the ledger (${outcome.denied})`;
            app.setFlash({ kind: 'success', text: `Keys rotated for ${userId}` });
            setRewrapped(outcome.value?.rewrapped ?? 0);
          } catch (err) {
            if (err instanceof LoginError && err.reason === 'wrong-password') return 'Keys not rotated: the current password is wrong';
            return `Keys not rotated: ${(err as Error).message}`;
          }
        }}
      />
    </Screen>
  );
}

/** The result: the old session's key is no longer the user's, so Enter logs out to log in with the new keys. */
function RotatedScreen({ userId, rewrapped }: { userId: string; rewrapped: number }) {
  const app = useApp();
  const done = () => {
    app.logout();
    app.setFlash({ kind: 'info', text: `Keys rotated: log in again as ${userId} (same password) to use the new keys` });
  };
  useKeys((_input, key) => {
    if (key.return || key.escape) done();
  });
  return (
    <Screen title={`Keys rotated — ${userId}`} help={[['Enter', 'log out and log in again with the new keys']]}>
      <Box flexDirection="column">
        <Text>
          Your new keys are in your keystore on this computer; {rewrapped} data key{rewrapped === 1 ? ' was' : 's were'} re-wrapped for them.
        </Text>
        <Text>The old key no longer works, so this session ends: press Enter, then log in again with the same password.</Text>
        <Text>Your recovery code keeps working.</Text>
      </Box>
    </Screen>
  );
}
