import type { ActionOutcome } from '../../client/session.js';
import { useApp } from '../context.js';

/**
 * Runs one ledger action and reports it in the result line: success, "Denied by the ledger" with the
 * reason (the attempt is itself an audit event), or an error. Returns the outcome, or undefined on error.
 */
export function useAction() {
  const { setBusy, setFlash } = useApp();
  return async function run<T>(
    action: () => Promise<ActionOutcome<T>>,
    describe: (outcome: ActionOutcome<T>) => string,
  ): Promise<ActionOutcome<T> | undefined> {
    setBusy(true);
    try {
      const outcome = await action();
      if (outcome.denied) setFlash({ kind: 'denied', text: deniedText(outcome.denied) });
      else setFlash({ kind: 'success', text: describe(outcome) });
      return outcome;
    } catch (err) {
      setFlash({ kind: 'error', text: `Error: ${(err as Error).message}` });
      return undefined;
    } finally {
      setBusy(false);
    }
  };
}

export function deniedText(reason: string): string {
  return `Denied by the ledger: ${reason} (the attempt is recorded in the audit trail)`;
}
