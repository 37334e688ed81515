/**
 * Replica verification, provided by `src/client/verifyReplicas.ts` (another module of the client layer).
 * The TUI loads it when the screen opens, so the rest of the UI works in builds that lack it.
 */
export interface VerifyNodeReport {
  api: string;
  node?: string;
  ok: boolean;
  verifiedHeight?: number;
  problem?: string;
}

export interface VerifyReport {
  ok: boolean;
  exitCode: 0 | 1 | 2;
  nodes: VerifyNodeReport[];
  divergence?: { height: number; nodes: string[]; detail: string };
}

export type VerifyReplicasFn = (urls: string[], opts?: Record<string, unknown>) => Promise<VerifyReport>;

// A variable specifier: the module is resolved at run time, not by the compiler.
const MODULE = '../client/verifyReplicas.js';

export async function loadVerifyReplicas(): Promise<VerifyReplicasFn | undefined> {
  try {
    const mod = (await import(MODULE)) as { verifyReplicas?: VerifyReplicasFn };
    return mod.verifyReplicas;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || /Cannot find module|Failed to load url|does not exist/i.test((err as Error).message)) return undefined;
    throw err;
  }
}
