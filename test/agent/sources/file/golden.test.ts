/**
 * Golden cases: every folder under test/fixtures/file/ holds an input file, the config that
 * reads it and the expected result (events, quarantined rows with reasons, or the reason a
 * whole file was quarantined). `UPDATE_GOLDEN=1` rewrites expected.json after a reviewed change.
 */
import { copyFile, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import iconv from 'iconv-lite';
import { afterEach, describe, expect, it } from 'vitest';
import { FileSource } from '../../../../agent/sources/file/index.js';
import { MemorySourceContext } from '../opcua/memory-source-context.js';
import { filesIn, nextOutcomes, tempFolder } from './helpers.js';

const FIXTURES = join(import.meta.dirname, '../../../fixtures/file');
const cases = (await readdir(FIXTURES, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();

interface CaseConfig {
  input: string;
  encoding?: string;
  [key: string]: unknown;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function runCase(name: string) {
  const dir = join(FIXTURES, name);
  const { input, ...config } = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as CaseConfig;
  const tmp = await tempFolder();
  cleanups.push(tmp.cleanup);
  const source = new FileSource({ name: 'erp-files', kind: 'file', folder: tmp.dir, pattern: input, ready: { mode: 'rename' }, ...config } as never);
  const ctx = new MemorySourceContext('plant-a');
  const outcome = nextOutcomes(source);
  await source.start(ctx);
  // The writer's side of the rename convention: write under another name, then rename.
  await copyFile(join(dir, input), join(tmp.dir, `${input}.part`));
  await rename(join(tmp.dir, `${input}.part`), join(tmp.dir, input));
  const [result] = await outcome;
  await source.stop();

  const q = source.folders.quarantine;
  const quarantine: Record<string, string> = {};
  for (const f of await filesIn(q)) {
    const bytes = await readFile(join(q, f));
    quarantine[f] = f.endsWith('.txt') ? bytes.toString('utf8') : f === input ? `<${bytes.length} bytes>` : iconv.decode(bytes, config.encoding === 'windows-1252' ? 'windows-1252' : bytes[0] === 0xff ? 'utf16le' : 'utf8', { stripBOM: false });
  }
  return {
    outcome: result!.outcome,
    rows: result!.rows,
    rowsRejected: result!.rowsRejected,
    ...(result!.reason ? { reason: result!.reason } : {}),
    events: ctx.events.map((e) => ({ id: e.id, type: e.draft.type, subject: e.draft.subject, fact: e.draft.fact, data: e.draft.data })),
    quarantine,
    archive: await filesIn(source.folders.archive),
    leftInProcessing: await filesIn(source.folders.processing),
  };
}

describe('file source golden cases', () => {
  it.each(cases)('%s', async (name) => {
    const actual = await runCase(name);
    const expectedPath = join(FIXTURES, name, 'expected.json');
    if (process.env.UPDATE_GOLDEN) await writeFile(expectedPath, `${JSON.stringify(actual, null, 2)}\n`);
    const expected = JSON.parse(await readFile(expectedPath, 'utf8')) as unknown;
    expect(actual).toEqual(expected);
  });
});
