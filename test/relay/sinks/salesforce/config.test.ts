import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { defaultSalesforceMappings, SalesforceSinkConfig } from '../../../../relay/sinks/salesforce/index.js';

const base = {
  name: 'crm',
  kind: 'salesforce',
  auth: { flow: 'client_credentials', clientId: 'id', clientSecret: 'secret' },
  mappings: defaultSalesforceMappings,
};

function issues(input: unknown): string[] {
  const result = SalesforceSinkConfig.safeParse(input);
  return result.success ? [] : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('SalesforceSinkConfig', () => {
  it('accepts every sample config in the README', () => {
    const readme = readFileSync(new URL('../../../../relay/sinks/salesforce/README.md', import.meta.url), 'utf8');
    const samples = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(samples.length).toBeGreaterThanOrEqual(2); // client credentials and JWT bearer
    for (const yaml of samples) expect(issues(parseYaml(yaml))).toEqual([]);
  });

  it('fills defaults', () => {
    const config = SalesforceSinkConfig.parse({ ...base, mappings: [{ eventType: 't', object: 'A__c', externalIdField: 'K__c', externalId: 'id' }] });
    expect(config).toMatchObject({ loginUrl: 'https://login.salesforce.com', apiVersion: '60.0', timeoutMs: 15_000, concurrency: 4, maxRecordsPerCall: 200 });
    expect(config.mappings[0]).toMatchObject({ apply: 'every', fields: {} });
  });

  it('rejects unknown keys at every level', () => {
    expect(issues({ ...base, retries: 3 })).not.toEqual([]);
    expect(issues({ ...base, auth: { ...base.auth, username: 'u' } })).not.toEqual([]);
    expect(issues({ ...base, mappings: [{ ...defaultSalesforceMappings[0], upsert: true }] })).not.toEqual([]);
  });

  it('rejects an unknown auth flow, plain http to a remote host, old API versions, calls over 200 records and malformed paths', () => {
    expect(issues({ ...base, auth: { flow: 'password', clientId: 'a', clientSecret: 'b' } })[0]).toMatch(/^auth\.flow/);
    expect(issues({ ...base, loginUrl: 'http://login.salesforce.com' })[0]).toMatch(/^loginUrl: must use https/);
    expect(issues({ ...base, loginUrl: 'http://127.0.0.1:8080' })).toEqual([]);
    expect(issues({ ...base, apiVersion: '45.0' })[0]).toMatch(/^apiVersion/);
    expect(issues({ ...base, maxRecordsPerCall: 201 })[0]).toMatch(/^maxRecordsPerCall/); // Salesforce's limit per sObject Collections call
    expect(issues({ ...base, maxRecordsPerCall: 0 })[0]).toMatch(/^maxRecordsPerCall/);
    expect(issues({ ...base, mappings: [{ ...defaultSalesforceMappings[0], externalId: 'data..workOrder' }] })[0]).toMatch(/^mappings\.0\.externalId/);
  });

  it('jwt_bearer: needs exactly one private key source, a username, a URL as audience, and no unknown keys', () => {
    const jwt = { flow: 'jwt_bearer', clientId: 'id', username: 'integration@example.com', privateKeyFile: '/etc/plantlink/salesforce.key' };
    expect(issues({ ...base, auth: jwt })).toEqual([]);
    expect(issues({ ...base, auth: { ...jwt, audience: 'https://test.salesforce.com' } })).toEqual([]);
    expect(issues({ ...base, auth: { ...jwt, privateKey: 'pem' } })[0]).toMatch(/^auth\.privateKeyFile: give exactly one/);
    const { privateKeyFile: _none, ...noKey } = jwt;
    expect(issues({ ...base, auth: noKey })[0]).toMatch(/^auth\.privateKeyFile: give exactly one/);
    const { username: _nobody, ...noUser } = jwt;
    expect(issues({ ...base, auth: noUser })[0]).toMatch(/^auth\.username/);
    expect(issues({ ...base, auth: { ...jwt, audience: 'login.salesforce.com' } })[0]).toMatch(/^auth\.audience/);
    expect(issues({ ...base, auth: { ...jwt, clientSecret: 's' } })).not.toEqual([]);
  });

  it('rejects the external id field or Id among the mapped fields, and duplicate mappings', () => {
    const mapping = { eventType: 't', object: 'A__c', externalIdField: 'K__c', externalId: 'id' };
    expect(issues({ ...base, mappings: [{ ...mapping, fields: { K__c: 'id' } }] })[0]).toMatch(/^mappings\.0\.fields\.K__c/);
    expect(issues({ ...base, mappings: [{ ...mapping, fields: { Id: 'id' } }] })[0]).toMatch(/^mappings\.0\.fields\.Id/);
    expect(issues({ ...base, mappings: [mapping, mapping] })[0]).toMatch(/^mappings\.1: duplicate/);
  });

  it('describes every option', () => {
    const undescribed = (shape: Record<string, z.ZodType>, prefix: string): string[] =>
      Object.entries(shape).filter(([, schema]) => !schema.description).map(([key]) => `${prefix}${key}`);
    const shape = SalesforceSinkConfig.shape as unknown as Record<string, z.ZodType>;
    const mapping = (shape.mappings as unknown as z.ZodArray<z.ZodObject>).element.shape as Record<string, z.ZodType>;
    const flows = (shape.auth as unknown as z.ZodDiscriminatedUnion<z.ZodObject[]>).options;
    expect(flows.length).toBe(2);
    const auth = flows.flatMap((flow, i) => undescribed(flow.shape as Record<string, z.ZodType>, `auth[${i}].`));
    expect([...undescribed(shape, ''), ...undescribed(mapping, 'mappings.'), ...auth]).toEqual([]);
    expect(flows.every((flow) => flow.description)).toBe(true);
  });
});
