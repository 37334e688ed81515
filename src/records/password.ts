import { ZxcvbnFactory } from '@zxcvbn-ts/core';
import { adjacencyGraphs, dictionary as commonDictionary } from '@zxcvbn-ts/language-common';
import { dictionary as enDictionary, translations } from '@zxcvbn-ts/language-en';
import { MedLedgerError } from './errors.js';

/**
 * Password policy (PROTOCOL.md §1.6: strong passwords, issue 10): at least 12 characters, not containing the
 * user id, and rated at least 3 of 4 ("safely unguessable: moderate protection from offline slow-hash
 * scenario", ~10^8 guesses and more) by the zxcvbn strength estimator (@zxcvbn-ts, common passwords,
 * English words and names, keyboard patterns, dates, repeats, l33t). Character classes alone accepted
 * `Password123!`; the estimator refuses it (score 1, "This is a commonly used password").
 */
export const MIN_PASSWORD_SCORE = 3;
export const PASSWORD_POLICY =
  'at least 12 characters, hard to guess (no common passwords, names or keyboard patterns; e.g. three unrelated words with a digit), must not contain the user id';

/**
 * Built on first use (~100 ms, the dictionaries): nodes and commands that never check a password do not
 * pay for it. Levenshtein matching is off (it costs 0.3–2.5 s per check here); only the first 100
 * characters are rated (a longer password is strong enough, and rating 256 characters takes ~1 s).
 */
let estimator: ZxcvbnFactory | undefined;
function strength(password: string, userId: string) {
  estimator ??= new ZxcvbnFactory({ translations, graphs: adjacencyGraphs, dictionary: { ...commonDictionary, ...enDictionary }, maxLength: 100 });
  return estimator.check(password, [userId, 'medledger', 'hospital', 'patient', 'doctor']);
}

/** Every problem with a new password, as short phrases; never contains the password itself. */
export function passwordProblems(password: string, userId: string): string[] {
  const problems: string[] = [];
  if (password.length < 12) problems.push('shorter than 12 characters');
  if (password.length > 256) problems.push('longer than 256 characters');
  if (userId.length >= 3 && password.toLowerCase().includes(userId.toLowerCase())) problems.push('contains the user id');
  if (password.length > 0 && password.length <= 256) {
    const rated = strength(password, userId);
    if (rated.score < MIN_PASSWORD_SCORE) {
      const hints = [...new Set([rated.feedback.warning, ...rated.feedback.suggestions].filter((s): s is string => !!s).map((s) => s.replace(/\.$/, '')))];
      problems.push(`too easy to guess (strength ${rated.score}/4, needs ${MIN_PASSWORD_SCORE})${hints.length > 0 ? `: ${hints.join('; ')}` : ''}`);
    }
  }
  return problems;
}

export function assertPasswordPolicy(password: string, userId: string): void {
  const problems = passwordProblems(password, userId);
  if (problems.length > 0) throw new MedLedgerError('WEAK_PASSWORD', `password does not meet the policy: ${problems.join('; ')}`);
}
