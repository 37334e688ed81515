import { Box, Text } from 'ink';
import { useState } from 'react';
import { formatDateTime } from '../../client/auditView.js';
import { checkAttachmentPath, formatBytes, readAttachment, saveAttachment } from '../../client/inputs.js';
import type { DecryptedRecord } from '../../client/session.js';
import { check } from '../components/Form.js';
import { LoadState } from '../components/LoadState.js';
import { Screen } from '../components/Screen.js';
import { useApp, useSession } from '../context.js';
import { deniedText, useAction } from '../hooks/useAction.js';
import { useAsync } from '../hooks/useAsync.js';
import { ConfirmScreen } from './ConfirmScreen.js';
import { FormScreen } from './FormScreen.js';
import { RecordFormScreen } from './RecordFormScreen.js';
import { canWrite } from './RecordsScreen.js';
import { useKeys } from '../hooks/useKeys.js';

/** One record, read (an audited read) and decrypted on this computer, with its files. */
export function RecordScreen({ patient, record }: { patient: string; record: string }) {
  const session = useSession();
  const app = useApp();
  const run = useAction();
  const [selectedFile, setSelectedFile] = useState(0);
  const read = useAsync(() => session.readRecord(patient, record), [patient, record]);
  const rec: DecryptedRecord | undefined = read.state === 'done' ? read.value.value : undefined;
  const writable = canWrite(session.keys.role);
  // Files in a record: patient and granted doctors only (PROTOCOL.md §3.1).
  const files = writable ? (rec?.files ?? []) : [];
  const file = files[Math.min(selectedFile, files.length - 1)];

  const pathForm = (title: string, label: string, onPath: (path: string) => Promise<void>, validate?: (v: string) => string | undefined) => (
    <FormScreen
      title={title}
      fields={[{ name: 'path', label, ...(validate ? { validate } : { validate: (v: string) => (v.trim() ? undefined : 'give a path') }) }]}
      submitLabel="OK"
      onSubmit={async (v) => {
        await onPath(v.path!.trim());
      }}
    />
  );

  useKeys(
    (input, key) => {
      if (key.escape) return app.back();
      if (key.upArrow || input === 'k') return setSelectedFile((i) => Math.max(0, i - 1));
      if (key.downArrow || input === 'j') return setSelectedFile((i) => Math.min(files.length - 1, i + 1));
      if (!writable || !rec) return;
      if (input === 'u' && rec.content)
        return app.push(<RecordFormScreen patient={patient} existing={{ record, version: rec.meta.version, content: rec.content }} />);
      if (input === 'y') {
        void run(
          () => session.copyRecord(patient, record),
          (o) => `Copied ${record} to ${o.value}`,
        );
        return;
      }
      if (input === 'd') {
        return app.push(
          <ConfirmScreen
            title="Delete a record"
            question={`Delete record ${record}? Its content is purged from every replica.`}
            onYes={async () => {
              const r = await run(
                () => session.deleteRecord(patient, record),
                () => `Deleted ${record}`,
              );
              app.back();
              if (r && !r.denied) app.back();
            }}
          />,
        );
      }
      if (input === 'a') {
        return app.push(
          pathForm(
            'Attach a file',
            'File path',
            async (path) => {
              const r = await run(
                () => session.attachFile(patient, record, readAttachment(path)),
                (o) => `Attached ${path} as ${o.value}`,
              );
              if (r) app.back();
            },
            check(checkAttachmentPath),
          ),
        );
      }
      if (!file) return;
      if (input === 's' && file.content) {
        const content = file.content;
        return app.push(
          pathForm(`Save ${content.name} to disk`, 'Save to path', async (path) => {
            try {
              const written = saveAttachment(path, content);
              app.setFlash({ kind: 'success', text: `Saved ${content.name} to ${written}` });
              app.back();
            } catch (err) {
              app.setFlash({ kind: 'error', text: `Error: ${(err as Error).message}` });
            }
          }),
        );
      }
      if (input === 'e') {
        return app.push(
          pathForm(
            `Replace ${file.content?.name ?? file.file}`,
            'New file path',
            async (path) => {
              const r = await run(
                () => session.replaceFile(patient, record, file.file, file.version, readAttachment(path)),
                () => `Replaced ${file.file} with ${path}`,
              );
              if (r) app.back();
            },
            check(checkAttachmentPath),
          ),
        );
      }
      if (input === 'x') {
        return app.push(
          <ConfirmScreen
            title="Remove a file"
            question={`Remove ${file.content?.name ?? file.file} from ${record}?`}
            onYes={async () => {
              await run(
                () => session.removeFile(patient, record, file.file),
                () => `Removed ${file.file}`,
              );
              app.back();
            }}
          />,
        );
      }
    },
    { isActive: !app.busy },
  );

  const help: [string, string][] = writable
    ? [
        ['u', 'update'],
        ['y', 'copy'],
        ['d', 'delete'],
        ['a', 'attach file'],
        ['↑↓', 'file'],
        ['s', 'save file'],
        ['e', 'replace file'],
        ['x', 'remove file'],
        ['Esc', 'back'],
      ]
    : [['Esc', 'back']];
  return (
    <Screen title={`Record ${record} of ${patient}`} help={help}>
      <LoadState of={read} loading="reading (an audited read) and decrypting…" />
      {read.state === 'done' && read.value.denied ? <Text color="red">{deniedText(read.value.denied)}</Text> : null}
      {rec ? <RecordDetails rec={rec} files={files} selectedFile={Math.min(selectedFile, files.length - 1)} showFiles={writable} /> : null}
    </Screen>
  );
}

function RecordDetails({
  rec,
  files,
  selectedFile,
  showFiles,
}: {
  rec: DecryptedRecord;
  files: DecryptedRecord['files'];
  selectedFile: number;
  showFiles: boolean;
}) {
  const m = rec.meta;
  const c = rec.content;
  const line = (label: string, value: string | undefined) => (
    <Text>
      {label.padEnd(15)}
      {value ?? <Text dimColor>—</Text>}
    </Text>
  );
  return (
    <Box flexDirection="column">
      <Text dimColor>
        version {m.version} · created {formatDateTime(m.createdAt)} by {m.createdBy} · updated {formatDateTime(m.updatedAt)}
        {m.copiedFrom ? ` · copied from ${m.copiedFrom}` : ''}
      </Text>
      {rec.error ? <Text color="red">Content not readable: {rec.error}</Text> : null}
      {c ? (
        <Box flexDirection="column" marginTop={1}>
          {line('Title', c.title)}
          {line('Temperature', c.vitals.temperature !== undefined ? `${c.vitals.temperature} °C` : undefined)}
          {line('Blood pressure', c.vitals.bloodPressure ? `${c.vitals.bloodPressure} mmHg` : undefined)}
          {line('Heart rate', c.vitals.heartRate !== undefined ? `${c.vitals.heartRate} bpm` : undefined)}
          {line('Notes', c.notes)}
        </Box>
      ) : null}
      {showFiles ? (
        <Box flexDirection="column" marginTop={1}>
          <Text bold>Files</Text>
          {files.length === 0 ? <Text dimColor> none — press a to attach a file from disk</Text> : null}
          {files.map((f, i) => (
            <Text key={f.file} color={i === selectedFile ? 'cyan' : undefined}>
              {i === selectedFile ? '› ' : '  '}
              {f.content
                ? `${f.content.name}  (${f.content.mime}, ${formatBytes(f.content.data.length)}, v${f.version})`
                : `${f.file} — not readable: ${f.error}`}
            </Text>
          ))}
        </Box>
      ) : null}
    </Box>
  );
}
