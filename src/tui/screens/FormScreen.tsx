import { Text } from 'ink';
import { Form, type FieldSpec, type FormValues } from '../components/Form.js';
import { Screen } from '../components/Screen.js';
import { useApp } from '../context.js';

export const FORM_HELP: [string, string][] = [
  ['Enter', 'next / submit'],
  ['Tab ↑↓', 'move'],
  ['←→', 'choose'],
  ['Ctrl-U', 'clear'],
  ['Esc', 'cancel'],
];

/** A screen holding one form (grant, request access, book, attach a file…); Esc goes back. */
export function FormScreen(props: {
  title: string;
  intro?: string;
  fields: FieldSpec[];
  submitLabel: string;
  onSubmit(values: FormValues): Promise<string | void> | string | void;
}) {
  const { back, busy } = useApp();
  return (
    <Screen title={props.title} help={FORM_HELP}>
      {props.intro ? <Text dimColor>{props.intro}</Text> : null}
      <Form fields={props.fields} submitLabel={props.submitLabel} onSubmit={props.onSubmit} onCancel={back} isActive={!busy} />
    </Screen>
  );
}
