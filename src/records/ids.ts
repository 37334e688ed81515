import { z } from 'zod';

/**
 * Identifiers on the ledger. User ids are pseudonymous handles (never real names): they are replicated in
 * clear to every hospital as part of the audit trail.
 */
export const userIdSchema = z.string().regex(/^[a-z0-9][a-z0-9._-]{2,39}$/, 'user id: 3-40 chars of a-z 0-9 . _ - starting with a letter or digit');
export const hospitalIdSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{1,39}$/, 'hospital id: 2-40 chars of a-z 0-9 -');
export const recordIdSchema = z.string().regex(/^rec-[0-9a-f]{16}$/, 'record id: rec- followed by 16 hex digits');
export const fileIdSchema = z.string().regex(/^file-[0-9a-f]{16}$/, 'file id: file- followed by 16 hex digits');
export const appointmentIdSchema = z.string().regex(/^apt-[0-9a-f]{16}$/, 'appointment id: apt- followed by 16 hex digits');

export const roles = ['patient', 'doctor', 'auditor', 'admin'] as const;
export type Role = (typeof roles)[number];
export const roleSchema = z.enum(roles);
/** Who an audit event's agent can be: a user's role, or a hospital's node (statsAggregate). */
export const agentRoles = [...roles, 'hospital'] as const;
export type AgentRole = (typeof agentRoles)[number];
export const staffRoleSchema = z.enum(['doctor', 'auditor']);
export type StaffRole = z.infer<typeof staffRoleSchema>;

export const bytes = (length?: number) =>
  z.custom<Uint8Array>((v) => v instanceof Uint8Array && (length === undefined || v.length === length), {
    message: length === undefined ? 'expected bytes' : `expected ${length} bytes`,
  });

export const uintSchema = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

import { randomBytes } from 'node:crypto';
function randomId(prefix: string): string {
  return `${prefix}-${randomBytes(8).toString('hex')}`;
}
export const newRecordId = () => randomId('rec');
export const newFileId = () => randomId('file');
export const newAppointmentId = () => randomId('apt');
