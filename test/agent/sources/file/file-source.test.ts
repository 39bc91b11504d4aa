/**
 * The file source end to end on real folders: real fs.watch and polling, real renames, the
 * in-memory SourceContext standing in for the outbox. No timing thresholds: tests wait on the
 * source's own events (`scan`, `committed`, `file`), and the test timeout is the only limit.
 */
import { appendFile, copyFile, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileSource } from '../../../../agent/sources/file/index.js';
import type { FileSourceConfigInput } from '../../../../agent/sources/file/config.js';
import type { CommitOutcome, EventDraft, StateWrite } from '../../../../agent/sources/source.js';
import { MemorySourceContext } from '../opcua/memory-source-context.js';
import { CSV_HEADER, csvConfig, csvRow, filesIn, nextOutcomes, nextScans, tempFolder, waitFor } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(overrides: Partial<FileSourceConfigInput> = {}, ctx = new MemorySourceContext('plant-a')) {
  const tmp = await tempFolder();
  cleanups.push(tmp.cleanup);
  const source = new FileSource(csvConfig(tmp.dir, overrides));
  cleanups.push(() => source.stop());
  return { dir: tmp.dir, source, ctx };
}

function csv(from: number, to: number, bad: number[] = []): string {
  let text = CSV_HEADER;
  for (let i = from; i <= to; i++) text += csvRow(i, bad.includes(i) ? 'LOST' : 'SHIPPED');
  return text;
}

/** Writes a file the way a well-behaved writer does under the `rename` convention. */
async function drop(dir: string, name: string, content: string): Promise<void> {
  await writeFile(join(dir, `${name}.tmp`), content);
  await rename(join(dir, `${name}.tmp`), join(dir, name));
}

const keys = (ctx: MemorySourceContext) => ctx.events.map((e) => e.draft.fact.key);

describe('file source', () => {
  it('does not read a file that is still growing (size-stable), then reads all of it once it is', async () => {
    const { dir, source, ctx } = await setup({ ready: { mode: 'size-stable', checks: 2, intervalMs: 20 } });
    await source.start(ctx);
    const path = join(dir, 'growing.csv');
    await writeFile(path, CSV_HEADER + csvRow(1));
    // Keep writing, one row after each look the source takes at the file: it never sees it stable.
    for (let i = 2; i <= 6; i++) {
      await nextScans(source, 1, (s) => s.waiting.includes('growing.csv'));
      expect(ctx.events).toHaveLength(0);
      await appendFile(path, csvRow(i).slice(0, 10));
      await appendFile(path, csvRow(i).slice(10));
    }
    expect(await filesIn(join(dir, 'processing'))).toEqual([]);
    const [outcome] = await nextOutcomes(source);
    expect(outcome).toMatchObject({ outcome: 'archived', rows: 6, rowsRejected: 0 });
    expect(keys(ctx)).toEqual(['SH-1', 'SH-2', 'SH-3', 'SH-4', 'SH-5', 'SH-6']);
  });

  it('waits for the .done marker, then claims the file and removes the marker', async () => {
    const { dir, source, ctx } = await setup({ ready: { mode: 'done-marker', suffix: '.done' } });
    await source.start(ctx);
    await writeFile(join(dir, 'a.csv'), csv(1, 3));
    await nextScans(source, 3, (s) => s.waiting.includes('a.csv'));
    expect(ctx.events).toHaveLength(0);
    expect(await filesIn(dir)).toContain('a.csv');
    const done = nextOutcomes(source);
    await writeFile(join(dir, 'a.csv.done'), '');
    expect((await done)[0]).toMatchObject({ outcome: 'archived', rows: 3 });
    expect(keys(ctx)).toEqual(['SH-1', 'SH-2', 'SH-3']);
    expect((await filesIn(dir)).filter((f) => f.endsWith('.done'))).toEqual([]);
  });

  it('picks files up by polling alone (network shares), oldest first', async () => {
    const { dir, source, ctx } = await setup({ watch: { mode: 'poll', pollIntervalMs: 25 } });
    await drop(dir, 'first.csv', csv(1, 2));
    await drop(dir, 'second.csv', csv(3, 4));
    const outcomes = nextOutcomes(source, 2);
    await source.start(ctx);
    expect((await outcomes).map((o) => o.file)).toEqual(['first.csv', 'second.csv']);
    expect(keys(ctx)).toEqual(['SH-1', 'SH-2', 'SH-3', 'SH-4']);
    expect(await filesIn(join(dir, 'archive'))).toEqual(['first.csv', 'second.csv']);
  });

  it('makes no duplicate events when the same file is dropped twice, even under another name', async () => {
    const { dir, source, ctx } = await setup();
    await source.start(ctx);
    let done = nextOutcomes(source);
    await drop(dir, 'orders.csv', csv(1, 5));
    expect((await done)[0]).toMatchObject({ outcome: 'archived', rows: 5 });
    done = nextOutcomes(source, 2);
    await drop(dir, 'orders.csv', csv(1, 5));
    await drop(dir, 'orders-copy.csv', csv(1, 5));
    expect((await done).map((o) => o.outcome)).toEqual(['duplicate', 'duplicate']);
    expect(ctx.events).toHaveLength(5);
    expect(ctx.duplicates).toBe(0);
    expect(await filesIn(join(dir, 'archive'))).toHaveLength(3); // kept, under distinct names

    // A re-export with one more row is new content: it is read, and the old rows dedupe by id
    // (the id comes from the record, never from the row number, file name or hash).
    done = nextOutcomes(source);
    await drop(dir, 'orders-v2.csv', csv(0, 5));
    expect((await done)[0]).toMatchObject({ outcome: 'archived', rows: 6 });
    expect(keys(ctx)).toEqual(['SH-1', 'SH-2', 'SH-3', 'SH-4', 'SH-5', 'SH-0']);
    expect(ctx.duplicates).toBe(5);
  });

  it('resumes a file after a stop mid-file: every row committed exactly once, rejected rows written once', async () => {
    const inner = new MemorySourceContext('plant-a');
    let source!: FileSource;
    let commits = 0;
    // Commit #4 (initial progress, rows 1-10, 11-20, then 21-30) fails and the source is stopped
    // meanwhile, as if the process died with rows 21-30 read, bad row 25 already in quarantine.
    const ctx = Object.assign(Object.create(inner) as MemorySourceContext, {
      commit(events: EventDraft[], state?: StateWrite[]): CommitOutcome {
        if (++commits === 4) {
          void source.stop();
          throw new Error('simulated crash');
        }
        return inner.commit(events, state);
      },
    });
    const first = await setup({ batchRows: 10 }, ctx);
    source = first.source;
    await source.start(ctx);
    await drop(first.dir, 'big.csv', csv(1, 95, [5, 25, 90]));
    await waitFor(() => source.health().state === 'stopped');
    expect(inner.events).toHaveLength(19); // rows 1-20 less bad row 5
    expect(await filesIn(join(first.dir, 'processing'))).toEqual(['big.csv']);

    const second = new FileSource(csvConfig(first.dir, { batchRows: 10 }));
    cleanups.push(() => second.stop());
    const done = nextOutcomes(second);
    await second.start(inner);
    expect((await done)[0]).toMatchObject({ outcome: 'archived', rows: 95, rowsRejected: 3 });
    const expected = Array.from({ length: 95 }, (_, i) => `SH-${i + 1}`).filter((k) => !['SH-5', 'SH-25', 'SH-90'].includes(k));
    expect(keys(inner)).toEqual(expected);
    expect(inner.duplicates).toBe(0); // nothing re-sent
    const q = join(first.dir, 'quarantine');
    expect(await readFile(join(q, 'big.rejected.csv'), 'utf8')).toBe(CSV_HEADER + csvRow(5, 'LOST') + csvRow(25, 'LOST') + csvRow(90, 'LOST'));
    expect((await readFile(join(q, 'big.rejected.reasons.txt'), 'utf8')).split('\n').filter(Boolean).map((l) => l.split(':')[0])).toEqual([
      'row 5 (line 6)',
      'row 25 (line 26)',
      'row 90 (line 91)',
    ]);
    expect([...inner.states.keys()].filter((k) => k.startsWith('progress/'))).toEqual([]);
  });

  it('holds the claimed file while the outbox is paused and reads on after onResume', async () => {
    const { dir, source, ctx } = await setup({ batchRows: 4, watch: { mode: 'events', pollIntervalMs: 20 } });
    await source.start(ctx);
    let done = nextOutcomes(source);
    await drop(dir, 'a.csv', csv(1, 3));
    await done;
    ctx.pause('outbox full');
    done = nextOutcomes(source, 2);
    await drop(dir, 'b.csv', csv(4, 13));
    await waitFor(() => source.health().state === 'paused');
    expect(source.health().detail).toMatch(/outbox full/);
    expect(await filesIn(join(dir, 'processing'))).toEqual(['b.csv']); // the claim is kept
    const pausedAt = ctx.pausedCommits;
    // Polls and folder changes go on meanwhile; the source neither retries nor reads on before onResume.
    await drop(dir, 'c.csv', csv(14, 14));
    await new Promise((r) => setTimeout(r, 200));
    expect(ctx.pausedCommits).toBe(pausedAt);
    expect(ctx.events).toHaveLength(3);
    ctx.resume();
    expect((await done).map((o) => [o.file, o.outcome, o.rows])).toEqual([
      ['b.csv', 'archived', 10],
      ['c.csv', 'archived', 1],
    ]);
    expect(keys(ctx)).toEqual(Array.from({ length: 14 }, (_, i) => `SH-${i + 1}`));
    expect(ctx.duplicates).toBe(0);
    expect(source.health()).toMatchObject({ state: 'connected', counters: { filesArchived: 3, rowsCommitted: 14 } });
  });

  it('quarantines bad files with a reason and goes on with the next file', async () => {
    const { dir, source, ctx } = await setup({ maxFileBytes: 200 });
    await source.start(ctx);
    const done = nextOutcomes(source, 3);
    await drop(dir, 'a-empty.csv', '');
    await drop(dir, 'b-huge.csv', csv(1, 10));
    await drop(dir, 'c-fine.csv', csv(1, 1));
    const outcomes = await done;
    expect(outcomes.map((o) => [o.file, o.outcome])).toEqual([
      ['a-empty.csv', 'quarantined'],
      ['b-huge.csv', 'quarantined'],
      ['c-fine.csv', 'archived'],
    ]);
    const q = join(dir, 'quarantine');
    expect(await readFile(join(q, 'b-huge.csv.reason.txt'), 'utf8')).toMatch(/maxFileBytes is 200/);
    expect(source.health().counters).toMatchObject({ filesQuarantined: 2, filesArchived: 1, rowsCommitted: 1 });
  });

  it('is disconnected while the drop folder is missing and starts reading when it appears', async () => {
    const tmp = await tempFolder();
    cleanups.push(tmp.cleanup);
    const folder = join(tmp.dir, 'share');
    const source = new FileSource(csvConfig(folder, { watch: { mode: 'events', pollIntervalMs: 20 } }));
    cleanups.push(() => source.stop());
    const ctx = new MemorySourceContext();
    await source.start(ctx);
    await waitFor(() => source.health().state === 'disconnected');
    expect(source.health().detail).toMatch(/not there/);
    const { mkdir } = await import('node:fs/promises');
    await mkdir(folder);
    const done = nextOutcomes(source);
    await drop(folder, 'a.csv', csv(1, 2));
    expect((await done)[0]).toMatchObject({ outcome: 'archived', rows: 2 });
    expect(source.health().state).toBe('connected');
  });

  it('resumes files left in processing/ by an earlier run before new ones', async () => {
    const { dir, source, ctx } = await setup();
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(dir, 'processing'));
    await writeFile(join(dir, 'processing', 'left.csv'), csv(1, 2));
    await drop(dir, 'new.csv', csv(3, 3));
    const done = nextOutcomes(source, 2);
    await source.start(ctx);
    expect((await done).map((o) => o.file)).toEqual(['left.csv', 'new.csv']);
    expect(keys(ctx)).toEqual(['SH-1', 'SH-2', 'SH-3']);
  });

  it('copies the file exactly into the archive', async () => {
    const { dir, source, ctx } = await setup();
    await source.start(ctx);
    const done = nextOutcomes(source);
    const content = csv(1, 3);
    await drop(dir, 'x.csv', content);
    const [o] = await done;
    expect(await readFile(o!.path, 'utf8')).toBe(content);
    await copyFile(o!.path, join(dir, 'unused.txt')); // not matching `*.csv`: ignored
    await nextScans(source, 2);
    expect(await filesIn(dir)).toContain('unused.txt');
  });
});
