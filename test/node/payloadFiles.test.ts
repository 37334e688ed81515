import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PayloadFiles } from '../../src/node/store/payloadFiles.js';

const id = (c: string) => c.repeat(64);

describe('payload files survive a crash at any point', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
  const fresh = () => {
    const d = mkdtempSync(join(tmpdir(), 'payloads-'));
    dirs.push(d);
    return new PayloadFiles(d);
  };

  it('a staged file the store committed is promoted; one it never committed is removed', () => {
    const files = fresh();
    files.stage(id('a'), new Uint8Array([1]));
    files.stage(id('b'), new Uint8Array([2]));
    // crash here: the batch referencing 'a' was written, the one for 'b' was not
    files.reconcile((tx) => tx === id('a'));
    expect(files.read(id('a'))).toEqual(new Uint8Array([1]));
    expect(files.read(id('b'))).toBeUndefined();
    expect(existsSync(join(files.dir, 'bb', `${id('b')}.staged`))).toBe(false);
  });

  it('a file whose reference a purge deleted is removed even if the unlink never happened', () => {
    const files = fresh();
    files.stage(id('c'), new Uint8Array([3]));
    files.promote(id('c'));
    files.reconcile(() => false);
    expect(files.read(id('c'))).toBeUndefined();
    expect(existsSync(join(files.dir, 'cc', id('c')))).toBe(false);
  });
});
