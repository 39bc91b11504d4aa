/**
 * The Windows installers, as far as this Linux machine can check them: the WinSW service
 * definitions are well-formed XML with the elements the services need, and install.ps1 agrees
 * with them and with the example configs. PowerShell itself is not available here, so the
 * scripts are not run (installers/README.md says so).
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import { AgentConfig } from '../../agent/config.js';
import { parseConfigText } from '../../protocols/config-file.js';
import { RelayConfig } from '../../relay/config.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const WINDOWS = join(ROOT, 'installers', 'windows');
const read = (name: string) => readFileSync(join(WINDOWS, name), 'utf8');

interface WinswService {
  id: string;
  executable: string;
  arguments: string;
  workingdirectory: string;
  env: { '@_name': string; '@_value': string } | { '@_name': string; '@_value': string }[];
  serviceaccount: { username: string };
  startmode: string;
  stoptimeout: string;
  onfailure: { '@_action': string; '@_delay': string }[];
  logpath: string;
  log: { '@_mode': string };
}

const parse = (xml: string) => new XMLParser({ ignoreAttributes: false, isArray: (name) => name === 'onfailure' }).parse(xml) as { service: WinswService };

describe.each(['agent', 'relay'] as const)('plantlink-%s.xml (WinSW)', (role) => {
  const xml = read(`plantlink-${role}.xml`);

  it('is well-formed XML', () => {
    expect(XMLValidator.validate(xml)).toBe(true);
  });

  it('runs plantlink.exe next to the wrapper with the config under ProgramData', () => {
    const s = parse(xml).service;
    expect(s.id).toBe(`plantlink-${role}`);
    expect(s.executable).toBe('%BASE%\\plantlink.exe');
    expect(s.arguments).toBe(`${role} run --config "%ProgramData%\\plantlink\\${role}.yaml"`);
    expect(s.workingdirectory).toBe(`%ProgramData%\\plantlink\\${role}`);
    expect([s.env].flat()).toContainEqual({ '@_name': 'PLANTLINK_NATIVE_DIR', '@_value': `%ProgramData%\\plantlink\\${role}\\native` });
  });

  it('runs as LocalService, starts automatically, restarts on failure and logs to rolling files', () => {
    const s = parse(xml).service;
    expect(s.serviceaccount.username).toBe('NT AUTHORITY\\LocalService');
    expect(s.startmode).toBe('Automatic');
    expect(s.onfailure.length).toBeGreaterThan(0);
    expect(s.onfailure.every((f) => f['@_action'] === 'restart')).toBe(true);
    expect(s.logpath).toBe('%ProgramData%\\plantlink\\logs');
    expect(s.log['@_mode']).toBe('roll-by-size');
  });

  it('gives the service longer to stop than the CLI takes to give up after Ctrl+C', () => {
    const cliGiveUp = Number(/setTimeout\(\(\) => process\.exit\(1\), (\d[\d_]*)\)/.exec(readFileSync(join(ROOT, 'installers', 'plantlink.ts'), 'utf8'))![1]!.replaceAll('_', '')) / 1000;
    const m = /^(\d+)\s*sec$/.exec(parse(xml).service.stoptimeout);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(cliGiveUp);
  });
});

describe('the XML check above', () => {
  it('rejects a definition with a broken tag (so "well-formed" means something)', () => {
    expect(XMLValidator.validate(read('plantlink-agent.xml').replace('</stoptimeout>', '</stoptimout>'))).not.toBe(true);
  });
});

describe('install.ps1 and uninstall.ps1 (not run: no PowerShell on this machine)', () => {
  const install = read('install.ps1');

  it('require an elevated session', () => {
    expect(install).toMatch(/^#Requires -RunAsAdministrator$/m);
    expect(read('uninstall.ps1')).toMatch(/^#Requires -RunAsAdministrator$/m);
  });

  it('offer exactly the roles that have a service definition', () => {
    const roles = /\[ValidateSet\(([^)]*)\)\]\s*\[string\[\]\]\s*\$Role/.exec(install)![1]!.split(',').map((r) => r.trim().replace(/'/g, ''));
    expect(roles).toEqual(['agent', 'relay']);
    for (const r of roles) expect(parse(read(`plantlink-${r}.xml`)).service.id).toBe(`plantlink-${r}`);
  });

  it('write starter configs the real schemas accept, with dataDir where the service definition says', () => {
    // The script's own pattern and replacement (.NET and JavaScript agree on this regex).
    const [, pattern, replacement] = /-replace '([^']+)', "([^"]+)"/.exec(install)!;
    for (const [role, schema, env] of [
      ['agent', AgentConfig, { PLANTLINK_AGENT_TOKEN: 'a-token-of-sufficient-length' }],
      ['relay', RelayConfig, { SALESFORCE_CLIENT_ID: 'id', SALESFORCE_CLIENT_SECRET: 'secret' }],
    ] as const) {
      const example = readFileSync(join(ROOT, 'config', `${role}.example.yaml`), 'utf8');
      const flags = pattern!.startsWith('(?m)') ? 'm' : '';
      const written = example.replace(new RegExp(pattern!.replace('(?m)', ''), flags), replacement!.replace('`$1', '$$1').replace('$R', role));
      const config = parseConfigText(written, schema, `${role}.yaml`, env) as { agent?: { dataDir: string }; relay?: { dataDir: string } };
      const dataDir = (config.agent ?? config.relay)!.dataDir;
      expect(dataDir).toBe(`C:/ProgramData/plantlink/${role}`);
      expect(read(`plantlink-${role}.xml`)).toContain(`(${role}.dataDir: ${dataDir})`);
    }
  });

  it('never put secrets on a command line or in the shipped templates', () => {
    for (const r of ['agent', 'relay']) expect(parse(read(`plantlink-${r}.xml`)).service.env).toEqual({ '@_name': 'PLANTLINK_NATIVE_DIR', '@_value': `%ProgramData%\\plantlink\\${r}\\native` });
    expect(install).toMatch(/Invoke-Icacls @\(\$definition, '\/inheritance:r'/);
  });
});
