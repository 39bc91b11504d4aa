import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { OpcUaSourceConfig } from '../../../../agent/sources/opcua/config.js';

const minimal = {
  name: 'line-opcua',
  kind: 'opcua',
  endpointUrl: 'opc.tcp://127.0.0.1:4840',
  lines: [{ equipment: 'L1', nodes: { workOrder: 'ns=1;s=L1.WorkOrder', state: 'ns=1;s=L1.State' } }],
};

describe('OpcUaSourceConfig', () => {
  it('fills defaults', () => {
    const c = OpcUaSourceConfig.parse(minimal);
    expect(c).toMatchObject({
      publishingIntervalMs: 250,
      maxKeepAliveCount: 10,
      stallAfterKeepAlives: 3,
      samplingIntervalMs: 0,
      queueSize: 100,
      sessionTimeoutMs: 60_000,
      reconnect: { baseMs: 500, maxMs: 10_000 },
      security: { mode: 'None' },
      identity: { type: 'anonymous' },
    });
    expect(c.lines[0]).toMatchObject({ unit: 'EA', states: { Idle: 'idle', Released: 'released', Running: 'running', Held: 'held', Completed: 'completed' } });
  });

  it('parses the sample config in the README', () => {
    const readme = readFileSync(fileURLToPath(new URL('../../../../agent/sources/opcua/README.md', import.meta.url)), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(yaml).toBeDefined();
    const [sample] = parse(yaml!) as unknown[];
    const c = OpcUaSourceConfig.parse(sample);
    expect(c.lines.map((l) => l.equipment)).toEqual(['L1', 'L2']);
    expect(c.lines[1]!.nodes.state).toBe('/Objects/1:Plant/1:L2/1:State');
    expect(c.lines[0]!.quantityDeadband).toEqual({ type: 'absolute', value: 10, onServer: true });
  });

  it('takes a quantity deadband per line: absolute, >= 0, on the server by default; 0 when unset', () => {
    const line = (quantityDeadband: unknown) => OpcUaSourceConfig.safeParse({ ...minimal, lines: [{ ...minimal.lines[0], quantityDeadband }] });
    expect(OpcUaSourceConfig.parse(minimal).lines[0]!.quantityDeadband).toEqual({ type: 'absolute', value: 0, onServer: true });
    expect(line({ type: 'absolute', value: 2.5 }).data?.lines[0]!.quantityDeadband).toEqual({ type: 'absolute', value: 2.5, onServer: true });
    expect(line({ type: 'absolute', value: 5, onServer: false }).data?.lines[0]!.quantityDeadband.onServer).toBe(false);
    expect(line({ type: 'absolute', value: -1 }).success).toBe(false);
    expect(line({ type: 'percent', value: 5 }).success).toBe(false);
    expect(line({ value: 5 }).success).toBe(false);
    expect(line(5).success).toBe(false);
    expect(line({ type: 'absolute', value: 5, onserver: true }).success).toBe(false);
  });

  it('rejects unknown keys, missing required nodes, bad urls, duplicate lines and unknown line states', () => {
    const bad = (patch: object) => OpcUaSourceConfig.safeParse({ ...minimal, ...patch }).success;
    expect(bad({ publishingIntervallMs: 100 })).toBe(false);
    expect(bad({ endpointUrl: 'http://plc:4840' })).toBe(false);
    expect(bad({ lines: [{ equipment: 'L1', nodes: { workOrder: 'ns=1;s=A' } }] })).toBe(false);
    expect(bad({ lines: [...minimal.lines, ...minimal.lines] })).toBe(false);
    expect(bad({ lines: [{ ...minimal.lines[0], states: { Running: 'busy' } }] })).toBe(false);
    expect(bad({ security: { mode: 'Encrypt' } })).toBe(false);
    expect(bad({ reconnect: { baseMs: 5000, maxMs: 1000 } })).toBe(false);
    expect(bad({ name: 'has space' })).toBe(false);
  });

  it('takes security modes, policies, a user name identity and our certificate lifetime', () => {
    const ok = (patch: object) => OpcUaSourceConfig.safeParse({ ...minimal, ...patch });
    expect(ok({ security: { mode: 'SignAndEncrypt' } }).data?.security).toEqual({ mode: 'SignAndEncrypt', policy: 'Basic256Sha256' });
    expect(ok({ security: { mode: 'Sign', policy: 'Aes256_Sha256_RsaPss' } }).data?.security).toEqual({ mode: 'Sign', policy: 'Aes256_Sha256_RsaPss' });
    expect(ok({ security: { mode: 'None' } }).data?.security).toEqual({ mode: 'None' });
    expect(ok({ security: { mode: 'None', policy: 'Basic256Sha256' } }).success).toBe(false);
    expect(ok({ security: { mode: 'SignAndEncrypt', policy: 'Basic128Rsa15' } }).success).toBe(false);
    const user = ok({ identity: { type: 'username', userName: 'op', password: 'x' } });
    expect(user.data?.identity).toEqual({ type: 'username', userName: 'op', password: 'x' });
    expect(ok({ identity: { type: 'username', userName: 'op' } }).success).toBe(false);
    expect(ok({ identity: { type: 'anonymous', password: 'x' } }).success).toBe(false);
    expect(ok({}).data?.ownCertificate).toEqual({ validityDays: 3650, renewBeforeDays: 30 });
    expect(ok({ ownCertificate: { validityDays: 60, renewBeforeDays: 60 } }).success).toBe(false);
  });

  it('describes every field', () => {
    const schema = z.toJSONSchema(OpcUaSourceConfig, { io: 'input' }) as Record<string, unknown>;
    const undescribed: string[] = [];
    const walk = (node: unknown, at: string) => {
      if (!node || typeof node !== 'object') return;
      const n = node as { properties?: Record<string, { description?: string }>; items?: unknown; additionalProperties?: unknown };
      for (const [key, child] of Object.entries(n.properties ?? {})) {
        if (!child.description) undescribed.push(`${at}.${key}`);
        walk(child, `${at}.${key}`);
      }
      walk(n.items, `${at}[]`);
    };
    walk(schema, '$');
    expect(undescribed).toEqual([]);
  });
});
