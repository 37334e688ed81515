import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The signature workers as node processes run them: from the compiled dist/ (built before this group of
 * tests), where each worker loads dist/records/crypto/signatureWorker.js — no TypeScript loader — and
 * calls the same `verifySignature`, on the same backend, as the main thread.
 */
const root = fileURLToPath(new URL('../..', import.meta.url));

const script = `
import { SignatureWorkerPool } from '${pathToFileURL(join(root, 'dist/records/crypto/signatureWorkers.js')).href}';
import { createSigner, generateSigningKeyPair, signatureBackend } from '${pathToFileURL(join(root, 'dist/records/crypto/signature.js')).href}';
const key = generateSigningKeyPair();
const signer = createSigner(key.secretKey);
const checks = Array.from({ length: 300 }, (_, i) => { const message = Uint8Array.of(i & 255, i >> 8); return { key: key.publicKey, message, sig: signer.sign(message) }; });
checks[5] = { ...checks[5], sig: checks[6].sig };
// Decided by the small-order rule: node:crypto's verdict (true) on either backend.
checks.push({ key: Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 1 : 0)), message: Uint8Array.of(1), sig: Uint8Array.from({ length: 64 }, (_, i) => (i === 0 ? 1 : 0)) });
const pool = new SignatureWorkerPool(2);
const ok = await pool.verify(checks);
await pool.close();
console.log(JSON.stringify({ backend: signatureBackend(), refused: ok.flatMap((v, i) => (v ? [] : [i])), count: ok.length }));
`;

describe('signature workers from the compiled package', () => {
  for (const backend of ['node:crypto', undefined]) {
    it(`verify in order with the main thread's module (${backend ?? 'default backend'})`, () => {
      const dir = mkdtempSync(join(tmpdir(), 'medledger-workers-'));
      writeFileSync(join(dir, 'check.mjs'), script);
      const out = execFileSync(process.execPath, [join(dir, 'check.mjs')], {
        cwd: root,
        env: { ...process.env, ...(backend ? { MEDLEDGER_ED25519: backend } : {}) },
        encoding: 'utf8',
      });
      rmSync(dir, { recursive: true, force: true });
      const result = JSON.parse(out.trim().split('\n').pop()!) as { backend: string; refused: number[]; count: number };
      if (backend) expect(result.backend).toBe(backend);
      expect(result).toMatchObject({ refused: [5], count: 301 });
    });
  }
});
