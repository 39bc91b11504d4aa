/**
 * Generates, from the zod config schemas (the one source of truth):
 *   config/schema/agent.schema.json, config/schema/relay.schema.json  (editor completion)
 *   config/REFERENCE.md                                                (the config reference)
 * `npm run config:generate` writes them; a test fails when they are out of date.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { AgentConfig } from '../agent/config.js';
import { RelayConfig } from '../relay/config.js';

const HERE = dirname(fileURLToPath(import.meta.url));

type JsonSchema = {
  type?: string | string[];
  description?: string;
  default?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  additionalProperties?: JsonSchema | boolean;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  format?: string;
};

export function jsonSchemaOf(schema: z.ZodType, title: string): JsonSchema {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema & Record<string, unknown>;
  return { ...json, title } as JsonSchema;
}

function typeOf(s: JsonSchema): string {
  if (s.const !== undefined) return `\`${JSON.stringify(s.const)}\``;
  if (s.enum) return s.enum.map((e) => `\`${String(e)}\``).join(' \\| ');
  if (s.anyOf ?? s.oneOf) return (s.anyOf ?? s.oneOf)!.map(typeOf).join(' \\| ');
  if (s.type === 'array') return `list of ${s.items ? typeOf(s.items) : 'any'}`;
  if (Array.isArray(s.type)) return s.type.join(' \\| ');
  return s.type ?? 'any';
}

function rows(s: JsonSchema, path: string, out: string[]): void {
  const variants = s.anyOf ?? s.oneOf;
  if (variants && variants.some((v) => v.properties)) {
    variants.forEach((v) => {
      const kind = v.properties?.kind?.const ?? v.properties?.flow?.const;
      rows(v, kind === undefined ? path : `${path} (${String(kind)})`, out);
    });
    return;
  }
  if (s.type === 'array' && s.items && (s.items.properties || s.items.anyOf || s.items.oneOf)) return rows(s.items, `${path}[]`, out);
  if (!s.properties) return;
  for (const [key, child] of Object.entries(s.properties)) {
    const p = path ? `${path}.${key}` : key;
    const required = s.required?.includes(key) && child.default === undefined ? 'yes' : '';
    const def = child.default === undefined || typeof child.default === 'object' ? '' : `\`${JSON.stringify(child.default)}\``;
    const desc = (child.description ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ');
    out.push(`| \`${p}\` | ${typeOf(child)} | ${required} | ${def} | ${desc} |`);
    rows(child, p, out);
  }
}

export function referenceMarkdown(): string {
  const out = [
    '# Config reference',
    '',
    'Generated from the zod schemas by `npm run config:generate`; do not edit by hand.',
    'Both files are YAML. `${NAME}` in a string value is replaced by the environment variable NAME.',
    'Unknown keys are errors. Validate a file without starting anything: `plantlink agent check --config FILE`, `plantlink relay check --config FILE`.',
    '',
  ];
  for (const [title, schema] of [
    ['Agent (`plantlink agent --config agent.yaml`)', AgentConfig],
    ['Relay (`plantlink relay --config relay.yaml`)', RelayConfig],
  ] as const) {
    out.push(`## ${title}`, '', '| key | type | required | default | description |', '|---|---|---|---|---|');
    rows(jsonSchemaOf(schema, title), '', out);
    out.push('');
  }
  return out.join('\n');
}

export function generatedFiles(): Record<string, string> {
  return {
    [join(HERE, 'schema', 'agent.schema.json')]: `${JSON.stringify(jsonSchemaOf(AgentConfig, 'plantlink agent config'), null, 2)}\n`,
    [join(HERE, 'schema', 'relay.schema.json')]: `${JSON.stringify(jsonSchemaOf(RelayConfig, 'plantlink relay config'), null, 2)}\n`,
    [join(HERE, 'REFERENCE.md')]: referenceMarkdown(),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [file, text] of Object.entries(generatedFiles())) {
    let current = '';
    try {
      current = readFileSync(file, 'utf8');
    } catch {
      /* new file */
    }
    if (current !== text) {
      writeFileSync(file, text);
      process.stdout.write(`wrote ${file}\n`);
    }
  }
}
