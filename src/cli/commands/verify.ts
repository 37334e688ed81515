import { equivocationLabel, verifyReplicas, type VerifyReport } from '../../client/verifyReplicas.js';

/**
 * `medledger verify --api URL[,URL…] [--genesis FILE] [--payloads] [--json]` (PROTOCOL.md §7.6): re-verifies every
 * replica's chain on this machine and compares them; with --payloads also every replica's payloads against
 * the hashes the chain commits to. Exit 0 all agree, 1 a node differs or fails (named, with the height, and
 * the transaction for a payload), 2 the check could not be completed.
 */
export async function runVerify(opts: { api: string[]; genesis?: string; json?: boolean; payloads?: boolean }): Promise<void> {
  const urls = opts.api
    .flatMap((a) => a.split(','))
    .map((u) => u.trim())
    .filter(Boolean);
  const progress = !opts.json && process.stderr.isTTY;
  const report = await verifyReplicas(urls, {
    ...(opts.genesis ? { genesisFile: opts.genesis } : {}),
    ...(opts.payloads ? { payloads: true } : {}),
    ...(progress ? { onProgress: ({ height, target }) => process.stderr.write(`\rverifying… height ${Math.min(height, target)}/${target}`) } : {}),
  });
  if (progress) process.stderr.write('\r\x1b[K');
  process.stdout.write(opts.json ? `${JSON.stringify(report)}\n` : formatReport(report));
  process.exitCode = report.exitCode;
}

const short = (hash: string) => `${hash.slice(0, 12)}…`;

export function formatReport(r: VerifyReport): string {
  const lines: string[] = [];
  if (r.error) lines.push(`error: ${r.error}`);
  if (r.genesis) lines.push(`genesis   ${short(r.genesis.hash)} network ${r.genesis.network} (from ${r.genesis.source})`);
  const width = Math.max(4, ...r.nodes.map((n) => (n.node ?? n.api).length));
  for (const n of r.nodes) {
    const name = (n.node ?? n.api).padEnd(width);
    const where = n.node ? `  ${n.api}` : '';
    if (n.ok) {
      const head = n.head ? `, certified head ${n.head.height} ${short(n.head.hash)} (round ${n.head.round}; ${n.head.signers.join(', ')})` : '';
      lines.push(`${name}${where}  ok      verified 0..${n.verifiedHeight ?? '?'}${head}`);
    } else {
      const upTo = n.verifiedHeight !== undefined ? ` (verified 0..${n.verifiedHeight})` : '';
      lines.push(`${name}${where}  FAILED  ${n.problem ?? 'not verified'}${upTo}`);
    }
  }
  if (r.divergence) lines.push(`DIVERGENCE at height ${r.divergence.height}: ${r.divergence.nodes.join(', ')} — ${r.divergence.detail}`);
  for (const e of r.equivocations ?? []) {
    lines.push(equivocationLabel(e));
    for (const b of e.blocks)
      if (e.source === 'chains')
        lines.push(`    block ${short(b.hash)} round ${b.round} served by ${b.nodes.join(', ') || '-'}, certified by ${b.signers.join(', ')}`);
  }
  if (r.equivocationsOmitted) lines.push(`    …and the conflicting branches go on with certified blocks at ${r.equivocationsOmitted} more height(s)`);
  if (r.payloads) {
    const p = r.payloads;
    const found = p.findings.length + (p.findingsOmitted ?? 0);
    const since = p.deletedSinceVerified
      ? `; ${p.deletedSinceVerified} absent because their record was deleted after the verified height (deletion proofs checked)`
      : '';
    lines.push(
      `payloads  ${p.payloads} committed payload(s), ${p.compared} replica copies compared with the committed hashes: ${found === 0 ? 'all held as committed' : `${found} problem(s)`}${since}`,
    );
    for (const f of p.findings) lines.push(`PAYLOAD ${f.node} height ${f.height} tx ${f.tx}${f.record ? ` (record ${f.record})` : ''}: ${f.detail}`);
    if (p.findingsOmitted) lines.push(`    …and ${p.findingsOmitted} more payload problem(s)`);
    for (const e of p.errors ?? []) lines.push(`payloads  ${e.node}: not checked: ${e.problem}`);
  }
  const stats = r.seconds !== undefined ? ` in ${r.seconds.toFixed(1)} s (${r.blocks ?? 0} blocks, ${r.events ?? 0} events re-executed)` : '';
  const verdict = r.exitCode === 0 ? 'all replicas verify and agree' : r.exitCode === 1 ? 'replicas differ or fail verification' : 'verification incomplete';
  lines.push(`${verdict}${r.comparedUpTo !== undefined ? ` (lowest finalized height ${r.comparedUpTo})` : ''}${stats}`);
  return `${lines.join('\n')}\n`;
}
