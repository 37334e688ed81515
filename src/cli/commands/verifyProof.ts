import { readFileSync } from 'node:fs';
import { parseGenesis, type Genesis } from '../../consensus/genesis.js';
import { verifyProof } from '../../consensus/proof.js';
import { UsageError } from '../passwordPrompt.js';

/**
 * `medledger verify-proof FILE --genesis FILE [--json]`: checks an inclusion proof offline, against the
 * genesis file only — no node is contacted. Exit 0 valid, 1 invalid (the reason is printed), 2 unreadable
 * input.
 */
export async function runVerifyProof(file: string, opts: { genesis: string; json?: boolean }): Promise<void> {
  const genesis = readJson(opts.genesis, 'genesis file', (raw) => parseGenesis(raw)) as Genesis;
  const proof = readJson(file, 'proof', (raw) => raw);
  const verdict = verifyProof(proof, genesis);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(verdict)}\n`);
  } else if (verdict.ok) {
    const c = verdict.claim;
    const who = `${c.actor} (${c.role}, ${c.hospital})`;
    const what = `${c.type}${c.patient ? ` on patient ${c.patient}` : ''}${c.record ? `, record ${c.record}` : ''}${c.subject ? `, about ${c.subject}` : ''}`;
    process.stdout.write(
      [
        'VALID proof: this audit event is final on the ledger of the given genesis file',
        `  ${c.recorded}  ${who}  ${what}  → ${c.outcome}${c.reason ? ` (${c.reason})` : ''}, received by ${c.source}`,
        `  transaction ${c.tx}`,
        `  block ${c.height} ${c.block} at ${c.blockTime}, certified by ${c.certifiedBy.join(', ')}`,
        ...verdict.checks.map((line) => `  ✓ ${line}`),
      ].join('\n') + '\n',
    );
  } else {
    process.stdout.write([`INVALID proof: ${verdict.reason}`, ...verdict.checks.map((line) => `  ✓ ${line}`)].join('\n') + '\n');
  }
  process.exitCode = verdict.ok ? 0 : 1;
}

function readJson<T>(path: string, what: string, parse: (raw: unknown) => T): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${what} ${path}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    if (what === 'proof') return parse({ invalidJson: true });
    throw new UsageError(`${what} ${path} is not JSON`);
  }
  try {
    return parse(raw);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}
