import { describe, expect, it } from 'vitest';
import { FileSourceConfig } from '../../../../agent/sources/file/config.js';
import { globMatcher } from '../../../../agent/sources/file/folder.js';
import { SHIPMENT_MAP } from './helpers.js';

const base = { name: 'erp', kind: 'file', folder: '/data/drop', format: { type: 'csv' }, map: SHIPMENT_MAP };

describe('file source config', () => {
  it('fills the defaults', () => {
    const c = FileSourceConfig.parse(base);
    expect(c).toMatchObject({
      pattern: '*',
      encoding: 'auto',
      ready: { mode: 'size-stable', checks: 3, intervalMs: 1000 },
      watch: { mode: 'events', pollIntervalMs: 5000 },
      archiveFolder: 'archive',
      quarantineFolder: 'quarantine',
      batchRows: 500,
      format: { type: 'csv', delimiter: ',', quote: '"', header: true, skipLines: 0 },
    });
  });

  it('refuses unknown keys, a CSV without header or columns, and an archive in the drop folder', () => {
    expect(FileSourceConfig.safeParse({ ...base, folders: 'x' }).success).toBe(false);
    expect(FileSourceConfig.safeParse({ ...base, format: { type: 'csv', header: false } }).error?.issues[0]?.path).toEqual(['format', 'columns']);
    expect(FileSourceConfig.safeParse({ ...base, archiveFolder: '.' }).error?.issues[0]?.path).toEqual(['archiveFolder']);
    expect(FileSourceConfig.safeParse({ ...base, quarantineFolder: 'archive' }).success).toBe(false);
    expect(FileSourceConfig.safeParse({ ...base, format: { type: 'xml' } }).success).toBe(false);
    expect(FileSourceConfig.safeParse({ ...base, ready: { mode: 'done-marker', suffix: 'done' } }).success).toBe(false);
  });

  it('matches names like a shell glob, case-insensitively, not dot files', () => {
    const m = globMatcher('ship_*.{csv,txt}');
    expect(['ship_1.csv', 'SHIP_2.TXT', 'ship_.csv'].every(m)).toBe(true);
    expect(['ship_1.csv.tmp', 'xship_1.csv', 'ship_1.xml'].some(m)).toBe(false);
    expect(globMatcher('*')('.hidden')).toBe(false);
    expect(globMatcher('a?c.csv')('abc.csv')).toBe(true);
  });
});
