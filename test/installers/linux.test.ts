/**
 * The Linux installers: the systemd units (checked by `systemd-analyze verify` and by their
 * hardening directives), and install.sh / uninstall.sh run for real against a scratch root
 * (PLANTLINK_ROOT) with stand-ins for systemctl and the user tools, so installing, upgrading
 * (stop, swap, start, rollback) and uninstalling can be watched step by step without touching
 * this machine's services or users.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { AgentConfig } from '../../agent/config.js';
import { parseConfigText } from '../../protocols/config-file.js';
import { RelayConfig } from '../../relay/config.js';
import { tempDir } from '../helpers/temp.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const LINUX = join(ROOT, 'installers', 'linux');
const ROLES = ['agent', 'relay'] as const;
const run = promisify(execFile);
const { dir: work, cleanup } = tempDir('plantlink-linux-installer-');
afterAll(() => cleanup());

/** [section, key, value] for every directive of a unit file, in order. */
function directives(file: string): [string, string, string][] {
  const out: [string, string, string][] = [];
  let section = '';
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) section = header[1]!;
    else {
      const eq = line.indexOf('=');
      out.push([section, line.slice(0, eq), line.slice(eq + 1)]);
    }
  }
  return out;
}

describe.each(ROLES)('plantlink-%s.service', (role) => {
  const unit = join(LINUX, `plantlink-${role}.service`);
  const service = () => Object.fromEntries(directives(unit).filter(([s]) => s === 'Service').map(([, k, v]) => [k, v]));

  it('passes systemd-analyze verify with no warning', () => {
    if (!existsSync('/usr/bin/systemd-analyze')) throw new Error('systemd-analyze not found: apt-get install systemd (it verifies the unit files)');
    const r = verifyUnit(readFileSync(unit, 'utf8'), `plantlink-${role}.service`);
    expect(r).toEqual({ code: 0, output: '' });
  });

  it('runs the binary as the dedicated user with the config under /etc/plantlink', () => {
    expect(service()).toMatchObject({
      User: 'plantlink',
      Group: 'plantlink',
      ExecStart: `/opt/plantlink/bin/plantlink ${role} run --config /etc/plantlink/${role}.yaml`,
      EnvironmentFile: `-/etc/plantlink/${role}.env`,
      StateDirectory: `plantlink-${role}`,
      CacheDirectory: `plantlink-${role}`,
      ConfigurationDirectory: 'plantlink',
    });
  });

  it('is hardened: read-only system, no home, no new privileges, private /tmp, no capabilities', () => {
    expect(service()).toMatchObject({
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      NoNewPrivileges: 'yes',
      PrivateTmp: 'yes',
      PrivateDevices: 'yes',
      CapabilityBoundingSet: '',
      RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
      SystemCallFilter: '@system-service',
    });
    // V8 needs writable executable memory: this one would make every start crash.
    expect(service().MemoryDenyWriteExecute).toBeUndefined();
  });

  it('stops with SIGTERM and waits longer than the CLI takes to give up, restarts on failure', () => {
    const s = service();
    expect(s).toMatchObject({ KillSignal: 'SIGTERM', Restart: 'on-failure', RestartPreventExitStatus: '2' });
    expect(seconds(s.RestartSec!)).toBeGreaterThanOrEqual(1);
    // installers/plantlink.ts exits by itself this long after SIGTERM; systemd must not SIGKILL first.
    const cliGiveUp = Number(/setTimeout\(\(\) => process\.exit\(1\), (\d[\d_]*)\)/.exec(readFileSync(join(ROOT, 'installers', 'plantlink.ts'), 'utf8'))![1]!.replaceAll('_', '')) / 1000;
    expect(seconds(s.TimeoutStopSec!)).toBeGreaterThan(cliGiveUp);
  });
});

describe('systemd-analyze verify as used above', () => {
  it('reports a misspelled directive (so a clean run means something)', () => {
    if (!existsSync('/usr/bin/systemd-analyze')) throw new Error('systemd-analyze not found: apt-get install systemd');
    const broken = readFileSync(join(LINUX, 'plantlink-agent.service'), 'utf8').replace('ProtectHome=yes', 'ProtectHom=yes');
    const r = verifyUnit(broken, 'plantlink-agent.service');
    expect(r.output).toMatch(/Unknown key.*ProtectHom/);
  });
});

/** `systemd-analyze verify` on a scratch root holding the system's units, the binary's path and this unit. */
function verifyUnit(text: string, name: string): { code: number; output: string } {
  const root = join(work, `verify-${Math.random().toString(36).slice(2)}`);
  mkdirSync(join(root, 'usr', 'lib', 'systemd'), { recursive: true });
  cpSync('/usr/lib/systemd/system', join(root, 'usr', 'lib', 'systemd', 'system'), { recursive: true });
  mkdirSync(join(root, 'opt', 'plantlink', 'bin'), { recursive: true });
  writeFileSync(join(root, 'opt', 'plantlink', 'bin', 'plantlink'), '#!/bin/sh\n', { mode: 0o755 });
  mkdirSync(join(root, 'etc', 'systemd', 'system'), { recursive: true });
  writeFileSync(join(root, 'etc', 'systemd', 'system', name), text);
  // Warnings (an unknown key, a bad value) go to stderr with exit code 0: both are read.
  const r = spawnSync('systemd-analyze', ['verify', `--root=${root}`, '--man=no', `/etc/systemd/system/${name}`], { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, output: `${r.stdout}${r.stderr}`.trim() };
}

function seconds(value: string): number {
  const m = /^(\d+)\s*(s|sec|min)?$/.exec(value);
  if (!m) throw new Error(`unexpected time span ${value}`);
  return Number(m[1]) * (m[2] === 'min' ? 60 : 1);
}

describe('install.sh and uninstall.sh', () => {
  const root = join(work, 'root');
  const state = join(work, 'state');
  const stubs = join(work, 'stubs');
  mkdirSync(root, { recursive: true });
  mkdirSync(state, { recursive: true });
  mkdirSync(stubs, { recursive: true });

  // Stand-ins for the commands the scripts call on a real host; each logs what it was asked.
  const stub = (name: string, body: string) => writeFileSync(join(stubs, name), `#!/usr/bin/env bash\nset -u\nstate="$STUB_STATE"\n${body}\n`, { mode: 0o755 });
  stub(
    'systemctl',
    `bin="$PLANTLINK_ROOT/opt/plantlink/bin/plantlink"
ver="$(sed -n 's/^VERSION=//p' "$bin" 2>/dev/null | head -1)"
echo "$* [binary \${ver:-none}]" >>"$state/systemctl.log"
args=(); for a in "$@"; do case "$a" in --*) ;; *) args+=("$a") ;; esac; done
case "\${args[0]}" in
  is-active) [ -f "$state/active-\${args[1]}" ] ;;
  stop) rm -f "$state/active-\${args[1]}" ;;
  start) if [ "$ver" = "\${STUB_CRASHING_VERSION:-}" ]; then rm -f "$state/active-\${args[1]}"; else touch "$state/active-\${args[1]}"; fi ;;
  disable) [[ " $* " == *" --now "* ]] && rm -f "$state/active-\${args[1]}"; true ;;
  *) true ;;
esac`,
  );
  stub('getent', `[ -f "$state/$1-$2" ]`);
  stub('useradd', `echo "useradd $*" >>"$state/users.log"; touch "$state/passwd-\${@: -1}" "$state/group-\${@: -1}"`);
  stub('userdel', `echo "userdel $*" >>"$state/users.log"; rm -f "$state/passwd-$1" "$state/group-$1"`);
  stub('groupdel', `echo "groupdel $*" >>"$state/users.log"; rm -f "$state/group-$1"`);
  stub('chown', `echo "chown $*" >>"$state/chown.log"`);

  /** A stand-in plantlink binary: prints its version; `check` wants the config file and, for the agent, the token. */
  const fakeBinary = (version: string, { rejectsEveryConfig = false } = {}) => {
    const file = join(work, `plantlink-${version}`);
    writeFileSync(
      file,
      `#!/usr/bin/env bash
VERSION=${version}
case "$1" in
  --version) echo "$VERSION" ;;
  agent|relay)
    [ "$2" = check ] || exit 64
    [ -f "$4" ] || { echo "$4: no such file" >&2; exit 2; }
    ${rejectsEveryConfig ? 'echo "$4: unknown key (this version)" >&2; exit 2' : ''}
    if [ "$1" = agent ] && [ -z "\${PLANTLINK_AGENT_TOKEN:-}" ]; then echo "environment variable PLANTLINK_AGENT_TOKEN is not set" >&2; exit 2; fi
    printf '%s\n' "\${PLANTLINK_AGENT_TOKEN:-}" "\${PLANTLINK_NOTE:-}" "\${PLANTLINK_QUOTED:-}" >"$STUB_STATE/check-env"
    echo "$4: valid" ;;
  *) exit 64 ;;
esac
`,
      { mode: 0o755 },
    );
    return file;
  };

  const script = async (name: 'install.sh' | 'uninstall.sh', args: string[], env: Record<string, string> = {}) => {
    try {
      const r = await run('bash', [join(LINUX, name), ...args], {
        env: { PATH: `${stubs}:/usr/bin:/bin:/usr/sbin:/sbin`, PLANTLINK_ROOT: root, STUB_STATE: state, PLANTLINK_START_WAIT: '0', ...env },
      });
      return { code: 0, out: r.stdout + r.stderr };
    } catch (e) {
      const x = e as { code: number; stdout: string; stderr: string };
      return { code: x.code, out: x.stdout + x.stderr };
    }
  };
  const at = (p: string) => join(root, p);
  const systemctlLog = () => (existsSync(join(state, 'systemctl.log')) ? readFileSync(join(state, 'systemctl.log'), 'utf8').trim().split('\n') : []);
  const resetLog = () => writeFileSync(join(state, 'systemctl.log'), '');
  const installedVersion = () => /VERSION=(\S+)/.exec(readFileSync(at('opt/plantlink/bin/plantlink'), 'utf8'))![1];

  it('installs the agent: user, binary, unit, a starter config pointing at the state directory; not started without the token', async () => {
    const r = await script('install.sh', ['--agent', '--binary', fakeBinary('1.0.0')]);
    expect(r.code, r.out).toBe(0);
    expect(readFileSync(join(state, 'users.log'), 'utf8')).toMatch(/^useradd --system --user-group .*--shell \/usr\/sbin\/nologin .* plantlink$/m);
    expect(installedVersion()).toBe('1.0.0');
    expect(statSync(at('opt/plantlink/bin/plantlink')).mode & 0o777).toBe(0o755);
    expect(readlinkSync(at('usr/local/bin/plantlink'))).toBe('/opt/plantlink/bin/plantlink');
    expect(readFileSync(at('etc/systemd/system/plantlink-agent.service'), 'utf8')).toBe(readFileSync(join(LINUX, 'plantlink-agent.service'), 'utf8'));
    expect(existsSync(at('opt/plantlink/README.md'))).toBe(true);
    expect(statSync(at('etc/plantlink/agent.env')).mode & 0o777).toBe(0o640);
    expect(statSync(at('etc/plantlink/agent.yaml')).mode & 0o777).toBe(0o640);
    expect(readFileSync(join(state, 'chown.log'), 'utf8')).toContain(`chown root:plantlink ${at('etc/plantlink/agent.env')}`);
    expect(systemctlLog()).toContain('daemon-reload [binary 1.0.0]');
    expect(systemctlLog()).toContain('enable --quiet plantlink-agent.service [binary 1.0.0]');
    expect(systemctlLog().some((l) => l.startsWith('start'))).toBe(false);
    expect(r.out).toMatch(/enabled but not started: .*PLANTLINK_AGENT_TOKEN is not set/s);
  });

  it('writes a starter agent config that the real config schema accepts, with dataDir in the unit\'s StateDirectory', () => {
    const file = at('etc/plantlink/agent.yaml');
    const config = parseConfigText(readFileSync(file, 'utf8'), AgentConfig, file, { PLANTLINK_AGENT_TOKEN: 'a-token-of-sufficient-length' });
    expect(config.agent.dataDir).toBe('/var/lib/plantlink-agent');
  });

  it('starts the agent once the token is in agent.env (running install.sh again)', async () => {
    writeFileSync(at('etc/plantlink/agent.env'), 'PLANTLINK_AGENT_TOKEN=a-token-of-sufficient-length\n');
    resetLog();
    const r = await script('install.sh', ['--agent', '--binary', fakeBinary('1.0.0')]);
    expect(r.code, r.out).toBe(0);
    expect(systemctlLog()).toContain('start plantlink-agent.service [binary 1.0.0]');
    expect(r.out).toMatch(/plantlink-agent is running/);
  });

  it('reads agent.env as systemd does for the config check: nothing expanded, nothing run, surrounding quotes removed', async () => {
    const env = at('etc/plantlink/agent.env');
    const before = readFileSync(env, 'utf8');
    const marker = join(state, 'ran-from-agent-env');
    // Sourced by bash, the token would expand ($HOME, $(id), `id`) and the note would run `touch`.
    const token = 'tok$HOME$(id)`id`$1-end';
    writeFileSync(env, ['# a comment', `PLANTLINK_AGENT_TOKEN=${token}`, `PLANTLINK_NOTE=x touch ${marker}`, 'PLANTLINK_QUOTED="two words"', ''].join('\n'));
    try {
      const r = await script('install.sh', ['--agent', '--binary', fakeBinary('1.0.0')]);
      expect(r.code, r.out).toBe(0);
      expect(existsSync(marker)).toBe(false);
      expect(readFileSync(join(state, 'check-env'), 'utf8')).toBe(`${token}\nx touch ${marker}\ntwo words\n`);
    } finally {
      writeFileSync(env, before);
    }
  });

  it('upgrades: stop on the old binary, swap, start on the new one; outbox, config and secrets untouched', async () => {
    mkdirSync(at('var/lib/plantlink-agent'), { recursive: true });
    writeFileSync(at('var/lib/plantlink-agent/outbox.sqlite'), 'pending events');
    const outboxInode = statSync(at('var/lib/plantlink-agent/outbox.sqlite')).ino;
    const config = readFileSync(at('etc/plantlink/agent.yaml'), 'utf8') + '# edited by the operator\n';
    writeFileSync(at('etc/plantlink/agent.yaml'), config);
    resetLog();
    const r = await script('install.sh', ['--binary', fakeBinary('2.0.0')]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/upgrading 1\.0\.0 -> 2\.0\.0/);
    const log = systemctlLog();
    const stop = log.indexOf('stop plantlink-agent.service [binary 1.0.0]');
    const start = log.indexOf('start plantlink-agent.service [binary 2.0.0]');
    expect(stop, log.join('\n')).toBeGreaterThanOrEqual(0);
    expect(start, log.join('\n')).toBeGreaterThan(stop);
    expect(installedVersion()).toBe('2.0.0');
    expect(readFileSync(at('opt/plantlink/bin/plantlink.previous'), 'utf8')).toMatch(/VERSION=1\.0\.0/);
    expect(readFileSync(at('var/lib/plantlink-agent/outbox.sqlite'), 'utf8')).toBe('pending events');
    expect(statSync(at('var/lib/plantlink-agent/outbox.sqlite')).ino).toBe(outboxInode);
    expect(readFileSync(at('etc/plantlink/agent.yaml'), 'utf8')).toBe(config);
    expect(readFileSync(at('etc/plantlink/agent.env'), 'utf8')).toBe('PLANTLINK_AGENT_TOKEN=a-token-of-sufficient-length\n');
  });

  it('refuses an upgrade whose binary rejects the current config, before stopping anything', async () => {
    resetLog();
    const r = await script('install.sh', ['--binary', fakeBinary('3.0.0', { rejectsEveryConfig: true })]);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/the new binary refuses \/etc\/plantlink\/agent\.yaml, nothing changed/);
    expect(installedVersion()).toBe('2.0.0');
    expect(systemctlLog().filter((l) => /^(stop|start)/.test(l))).toEqual([]);
    expect(existsSync(join(state, 'active-plantlink-agent.service'))).toBe(true);
  });

  it('rolls back to the previous binary when the service does not stay up on the new one', async () => {
    resetLog();
    const r = await script('install.sh', ['--binary', fakeBinary('4.0.0')], { STUB_CRASHING_VERSION: '4.0.0' });
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/did not stay up on 4\.0\.0; putting the previous binary back/);
    expect(installedVersion()).toBe('2.0.0');
    expect(systemctlLog().at(-1)).toBe('start plantlink-agent.service [binary 2.0.0]');
    expect(existsSync(join(state, 'active-plantlink-agent.service'))).toBe(true);
  });

  it('leaves a service the operator had stopped stopped on upgrade', async () => {
    await run('rm', ['-f', join(state, 'active-plantlink-agent.service')]);
    resetLog();
    const r = await script('install.sh', ['--binary', fakeBinary('5.0.0')]);
    expect(r.code, r.out).toBe(0);
    expect(installedVersion()).toBe('5.0.0');
    expect(r.out).toMatch(/plantlink-agent was stopped before the upgrade: left stopped/);
    expect(systemctlLog().some((l) => l.startsWith('start'))).toBe(false);
  });

  it('installs the relay beside the agent with its own starter config', async () => {
    const r = await script('install.sh', ['--relay', '--binary', fakeBinary('5.0.0'), '--no-start']);
    expect(r.code, r.out).toBe(0);
    const file = at('etc/plantlink/relay.yaml');
    const env = { SALESFORCE_CLIENT_ID: 'id', SALESFORCE_CLIENT_SECRET: 'secret' };
    expect(parseConfigText(readFileSync(file, 'utf8'), RelayConfig, file, env).relay.dataDir).toBe('/var/lib/plantlink-relay');
    expect(existsSync(at('etc/systemd/system/plantlink-relay.service'))).toBe(true);
  });

  it('uninstalls: services and binary gone; config, data and user kept', async () => {
    resetLog();
    const r = await script('uninstall.sh', []);
    expect(r.code, r.out).toBe(0);
    expect(systemctlLog()).toEqual(expect.arrayContaining([expect.stringMatching(/^disable --now --quiet plantlink-agent\.service/), expect.stringMatching(/^disable --now --quiet plantlink-relay\.service/)]));
    for (const gone of ['opt/plantlink', 'usr/local/bin/plantlink', 'etc/systemd/system/plantlink-agent.service', 'etc/systemd/system/plantlink-relay.service']) expect(existsSync(at(gone)), gone).toBe(false);
    expect(readFileSync(at('var/lib/plantlink-agent/outbox.sqlite'), 'utf8')).toBe('pending events');
    expect(existsSync(at('etc/plantlink/agent.yaml'))).toBe(true);
    expect(existsSync(join(state, 'passwd-plantlink'))).toBe(true);
    expect(r.out).toMatch(/kept \/etc\/plantlink \/var\/lib\/plantlink-agent/);
  });

  it('uninstall --purge removes config, data and the user too', async () => {
    const r = await script('uninstall.sh', ['--purge']);
    expect(r.code, r.out).toBe(0);
    for (const gone of ['etc/plantlink', 'var/lib/plantlink-agent']) expect(existsSync(at(gone)), gone).toBe(false);
    expect(readFileSync(join(state, 'users.log'), 'utf8')).toMatch(/^userdel plantlink$/m);
    expect(existsSync(join(state, 'passwd-plantlink'))).toBe(false);
  });

  it('are valid bash (bash -n) and executable', () => {
    for (const name of ['install.sh', 'uninstall.sh']) {
      execFileSync('bash', ['-n', join(LINUX, name)]);
      expect(statSync(join(LINUX, name)).mode & 0o111, name).not.toBe(0);
    }
  });
});
