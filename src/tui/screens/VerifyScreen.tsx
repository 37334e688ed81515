import { Box, Text } from 'ink';
import { useState } from 'react';
import { parseApiUrls } from '../../client/inputs.js';
import { equivocationLabel, verifyReplicas, type VerifyReport } from '../../client/verifyReplicas.js';
import { check, Form } from '../components/Form.js';
import { Screen } from '../components/Screen.js';
import { Table } from '../components/Table.js';
import { useApp } from '../context.js';
import { FORM_HELP } from './FormScreen.js';
import { useKeys } from '../hooks/useKeys.js';

type State = { step: 'form' } | { step: 'running'; urls: string[] } | { step: 'done'; report: VerifyReport } | { step: 'error'; error: string };

/**
 * Re-verifies replicas' chains and compares them height by height up to the lowest finalized height
 * (the same check as `medledger verify`), naming any node and height that differ.
 */
export function VerifyScreen() {
  const app = useApp();
  const [state, setState] = useState<State>({ step: 'form' });
  useKeys(
    (_input, key) => {
      if (key.escape) setState({ step: 'form' });
    },
    { isActive: state.step === 'done' || state.step === 'error' },
  );

  const verify = async (urls: string[]) => {
    setState({ step: 'running', urls });
    try {
      setState({ step: 'done', report: await verifyReplicas(urls) });
    } catch (err) {
      setState({ step: 'error', error: (err as Error).message });
    }
  };

  if (state.step === 'form') {
    return (
      <Screen title="Verify replicas" help={FORM_HELP}>
        <Text dimColor>Each node's chain is re-verified from genesis; the replicas are compared at every height up to the lowest finalized one.</Text>
        <Form
          fields={[{ name: 'urls', label: 'Node API URLs', initial: app.apiUrl, hint: 'comma-separated', validate: check(parseApiUrls) }]}
          submitLabel="Verify"
          onCancel={app.back}
          onSubmit={(v) => {
            const urls = parseApiUrls(v.urls!);
            if (urls.ok) void verify(urls.value);
          }}
        />
      </Screen>
    );
  }
  return (
    <Screen title="Verify replicas" help={[['Esc', 'back to the form']]}>
      {state.step === 'running' ? <Text color="yellow">verifying {state.urls.join(', ')}…</Text> : null}
      {state.step === 'error' ? <Text color="red">Error: {state.error}</Text> : null}
      {state.step === 'done' ? <VerifyResult report={state.report} /> : null}
    </Screen>
  );
}

function VerifyResult({ report }: { report: VerifyReport }) {
  return (
    <Box flexDirection="column">
      <Text color={report.ok ? 'green' : 'red'} bold>
        {report.ok ? 'All replicas agree and verify.' : report.exitCode === 1 ? 'Replicas DIFFER or fail verification.' : 'Verification could not complete.'}
      </Text>
      <Table
        columns={[
          { title: 'API', width: 24 },
          { title: 'Node', width: 10 },
          { title: 'OK', width: 3 },
          { title: 'Verified to', width: 11 },
          { title: 'Problem', width: 30 },
        ]}
        rows={report.nodes.map((n) => [n.api, n.node ?? '?', n.ok ? 'yes' : 'NO', n.verifiedHeight?.toString() ?? '-', n.problem ?? ''])}
        cellColor={(r, c) => (c === 2 ? (report.nodes[r]?.ok ? 'green' : 'red') : undefined)}
      />
      {report.divergence ? (
        <Text color="red">
          Divergence at height {report.divergence.height} on {report.divergence.nodes.join(', ')}: {report.divergence.detail}
        </Text>
      ) : null}
      {(report.equivocations ?? []).map((e, i) => (
        <Text key={i} color="red">
          {equivocationLabel(e)}
        </Text>
      ))}
      {report.error ? <Text color="red">{report.error}</Text> : null}
    </Box>
  );
}
