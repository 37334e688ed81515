import { Box, Text } from 'ink';
import { useState } from 'react';
import { LoginError, login, newPasswordProblems, registerPatient } from '../../client/accounts.js';
import { parseUserId } from '../../client/inputs.js';
import type { Session } from '../../client/session.js';
import { PASSWORD_POLICY } from '../../records/password.js';
import { check, Form } from '../components/Form.js';
import { Screen } from '../components/Screen.js';
import { useApp } from '../context.js';
import { FORM_HELP } from './FormScreen.js';

/** scrypt blocks the event loop for a moment: let the "Log in…" frame reach the terminal first. */
const yieldToRender = () => new Promise((r) => setTimeout(r, 20));

/** Login with user id and password (masked), or self-registration of a new patient (Ctrl-R). */
export function LoginScreen({ onLoggedIn }: { onLoggedIn(session: Session): void }) {
  const [mode, setMode] = useState<'login' | 'register'>('login');
  return mode === 'login' ? <LoginForm onLoggedIn={onLoggedIn} onRegister={() => setMode('register')} /> : <RegisterForm onLoggedIn={onLoggedIn} onCancel={() => setMode('login')} />;
}

function LoginForm({ onLoggedIn, onRegister }: { onLoggedIn(session: Session): void; onRegister(): void }) {
  const { apiUrl, keystoreDir, genesisFile, quit, setFlash } = useApp();
  return (
    <Screen title="Log in to MedLedger" help={[['Enter', 'next / log in'], ['Tab', 'switch field'], ['Ctrl-R', 'register as a new patient'], ['Esc', 'quit']]}>
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
          return false;
        }}
        onSubmit={async (v) => {
          await yieldToRender();
          try {
            const session = await login({ apiUrl, userId: v.user!.trim(), password: v.password!, ...(keystoreDir ? { keystoreDir } : {}), ...(genesisFile ? { genesisFile } : {}) });
            setFlash(null);
            onLoggedIn(session);
          } catch (err) {
            if (err instanceof LoginError) return err.reason === 'unknown-user' ? `${err.message} (new patients: Ctrl-R to register)` : err.message;
            return `Login unsuccessful: ${(err as Error).message}`;
          }
        }}
      />
      <Box marginTop={1}>
        <Text dimColor>Staff (doctors, auditors) are enrolled by their hospital's admin; patients register here with Ctrl-R.</Text>
      </Box>
    </Screen>
  );
}

function RegisterForm({ onLoggedIn, onCancel }: { onLoggedIn(session: Session): void; onCancel(): void }) {
  const { apiUrl, keystoreDir, genesisFile, setFlash } = useApp();
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
            const { session, outcome } = await registerPatient({ apiUrl, userId: v.user!.trim(), password: v.password!, ...(keystoreDir ? { keystoreDir } : {}), ...(genesisFile ? { genesisFile } : {}) });
            if (outcome.denied) return `Registration denied by the ledger: ${outcome.denied}`;
            setFlash({ kind: 'success', text: `Registered ${session.userId} as a patient at ${session.hospital}` });
            onLoggedIn(session);
          } catch (err) {
            return `Registration unsuccessful: ${(err as Error).message}`;
          }
        }}
      />
    </Screen>
  );
}
