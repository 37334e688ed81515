import { z } from 'zod';

/** What a record holds once decrypted on the client. Never leaves the client in clear. */
export const bloodPressureSchema = z
  .string()
  .regex(/^\d{2,3}\/\d{2,3}$/, 'blood pressure must look like 120/80')
  .refine((bp) => {
    const [sys, dia] = bp.split('/').map(Number) as [number, number];
    return sys > dia && sys <= 300 && dia >= 20;
  }, 'blood pressure: systolic must exceed diastolic, within 20-300 mmHg');

export const vitalSignsSchema = z.strictObject({
  temperature: z.number().min(25, 'temperature below 25 °C').max(45, 'temperature above 45 °C').optional(),
  bloodPressure: bloodPressureSchema.optional(),
  heartRate: z.number().int().min(20).max(250).optional(),
});

export const recordContentSchema = z.strictObject({
  title: z.string().max(200).optional(),
  vitals: vitalSignsSchema,
  notes: z.string().max(20_000).optional(),
});
export type RecordContent = z.infer<typeof recordContentSchema>;

export const fileContentSchema = z.strictObject({
  name: z.string().min(1).max(255),
  mime: z.string().max(100),
  data: z.custom<Uint8Array>((v) => v instanceof Uint8Array),
});
export type FileContent = z.infer<typeof fileContentSchema>;
