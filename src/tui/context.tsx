import { createContext, useContext, type ReactElement } from 'react';
import type { ApiClient } from '../client/apiClient.js';
import type { Session } from '../client/session.js';
import type { StatusResponse } from '../api/contract.js';

/** A short message shown under the current screen after an action: what happened, or why not. */
export interface Flash {
  kind: 'success' | 'denied' | 'error' | 'info';
  text: string;
}

/** What every screen may use: the node, the signed-in user, navigation and the result line. */
export interface AppContextValue {
  apiUrl: string;
  api: ApiClient;
  /** The `--keystores` directory if one was given; otherwise the node's (from its status). */
  keystoreDir: string | undefined;
  /** The `--genesis` file if one was given (recipients' keys are checked against it). */
  genesisFile: string | undefined;
  status: StatusResponse | undefined;
  session: Session | null;
  /** Opens a screen on top of the current one; Esc (back) returns to it. */
  push(screen: ReactElement): void;
  /** Replaces the current screen (a form that leads on to its result). */
  replace(screen: ReactElement): void;
  back(): void;
  home(): void;
  logout(): void;
  quit(): void;
  flash: Flash | null;
  setFlash(flash: Flash | null): void;
  /** True while an action is being signed, submitted and finalized: screens ignore keys meanwhile. */
  busy: boolean;
  setBusy(busy: boolean): void;
}

export const AppContext = createContext<AppContextValue | null>(null);

export function useApp(): AppContextValue {
  const ctx = useContext(AppContext);
  if (!ctx) throw new Error('useApp outside <App>');
  return ctx;
}

/** The signed-in user's session (screens after login only). */
export function useSession(): Session {
  const { session } = useApp();
  if (!session) throw new Error('no session: screen rendered before login');
  return session;
}
