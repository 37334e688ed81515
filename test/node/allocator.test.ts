import { describe, expect, it } from 'vitest';
import { allocatorEnv } from '../../src/cli/nodeProcess.js';
import { allocatorInUse } from '../../src/node/allocator.js';

describe('the allocator of a node process', () => {
  it('is jemalloc when the machine has it, else glibc with two arenas', () => {
    expect(allocatorEnv((p) => p === '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2')).toMatchObject({ LD_PRELOAD: '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2' });
    expect(allocatorEnv((p) => p === '/usr/lib64/libjemalloc.so.2')).toMatchObject({
      LD_PRELOAD: '/usr/lib64/libjemalloc.so.2',
      MALLOC_CONF: expect.stringContaining('dirty_decay_ms'),
    });
    expect(allocatorEnv(() => false)).toEqual({ MALLOC_ARENA_MAX: '2' });
  });

  it('is reported as the one this process runs on', () => {
    expect(allocatorInUse()).toBe((process.env.LD_PRELOAD ?? '').includes('jemalloc') ? 'jemalloc' : 'glibc');
  });
});
