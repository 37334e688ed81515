import { useCallback, useEffect, useRef, useState } from 'react';

export type AsyncState<T> = { state: 'loading' } | { state: 'done'; value: T } | { state: 'error'; error: string };

/** Runs an async load when the screen opens (and on reload), ignoring answers that arrive after unmount. */
export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): AsyncState<T> & { reload(): void } {
  const [result, setResult] = useState<AsyncState<T>>({ state: 'loading' });
  const [generation, setGeneration] = useState(0);
  const live = useRef(true);
  useEffect(() => {
    live.current = true;
    return () => {
      live.current = false;
    };
  }, []);
  useEffect(() => {
    let current = true;
    setResult({ state: 'loading' });
    load().then(
      (value) => current && live.current && setResult({ state: 'done', value }),
      (err: unknown) => current && live.current && setResult({ state: 'error', error: (err as Error).message ?? String(err) }),
    );
    return () => {
      current = false;
    };
  }, [...deps, generation]);
  const reload = useCallback(() => setGeneration((g) => g + 1), []);
  return { ...result, reload };
}
