import { Box, Text, useApp as useInkApp } from 'ink';
import { useCallback, useMemo, useRef, useState, type ReactElement } from 'react';
import { ApiClient } from '../client/apiClient.js';
import type { Session } from '../client/session.js';
import { StatusBar } from './components/StatusBar.js';
import { AppContext, type AppContextValue, type Flash } from './context.js';
import { KeyRouterProvider } from './hooks/useKeys.js';
import { useNodeStatus } from './hooks/useNodeStatus.js';
import { HomeScreen } from './screens/HomeScreen.js';
import { LoginScreen } from './screens/LoginScreen.js';

export interface AppProps {
  /** The node's API, e.g. http://127.0.0.1:7700. */
  apiUrl: string;
  /** A keystore directory on this computer; by default the one the node reports in its status. */
  keystoreDir?: string;
  /** The network's genesis file, to check recipients' keys against (default: genesis.json in the keystore directory). */
  genesisFile?: string;
  /** How often the status bar polls /v1/status. */
  statusIntervalMs?: number;
}

interface StackEntry {
  id: number;
  screen: ReactElement;
}

/**
 * The MedLedger terminal UI: login (or patient registration), then the role's menu and the screens it
 * opens, as a stack (Esc goes back). The status bar polls the node throughout. Everything goes through
 * the client layer: keys stay in this process and only signatures and ciphertext reach the node.
 */
export function App({ apiUrl, keystoreDir, genesisFile, statusIntervalMs = 2000 }: AppProps) {
  const ink = useInkApp();
  const api = useMemo(() => new ApiClient(apiUrl), [apiUrl]);
  const node = useNodeStatus(api, statusIntervalMs);
  const [session, setSession] = useState<Session | null>(null);
  const [stack, setStack] = useState<StackEntry[]>([]);
  const [flash, setFlash] = useState<Flash | null>(null);
  const [busy, setBusy] = useState(false);
  // Warnings beside an action (a statistics report that failed): shown until the next screen, never on stderr (it would tear the screen).
  const [warning, setWarning] = useState<string | null>(null);
  const nextId = useRef(1);

  const push = useCallback((screen: ReactElement) => {
    setFlash(null);
    setWarning(null);
    setStack((s) => [...s, { id: nextId.current++, screen }]);
  }, []);
  const replace = useCallback((screen: ReactElement) => {
    setStack((s) => [...s.slice(0, -1), { id: nextId.current++, screen }]);
  }, []);
  const back = useCallback(() => setStack((s) => s.slice(0, -1)), []);
  const home = useCallback(() => setStack([]), []);
  const logout = useCallback(() => {
    setSession(null);
    setStack([]);
    setFlash({ kind: 'info', text: 'Logged out' });
  }, []);

  const ctx: AppContextValue = {
    apiUrl,
    api,
    keystoreDir,
    genesisFile,
    status: node.status,
    session,
    push,
    replace,
    back,
    home,
    logout,
    quit: () => ink.exit(),
    flash,
    setFlash,
    busy,
    setBusy,
  };

  const top = stack[stack.length - 1];
  return (
    <AppContext.Provider value={ctx}>
      <KeyRouterProvider>
        <Box flexDirection="column">
          <Text>
            <Text bold color="magenta">
              MedLedger
            </Text>
            {session ? `  ${session.userId} · ${session.keys.role} · ${session.keys.hospital} · via ${session.hospital}` : `  ${apiUrl}`}
          </Text>
          <Box marginTop={1} flexDirection="column">
            {!session ? (
              <LoginScreen
                onLoggedIn={(s) => {
                  s.onWarning = (message) => setWarning(message);
                  setSession(s);
                  setStack([]);
                }}
              />
            ) : top ? (
              <Box key={top.id} flexDirection="column">
                {top.screen}
              </Box>
            ) : (
              <HomeScreen key="home" />
            )}
          </Box>
          {warning ? <Text color="yellow">⚠ {warning}</Text> : null}
          <StatusBar node={node} />
        </Box>
      </KeyRouterProvider>
    </AppContext.Provider>
  );
}
