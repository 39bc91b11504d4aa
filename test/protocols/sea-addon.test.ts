/**
 * How the single executable gets its native addon onto disk and loaded (protocols/sea-addon.ts):
 * content-addressed files in a folder no other user can write, loaded with process.dlopen and
 * handed to better-sqlite3 as `nativeBinding`. Run here on the source checkout's own addon; the
 * SEA itself is exercised end to end in test/installers/sea.test.ts.
 */
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { ensurePrivateDir, materializeAddon, nativeAddonDir } from '../../protocols/sea-addon.js';
import { tempDir } from '../helpers/temp.js';

const { dir, cleanup } = tempDir('plantlink-sea-addon-');
afterAll(() => cleanup());

describe('nativeAddonDir', () => {
  it('prefers PLANTLINK_NATIVE_DIR, then systemd CacheDirectory, then a per-user temp folder', () => {
    expect(nativeAddonDir({ PLANTLINK_NATIVE_DIR: '/x', CACHE_DIRECTORY: '/var/cache/a' })).toBe('/x');
    expect(nativeAddonDir({ CACHE_DIRECTORY: '/var/cache/a:/var/cache/b' })).toBe('/var/cache/a/native');
    expect(nativeAddonDir({})).toMatch(new RegExp(`plantlink-native-${process.getuid!()}$`));
  });
});

describe('materializeAddon', () => {
  it('writes the bytes under a name carrying their hash, and reuses an identical file', () => {
    const folder = join(dir, 'reuse');
    const file = materializeAddon(folder, 'thing.node', Buffer.from('addon v1'));
    expect(file).toMatch(/thing-[0-9a-f]{16}\.node$/);
    expect(readFileSync(file, 'utf8')).toBe('addon v1');
    expect(statSync(folder).mode & 0o777).toBe(0o700);
    const mtime = statSync(file).mtimeMs;
    expect(materializeAddon(folder, 'thing.node', Buffer.from('addon v1'))).toBe(file);
    expect(statSync(file).mtimeMs).toBe(mtime);
    // Another version lands beside it, never over it (a running process may have it mapped).
    const other = materializeAddon(folder, 'thing.node', Buffer.from('addon v2'));
    expect(other).not.toBe(file);
    expect(readdirSync(folder).sort()).toHaveLength(2);
  });

  it('replaces a file whose content no longer matches its name (a crash mid-write, tampering)', () => {
    const folder = join(dir, 'repair');
    const file = materializeAddon(folder, 'thing.node', Buffer.from('the real addon'));
    writeFileSync(file, 'the real ad');
    expect(materializeAddon(folder, 'thing.node', Buffer.from('the real addon'))).toBe(file);
    expect(readFileSync(file, 'utf8')).toBe('the real addon');
  });
});

describe('ensurePrivateDir', () => {
  it('refuses a folder that group or others may write', () => {
    const folder = join(dir, 'shared');
    mkdirSync(folder);
    chmodSync(folder, 0o777);
    expect(() => ensurePrivateDir(folder)).toThrow(/writable by group or others \(mode 777\).*PLANTLINK_NATIVE_DIR/);
  });

  it('refuses a symbolic link (someone could point it anywhere)', () => {
    const target = join(dir, 'target');
    mkdirSync(target, { mode: 0o700 });
    symlinkSync(target, join(dir, 'link'));
    expect(() => ensurePrivateDir(join(dir, 'link'))).toThrow(/is a symbolic link/);
  });

  it('refuses a folder another user owns', () => {
    const folder = join(dir, 'theirs');
    mkdirSync(folder, { mode: 0o700 });
    try {
      chownSync(folder, 4242, 4242);
    } catch (e) {
      throw new Error(`this test makes a folder owned by another user, which needs root (as on the dev machines and CI): ${String(e)}`);
    }
    expect(() => ensurePrivateDir(folder)).toThrow(/belongs to uid 4242/);
  });
});

describe('loading a materialized addon the way the single executable does', () => {
  it('dlopens the copy and better-sqlite3 runs on it as nativeBinding', () => {
    // The checkout's own better-sqlite3 addon stands in for the SEA asset.
    const addonPath = join(createRequire(import.meta.url).resolve('better-sqlite3/package.json'), '..', 'build', 'Release', 'better_sqlite3.node');
    const file = materializeAddon(join(dir, 'load'), 'better_sqlite3.node', readFileSync(addonPath));
    const mod: { exports: unknown } = { exports: {} };
    process.dlopen(mod, file, constants.dlopen.RTLD_NOW);
    const db = new Database(':memory:', { nativeBinding: mod.exports as string });
    try {
      expect(db.prepare('SELECT 6 * 7 AS answer').get()).toEqual({ answer: 42 });
    } finally {
      db.close();
    }
  });
});
