import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { defaultHubSpotMappings, HubSpotSinkConfig } from '../../../../relay/sinks/hubspot/index.js';

const base = { name: 'crm', kind: 'hubspot', token: 'pat-na1-x', mappings: defaultHubSpotMappings };
const mapping = { eventType: 't', objectType: 'deals', idProperty: 'plantlink_work_order', idFrom: 'data.workOrder' };

function issues(input: unknown): string[] {
  const result = HubSpotSinkConfig.safeParse(input);
  return result.success ? [] : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('HubSpotSinkConfig', () => {
  it('accepts the sample config in the README', () => {
    const readme = readFileSync(new URL('../../../../relay/sinks/hubspot/README.md', import.meta.url), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(yaml).toBeDefined();
    expect(issues(parseYaml(yaml!))).toEqual([]);
  });

  it('accepts the default mappings and fills defaults', () => {
    expect(issues(base)).toEqual([]);
    const config = HubSpotSinkConfig.parse({ ...base, mappings: [mapping] });
    expect(config).toMatchObject({ baseUrl: 'https://api.hubapi.com', timeoutMs: 15_000, batchSize: 100 });
    expect(config.mappings[0]).toMatchObject({ apply: 'every', properties: {} });
  });

  it('rejects unknown keys at every level', () => {
    expect(issues({ ...base, retries: 3 })).not.toEqual([]);
    expect(issues({ ...base, mappings: [{ ...mapping, upsert: true }] })).not.toEqual([]);
  });

  it('rejects plain http to a remote host, batches above 100 and malformed names or paths', () => {
    expect(issues({ ...base, baseUrl: 'http://api.hubapi.com' })[0]).toMatch(/^baseUrl: must use https/);
    expect(issues({ ...base, baseUrl: 'http://127.0.0.1:8080' })).toEqual([]);
    expect(issues({ ...base, batchSize: 101 })[0]).toMatch(/^batchSize/);
    expect(issues({ ...base, token: '' })[0]).toMatch(/^token/);
    expect(issues({ ...base, mappings: [{ ...mapping, idFrom: 'data..workOrder' }] })[0]).toMatch(/^mappings\.0\.idFrom/);
    expect(issues({ ...base, mappings: [{ ...mapping, objectType: 'deals/../x' }] })[0]).toMatch(/^mappings\.0\.objectType/);
    expect(issues({ ...base, mappings: [{ ...mapping, objectType: '2-1234567' }] })).toEqual([]);
    expect(issues({ ...base, mappings: [{ ...mapping, properties: { 'bad name': 'id' } }] })[0]).toMatch(/^mappings\.0\.properties/);
  });

  it('rejects hs_object_id as idProperty, the idProperty among properties, and duplicate mappings', () => {
    expect(issues({ ...base, mappings: [{ ...mapping, idProperty: 'hs_object_id' }] })[0]).toMatch(/^mappings\.0\.idProperty: hs_object_id is not a unique property/);
    expect(issues({ ...base, mappings: [{ ...mapping, properties: { plantlink_work_order: 'id' } }] })[0]).toMatch(/^mappings\.0\.properties\.plantlink_work_order/);
    expect(issues({ ...base, mappings: [mapping, mapping] })[0]).toMatch(/^mappings\.1: duplicate/);
  });

  it('describes every option', () => {
    const undescribed = (shape: Record<string, z.ZodType>, prefix: string): string[] =>
      Object.entries(shape).filter(([, schema]) => !schema.description).map(([key]) => `${prefix}${key}`);
    const shape = HubSpotSinkConfig.shape as unknown as Record<string, z.ZodType>;
    const mappingShape = (shape.mappings as unknown as z.ZodArray<z.ZodObject>).element.shape as Record<string, z.ZodType>;
    expect([...undescribed(shape, ''), ...undescribed(mappingShape, 'mappings.')]).toEqual([]);
  });
});
