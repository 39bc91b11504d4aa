/**
 * Native addons inside the single executable (installers/sea). The SEA blob carries each addon
 * as an asset, but `require` inside an SEA loads only Node's built-ins, so the addon is written
 * to a private folder and loaded with `process.dlopen`.
 *
 * Invariants:
 * - The file loaded is byte-identical to the asset: its name carries the asset's SHA-256, and an
 *   existing file is hashed again before it is loaded (a truncated write from a crash is replaced).
 * - The folder is this user's alone: created 0700; refused if it is a symlink, owned by another
 *   user or writable by group or others, so no other local user can swap the library in.
 * - Folder: PLANTLINK_NATIVE_DIR, else systemd's CacheDirectory ($CACHE_DIRECTORY), else the
 *   temp folder. /tmp is often mounted noexec on hardened hosts, where dlopen fails: the
 *   service units set CacheDirectory for that reason.
 */
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { getAsset } from 'node:sea';

const loaded = new Map<string, unknown>();

/** The folder addons are written to (see the module comment for the order). */
export function nativeAddonDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PLANTLINK_NATIVE_DIR) return env.PLANTLINK_NATIVE_DIR;
  // systemd passes a colon-separated list when a unit names several cache directories.
  const systemdCache = env.CACHE_DIRECTORY?.split(':')[0];
  if (systemdCache) return join(systemdCache, 'native');
  const user = typeof process.getuid === 'function' ? `-${process.getuid()}` : '';
  return join(tmpdir(), `plantlink-native${user}`);
}

/** Creates the folder if needed and refuses one another local user could write to. */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (process.platform === 'win32') return; // per-user %TEMP% or the service's own folder; ACLs, not modes
  const st = lstatSync(dir);
  const problem = st.isSymbolicLink()
    ? 'is a symbolic link'
    : !st.isDirectory()
      ? 'is not a folder'
      : st.uid !== process.getuid!()
        ? `belongs to uid ${st.uid}, not to this user (uid ${process.getuid!()})`
        : (st.mode & 0o022) !== 0
          ? `is writable by group or others (mode ${(st.mode & 0o777).toString(8)})`
          : undefined;
  if (problem) throw new Error(`native addon folder ${dir} ${problem}; set PLANTLINK_NATIVE_DIR to a private folder`);
}

/** Writes `bytes` to `dir` under a content-addressed name (unless an identical file is there) and returns the path. */
export function materializeAddon(dir: string, name: string, bytes: Uint8Array): string {
  ensurePrivateDir(dir);
  const digest = createHash('sha256').update(bytes).digest('hex');
  const file = join(dir, `${name.replace(/\.node$/, '')}-${digest.slice(0, 16)}.node`);
  if (existsSync(file) && createHash('sha256').update(readFileSync(file)).digest('hex') === digest) return file;
  // Temp file and rename: two services starting at once never load a half-written library.
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes, { mode: 0o600 });
  renameSync(tmp, file);
  return file;
}

/** Loads the addon shipped as SEA asset `name` and returns its exports. Only valid inside an SEA. */
export function loadSeaAddon(name: string): unknown {
  const cached = loaded.get(name);
  if (cached) return cached;
  const dir = nativeAddonDir();
  let file: string;
  try {
    file = materializeAddon(dir, name, new Uint8Array(getAsset(name)));
  } catch (e) {
    throw new Error(`extracting native addon ${name} to ${dir}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  const mod: { exports: unknown } = { exports: {} };
  try {
    process.dlopen(mod, file, constants.dlopen.RTLD_NOW);
  } catch (e) {
    // The usual cause on Linux: the folder is on a noexec mount.
    throw new Error(`loading native addon ${file} (a noexec mount? set PLANTLINK_NATIVE_DIR): ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  loaded.set(name, mod.exports);
  return mod.exports;
}
