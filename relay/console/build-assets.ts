/**
 * Bundles the console's front end (ui/main.js: preact, htm, uPlot) into one JS and one CSS
 * string with esbuild. Runs at package time (installers/sea/build.ts embeds the result into
 * the single executable) and, from a source checkout, on the console's first request.
 * esbuild is a devDependency: nothing here may be reached inside the executable.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { ConsoleAssets } from './assets.js';

const UI = join(dirname(fileURLToPath(import.meta.url)), 'ui');

export async function buildConsoleAssets(): Promise<ConsoleAssets> {
  const result = await build({
    entryPoints: [join(UI, 'main.js')],
    bundle: true,
    write: false,
    outdir: 'out', // names the outputs only (write: false)
    format: 'iife',
    platform: 'browser',
    target: ['chrome110', 'firefox110', 'safari16'],
    minify: true,
    legalComments: 'none',
    logLevel: 'silent',
  });
  const js = result.outputFiles.find((f) => f.path.endsWith('.js'));
  const css = result.outputFiles.find((f) => f.path.endsWith('.css'));
  if (!js || !css) throw new Error(`bundling the console UI gave ${result.outputFiles.map((f) => f.path).join(', ')}, expected one .js and one .css`);
  return { js: js.text, css: css.text };
}
