import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { postgresUrl, StoreConfig } from '../../../relay/store/config.js';
import { tempDir } from '../../helpers/temp.js';

describe('relay.store config', () => {
  it('takes a PostgreSQL URL inline or from a file, with pool and lease defaults', () => {
    const { dir, cleanup } = tempDir();
    try {
      expect(StoreConfig.parse({ kind: 'postgres', url: 'postgres://db/x' })).toEqual({ kind: 'postgres', url: 'postgres://db/x', poolSize: 10, leaseMs: 60_000 });
      const file = join(dir, 'db-url');
      writeFileSync(file, 'postgres://db/from-file\n');
      const fromFile = StoreConfig.parse({ kind: 'postgres', urlFile: file, leaseMs: 5000 });
      if (fromFile.kind !== 'postgres') throw new Error('expected postgres');
      expect(postgresUrl(fromFile)).toBe('postgres://db/from-file');
    } finally {
      cleanup();
    }
  });

  it('refuses a PostgreSQL store with neither or both of url and urlFile, a too short lease, and unknown keys', () => {
    expect(StoreConfig.safeParse({ kind: 'postgres' }).success).toBe(false);
    expect(StoreConfig.safeParse({ kind: 'postgres', url: 'postgres://a', urlFile: '/x' }).success).toBe(false);
    expect(StoreConfig.safeParse({ kind: 'postgres', url: 'postgres://a', leaseMs: 10 }).success).toBe(false);
    expect(StoreConfig.safeParse({ kind: 'sqlite', url: 'postgres://a' }).success).toBe(false);
    expect(StoreConfig.parse({ kind: 'sqlite' })).toEqual({ kind: 'sqlite' });
  });
});
