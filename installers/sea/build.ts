/**
 * `npm run package`: builds plantlink as a single executable per target (Node's single
 * executable application support), needing no Node.js on the machine it runs on.
 *
 *   1. esbuild bundles installers/plantlink.ts and everything it imports into one CommonJS file
 *      (`require` inside an SEA loads only built-ins, so nothing may stay outside the bundle);
 *      better-sqlite3 resolves to the version whose prebuilt addon ships (see targets.ts). The
 *      relay's web console front end is bundled first and embedded as two strings (see
 *      `embedConsole`), so the executable never needs esbuild.
 *   2. Per target, the SEA blob: the bundle plus better-sqlite3's addon as an asset, made by the
 *      same Node version the blob is injected into.
 *   3. postject injects the blob into a copy of the official Node binary of that target.
 *   4. Smoke test of the binary this host can run: `--version` and `agent check`.
 *
 * The runtime and the addon come from the npm registry once and are kept in the cache folder
 * (`.cache/`, or PLANTLINK_SEA_CACHE); with it filled the build is offline. Build host: Linux x64
 * (it runs the Linux Node binary to make the blobs for every target).
 *
 *   node --import tsx installers/sea/build.ts [--target linux-x64|win-x64]... [--out dist] [--cache .cache]
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build, type Plugin } from 'esbuild';
import { SQLITE_ADDON_ASSET } from '../../protocols/sqlite.js';
import type { ConsoleAssets } from '../../relay/console/assets.js';
import { buildConsoleAssets } from '../../relay/console/build-assets.js';
import { fetchPackage } from './fetch.js';
import { stripAuthenticode } from './pe.js';
import { BETTER_SQLITE3_VERSION, isTargetName, NODE_VERSION, SEA_FUSE, TARGETS, type SeaTarget } from './targets.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Imports that are optional at run time and absent from node_modules: left as `require` calls
 * that fail only if reached. Each is reached only by a code path plantlink does not take.
 */
const OPTIONAL_EXTERNALS = [
  'proper-lockfile', // @ster5/global-mutex (node-opcua-pki): an alternative lock provider, optional peer
  'pg-native', // pg: the libpq binding, only with `new pg.native.Client`
  'bufferutil', // ws: optional speed-ups
  'utf-8-validate',
];

export interface BuildOptions {
  targets: SeaTarget['name'][];
  outDir: string;
  cacheDir: string;
  log?: (line: string) => void;
}

export interface BuiltBinary {
  target: SeaTarget['name'];
  file: string;
  bytes: number;
  sha256: string;
}

export interface BuildResult {
  binaries: BuiltBinary[];
  bundleBytes: number;
  /** Milliseconds per step, to keep an eye on CI time. */
  timings: Record<string, number>;
}

/**
 * Modules replaced by stubs in the bundle:
 * - the `demo` subcommand's code: it needs the source checkout (simulators, tsx children);
 * - node-opcua's test helpers, which the `node-opcua` package loads eagerly and which look for
 *   their package.json above `__dirname` at load time: inside an SEA there is none, and the
 *   agent died at start with "cannot find package.json at or above ...". plantlink uses neither
 *   of the two functions they export (nodeset file names for test servers).
 */
const STUBS: { filter: RegExp; name: string; contents: string }[] = [
  {
    filter: /\/test\/sim\/demo\.js$/,
    name: 'demo',
    contents: `export async function runDemo() {
  throw new Error('the demo runs from a source checkout (npm ci && npm start); this executable carries the agent and the relay');
}`,
  },
  {
    filter: /^node-opcua-address-space\/testHelpers$/,
    name: 'node-opcua-test-helpers',
    contents: `const unavailable = (name) => () => { throw new Error(name + ': node-opcua test helpers are not part of the plantlink executable'); };
export const get_empty_nodeset_filename = unavailable('get_empty_nodeset_filename');
export const get_mini_nodeset_filename = unavailable('get_mini_nodeset_filename');`,
  },
];

const stubs: Plugin = {
  name: 'plantlink-stubs',
  setup(b) {
    for (const stub of STUBS) {
      b.onResolve({ filter: stub.filter }, () => ({ path: stub.name, namespace: 'plantlink-stub' }));
    }
    b.onLoad({ filter: /.*/, namespace: 'plantlink-stub' }, (args) => ({ loader: 'js', contents: STUBS.find((s) => s.name === args.path)!.contents }));
  },
};

/**
 * The web console's JS and CSS, built now, replace relay/console/assets.embedded.ts (undefined
 * in a source checkout); its on-the-fly builder, which needs esbuild, becomes a stub.
 */
function embedConsole(assets: ConsoleAssets): Plugin {
  return {
    name: 'plantlink-console-assets',
    setup(b) {
      // Only relay/console/assets.ts's two imports.
      const fromConsole = (importer: string) => /[\\/]relay[\\/]console[\\/]assets\.ts$/.test(importer);
      b.onResolve({ filter: /^\.\/assets\.embedded\.js$/ }, (args) => (fromConsole(args.importer) ? { path: 'console-assets', namespace: 'plantlink-console' } : undefined));
      b.onResolve({ filter: /^\.\/build-assets\.js$/ }, (args) => (fromConsole(args.importer) ? { path: 'console-builder', namespace: 'plantlink-console' } : undefined));
      b.onLoad({ filter: /.*/, namespace: 'plantlink-console' }, (args) => ({
        loader: 'js',
        contents:
          args.path === 'console-assets'
            ? `export const embeddedAssets = ${JSON.stringify(assets)};`
            : `export async function buildConsoleAssets() { throw new Error('the console assets are embedded in this executable; nothing to build'); }`,
      }));
    },
  };
}

async function bundle(outFile: string, sqliteDir: string): Promise<number> {
  const consoleAssets = await buildConsoleAssets();
  const result = await build({
    entryPoints: [join(ROOT, 'installers', 'plantlink.ts')],
    outfile: outFile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: `node${NODE_VERSION.split('.')[0]}`,
    external: OPTIONAL_EXTERNALS,
    alias: { 'better-sqlite3': sqliteDir },
    plugins: [stubs, embedConsole(consoleAssets)],
    metafile: true,
    legalComments: 'external', // -> plantlink.cjs.LEGAL.txt, shipped in THIRD-PARTY-NOTICES.txt
    logLevel: 'silent',
  }).catch((e: unknown) => {
    const errors = (e as { errors?: { text: string; location?: { file: string; line: number } | null }[] }).errors ?? [];
    throw new Error(`bundling installers/plantlink.ts:\n${errors.map((x) => `  ${x.location ? `${x.location.file}:${x.location.line}: ` : ''}${x.text}`).join('\n') || String(e)}`, { cause: e });
  });
  // Nothing from the test tree may ride along (the demo stub keeps the simulators out).
  const fromTests = Object.keys(result.metafile.inputs).filter((f) => f.startsWith('test/'));
  if (fromTests.length > 0) throw new Error(`the bundle pulls in test code: ${fromTests.join(', ')}`);
  for (const w of result.warnings) process.stderr.write(`esbuild warning: ${w.location ? `${w.location.file}:${w.location.line}: ` : ''}${w.text}\n`);
  // import.meta is empty in the CommonJS bundle: code that needs it (createRequire(import.meta.url),
  // fileURLToPath(import.meta.url)) would start in a checkout and crash in the executable.
  const importMeta = result.warnings.filter((w) => w.text.includes('"import.meta" is not available'));
  if (importMeta.length > 0) {
    throw new Error(`import.meta has no value inside the executable; used at:\n${importMeta.map((w) => `  ${w.location ? `${w.location.file}:${w.location.line}` : '?'}`).join('\n')}`);
  }
  return statSync(outFile).size;
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** Writes the SEA blob of `target` with the Node binary that will run it. */
function makeBlob(hostNode: string, bundleFile: string, addon: string, workDir: string): string {
  const blob = join(workDir, 'sea-prep.blob');
  const config = join(workDir, 'sea-config.json');
  writeFileSync(
    config,
    JSON.stringify(
      {
        main: bundleFile,
        output: blob,
        disableExperimentalSEAWarning: true,
        // Code cache and snapshot are specific to the platform that makes them: off, so the
        // same recipe serves every target.
        useCodeCache: false,
        useSnapshot: false,
        assets: { [SQLITE_ADDON_ASSET]: addon },
      },
      null,
      2,
    ),
  );
  execFileSync(hostNode, ['--experimental-sea-config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  return blob;
}

async function inject(runtime: string, blob: string, output: string, target: SeaTarget): Promise<void> {
  rmSync(output, { force: true });
  copyFileSync(runtime, output);
  chmodSync(output, 0o755);
  // Node's Windows binary is Authenticode-signed; injecting invalidates the signature, so it is
  // removed first (Node's SEA docs: `signtool remove /s`), leaving an unsigned file to sign.
  if (target.platform === 'win32') writeFileSync(output, stripAuthenticode(readFileSync(output)));
  // postject ships no types; this is its documented API.
  const { inject: postject } = createRequire(import.meta.url)('postject') as {
    inject(file: string, name: string, data: Buffer, options: { sentinelFuse: string; overwrite?: boolean }): Promise<void>;
  };
  await postject(output, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: SEA_FUSE });
}

/** Runs the freshly built binary of this host: `--version` and `agent check` on the example config. */
export function smokeTest(binary: string): string[] {
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const run = (args: string[]) =>
    execFileSync(binary, args, { encoding: 'utf8', env: { ...process.env, PLANTLINK_AGENT_TOKEN: 'smoke-test-token' }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 }).trim();
  const printed = run(['--version']);
  if (printed !== version) throw new Error(`smoke test: ${basename(binary)} --version printed "${printed}", expected "${version}"`);
  const check = run(['agent', 'check', '--config', join(ROOT, 'config', 'agent.example.yaml')]);
  if (!/: valid \(agent /.test(check)) throw new Error(`smoke test: agent check printed "${check}"`);
  return [`--version: ${printed}`, `agent check: ${check}`];
}

export async function buildSea(options: BuildOptions): Promise<BuildResult> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error(`the build host must be Linux x64 (it runs Node's Linux binary to make the blobs), not ${process.platform}-${process.arch}`);
  const timings: Record<string, number> = {};
  const timed = async <T>(step: string, fn: () => T | Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      timings[step] = Math.round(performance.now() - t0);
    }
  };
  const outDir = resolve(options.outDir);
  const work = join(outDir, '.sea-build');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });

  const host = TARGETS['linux-x64'];
  const wanted = [...new Set(options.targets)].map((t) => TARGETS[t]);
  const runtimes = await timed('fetch', () => {
    const fetched = new Map<string, string>();
    for (const t of new Set([host, ...wanted])) {
      // Node's license text comes with the Linux package (the Windows one carries only the exe).
      const p = fetchPackage(t.nodePackage, NODE_VERSION, options.cacheDir, t === host ? [t.nodeBinary, 'package/LICENSE'] : [t.nodeBinary]);
      log(`${p.cached ? 'cached ' : 'fetched'} ${t.nodePackage}@${NODE_VERSION}`);
      fetched.set(t.name, join(p.dir, t.nodeBinary));
    }
    const sqlite = fetchPackage('better-sqlite3', BETTER_SQLITE3_VERSION, options.cacheDir, [
      'package/package.json',
      'package/LICENSE',
      'package/lib',
      ...wanted.map((t) => t.sqliteAddon),
    ]);
    log(`${sqlite.cached ? 'cached ' : 'fetched'} better-sqlite3@${BETTER_SQLITE3_VERSION}`);
    return { node: fetched, sqliteDir: sqlite.dir };
  });
  const hostNode = runtimes.node.get(host.name)!;

  const bundleFile = join(work, 'plantlink.cjs');
  const bundleBytes = await timed('bundle', () => bundle(bundleFile, join(runtimes.sqliteDir, 'package')));
  log(`bundled ${relative(ROOT, bundleFile)} (${(bundleBytes / 1e6).toFixed(1)} MB)`);

  const binaries: BuiltBinary[] = [];
  for (const target of wanted) {
    const targetWork = join(work, target.name);
    mkdirSync(targetWork, { recursive: true });
    const addon = join(runtimes.sqliteDir, target.sqliteAddon);
    const blob = await timed(`blob ${target.name}`, () => makeBlob(hostNode, bundleFile, addon, targetWork));
    const output = join(outDir, target.output);
    await timed(`inject ${target.name}`, () => inject(runtimes.node.get(target.name)!, blob, output, target));
    const built = { target: target.name, file: output, bytes: statSync(output).size, sha256: sha256(output) };
    binaries.push(built);
    log(`built ${relative(process.cwd(), output) || output} (${(built.bytes / 1e6).toFixed(1)} MB, Node ${NODE_VERSION}, better-sqlite3 ${BETTER_SQLITE3_VERSION})`);
  }
  // Checksums of the binaries (an upgrade can verify what it installs) and the licenses of what they carry.
  writeFileSync(join(outDir, 'SHA256SUMS'), binaries.map((b) => `${b.sha256}  ${basename(b.file)}\n`).join(''));
  writeFileSync(
    join(outDir, 'THIRD-PARTY-NOTICES.txt'),
    [
      `Node.js ${NODE_VERSION} (the runtime inside each binary)\n\n${readFileSync(join(dirname(hostNode), '..', 'LICENSE'), 'utf8')}`,
      `better-sqlite3 ${BETTER_SQLITE3_VERSION} (JavaScript and native addon)\n\n${readFileSync(join(runtimes.sqliteDir, 'package', 'LICENSE'), 'utf8')}`,
      `Bundled JavaScript packages (license comments kept by esbuild)\n\n${readFileSync(`${bundleFile}.LEGAL.txt`, 'utf8')}`,
    ].join(`\n${'='.repeat(78)}\n\n`),
  );
  rmSync(work, { recursive: true, force: true });

  const runnable = binaries.find((b) => TARGETS[b.target].platform === process.platform && TARGETS[b.target].arch === process.arch);
  if (runnable) for (const line of await timed('smoke test', () => smokeTest(runnable.file))) log(`smoke test ${line}`);
  return { binaries, bundleBytes, timings };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      target: { type: 'string', multiple: true },
      out: { type: 'string', default: join(ROOT, 'dist') },
      cache: { type: 'string', default: process.env.PLANTLINK_SEA_CACHE ?? join(ROOT, '.cache') },
    },
  });
  const targets = values.target ?? ['linux-x64', 'win-x64'];
  const unknown = targets.filter((t) => !isTargetName(t));
  if (unknown.length > 0) throw new Error(`unknown target ${unknown.join(', ')}; known: ${Object.keys(TARGETS).join(', ')}`);
  const t0 = performance.now();
  const result = await buildSea({ targets: targets as SeaTarget['name'][], outDir: values.out!, cacheDir: values.cache! });
  const steps = Object.entries(result.timings).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`);
  process.stdout.write(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s (${steps.join(', ')})\n`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    process.stderr.write(`package: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
