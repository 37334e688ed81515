/**
 * Polls `probe` until `problem` finds nothing wrong with what it returned. On timeout it throws with the
 * last problem seen (or the probe's last error): a wait never gives up silently and lets the assertions
 * after it compare whatever happened to be there.
 */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T>,
  problem: (value: T) => string | null,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  let last = 'nothing probed yet';
  for (;;) {
    try {
      const value = await probe();
      const p = problem(value);
      if (p === null) return value;
      last = p;
    } catch (err) {
      last = `probe failed: ${(err as Error).message}`;
    }
    if (Date.now() >= deadline) throw new Error(`${what}: not reached within ${timeoutMs} ms; last seen: ${last}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 250));
  }
}
