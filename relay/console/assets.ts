/**
 * The console's JS and CSS: the copy embedded at package time when there is one (the single
 * executable), else bundled once from ui/ with esbuild (a source checkout, where esbuild is
 * installed as a devDependency). The build is shared by concurrent first requests.
 */
import { createHash } from 'node:crypto';
import { embeddedAssets } from './assets.embedded.js';

export interface ConsoleAssets {
  js: string;
  css: string;
}

export interface ServedAssets extends ConsoleAssets {
  /** Short content hash, for cache-busting URLs and ETags. */
  version: string;
}

let pending: Promise<ServedAssets> | undefined;

function withVersion(a: ConsoleAssets): ServedAssets {
  return { ...a, version: createHash('sha256').update(a.js).update(a.css).digest('hex').slice(0, 12) };
}

export function consoleAssets(): Promise<ServedAssets> {
  pending ??= (embeddedAssets ? Promise.resolve(embeddedAssets) : import('./build-assets.js').then((m) => m.buildConsoleAssets())).then(withVersion);
  // A failed build is not cached: the next request tries again (and says why).
  pending.catch(() => (pending = undefined));
  return pending;
}
