/**
 * The relay's container recipe, read as text: docker cannot build here (no daemon), so these
 * checks keep the Dockerfile consistent with the repository (the build script, the CLI's health
 * command, the data folder) rather than prove the image works. installers/README.md says so.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..', '..');
const DOCKERFILE = readFileSync(join(ROOT, 'installers', 'container', 'Dockerfile'), 'utf8');

/** Instructions with their continuation lines joined, comments dropped. */
const instructions = DOCKERFILE.replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'))
  .map((l) => {
    const [op, ...rest] = l.split(/\s+/);
    return { op: op!.toUpperCase(), args: rest.join(' ') };
  });
const final = instructions.slice(instructions.findLastIndex((i) => i.op === 'FROM'));
const json = (op: string) => JSON.parse(final.find((i) => i.op === op)!.args) as string[];

describe('installers/container/Dockerfile', () => {
  it('builds the single executable in a first stage with the repository build script', () => {
    const froms = instructions.filter((i) => i.op === 'FROM');
    expect(froms).toHaveLength(2);
    expect(froms[0]!.args).toMatch(/^node:24[\w.-]* AS build$/);
    const build = instructions.find((i) => i.op === 'RUN' && i.args.includes('build.ts'))!.args;
    const script = /(installers\/sea\/build\.ts)/.exec(build)![1]!;
    expect(existsSync(join(ROOT, script))).toBe(true);
    expect(build).toMatch(/--target linux-x64 --out \/out/);
  });

  it('runs as a non-root user with the data folder as a volume', () => {
    const user = final.filter((i) => i.op === 'USER').at(-1)!.args;
    expect(user.split(':')[0]).not.toMatch(/^(0|root)$/);
    expect(final.find((i) => i.op === 'VOLUME')!.args).toContain('/var/lib/plantlink-relay');
    expect(final.find((i) => i.op === 'ENV' && i.args.startsWith('PLANTLINK_NATIVE_DIR='))!.args).toMatch(/^PLANTLINK_NATIVE_DIR=\/var\/lib\/plantlink-relay\//);
  });

  it('checks health with a CLI command that exists, on the binary the image installs', () => {
    const health = final.find((i) => i.op === 'HEALTHCHECK')!.args;
    const cmd = JSON.parse(health.slice(health.indexOf('CMD ') + 4)) as string[];
    const installedAt = /\S+\s+(\S+)$/.exec(final.find((i) => i.op === 'COPY' && i.args.includes('plantlink-linux-x64'))!.args)![1];
    expect(cmd[0]).toBe(installedAt);
    expect(json('ENTRYPOINT')).toEqual([installedAt]);
    // The subcommand and its options, asked of the CLI itself.
    const help = execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'installers', 'plantlink.ts'), ...cmd.slice(1, -2), '--help'], { cwd: ROOT, encoding: 'utf8' });
    expect(help).toMatch(/^Usage: plantlink relay health \[options\]/);
    expect(help).toContain('--config <file>');
  });

  it('keeps node_modules, caches and build output out of the build context', () => {
    const ignore = readFileSync(join(ROOT, 'installers', 'container', 'Dockerfile.dockerignore'), 'utf8').split('\n');
    for (const p of ['node_modules', '.cache', 'dist', '.git']) expect(ignore).toContain(p);
  });
});
