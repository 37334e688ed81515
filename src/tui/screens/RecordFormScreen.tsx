import { Text } from 'ink';
import { checkAttachmentPath, optional, parseBloodPressure, parseHeartRate, parseTemperature, readAttachment, recordContentOf } from '../../client/inputs.js';
import type { RecordContent } from '../../records/content.js';
import { check, Form, type FieldSpec } from '../components/Form.js';
import { Screen } from '../components/Screen.js';
import { useApp, useSession } from '../context.js';
import { useAction } from '../hooks/useAction.js';
import { FORM_HELP } from './FormScreen.js';

const maxLength = (n: number, what: string) => (v: string) => (v.length > n ? `${what} is longer than ${n} characters` : undefined);

/** Create a record (vital signs, notes, optionally a file from disk) or update one; encrypted here. */
export function RecordFormScreen({ patient, existing }: { patient: string; existing?: { record: string; version: number; content: RecordContent } }) {
  const session = useSession();
  const app = useApp();
  const run = useAction();
  const c = existing?.content;
  const fields: FieldSpec[] = [
    { name: 'title', label: 'Title', initial: c?.title ?? '', validate: maxLength(200, 'title') },
    {
      name: 'temperature',
      label: 'Temperature °C',
      initial: c?.vitals.temperature?.toString() ?? '',
      hint: 'e.g. 36.8',
      validate: check(optional(parseTemperature)),
    },
    {
      name: 'bloodPressure',
      label: 'Blood pressure',
      initial: c?.vitals.bloodPressure ?? '',
      hint: 'systolic/diastolic, e.g. 120/80',
      validate: check(optional(parseBloodPressure)),
    },
    { name: 'heartRate', label: 'Heart rate bpm', initial: c?.vitals.heartRate?.toString() ?? '', validate: check(optional(parseHeartRate)) },
    { name: 'notes', label: 'Notes', initial: c?.notes ?? '', validate: maxLength(20_000, 'notes') },
    ...(existing ? [] : [{ name: 'file', label: 'Attach file', hint: 'optional path on disk', validate: check(optional(checkAttachmentPath)) }]),
  ];
  return (
    <Screen title={existing ? `Update record ${existing.record}` : `New record for ${patient}`} help={FORM_HELP}>
      <Text dimColor>Empty fields are left out. The content is encrypted on this computer before it is sent.</Text>
      <Form
        fields={fields}
        submitLabel={existing ? 'Save new version' : 'Create record'}
        onCancel={app.back}
        isActive={!app.busy}
        onSubmit={async (v) => {
          const num = (text: string | undefined, parse: typeof parseTemperature) => {
            const r = optional(parse)(text ?? '');
            return r.ok ? r.value : undefined;
          };
          const content = recordContentOf({
            title: v.title?.trim(),
            temperature: num(v.temperature, parseTemperature),
            bloodPressure: v.bloodPressure?.trim(),
            heartRate: num(v.heartRate, parseHeartRate),
            notes: v.notes?.trim(),
          });
          if (existing) {
            const r = await run(
              () => session.updateRecord(patient, existing.record, existing.version, content),
              () => `Saved version ${existing.version + 1} of ${existing.record}`,
            );
            if (r) app.back();
            return;
          }
          const created = await run(
            () => session.createRecord(patient, content),
            (o) => `Created record ${o.value}`,
          );
          if (!created) return;
          if (!created.denied && created.value && v.file?.trim()) {
            const path = v.file.trim();
            await run(
              () => session.attachFile(patient, created.value!, readAttachment(path)),
              () => `Created record ${created.value} with file ${path}`,
            );
          }
          app.back();
        }}
      />
    </Screen>
  );
}
