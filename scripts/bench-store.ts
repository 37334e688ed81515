/**
 * Storage, query, memory, sync and verification at scale (SPEC §9), on a chain of --events audit events;
 * `npm run bench` runs the same code (scripts/bench/store.ts) with the ceiling beside it. This script is for
 * one size at a time, e.g. with a CPU profile of the syncing node:
 *
 *   npm run build && npx tsx scripts/bench-store.ts [--events 1000000] [--patients 10000] [--sync] [--verify]
 *                                                   [--block-size 2000] [--profile DIR] [--keep]
 *
 * Writes the chain into hospital A's LevelDB with the node's own store code (events/s, bytes on disk), times
 * patient-trail, user-trail and time-range queries, starts A's node on it (peak resident memory), and with
 * --sync lets an empty hospital B sync it fully verified, with --verify runs `medledger verify` of A's chain.
 * Every loop is bounded; processes are started and stopped here, on 127.0.0.1.
 */
import '../src/polyfill.js';
import { parseArgs } from 'node:util';
import { storeBenchmark } from './bench/store.js';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    patients: { type: 'string', default: '10000' },
    'block-size': { type: 'string', default: '2000' },
    queries: { type: 'string', default: '200' },
    sync: { type: 'boolean', default: false },
    verify: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    /** CPU profile of the syncing node into this directory. */
    profile: { type: 'string' },
  },
});

storeBenchmark({
  events: Number(values.events),
  patients: Number(values.patients),
  blockSize: Number(values['block-size']),
  queries: Number(values.queries),
  sync: values.sync,
  verify: values.verify,
  timeoutMs: 1_800_000,
  keep: values.keep,
  ...(values.profile ? { syncRuntimeArgs: ['--cpu-prof', `--cpu-prof-dir=${values.profile}`] } : {}),
}).catch((err) => {
  console.error(err);
  process.exit(1);
});
