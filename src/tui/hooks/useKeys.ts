import { useInput, type Key } from 'ink';
import { createContext, createElement, useContext, useLayoutEffect, useRef, type ReactNode } from 'react';

/**
 * Ink hands a run of plain characters to useInput as one event ("\t\t", "abc\r"): what a fast terminal
 * or a paste delivers in one read. This splits such a run into the keys it holds, one by one, so every
 * screen sees Tab, Enter, Backspace and hotkeys as keys however the bytes arrived.
 */
export function expandInput(input: string, key: Key): [string, Key][] {
  if (input.length <= 1 || key.escape || key.meta) return [[input, key]];
  const plain: Key = { ...key, return: false, tab: false, backspace: false, delete: false, ctrl: false, shift: false };
  const out: [string, Key][] = [];
  for (const ch of input) {
    const code = ch.charCodeAt(0);
    if (ch === '\r' || ch === '\n') {
      out.push(['', { ...plain, return: true }]);
    } else if (ch === '\t') {
      out.push(['', { ...plain, tab: true }]);
    } else if (ch === '\u007f' || ch === '\b') {
      out.push(['', { ...plain, backspace: true }]);
    } else if (code >= 1 && code <= 26) {
      out.push([String.fromCharCode(code + 96), { ...plain, ctrl: true }]);
    } else if (code >= 32) {
      out.push([ch, plain]);
    }
  }
  return out;
}

type Handler = (input: string, key: Key) => void;
interface Entry {
  handler: Handler;
  active: boolean;
}

const KeyRouter = createContext<Set<Entry> | null>(null);

/**
 * One keyboard listener for the whole UI, subscribed from the start. Screens register their handlers
 * synchronously when they commit, so a key typed the instant a new screen appears reaches it; with
 * Ink's per-component useInput, such a key would arrive before the screen's listener exists and be lost.
 */
export function KeyRouterProvider({ children }: { children: ReactNode }) {
  const entries = useRef(new Set<Entry>()).current;
  useInput((input, key) => {
    for (const [i, k] of expandInput(input, key)) {
      for (const e of [...entries]) if (e.active) e.handler(i, k);
    }
  });
  return createElement(KeyRouter.Provider, { value: entries }, children);
}

/** Keys for one component; inactive components (e.g. a list under a busy action) get none. */
export function useKeys(handler: Handler, options: { isActive?: boolean } = {}): void {
  const router = useContext(KeyRouter);
  const isActive = options.isActive ?? true;
  const entry = useRef<Entry>({ handler, active: isActive }).current;
  useLayoutEffect(() => {
    entry.handler = handler;
    entry.active = isActive;
  });
  useLayoutEffect(() => {
    if (!router) return;
    router.add(entry);
    return () => {
      router.delete(entry);
    };
  }, [router, entry]);
  // Outside the router (a component rendered on its own): Ink's own listener.
  useInput(
    (input, key) => {
      for (const [i, k] of expandInput(input, key)) handler(i, k);
    },
    { isActive: isActive && !router },
  );
}
