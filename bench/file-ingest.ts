/**
 * File ingest: rows/s from a dropped CSV into the agent's outbox (claim, strict decode and
 * hash pass, CSV parse, JSONata/path mapping, schema validation, event ids, outbox commits
 * with the file's progress, archive), as a ratio to plain better-sqlite3 batched inserts of
 * the same rows (the raw CSV lines, same batch size, same pragmas) in the same run; and
 * the process's peak memory while it ingests.
 *
 * The file is an MES production-report export (test/sim/mes), widened with unmapped columns
 * to ~400 bytes a row, as real ERP exports are. Size: `--mb N` (default 64; `--mb 1024`
 * for the 1 GB figure, which takes several minutes on 2 cores).
 */
import Database from 'better-sqlite3';
import { createReadStream, createWriteStream, mkdirSync, statSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Outbox } from '../agent/outbox/outbox.js';
import { FileSource, type FileOutcome } from '../agent/sources/file/index.js';
import type { SourceContext } from '../agent/sources/source.js';
import { createLogger } from '../protocols/log.js';
import { MES_MILESTONE_MAP } from '../test/sim/mes/mes-file-exporter.js';
import { tempDir } from '../test/helpers/temp.js';

const BATCH_ROWS = 500;
const STEPS = ['RELEASED', 'STARTED', 'QTY', 'COMPLETED'] as const;
const HEADER = 'WorkOrder;SalesOrder;Article;Step;GoodQty;ScrapQty;PlannedQty;Unit;Cell;Timestamp;Shift;Operator;Batch;Comment\r\n';
const T0 = Date.parse('2026-11-23T06:00:00Z');

async function writeCsv(path: string, targetBytes: number): Promise<{ rows: number; bytes: number }> {
  const out = createWriteStream(path);
  out.write(HEADER);
  let bytes = HEADER.length;
  let rows = 0;
  const comment = 'checked by line lead; cartons sealed and labelled per customer spec, pallet wrapped'.padEnd(220, '.');
  while (bytes < targetBytes) {
    const wo = `WO-PACK1-${String(Math.floor(rows / 4)).padStart(8, '0')}`;
    const step = STEPS[rows % 4]!;
    const at = new Date(T0 + rows * 10).toISOString();
    const line = `${wo};SO-${70000 + Math.floor(rows / 4)};CARTON-${rows % 7};${step};${rows % 4 === 3 ? '12,0' : '4,0'};0,0;12,0;EA;PACK1;${at};${1 + (rows % 3)};OP-${rows % 40};B${Math.floor(rows / 1000)};"${comment}"\r\n`;
    bytes += line.length;
    rows++;
    if (!out.write(line)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
  return { rows, bytes };
}

/** Samples RSS and heap every 50 ms; returns the peaks above the baseline taken at start. */
function memorySampler() {
  const base = process.memoryUsage();
  let rss = base.rss;
  let heap = base.heapUsed;
  const timer = setInterval(() => {
    const m = process.memoryUsage();
    rss = Math.max(rss, m.rss);
    heap = Math.max(heap, m.heapUsed);
  }, 50);
  return { stop: () => (clearInterval(timer), { baseRss: base.rss, peakRss: rss, peakHeap: heap }) };
}

async function ingest(dir: string, csv: string): Promise<{ seconds: number; outcome: FileOutcome; memory: ReturnType<ReturnType<typeof memorySampler>['stop']> }> {
  const outbox = new Outbox({ path: join(dir, 'outbox.sqlite'), plant: 'plant-a', maxBytes: 1e13, maxEvents: 1e10, onFull: 'pause' });
  const drop = join(dir, 'drop');
  const source = new FileSource({
    name: 'mes-reports',
    kind: 'file',
    folder: drop,
    pattern: '*.csv',
    format: { type: 'csv', delimiter: ';', header: true },
    encoding: 'utf-8',
    ready: { mode: 'rename' },
    watch: { mode: 'events', pollIntervalMs: 200 },
    batchRows: BATCH_ROWS,
    maxFileBytes: 4 * 1024 ** 3,
    map: MES_MILESTONE_MAP,
  });
  const ctx: SourceContext = {
    plant: 'plant-a',
    logger: createLogger('bench', { level: 'silent' }),
    commit: (events, state) => outbox.append('mes-reports', events, state),
    loadState: (key) => outbox.loadState('mes-reports', key),
    onResume: () => () => undefined,
  };
  const done = new Promise<FileOutcome>((resolve) => source.once('file', resolve));
  await source.start(ctx);
  const sampler = memorySampler();
  const t = performance.now();
  await rename(csv, join(drop, 'export.csv'));
  const outcome = await done;
  const seconds = (performance.now() - t) / 1000;
  const memory = sampler.stop();
  await source.stop();
  outbox.close();
  return { seconds, outcome, memory };
}

/** The raw floor: the file's lines read with readline and inserted as they are, BATCH_ROWS per transaction. */
async function rawInsert(dir: string, csv: string): Promise<number> {
  const db = new Database(join(dir, 'raw.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE t (seq INTEGER PRIMARY KEY, body TEXT NOT NULL)');
  const insert = db.prepare('INSERT INTO t (body) VALUES (?)');
  const fill = db.transaction((lines: string[]) => lines.forEach((l) => insert.run(l)));
  const t = performance.now();
  let batch: string[] = [];
  let header = true;
  for await (const line of createInterface({ input: createReadStream(csv), crlfDelay: Infinity })) {
    if (header) {
      header = false;
      continue;
    }
    batch.push(line);
    if (batch.length === BATCH_ROWS) {
      fill(batch);
      batch = [];
    }
  }
  if (batch.length > 0) fill(batch);
  const seconds = (performance.now() - t) / 1000;
  db.close();
  return seconds;
}

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(0)} MiB`;

export interface FileIngestResult {
  bytes: number;
  rows: number;
  rate: number;
  rawRate: number;
  peakRss: number;
  rssAboveStart: number;
  peakHeap: number;
  outboxBytes: number;
}

export async function fileIngest(megabytes: number): Promise<FileIngestResult> {
  const { dir, cleanup } = tempDir('plantlink-bench-file-');
  try {
    const csv = join(dir, 'export.csv.tmp');
    mkdirSync(join(dir, 'drop'));
    const { rows, bytes } = await writeCsv(csv, megabytes * 1024 * 1024);
    const rawSeconds = await rawInsert(dir, csv);
    const { seconds, outcome, memory } = await ingest(dir, csv);
    if (outcome.outcome !== 'archived' || outcome.rows !== rows) throw new Error(`ingest did not commit every row: ${JSON.stringify(outcome)}`);
    return {
      bytes,
      rows,
      rate: rows / seconds,
      rawRate: rows / rawSeconds,
      peakRss: memory.peakRss,
      rssAboveStart: memory.peakRss - memory.baseRss,
      peakHeap: memory.peakHeap,
      outboxBytes: statSync(join(dir, 'outbox.sqlite')).size,
    };
  } finally {
    cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { mb: { type: 'string', default: '64' } } });
  const r = await fileIngest(Number(values.mb));
  console.log(`file ingest: ${mib(r.bytes)} CSV, ${r.rows.toLocaleString('en')} rows (~${Math.round(r.bytes / r.rows)} B/row), batches of ${BATCH_ROWS}`);
  console.log('| path | rows/s | ratio to raw |');
  console.log('|---|---:|---:|');
  console.log(`| file source -> outbox (parse, map, validate, commit, archive) | ${Math.round(r.rate).toLocaleString('en')} | ${(r.rate / r.rawRate).toFixed(2)} |`);
  console.log(`| raw: readline + better-sqlite3 batched inserts of the lines | ${Math.round(r.rawRate).toLocaleString('en')} | 1.00 |`);
  console.log(`peak memory while ingesting: RSS ${mib(r.peakRss)} (${mib(r.rssAboveStart)} above the start), heap ${mib(r.peakHeap)}; file ${mib(r.bytes)}, outbox ${mib(r.outboxBytes)}`);
}
