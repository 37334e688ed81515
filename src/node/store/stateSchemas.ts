import { z } from 'zod';
import { bytes, roleSchema, staffRoleSchema } from '../../records/ids.js';
import type { Appointment, Hospital, Invitation, NetworkInfo, RecordMeta, StatsBatch, StatsJob, TableName, Tables, User } from '../../records/state/types.js';
import { statsSettingSchema } from '../../records/stats/batches.js';
import { instanceSchema, measureSchema } from '../../records/stats/measures.js';

/**
 * The shape of each state table's values as read back from LevelDB. Loose on purpose: they check the
 * fields the node relies on and keep any others as stored, so a value that `apply` wrote always reads
 * back unchanged (the integrity monitor compares the stored bytes with the re-derived state anyway).
 */
const count = z.number().int().nonnegative();
const time = z.number();

const userSchema: z.ZodType<User> = z.looseObject({
  id: z.string(),
  role: roleSchema,
  hospital: z.string(),
  signKey: bytes(),
  encKey: bytes().optional(),
  active: z.boolean(),
  lastNonce: count,
  since: time,
  keysSince: time.optional(),
  keyRevokedAt: time.optional(),
  grants: z.record(z.string(), z.looseObject({ kind: staffRoleSchema, since: time })).optional(),
  requests: z.record(z.string(), z.looseObject({ kind: staffRoleSchema, at: time })).optional(),
  statsConsent: z.looseObject({ contribute: z.boolean(), since: time }).optional(),
  statsReported: z.partialRecord(measureSchema, z.string()).optional(),
});

const hospitalSchema: z.ZodType<Hospital> = z.looseObject({
  id: z.string(),
  name: z.string(),
  admin: z.string(),
  index: count,
  validatorKey: bytes(32),
  aggregatorKey: bytes(32).optional(),
  lastNonce: count,
});

const networkSchema: z.ZodType<NetworkInfo> = z.looseObject({ hospitals: z.array(z.string()), stats: statsSettingSchema });

const statsBatchSchema: z.ZodType<StatsBatch> = z.looseObject({
  measure: measureSchema,
  batch: z.string(),
  reports: count,
  jobs: z.looseObject({ histogram: z.string().optional() }),
});

const statsJobSchema: z.ZodType<StatsJob> = z.looseObject({
  id: z.string(),
  measure: measureSchema,
  batch: z.string(),
  instance: instanceSchema,
  queriedBy: z.string(),
  createdAt: time,
  height: count,
  reports: count,
  status: z.enum(['pending', 'done', 'withheld', 'failed']),
  shares: z.record(z.string(), z.looseObject({ share: bytes(), used: count, dropped: count, digest: bytes(32), at: time })),
  used: count.optional(),
  dropped: count.optional(),
  disagreeing: z.array(z.string()).optional(),
});

const recordMetaSchema: z.ZodType<RecordMeta> = z.looseObject({
  id: z.string(),
  patient: z.string(),
  createdBy: z.string(),
  createdAt: time,
  updatedAt: time,
  version: count,
  deleted: z.boolean(),
  copiedFrom: z.string().optional(),
  files: z.record(z.string(), z.looseObject({ version: count, removed: z.boolean().optional() })),
  statsReported: z.looseObject({}).catchall(count).optional(),
});

const appointmentSchema: z.ZodType<Appointment> = z.looseObject({
  id: z.string(),
  patient: z.string(),
  doctor: z.string(),
  at: time,
  status: z.enum(['booked', 'cancelled']),
  bookedBy: z.string(),
});

const invitationSchema: z.ZodType<Invitation> = z.looseObject({
  user: z.string(),
  role: staffRoleSchema,
  hospital: z.string(),
  invitedBy: z.string(),
  invitedAt: time,
  expiresAt: time,
  codeKey: bytes(),
  activatedAt: time.optional(),
  lastNonce: count,
});

export const stateSchemas: { [T in TableName]: z.ZodType<Tables[T]> } = {
  users: userSchema,
  hospitals: hospitalSchema,
  records: recordMetaSchema,
  appointments: appointmentSchema,
  slots: z.string(),
  invitations: invitationSchema,
  network: networkSchema,
  statsBatches: statsBatchSchema,
  statsJobs: statsJobSchema,
};
