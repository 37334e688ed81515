import { Box, Text } from 'ink';
import { useState } from 'react';
import { activateStaff, LoginError, login, newPasswordProblems, registerPatient } from '../../client/accounts.js';
import { isActivationCode } from '../../records/activation.js';
import { parseUserId } from '../../client/inputs.js';
import type { Session } from '../../client/session.js';
import { PASSWORD_POLICY } from '../../records/password.js';
import { check, Form } from '../components/Form.js';
import { Screen } from '../components/Screen.js';
import { useApp } from '../context.js';
import { useKeys } from '../hooks/useKeys.js';
import { FORM_HELP } from './FormScreen.js';
import { RecoverForm } from './RecoverScreen.js';

/** scrypt blocks the event loop for a moment: let the "Log in…" frame reach the terminal first. */
const yieldToRender = () => new Promise((r) => setTimeout(r, 20));

/**
 * Login with user id and password (masked), self-registration of a new patient (Ctrl-R), staff activation
 * (Ctrl-A), or recovery of the keys with the recovery code (Ctrl-K).
 */
export function LoginScreen({ onLoggedIn }: { onLoggedIn(session: Session): void }) {
  const [mode, setMode] = useState<'login' | 'register' | 'activate' | 'recover'>('login');
  if (mode === 'activate') return <ActivateForm onLoggedIn={onLoggedIn} onCancel={() => setMode('login')} />;
  if (mode === 'recover') return <RecoverForm onDone={() => setMode('login')} />;
  return mode === 'login' ? (
    <LoginForm onLoggedIn={onLoggedIn} onRegister={() => setMode('register')} onActivate={() => setMode('activate')} onRecover={() => setMode('recover')} />
  ) : (
    <RegisterForm onLoggedIn={onLoggedIn} onCancel={() => setMode('login')} />
  );
}

function LoginForm({
  onLoggedIn,
  onRegister,
  onActivate,
  onRecover,
}: {
  onLoggedIn(session: Session): void;
  onRegister(): void;
  onActivate(): void;
  onRecover(): void;
}) {
  const { apiUrl, keystoreDir, genesisFile, quit, setFlash } = useApp();
  return (
    <Screen
      title="Log in to MedLedger"
      help={[
        ['Enter', 'next / log in'],
        ['Tab', 'switch field'],
        ['Ctrl-R', 'register as a new patient'],
        ['Ctrl-A', 'activate a staff account'],
        ['Ctrl-K', 'recover with the recovery code'],
        ['Esc', 'quit'],
      ]}
    >
      <Form
        fields={[
          { name: 'user', label: 'User id', validate: check(parseUserId) },
          { name: 'password', label: 'Password', kind: 'password', validate: (v) => (v ? undefined : 'enter your password') },
        ]}
        submitLabel="Log in"
        onCancel={quit}
        onKey={(input, key) => {
          if (key.ctrl && input === 'r') {
            onRegister();
            return true;
          }
          if (key.ctrl && input === 'a') {
            onActivate();
            return true;
          }
          if (key.ctrl && input === 'k') {
            onRecover();
            return true;
          }
          return false;
        }}
        onSubmit={async (v) => {
          await yieldToRender();
          try {
            const session = await login({
              apiUrl,
              userId: v.user!.trim(),
              password: v.password!,
              ...(keystoreDir ? { keystoreDir } : {}),
              ...(genesisFile ? { genesisFile } : {}),
            });
            setFlash(null);
            onLoggedIn(session);
          } catch (err) {
            if (err instanceof LoginError) return err.reason === 'unknown-user' ? `${err.message} (new patients: Ctrl-R to register)` : err.message;
            return `Login unsuccessful: ${(err as Error).message}`;
          }
        }}
      />
      <Box marginTop={1}>
        <Text dimColor>
          Staff (doctors, auditors) activate the account their admin invited with Ctrl-A; patients register here with Ctrl-R, and recover their keys with the
          recovery code with Ctrl-K.
        </Text>
      </Box>
    </Screen>
  );
}

/** The recovery kit (issue 10): the code, shown once after registration, until the patient presses Enter. */
function RecoveryCodeScreen({ code, onDone }: { code: string; onDone(): void }) {
  // useKeys, not Ink's useInput: registered as the screen commits, so an Enter typed the instant it appears is not lost.
  useKeys((_input, key) => {
    if (key.return) onDone();
  });
  return (
    <Screen title="Your recovery code: write this down" help={[['Enter', 'I have written it down']]}>
      <Box flexDirection="column" paddingY={1}>
        <Text>Write this recovery code down on paper and keep it safe. It is shown only once:</Text>
        <Box paddingY={1} paddingLeft={4}>
          <Text bold>{code}</Text>
        </Box>
        <Text>With it you can restore your keys on a new computer, or after forgetting your password</Text>
        <Text>(Ctrl-K on the login screen, or medledger recover). It never leaves this computer; your hospital's node cannot open your backup.</Text>
      </Box>
    </Screen>
  );
}

function RegisterForm({ onLoggedIn, onCancel }: { onLoggedIn(session: Session): void; onCancel(): void }) {
  const { apiUrl, keystoreDir, genesisFile, setFlash } = useApp();
  const [kit, setKit] = useState<{ session: Session; code: string }>();
  if (kit) return <RecoveryCodeScreen code={kit.code} onDone={() => onLoggedIn(kit.session)} />;
  return (
    <Screen title="Register as a new patient" help={FORM_HELP}>
      <Text dimColor>Your keys are created on this computer and sealed under your password. Password: {PASSWORD_POLICY}.</Text>
      <Form
        fields={[
          { name: 'user', label: 'User id', hint: 'a pseudonym, e.g. pat-jdoe (never your real name)', validate: check(parseUserId) },
          { name: 'password', label: 'Password', kind: 'password', validate: (v, all) => newPasswordProblems(all.user ?? '', v)[0] },
          { name: 'repeat', label: 'Repeat password', kind: 'password', validate: (v, all) => (v === all.password ? undefined : 'the two passwords differ') },
        ]}
        submitLabel="Register"
        onCancel={onCancel}
        onSubmit={async (v) => {
          await yieldToRender();
          try {
            const { session, outcome, recoveryCode, backupError } = await registerPatient({
              apiUrl,
              userId: v.user!.trim(),
              password: v.password!,
              ...(keystoreDir ? { keystoreDir } : {}),
              ...(genesisFile ? { genesisFile } : {}),
            });
            if (outcome.denied) return `Registration denied by the ledger: ${outcome.denied}`;
            setFlash(
              backupError
                ? { kind: 'error', text: `Registered ${session.userId}, but no key backup was stored (${backupError}): you have no recovery code` }
                : { kind: 'success', text: `Registered ${session.userId} as a patient at ${session.hospital}` },
            );
            if (recoveryCode) setKit({ session, code: recoveryCode });
            else onLoggedIn(session);
          } catch (err) {
            return `Registration unsuccessful: ${(err as Error).message}`;
          }
        }}
      />
    </Screen>
  );
}

/**
 * Staff activation (issue 10): the code the admin handed over, and a password only the staff member knows.
 * The keys are generated on this computer and sealed here; the admin never sees them.
 */
function ActivateForm({ onLoggedIn, onCancel }: { onLoggedIn(session: Session): void; onCancel(): void }) {
  const { apiUrl, keystoreDir, genesisFile, setFlash } = useApp();
  return (
    <Screen title="Activate your staff account" help={FORM_HELP}>
      <Text dimColor>Your keys are created on this computer and sealed under your password. Password: {PASSWORD_POLICY}.</Text>
      <Form
        fields={[
          { name: 'user', label: 'User id', hint: 'as your admin invited it', validate: check(parseUserId) },
          {
            name: 'code',
            label: 'Activation code',
            kind: 'password',
            validate: (v) => (isActivationCode(v) ? undefined : 'the code is 20 letters and digits, e.g. ABCD-EFGH-…'),
          },
          { name: 'password', label: 'New password', kind: 'password', validate: (v, all) => newPasswordProblems(all.user ?? '', v)[0] },
          { name: 'repeat', label: 'Repeat password', kind: 'password', validate: (v, all) => (v === all.password ? undefined : 'the two passwords differ') },
        ]}
        submitLabel="Activate"
        onCancel={onCancel}
        onSubmit={async (v) => {
          await yieldToRender();
          try {
            const { session, outcome } = await activateStaff({
              apiUrl,
              userId: v.user!.trim(),
              code: v.code!,
              password: v.password!,
              ...(keystoreDir ? { keystoreDir } : {}),
              ...(genesisFile ? { genesisFile } : {}),
            });
            if (outcome.denied) return `Activation denied by the ledger: ${outcome.denied}`;
            setFlash({ kind: 'success', text: `Activated ${session.userId} as ${session.keys.role} at ${session.keys.hospital}` });
            onLoggedIn(session);
          } catch (err) {
            return `Activation unsuccessful: ${(err as Error).message}`;
          }
        }}
      />
    </Screen>
  );
}
