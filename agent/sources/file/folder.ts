/**
 * File-system steps of the drop folder protocol. Every move is a rename (atomic within a
 * volume); across volumes (EXDEV) it is copy, fsync, rename into place, then unlink, so a
 * crash leaves the file in its old place (read again, deduplicated) and never nowhere.
 */
import { constants } from 'node:fs';
import { copyFile, mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { extname, join } from 'node:path';

/** Shell-like pattern: `*`, `?`, `{a,b}`; case-insensitive; a leading "." must be matched literally. */
export function globMatcher(pattern: string): (name: string) => boolean {
  let re = '';
  let inBraces = false;
  for (const ch of pattern) {
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else if (ch === '{' && !inBraces) {
      inBraces = true;
      re += '(?:';
    } else if (ch === '}' && inBraces) {
      inBraces = false;
      re += ')';
    } else if (ch === ',' && inBraces) re += '|';
    else re += ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  const regex = new RegExp(`^${re}$`, 'i');
  const dotted = pattern.startsWith('.');
  return (name) => (dotted || !name.startsWith('.')) && regex.test(name);
}

export interface DropEntry {
  name: string;
  size: number;
  mtimeMs: number;
}

/** Regular files in `dir`, oldest first (then by name). Files that vanish meanwhile are left out. */
export async function listFiles(dir: string, accept: (name: string) => boolean = () => true): Promise<DropEntry[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const files: DropEntry[] = [];
  for (const e of entries) {
    if (!e.isFile() || !accept(e.name)) continue;
    try {
      const s = await stat(join(dir, e.name));
      files.push({ name: e.name, size: s.size, mtimeMs: s.mtimeMs });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return files.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** Makes renames in `dir` durable. Not possible on Windows (and not needed there): ignored. */
export async function fsyncDir(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, constants.O_RDONLY);
    await handle.sync();
  } catch {
    // EISDIR / EPERM on Windows, EINVAL on some network file systems
  } finally {
    await handle?.close();
  }
}

/** Moves a file; never overwrites (the caller picks a free name). */
export async function moveFile(from: string, to: string): Promise<void> {
  if (await exists(to)) throw Object.assign(new Error(`${to} already exists`), { code: 'EEXIST' });
  try {
    await rename(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    const partial = `${to}.partial`;
    await copyFile(from, partial);
    const h = await open(partial, 'r+');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
    await rename(partial, to);
    await unlink(from);
  }
}

/** `name`, or `<base>.<tag><ext>`, or `<base>.<tag>~<n><ext>`: the first for which `taken` says no. */
export async function freeName(name: string, tag: string, taken: (candidate: string) => Promise<boolean>): Promise<string> {
  if (!(await taken(name))) return name;
  const ext = extname(name);
  const base = ext === '' ? name : name.slice(0, -ext.length);
  for (let n = 1; ; n++) {
    const candidate = `${base}.${tag}${n === 1 ? '' : `~${n}`}${ext}`;
    if (!(await taken(candidate))) return candidate;
  }
}

export async function ensureDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
}
