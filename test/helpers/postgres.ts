/**
 * A throwaway PostgreSQL cluster on a loopback port, for the tests of the relay's shared store.
 *
 * PostgreSQL refuses to run as root, so the cluster belongs to the `postgres` system user
 * (created by Debian's `postgresql` package, which `.ci/run` installs where missing): its
 * folder is made in /tmp and handed to that user, and `initdb` / `pg_ctl` run through
 * `runuser` when we are root. Debian keeps the binaries in /usr/lib/postgresql/<major>/bin,
 * off the PATH; both places are searched. Authentication is `trust` on 127.0.0.1 only.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../sim/stack-configs.js';

const run = promisify(execFile);

function findBinary(name: string): string {
  for (const dir of (process.env.PATH ?? '').split(':')) if (dir && existsSync(join(dir, name))) return join(dir, name);
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    for (const major of readdirSync(root).sort().reverse()) {
      const candidate = join(root, major, 'bin', name);
      if (existsSync(candidate)) return candidate;
    }
  }
  throw new Error(`PostgreSQL's ${name} not found on PATH or under /usr/lib/postgresql/*/bin: install Debian's postgresql package (.ci/run does)`);
}

function asPostgres(binary: string, args: string[]): [string, string[]] {
  return userInfo().uid === 0 ? ['runuser', ['-u', 'postgres', '--', binary, ...args]] : [binary, args];
}

export interface PostgresCluster {
  /** `postgres://plantlink@127.0.0.1:<port>/postgres` */
  url: string;
  port: number;
  dir: string;
  /** A fresh database on the cluster; returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Immediate shutdown (`pg_ctl stop -m immediate`): like a crash, recovery on the next start. */
  crash(): Promise<void>;
  start(): Promise<void>;
  /** Stops the cluster and removes its folder. */
  destroy(): Promise<void>;
}

export async function startPostgres(): Promise<PostgresCluster> {
  const initdb = findBinary('initdb');
  const pgCtl = findBinary('pg_ctl');
  const psql = findBinary('psql');
  const dir = mkdtempSync(join(tmpdir(), 'plantlink-pg-'));
  if (userInfo().uid === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(dir, uid, gid);
  }
  const data = join(dir, 'data');
  const port = await freePort();
  {
    const [cmd, args] = asPostgres(initdb, ['-D', data, '-U', 'plantlink', '-A', 'trust', '--no-sync', '-E', 'UTF8']);
    await run(cmd, args);
  }
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=200`;
  const start = async () => {
    const [cmd, args] = asPostgres(pgCtl, ['-D', data, '-o', options, '-l', join(dir, 'postgres.log'), '-w', 'start']);
    await run(cmd, args);
  };
  const stop = async (mode: 'fast' | 'immediate') => {
    const [cmd, args] = asPostgres(pgCtl, ['-D', data, '-m', mode, '-w', 'stop']);
    await run(cmd, args).catch(() => undefined);
  };
  await start();
  const url = `postgres://plantlink@127.0.0.1:${port}/postgres`;
  return {
    url,
    port,
    dir,
    async createDatabase(name) {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
      await run(psql, ['-h', '127.0.0.1', '-p', String(port), '-U', 'plantlink', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-c', `CREATE DATABASE ${name}`]);
      return `postgres://plantlink@127.0.0.1:${port}/${name}`;
    },
    crash: () => stop('immediate'),
    start,
    async destroy() {
      await stop('fast');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
