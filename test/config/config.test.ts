import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { AgentConfig } from '../../agent/config.js';
import { generatedFiles } from '../../config/generate.js';
import { ConfigError, loadConfigFile, parseConfigText } from '../../protocols/config-file.js';
import { RelayConfig } from '../../relay/config.js';
import { tempDir } from '../helpers/temp.js';

const ROOT = join(import.meta.dirname, '..', '..');
const run = promisify(execFile);

describe('config', () => {
  it('generated JSON Schema and reference are current (run `npm run config:generate`)', () => {
    for (const [file, text] of Object.entries(generatedFiles())) expect(readFileSync(file, 'utf8'), file).toBe(text);
  });

  it('the example configs are valid', () => {
    const env = { PLANTLINK_AGENT_TOKEN: 'agent.0123456789abcdef', SALESFORCE_CLIENT_ID: 'id', SALESFORCE_CLIENT_SECRET: 'secret' };
    expect(() => parseConfigText(readFileSync(join(ROOT, 'config/agent.example.yaml'), 'utf8'), AgentConfig, 'agent', env)).not.toThrow();
    expect(() => parseConfigText(readFileSync(join(ROOT, 'config/relay.example.yaml'), 'utf8'), RelayConfig, 'relay', env)).not.toThrow();
  });

  it('names file, line, column and key of a bad value, and of an unknown key', () => {
    const text = readFileSync(join(ROOT, 'config/agent.example.yaml'), 'utf8')
      .replace('url: wss://relay.example.com/v1/uplink', 'url: https://relay.example.com')
      .replace('  publishingIntervalMs: 250', '  publishingIntervalMs: 250\n    publishingIntervall: 100');
    try {
      parseConfigText(text, AgentConfig, 'agent.yaml', { PLANTLINK_AGENT_TOKEN: 'agent.0123456789abcdef' });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const message = (e as ConfigError).message;
      expect(message).toMatch(/agent\.yaml:14:8 uplink\.url: must be a ws:\/\/ or wss:\/\/ URL/);
      expect(message).toMatch(/agent\.yaml:24:5 sources\.0\.publishingIntervall: unknown key/);
    }
  });

  it('refuses an unset environment variable instead of using an empty string', () => {
    const text = readFileSync(join(ROOT, 'config/agent.example.yaml'), 'utf8');
    expect(() => parseConfigText(text, AgentConfig, 'agent.yaml', {})).toThrow(/agent\.yaml:15:10: environment variable PLANTLINK_AGENT_TOKEN is not set/);
  });

  it('reads ${file:PATH} secrets relative to the config file, and names the line of one it cannot read without echoing any secret', () => {
    const { dir, cleanup } = tempDir();
    try {
      writeFileSync(join(dir, 'agent-token'), 'agent.0123456789abcdef\n', { mode: 0o600 });
      const text = readFileSync(join(ROOT, 'config/agent.example.yaml'), 'utf8').replace('${PLANTLINK_AGENT_TOKEN}', '${file:agent-token}');
      const config = parseConfigText(text, AgentConfig, join(dir, 'agent.yaml'), {});
      expect(config.uplink).toMatchObject({ token: 'agent.0123456789abcdef' });
      const missing = text.replace('${file:agent-token}', '${file:no-such-token}');
      expect(() => parseConfigText(missing, AgentConfig, join(dir, 'agent.yaml'), {})).toThrow(/agent\.yaml:15:10: cannot read secret file .*no-such-token: ENOENT/);
    } finally {
      cleanup();
    }
  });

  it('`plantlink agent check` exits 2 with the problem on stderr, 0 on a valid file', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const bad = join(dir, 'agent.yaml');
      writeFileSync(bad, 'agent: { id: a, plant: p }\nuplink: { kind: carrier-pigeon }\nsources: []\n');
      const cli = ['--import', 'tsx', join(ROOT, 'installers/plantlink.ts'), 'agent', 'check', '--config', bad];
      const failed = await run(process.execPath, cli).catch((e: { code: number; stderr: string }) => e);
      expect(failed).toMatchObject({ code: 2 });
      expect((failed as { stderr: string }).stderr).toMatch(/agent\.yaml:2:\d+ uplink/);
      const good = join(dir, 'good.yaml');
      writeFileSync(good, readFileSync(join(ROOT, 'config/agent.example.yaml'), 'utf8').replace('${PLANTLINK_AGENT_TOKEN}', 'agent.0123456789abcdef'));
      const ok = await run(process.execPath, [...cli.slice(0, -1), good]);
      expect(ok.stdout).toContain('valid');
    } finally {
      cleanup();
    }
  });

  it('loadConfigFile reports an unreadable file as a config error', () => {
    expect(() => loadConfigFile('/nonexistent/agent.yaml', AgentConfig)).toThrow(ConfigError);
  });
});
