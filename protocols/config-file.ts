/**
 * Loads a YAML config file and validates it against a zod schema. Errors name the file,
 * the line and column, and the key path, e.g.
 *   relay.yaml:14:7 sinks.0.auth.clientId: expected string, received undefined
 * `${NAME}` in a string value is replaced by the environment variable NAME (an unset
 * variable is an error, not an empty string), so secrets need not sit in the file.
 * `${file:PATH}` is replaced by the content of the file PATH (relative to the config file's
 * folder; one trailing newline dropped; at most 64 KiB), for secrets mounted as files
 * (systemd credentials, Docker/Kubernetes secrets). An unreadable file is an error at its line.
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isMap, isScalar, LineCounter, parseDocument, visit, type Document } from 'yaml';
import type { z } from 'zod';

const MAX_SECRET_FILE_BYTES = 64 * 1024;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly file: string, readonly problems: string[]) {
    super(`invalid config ${file}:\n  ${problems.join('\n  ')}`);
  }
}

function position(doc: Document, lines: LineCounter, path: readonly PropertyKey[], file: string): string {
  // Walk down as far as the document goes: a missing key points at its parent.
  for (let depth = path.length; depth >= 0; depth--) {
    const node = doc.getIn(path.slice(0, depth) as unknown[], true) as { range?: [number, number, number] } | undefined;
    const range = node && typeof node === 'object' && 'range' in node ? node.range : undefined;
    if (range) {
      const { line, col } = lines.linePos(range[0]);
      return `${file}:${line}:${col}`;
    }
  }
  return file;
}

export function parseConfigText<S extends z.ZodType>(text: string, schema: S, file = '<config>', env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) throw new ConfigError(file, doc.errors.map((e) => `${file}: ${e.message.split('\n')[0]}`));
  const problems: string[] = [];
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value !== 'string' || !node.value.includes('${')) return;
      const at = node.range ? lines.linePos(node.range[0]) : undefined;
      const where = `${file}${at ? `:${at.line}:${at.col}` : ''}`;
      node.value = node.value.replace(/\$\{(?:file:([^}]+)|([A-Za-z_][A-Za-z0-9_]*))\}/g, (_m, path: string | undefined, name: string | undefined) => {
        if (path !== undefined) {
          const target = resolve(dirname(resolve(file)), path.trim());
          try {
            if (statSync(target).size > MAX_SECRET_FILE_BYTES) throw new Error(`larger than ${MAX_SECRET_FILE_BYTES} bytes`);
            return readFileSync(target, 'utf8').replace(/\r?\n$/, '');
          } catch (e) {
            // The path is not a secret; the content never appears in an error.
            problems.push(`${where}: cannot read secret file ${target}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
            return '';
          }
        }
        const value = env[name!];
        if (value === undefined) {
          problems.push(`${where}: environment variable ${name} is not set`);
          return '';
        }
        return value;
      });
    },
  });
  if (problems.length > 0) throw new ConfigError(file, problems);
  const result = schema.safeParse(doc.toJS() ?? {});
  if (result.success) return result.data;
  throw new ConfigError(
    file,
    result.error.issues.flatMap((issue) => {
      if (issue.code === 'unrecognized_keys') {
        // Point at the misspelt key itself, not at its parent object.
        const parent = doc.getIn(issue.path as unknown[], true);
        return issue.keys.map((key) => {
          const pair = isMap(parent) ? parent.items.find((p) => isScalar(p.key) && p.key.value === key) : undefined;
          const range = pair && isScalar(pair.key) ? pair.key.range : undefined;
          const at = range ? `${file}:${lines.linePos(range[0]).line}:${lines.linePos(range[0]).col}` : position(doc, lines, issue.path, file);
          return `${at} ${[...issue.path, key].join('.')}: unknown key (a typo? see config/REFERENCE.md)`;
        });
      }
      const keyPath = issue.path.length ? issue.path.join('.') : '(root)';
      return [`${position(doc, lines, issue.path, file)} ${keyPath}: ${issue.message}`];
    }),
  );
}

export function loadConfigFile<S extends z.ZodType>(file: string, schema: S): z.infer<S> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [`cannot read ${file}: ${(e as Error).message}`]);
  }
  return parseConfigText(text, schema, file);
}

