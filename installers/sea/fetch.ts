/**
 * Fetches a package tarball from the npm registry with `npm pack` (which checks the registry's
 * integrity hash) and unpacks the members a build needs into a cache folder. A folder counts as
 * cached only once its `.complete` marker is written, after every member is in place, so an
 * interrupted fetch is simply redone. With the cache filled, builds need no network.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface FetchedPackage {
  dir: string;
  /** True when it came from the cache folder, without asking the registry. */
  cached: boolean;
}

/** Unpacks `members` (tarball paths such as `package/bin/node`; all when empty) of name@version into `<cacheDir>/<name>-<version>/`. */
export function fetchPackage(name: string, version: string, cacheDir: string, members: readonly string[] = []): FetchedPackage {
  const dir = join(cacheDir, `${name}-${version}`);
  if (existsSync(join(dir, '.complete'))) return { dir, cached: true };
  mkdirSync(cacheDir, { recursive: true });
  const work = mkdtempSync(join(cacheDir, `.fetch-${name}-`));
  try {
    let tarball: string;
    try {
      const out = execFileSync('npm', ['pack', `${name}@${version}`, '--pack-destination', work, '--json', '--silent'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 300_000,
      });
      const [packed] = JSON.parse(out) as { filename: string }[];
      if (!packed) throw new Error(`npm pack printed no file: ${out}`);
      tarball = join(work, packed.filename);
    } catch (e) {
      const stderr = (e as { stderr?: string }).stderr ?? '';
      throw new Error(`fetching ${name}@${version} from the npm registry (npm pack): ${e instanceof Error ? e.message : String(e)}${stderr ? `\n${stderr}` : ''}`, { cause: e });
    }
    const unpacked = join(work, 'unpacked');
    mkdirSync(unpacked);
    execFileSync('tar', ['-xzf', tarball, '-C', unpacked, ...members], { stdio: ['ignore', 'ignore', 'pipe'] });
    rmSync(tarball);
    writeFileSync(join(unpacked, '.complete'), `${name}@${version}\n`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(unpacked, dir);
    return { dir, cached: false };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
