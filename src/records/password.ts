import { MedLedgerError } from './errors.js';

/**
 * Password policy (FEATURES D: strong passwords): at least 12 characters, at least three of the four
 * classes lower / upper / digit / symbol, and not containing the user id.
 */
export const PASSWORD_POLICY = 'at least 12 characters with three of: lowercase, uppercase, digit, symbol; must not contain the user id';

export function passwordProblems(password: string, userId: string): string[] {
  const problems: string[] = [];
  if (password.length < 12) problems.push('shorter than 12 characters');
  if (password.length > 256) problems.push('longer than 256 characters');
  const classes = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((re) => re.test(password)).length;
  if (classes < 3) problems.push('needs three of: lowercase, uppercase, digit, symbol');
  if (userId.length >= 3 && password.toLowerCase().includes(userId.toLowerCase())) problems.push('contains the user id');
  return problems;
}

export function assertPasswordPolicy(password: string, userId: string): void {
  const problems = passwordProblems(password, userId);
  if (problems.length > 0) throw new MedLedgerError('WEAK_PASSWORD', `password does not meet the policy: ${problems.join('; ')}`);
}
