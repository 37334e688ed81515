import { Box, Text, type Key } from 'ink';
import { useRef, useState } from 'react';
import { useKeys } from '../hooks/useKeys.js';

/**
 * A form of validated fields. Typing goes to the focused field; Enter moves to the next field (or
 * submits on the last); Tab/↓ and Shift-Tab/↑ move; ←/→ or Space change a choice; Ctrl-U clears;
 * Esc cancels. Errors show under a field once it was left (or on submit), and the form submits only
 * when every field is valid. Password fields are masked and their values are never rendered.
 */
export interface FieldSpec {
  name: string;
  label: string;
  kind?: 'text' | 'password' | 'choice';
  /** For choice fields: the values to cycle through. */
  options?: string[];
  initial?: string;
  hint?: string;
  /** Returns an error sentence, or undefined when the value is acceptable. */
  validate?: (value: string, values: Record<string, string>) => string | undefined;
}

export type FormValues = Record<string, string>;

export interface FormProps {
  fields: FieldSpec[];
  submitLabel: string;
  /** May return an error sentence to show under the form (e.g. "Login unsuccessful: wrong password"). */
  onSubmit(values: FormValues): Promise<string | void> | string | void;
  onCancel?: () => void;
  /** Keys the form does not use (Ctrl combinations): return true when handled. */
  onKey?: (input: string, key: Key) => boolean;
  isActive?: boolean;
}

// eslint-disable-next-line no-control-regex -- control characters are exactly what this strips from typed input
const CONTROL = /[\u0000-\u001f\u007f]/g;

export function Form({ fields, submitLabel, onSubmit, onCancel, onKey, isActive = true }: FormProps) {
  const initial = Object.fromEntries(fields.map((f) => [f.name, f.initial ?? (f.kind === 'choice' ? (f.options?.[0] ?? '') : '')]));
  // Refs hold the latest values: several key events can arrive before React renders again.
  const values = useRef<FormValues>(initial);
  const focus = useRef(0);
  const [, render] = useState(0);
  const [touched, setTouched] = useState<Record<string, boolean>>({});
  const [formError, setFormError] = useState<string | undefined>();
  const [submitting, setSubmitting] = useState(false);
  const submittingRef = useRef(false);
  const refresh = () => render((n) => n + 1);

  const errorOf = (f: FieldSpec) => f.validate?.(values.current[f.name] ?? '', values.current);
  const touch = (name: string) => setTouched((t) => (t[name] ? t : { ...t, [name]: true }));
  const move = (delta: number) => {
    touch(fields[focus.current]!.name);
    focus.current = (focus.current + delta + fields.length) % fields.length;
    refresh();
  };
  const setValue = (name: string, value: string) => {
    values.current = { ...values.current, [name]: value };
    setFormError(undefined);
    refresh();
  };

  const submit = async () => {
    setTouched(Object.fromEntries(fields.map((f) => [f.name, true])));
    const firstBad = fields.findIndex((f) => errorOf(f) !== undefined);
    if (firstBad >= 0) {
      focus.current = firstBad;
      refresh();
      return;
    }
    submittingRef.current = true;
    setSubmitting(true);
    try {
      const err = await onSubmit({ ...values.current });
      if (typeof err === 'string') setFormError(err);
    } catch (e) {
      setFormError((e as Error).message);
    } finally {
      submittingRef.current = false;
      setSubmitting(false);
    }
  };

  const enter = () => {
    const f = fields[focus.current]!;
    if (errorOf(f) !== undefined) return touch(f.name);
    if (focus.current < fields.length - 1) return move(1);
    void submit();
  };

  useKeys(
    (input, key) => {
      if (submittingRef.current) return;
      if (key.escape) return onCancel?.();
      if ((key.ctrl || key.meta) && onKey?.(input, key)) return;
      if (key.upArrow || (key.tab && key.shift)) return move(-1);
      if (key.downArrow || key.tab) return move(1);
      if (key.return) return enter();
      const f = fields[focus.current]!;
      const current = values.current[f.name] ?? '';
      if (f.kind === 'choice') {
        const options = f.options ?? [];
        const at = Math.max(0, options.indexOf(current));
        if (key.leftArrow) setValue(f.name, options[(at + options.length - 1) % options.length] ?? '');
        else if (key.rightArrow || input === ' ') setValue(f.name, options[(at + 1) % options.length] ?? '');
        return;
      }
      if (key.backspace || key.delete) return setValue(f.name, current.slice(0, -1));
      if (key.ctrl && input === 'u') return setValue(f.name, '');
      if (key.ctrl || key.meta || key.leftArrow || key.rightArrow) return;
      const text = input.replace(CONTROL, '');
      if (text) setValue(f.name, current + text);
    },
    { isActive },
  );

  return (
    <Box flexDirection="column">
      {fields.map((f, i) => {
        const focused = i === focus.current;
        const value = values.current[f.name] ?? '';
        const error = touched[f.name] ? errorOf(f) : undefined;
        const shown = f.kind === 'password' ? '*'.repeat(value.length) : f.kind === 'choice' ? `‹ ${value} ›` : value;
        return (
          <Box key={f.name} flexDirection="column">
            <Text color={focused ? 'cyan' : undefined}>
              {focused ? '› ' : '  '}
              {f.label.padEnd(labelWidth(fields))}: {shown}
              {focused && f.kind !== 'choice' ? <Text inverse> </Text> : null}
              {focused && f.hint ? <Text dimColor> {f.hint}</Text> : null}
            </Text>
            {error ? <Text color="red">{`    ✖ ${error}`}</Text> : null}
          </Box>
        );
      })}
      <Text color={submitting ? 'yellow' : 'green'}>{submitting ? `  ${submitLabel}…` : `  [Enter on the last field] ${submitLabel}`}</Text>
      {formError ? <Text color="red">{`  ${formError}`}</Text> : null}
    </Box>
  );
}

function labelWidth(fields: FieldSpec[]): number {
  return Math.max(...fields.map((f) => f.label.length));
}

/** Validators for form fields, from the client layer's parsers. */
export function check<T>(parse: (text: string) => { ok: true; value: T } | { ok: false; error: string }) {
  return (value: string) => {
    const r = parse(value);
    return r.ok ? undefined : r.error;
  };
}
