import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { defaultNetSuiteMappings, netSuiteBaseUrl, NetSuiteSinkConfig } from '../../../../relay/sinks/netsuite/index.js';

const auth = { flow: 'client_credentials', clientId: 'id', certificateId: 'cert', privateKeyFile: '/etc/plantlink/netsuite.pem' };
const base = { name: 'erp', kind: 'netsuite', accountId: '1234567', auth, mappings: defaultNetSuiteMappings };
const mapping = { eventType: 't', recordType: 'customrecord_x', externalIdFrom: 'data.workOrder' };

function issues(input: unknown): string[] {
  const result = NetSuiteSinkConfig.safeParse(input);
  return result.success ? [] : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('NetSuiteSinkConfig', () => {
  it('accepts the sample config in the README', () => {
    const readme = readFileSync(new URL('../../../../relay/sinks/netsuite/README.md', import.meta.url), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(yaml).toBeDefined();
    expect(issues(parseYaml(yaml!))).toEqual([]);
  });

  it('accepts the default mappings and fills defaults', () => {
    expect(issues(base)).toEqual([]);
    const config = NetSuiteSinkConfig.parse({ ...base, mappings: [mapping] });
    expect(config).toMatchObject({ timeoutMs: 30_000, concurrency: 2, auth: { algorithm: 'ES256', scope: 'rest_webservices' } });
    expect(config.mappings[0]).toMatchObject({ apply: 'every', fields: {}, selects: {} });
  });

  it('derives the REST origin from the account id unless baseUrl is given', () => {
    expect(netSuiteBaseUrl({ accountId: '1234567_SB1' })).toBe('https://1234567-sb1.suitetalk.api.netsuite.com');
    expect(netSuiteBaseUrl({ accountId: '1234567', baseUrl: 'https://1234567.suitetalk.api.netsuite.com/' })).toBe('https://1234567.suitetalk.api.netsuite.com');
  });

  it('rejects unknown keys at every level', () => {
    expect(issues({ ...base, retries: 3 })).not.toEqual([]);
    expect(issues({ ...base, auth: { ...auth, clientSecret: 's' } })).not.toEqual([]);
    expect(issues({ ...base, mappings: [{ ...mapping, upsert: true }] })).not.toEqual([]);
    expect(issues({ ...base, mappings: [{ ...mapping, selects: { f: { from: 'id', values: { a: '1' }, other: 1 } } }] })).not.toEqual([]);
  });

  it('needs exactly one private key source, a known algorithm and known scopes', () => {
    expect(issues({ ...base, auth: { ...auth, privateKey: 'pem' } })[0]).toMatch(/^auth\.privateKeyFile: give exactly one/);
    const { privateKeyFile: _none, ...noKey } = auth;
    expect(issues({ ...base, auth: noKey })[0]).toMatch(/^auth\.privateKeyFile: give exactly one/);
    expect(issues({ ...base, auth: { ...auth, algorithm: 'RS256' } })[0]).toMatch(/^auth\.algorithm/);
    expect(issues({ ...base, auth: { ...auth, scope: 'rest_webservices,restlets' } })).toEqual([]);
    expect(issues({ ...base, auth: { ...auth, scope: 'everything' } })[0]).toMatch(/^auth\.scope/);
    expect(issues({ ...base, auth: { ...auth, flow: 'tba' } })[0]).toMatch(/^auth\.flow/);
  });

  it('requires https except to a loopback address, and an origin without a path', () => {
    expect(issues({ ...base, baseUrl: 'http://1234567.suitetalk.api.netsuite.com' })[0]).toMatch(/^baseUrl: must use https/);
    expect(issues({ ...base, baseUrl: 'http://127.0.0.1:8080' })).toEqual([]);
    expect(issues({ ...base, baseUrl: 'https://1234567.suitetalk.api.netsuite.com/services/rest' })[0]).toMatch(/^baseUrl: must be the origin only/);
  });

  it('rejects id or externalId among mapped fields, a field mapped twice, bad list ids and duplicate mappings', () => {
    expect(issues({ ...base, mappings: [{ ...mapping, fields: { externalId: 'id' } }] })[0]).toMatch(/^mappings\.0\.fields\.externalId/);
    expect(issues({ ...base, mappings: [{ ...mapping, selects: { id: { from: 'id', values: { a: '1' } } } }] })[0]).toMatch(/^mappings\.0\.selects\.id/);
    expect(issues({ ...base, mappings: [{ ...mapping, fields: { f: 'id' }, selects: { f: { from: 'id', values: { a: '1' } } } }] })[0]).toMatch(
      /^mappings\.0\.selects\.f: "f" is mapped in both/,
    );
    expect(issues({ ...base, mappings: [{ ...mapping, selects: { f: { from: 'id', values: { a: 'Released' } } } }] })[0]).toMatch(/^mappings\.0\.selects\.f\.values\.a/);
    expect(issues({ ...base, mappings: [{ ...mapping, externalIdFrom: 'data..workOrder' }] })[0]).toMatch(/^mappings\.0\.externalIdFrom/);
    expect(issues({ ...base, mappings: [mapping, mapping] })[0]).toMatch(/^mappings\.1: duplicate/);
  });

  it('describes every option', () => {
    const undescribed = (shape: Record<string, z.ZodType>, prefix: string): string[] =>
      Object.entries(shape).filter(([, schema]) => !schema.description).map(([key]) => `${prefix}${key}`);
    const shape = NetSuiteSinkConfig.shape as unknown as Record<string, z.ZodType>;
    const mappingShape = (shape.mappings as unknown as z.ZodArray<z.ZodObject>).element.shape as Record<string, z.ZodType>;
    const authShape = (shape.auth as unknown as z.ZodDiscriminatedUnion<[z.ZodObject]>).options[0].shape as Record<string, z.ZodType>;
    const selectShape = ((mappingShape.selects as unknown as { unwrap(): z.ZodRecord }).unwrap().valueType as unknown as z.ZodObject).shape as Record<string, z.ZodType>;
    expect([...undescribed(shape, ''), ...undescribed(mappingShape, 'mappings.'), ...undescribed(authShape, 'auth.'), ...undescribed(selectShape, 'selects.')]).toEqual([]);
  });
});
