import { readFileSync } from 'node:fs';

/**
 * Which malloc this process runs on, for the start log: a node's resident memory under load depends on it
 * (see allocatorEnv in cli/nodeProcess.ts). Linux only; elsewhere "unknown".
 */
export function allocatorInUse(): 'jemalloc' | 'glibc' | 'unknown' {
  try {
    return readFileSync('/proc/self/maps', 'utf8').includes('libjemalloc') ? 'jemalloc' : 'glibc';
  } catch {
    return 'unknown';
  }
}
