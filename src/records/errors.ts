/**
 * Every rejection in MedLedger is a typed error with a stable code: callers (API, gossip, CLI) map codes
 * to HTTP statuses, gossip verdicts and exit codes without parsing messages.
 */
export type ErrorCode =
  | 'MALFORMED'
  | 'TOO_LARGE'
  | 'BAD_SIGNATURE'
  | 'UNKNOWN_ACTOR'
  | 'KEY_MISMATCH'
  | 'REPLAY'
  | 'BAD_TIME'
  | 'USER_EXISTS'
  | 'WRONG_PASSWORD'
  | 'TAMPERED'
  | 'WEAK_PASSWORD'
  | 'NOT_FOUND'
  | 'FORBIDDEN'
  | 'INVALID_BLOCK'
  | 'INVALID_CERTIFICATE'
  | 'UNAVAILABLE'
  | 'CONFLICT';

export class MedLedgerError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'MedLedgerError';
  }
}

export function isMedLedgerError(err: unknown, code?: ErrorCode): err is MedLedgerError {
  return err instanceof MedLedgerError && (code === undefined || err.code === code);
}
