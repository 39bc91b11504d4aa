import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { SoapSourceConfig } from '../../../../agent/sources/soap/config.js';

const minimal = {
  kind: 'soap',
  name: 'erp-shipments',
  wsdlUrl: 'http://erp.local/ws?wsdl',
  operation: 'GetShipmentChanges',
  cursor: { requestField: 'changedSince', watermarkField: 'ChangedAt' },
  itemsPath: 'shipments.Shipment',
  map: { event: 'shipment', key: 'ShipmentNo', occurredAt: 'ChangedAt', fields: { status: '$lowercase(Status)' } },
};

describe('SoapSourceConfig', () => {
  it('fills defaults', () => {
    expect(SoapSourceConfig.parse(minimal)).toMatchObject({
      request: {},
      cursor: { watermarkFrom: 'item', initial: '1970-01-01T00:00:00Z', overlapMs: 0 },
      pollIntervalMs: 30_000,
      timeoutMs: 30_000,
      retry: { baseMs: 1000, maxMs: 60_000 },
      quarantineKept: 20,
    });
  });

  it('parses the sample config in the README', () => {
    const readme = readFileSync(fileURLToPath(new URL('../../../../agent/sources/soap/README.md', import.meta.url)), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
    const [sample] = parse(yaml!) as unknown[];
    const c = SoapSourceConfig.parse(sample);
    expect(c).toMatchObject({ operation: 'GetShipmentChanges', itemsPath: 'shipments.Shipment', cursor: { pageTokenField: 'pageToken' } });
  });

  it('rejects unknown keys, a lone page token setting and a mapping that does not compile', () => {
    expect(SoapSourceConfig.safeParse({ ...minimal, pollInterval: 5 }).success).toBe(false);
    expect(SoapSourceConfig.safeParse({ ...minimal, cursor: { ...minimal.cursor, pageTokenField: 'pageToken' } }).error?.issues[0]).toMatchObject({
      path: ['cursor', 'nextPageTokenPath'],
      message: 'pageTokenField and nextPageTokenPath go together',
    });
    expect(SoapSourceConfig.safeParse({ ...minimal, map: { ...minimal.map, key: '$lowercase(' } }).success).toBe(false);
    expect(SoapSourceConfig.safeParse({ ...minimal, itemsPath: 'shipments[0]' }).success).toBe(false);
  });

  it('describes every field', () => {
    const missing: string[] = [];
    const walk = (node: unknown, path: string) => {
      if (!node || typeof node !== 'object') return;
      const s = node as { properties?: Record<string, { description?: string }>; anyOf?: unknown[]; allOf?: unknown[] };
      for (const [key, child] of Object.entries(s.properties ?? {})) {
        if (!child.description) missing.push(`${path}${key}`);
        walk(child, `${path}${key}.`);
      }
      for (const branch of [...(s.anyOf ?? []), ...(s.allOf ?? [])]) walk(branch, path);
    };
    walk(z.toJSONSchema(SoapSourceConfig, { io: 'input', unrepresentable: 'any' }), '');
    expect(missing).toEqual([]);
  });
});
