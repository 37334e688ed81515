import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Off-chain payloads (record ciphertext, wrapped keys) as one file each, beside the LevelDB. Deleting a
 * record must really remove its ciphertext from the replica; a LevelDB delete only hides the value until
 * some later compaction, a file is gone when it is unlinked.
 *
 * Files are staged before the LevelDB batch that references them and promoted after it, so a crash at
 * any point leaves either a committed, referenced file or an unreferenced one that `reconcile` removes.
 */
export class PayloadFiles {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  private path(txIdHex: string): string {
    return join(this.dir, txIdHex.slice(0, 2), txIdHex);
  }

  read(txIdHex: string): Uint8Array | undefined {
    try {
      return new Uint8Array(readFileSync(this.path(txIdHex)));
    } catch {
      return undefined;
    }
  }

  stage(txIdHex: string, bytes: Uint8Array): void {
    const path = this.path(txIdHex);
    mkdirSync(join(this.dir, txIdHex.slice(0, 2)), { recursive: true, mode: 0o700 });
    writeFileSync(`${path}.staged`, bytes, { mode: 0o600 });
  }

  promote(txIdHex: string): void {
    const path = this.path(txIdHex);
    if (existsSync(`${path}.staged`)) renameSync(`${path}.staged`, path);
  }

  remove(txIdHex: string): void {
    const path = this.path(txIdHex);
    rmSync(path, { force: true });
    rmSync(`${path}.staged`, { force: true });
  }

  /** After a crash: promote staged files the store references, delete every file it does not. */
  reconcile(isReferenced: (txIdHex: string) => boolean): void {
    for (const shard of readdirSync(this.dir)) {
      for (const name of readdirSync(join(this.dir, shard))) {
        const txIdHex = name.replace(/\.staged$/, '');
        if (!isReferenced(txIdHex)) rmSync(join(this.dir, shard, name), { force: true });
        else if (name.endsWith('.staged')) this.promote(txIdHex);
      }
    }
  }
}
