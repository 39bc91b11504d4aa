/**
 * The console's pre-built front end inside the single executable. In a source checkout this
 * is undefined and the console bundles ui/ on first request (build-assets.ts);
 * installers/sea/build.ts replaces this module in its bundle with the assets it built.
 */
import type { ConsoleAssets } from './assets.js';

export const embeddedAssets: ConsoleAssets | undefined = undefined;
