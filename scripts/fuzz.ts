/**
 * The full fuzzing run (the properties live in test/attacks/fuzzTargets.ts; test/attacks/unit/fuzz.test.ts
 * runs a slice of the same on every `npm test`):
 *
 *   npx tsx scripts/fuzz.ts [--runs 100000] [--seed S] [--max-seconds 900] [--targets tx,block,…]
 *
 * Mutated transactions, blocks, certificates, votes, proposals, payloads, gossip messages and sync frames
 * of a small real chain go into the decoders and validators. Fails (exit 1) on any crash (an exception that
 * is not the project's typed error), any accepted invalid message, or a hang. Each target runs in its own
 * child process with a deadline, so even an infinite loop is reported (and cannot stop the other targets).
 *
 * To reproduce a finding, the report prints its command: the same seed, the fixture the run used (its keys
 * are random, so it is saved) and the fast-check path of the case, e.g.
 *
 *   npx tsx scripts/fuzz.ts --targets tx --seed 123 --fixture /tmp/medledger-fuzz-123.cbor --path 4567
 *
 * which replays that case, shrinks it, and prints the smallest failing mutation with the error's stack.
 */
import '../src/polyfill.js';
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  buildFixtureData,
  decodeFixture,
  encodeFixture,
  loadFixture,
  makeTargets,
  randomSeed,
  runTarget,
  type Finding,
  type Targets,
} from '../test/attacks/fuzzTargets.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '100000' },
    seed: { type: 'string' },
    'max-seconds': { type: 'string', default: '900' },
    targets: { type: 'string' },
    fixture: { type: 'string' },
    path: { type: 'string' },
    'slow-ms': { type: 'string', default: '5000' },
    detail: { type: 'boolean', default: false },
    'keep-fixture': { type: 'boolean', default: false },
    // internal: one target in a child process
    child: { type: 'string' },
    'time-limit-ms': { type: 'string' },
  },
});

const SCRIPT = fileURLToPath(import.meta.url);

interface ChildResult {
  target: string;
  cases: number;
  accepted: number;
  ms: number;
  interrupted: boolean;
  findings: Finding[];
  outcomes: [string, number][];
  reasons: [string, number][];
  failure?: string;
}

async function child(name: string): Promise<void> {
  const fixture = loadFixture(decodeFixture(readFileSync(values.fixture!)));
  const targets = makeTargets(fixture) as Targets;
  await targets.prepare();
  const target = targets.find((t) => t.name === name);
  if (!target) throw new Error(`no target ${name}`);
  const replay = values.path !== undefined;
  const report = await runTarget(target, {
    // A replay runs the one case at the path (and shrinks it if it still fails).
    numRuns: replay ? 1 : Number(values.runs),
    seed: Number(values.seed),
    ...(replay ? { path: values.path! } : {}),
    ...(values['time-limit-ms'] ? { timeLimitMs: Number(values['time-limit-ms']) } : {}),
    slowCaseMs: Number(values['slow-ms']),
    mode: replay ? 'throw' : 'collect',
    detail: values.detail,
  });
  const result: ChildResult = {
    target: name,
    cases: report.cases,
    accepted: report.accepted,
    ms: report.ms,
    interrupted: report.interrupted,
    findings: report.findings,
    outcomes: [...report.stats.outcomes.entries()].sort((a, b) => b[1] - a[1]),
    reasons: [...report.stats.reasons.entries()].sort((a, b) => b[1] - a[1]),
    ...(report.failure ? { failure: report.failure } : {}),
  };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

function runChild(name: string, args: string[], deadlineMs: number): Promise<{ result?: ChildResult; hung: boolean; stderr: string; code: number | null }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [...process.execArgv, SCRIPT, '--child', name, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let hung = false;
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => {
      hung = true;
      proc.kill('SIGKILL');
    }, deadlineMs);
    proc.on('close', (code) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      resolve({ ...(line ? { result: JSON.parse(line.slice(7)) as ChildResult } : {}), hung, stderr: err, code });
    });
  });
}

async function main(): Promise<void> {
  if (values.child) return child(values.child);

  const seed = values.seed !== undefined ? Number(values.seed) : randomSeed();
  const totalRuns = Number(values.runs);
  const maxMs = Number(values['max-seconds']) * 1000;
  const started = Date.now();

  let fixturePath = values.fixture;
  let ownFixture = false;
  if (!fixturePath) {
    fixturePath = join(tmpdir(), `medledger-fuzz-${seed}.cbor`);
    writeFileSync(fixturePath, encodeFixture(buildFixtureData()));
    ownFixture = true;
  }
  const targets = makeTargets(loadFixture(decodeFixture(readFileSync(fixturePath)))) as Targets;
  const wanted = values.targets ? values.targets.split(',').map((s) => s.trim()) : targets.map((t) => t.name);
  for (const w of wanted) if (!targets.some((t) => t.name === w)) throw new Error(`unknown target ${w} (targets: ${targets.map((t) => t.name).join(', ')})`);

  const replay = values.path !== undefined;
  console.log(
    replay
      ? `Replaying ${wanted.join(',')} seed ${seed} path ${values.path} (fixture ${fixturePath})`
      : `Fuzzing ${wanted.length} targets, ${totalRuns.toLocaleString('en-US')} cases in all, seed ${seed}, at most ${maxMs / 1000} s (fixture ${fixturePath})`,
  );

  const results: ChildResult[] = [];
  const problems: string[] = [];
  let remainingRuns = totalRuns;
  for (let i = 0; i < wanted.length; i++) {
    const name = wanted[i]!;
    const left = wanted.length - i;
    const runs = Math.ceil(remainingRuns / left);
    const budgetMs = Math.max(1_000, (maxMs - (Date.now() - started)) / left);
    const args = [
      '--runs',
      String(runs),
      '--seed',
      String(seed),
      '--fixture',
      fixturePath,
      '--slow-ms',
      values['slow-ms']!,
      '--time-limit-ms',
      String(Math.round(budgetMs)),
    ];
    if (replay) args.push('--path', values.path!);
    if (values.detail) args.push('--detail');
    // Generation stops at the time limit; a case that never returns is a hang: killed a minute later.
    const { result, hung, stderr, code } = await runChild(name, args, budgetMs + 60_000);
    const again = `npx tsx scripts/fuzz.ts --targets ${name} --seed ${seed} --fixture ${fixturePath}`;
    if (!result) {
      const why = hung ? `hung (no result within ${Math.round((budgetMs + 60_000) / 1000)} s)` : `child exited with ${code}`;
      problems.push(`${name}: ${why}; reproduce: ${again}\n${stderr.split('\n').slice(-15).join('\n')}`);
      console.log(`${name.padEnd(16)} ${why}`);
      remainingRuns -= runs;
      continue;
    }
    results.push(result);
    remainingRuns -= result.cases;
    const crashes = result.findings.filter((f) => f.kind === 'crash').length;
    const invalid = result.findings.filter((f) => f.kind === 'accepted-invalid').length;
    const hangs = result.findings.filter((f) => f.kind === 'hang').length;
    console.log(
      `${name.padEnd(16)} ${String(result.cases).padStart(7)} cases ${String(result.accepted).padStart(6)} accepted  ${crashes} crashes  ${invalid} accepted-invalid  ${hangs} hangs  ${(result.ms / 1000).toFixed(1).padStart(6)} s${result.interrupted ? ' (time limit)' : ''}  | ${result.outcomes
        .slice(0, 4)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
    if (values.detail) for (const [k, v] of result.reasons) console.log(`    ${String(v).padStart(6)} ${k}`);
    for (const f of result.findings) {
      problems.push(
        `${f.target}: ${f.message}\n  reproduce: npx tsx scripts/fuzz.ts --targets ${f.target} --seed ${f.seed} --fixture ${fixturePath} --path ${f.path}\n  case: ${f.input}`,
      );
    }
    if (result.failure) problems.push(`replayed and shrunk: ${result.failure}`);
  }

  const cases = results.reduce((n, r) => n + r.cases, 0);
  const seconds = (Date.now() - started) / 1000;
  console.log(`\n${cases.toLocaleString('en-US')} cases in ${seconds.toFixed(1)} s (${Math.round(cases / seconds).toLocaleString('en-US')}/s), seed ${seed}`);
  if (!replay && cases < totalRuns) console.log(`note: the time limit cut the run short of --runs ${totalRuns} (raise --max-seconds)`);
  if (problems.length > 0) {
    console.log(`\n${problems.length} problem(s):\n`);
    for (const p of problems) console.log(`${p}\n`);
    console.log(`fixture kept for reproduction: ${fixturePath}`);
    process.exitCode = 1;
  } else {
    console.log('no crash, no accepted invalid message, no hang');
    if (ownFixture && !values['keep-fixture']) rmSync(fixturePath, { force: true });
  }
}

await main();
