import type { UnsignedTx } from '../tx/types.js';
import type { RecordMeta, StateChange, StateView, User } from './types.js';

/** What every permission rule shares (permissions.ts, statsRules.ts). */
export type Decision = { allowed: true } | { allowed: false; reason: string };
export type Writable = StateView & { write(changes: StateChange[]): void };
/** What some rules need of the block: statistics read its time and height, and name jobs by the query's tx id. */
export interface RuleContext {
  height: number;
  blockTime: number;
  txId: string;
}

export const ALLOW: Decision = { allowed: true };
export const deny = (reason: string): Decision => ({ allowed: false, reason });

/** The record must exist, belong to the named patient and not be deleted. */
export function existingRecord(s: StateView, patient: User, recordId: string | undefined): Decision | RecordMeta {
  const record = recordId ? s.get('records', recordId) : undefined;
  if (!record || record.patient !== patient.id) return deny('record-not-found');
  if (record.deleted) return deny('record-deleted');
  return record;
}

/** Grants, requests and appointments are managed by the patient alone, on their own data. */
export function ownDataOnly(t: UnsignedTx, agent: User): Decision | null {
  if (agent.role !== 'patient') return deny('role-not-allowed');
  return agent.id === t.patient ? null : deny('not-own-data');
}

export const isDecision = (v: unknown): v is Decision => typeof v === 'object' && v !== null && 'allowed' in v;

export function putRecord(s: Writable, record: RecordMeta): void {
  s.write([{ table: 'records', key: record.id, value: record }]);
}

export function putUser(s: Writable, user: User): void {
  s.write([{ table: 'users', key: user.id, value: user }]);
}
