/**
 * A large file is streamed: 100,000 rows are all committed while the retained heap grows by a
 * small fraction of the file's size. The context here counts instead of keeping events (the
 * in-memory one would hold all of them, which is the outbox's job, on disk).
 */
import { createWriteStream } from 'node:fs';
import { rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, expect, it } from 'vitest';
import { FileSource } from '../../../../agent/sources/file/index.js';
import type { CommitOutcome, EventDraft, SourceContext, StateWrite } from '../../../../agent/sources/source.js';
import { createLogger } from '../../../../protocols/log.js';
import { CSV_HEADER, csvConfig, nextOutcomes, tempFolder } from './helpers.js';


// A full GC before each sample, so the samples measure what is retained, not garbage not yet collected.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const ROWS = 100_000;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

class CountingContext implements SourceContext {
  readonly plant = 'plant-a';
  readonly logger = createLogger('test', { level: 'silent' });
  events = 0;
  firstKey: string | undefined;
  lastKey: string | undefined;
  commits = 0;
  /** Retained heap after a full GC, every 25 commits (12,500 rows). */
  readonly samples: number[] = [];
  private readonly states = new Map<string, string>();

  commit(events: EventDraft[], state: StateWrite[] = []): CommitOutcome {
    this.events += events.length;
    this.firstKey ??= events[0]?.fact.key;
    if (events.length > 0) this.lastKey = events[events.length - 1]!.fact.key;
    for (const w of state) {
      if (w.value === undefined) this.states.delete(w.key);
      else this.states.set(w.key, JSON.stringify(w.value));
    }
    if (++this.commits % 25 === 0) {
      gc();
      this.samples.push(process.memoryUsage().heapUsed);
    }
    return { status: 'committed', appended: events.length, duplicates: 0 };
  }

  loadState<T>(key: string): T | undefined {
    const raw = this.states.get(key);
    return raw === undefined ? undefined : (JSON.parse(raw) as T);
  }

  onResume(): () => void {
    return () => undefined;
  }
}

it('commits all 100,000 rows of a large file with bounded memory', async () => {
  const tmp = await tempFolder();
  cleanups.push(tmp.cleanup);
  const path = join(tmp.dir, 'big.csv.tmp');
  const out = createWriteStream(path);
  out.write(CSV_HEADER.replace('\n', ',Note\n'));
  const pad = 'x'.repeat(150); // ~240-byte rows: a ~24 MB file
  for (let i = 1; i <= ROWS; i++) {
    const line = `SH-${i},SO-${i},SHIPPED,DHL,${new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString()},"${pad}, unmapped"\r\n`;
    if (!out.write(line)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
  const fileBytes = (await stat(path)).size;

  const ctx = new CountingContext();
  const source = new FileSource(csvConfig(tmp.dir, { batchRows: 500 }));
  cleanups.push(() => source.stop());
  gc();
  const baseline = process.memoryUsage().heapUsed;
  const done = nextOutcomes(source);
  await source.start(ctx);
  await rename(path, join(tmp.dir, 'big.csv'));
  const [outcome] = await done;

  expect(outcome).toMatchObject({ outcome: 'archived', rows: ROWS, rowsRejected: 0 });
  expect(ctx.events).toBe(ROWS);
  expect([ctx.firstKey, ctx.lastKey]).toEqual(['SH-1', `SH-${ROWS}`]);
  expect(fileBytes).toBeGreaterThan(20 * 1024 ** 2);
  expect(ctx.samples.length).toBeGreaterThanOrEqual(7);
  // Once warm (code compiled, modules loaded), reading on does not grow the heap with the rows read...
  const warm = ctx.samples[0]!;
  const afterWarm = Math.max(...ctx.samples) - warm;
  // ...and all in all the source holds a small fraction of the file.
  const overall = Math.max(...ctx.samples) - baseline;
  console.log(JSON.stringify({ fileBytes, overall, afterWarm, samples: ctx.samples.map((s) => s - baseline) }));
  expect(afterWarm).toBeLessThan(fileBytes / 20);
  expect(overall).toBeLessThan(fileBytes / 4);
}, 60_000);
