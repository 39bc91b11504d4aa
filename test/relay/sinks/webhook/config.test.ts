import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { WebhookSinkConfig } from '../../../../relay/sinks/webhook/index.js';

const SECRET = 'test-secret-0123456789abcdef0123456789abcdef';
const base = { name: 'hooks', kind: 'webhook', url: 'https://erp.example.com/hooks/plantlink', secret: SECRET };

function issues(input: unknown): string[] {
  const result = WebhookSinkConfig.safeParse(input);
  return result.success ? [] : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('WebhookSinkConfig', () => {
  it('accepts the sample config in the README', () => {
    const readme = readFileSync(new URL('../../../../relay/sinks/webhook/README.md', import.meta.url), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(yaml).toBeDefined();
    expect(issues(parseYaml(yaml!))).toEqual([]);
  });

  it('fills defaults', () => {
    expect(WebhookSinkConfig.parse(base)).toEqual({ ...base, mode: 'structured', headers: {}, timeoutMs: 10_000, concurrency: 4, batchSize: 100 });
  });

  it('rejects unknown keys, a short secret and an unknown mode', () => {
    expect(issues({ ...base, retries: 3 })).not.toEqual([]);
    expect(issues({ ...base, secret: 'short' })[0]).toMatch(/^secret/);
    expect(issues({ ...base, mode: 'multipart' })[0]).toMatch(/^mode/);
  });

  it('requires https except to loopback, and no credentials in the url', () => {
    expect(issues({ ...base, url: 'http://erp.example.com/hook' })[0]).toMatch(/^url: must use https/);
    expect(issues({ ...base, url: 'http://127.0.0.1:8080/hook' })).toEqual([]);
    expect(issues({ ...base, url: 'http://localhost:8080/hook' })).toEqual([]);
    expect(issues({ ...base, url: 'https://user:pw@erp.example.com/hook' })[0]).toMatch(/^url: must not carry credentials/);
  });

  it('refuses static headers the sink writes itself, bad header names or values, and names given twice', () => {
    expect(issues({ ...base, headers: { 'Content-Type': 'text/plain' } })[0]).toMatch(/^headers\.Content-Type/);
    expect(issues({ ...base, headers: { 'ce-id': 'x' } })[0]).toMatch(/^headers\.ce-id/);
    expect(issues({ ...base, headers: { 'Plantlink-Signature': 'x' } })[0]).toMatch(/^headers\.Plantlink-Signature/);
    expect(issues({ ...base, headers: { 'bad name': 'x' } })).not.toEqual([]);
    expect(issues({ ...base, headers: { 'X-Note': 'line\nbreak' } })).not.toEqual([]);
    expect(issues({ ...base, headers: { 'X-A': '1', 'x-a': '2' } })[0]).toMatch(/given twice/);
    expect(issues({ ...base, headers: { Authorization: 'Bearer abc' } })).toEqual([]);
  });

  it('never puts the secret in its error messages', () => {
    const result = WebhookSinkConfig.safeParse({ ...base, secret: 'too-short-secret', mode: 'nope' });
    expect(result.success).toBe(false);
    expect(JSON.stringify(result.error)).not.toContain('too-short-secret');
  });

  it('describes every option', () => {
    const shape = WebhookSinkConfig.shape as unknown as Record<string, z.ZodType>;
    expect(Object.entries(shape).filter(([, schema]) => !schema.description).map(([key]) => key)).toEqual([]);
  });
});
