/** Shared helpers of the file source tests: temp drop folders, configs, waiting on source events. */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FileOutcome, FileSource } from '../../../../agent/sources/file/index.js';
import type { FileSourceConfigInput } from '../../../../agent/sources/file/config.js';

export const SHIPMENT_MAP = {
  event: 'shipment',
  key: 'ShipmentNo',
  occurredAt: 'ChangedAt',
  fields: { salesOrder: 'SalesOrder', status: '$lowercase(Status)', carrier: 'Carrier' },
} as const;

export const CSV_HEADER = 'ShipmentNo,SalesOrder,Status,Carrier,ChangedAt\n';

/** One CSV row of a shipment; `i` makes it unique. */
export function csvRow(i: number, status = 'SHIPPED'): string {
  return `SH-${i},SO-${i},${status},DHL,${new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString()}\n`;
}

export async function tempFolder(prefix = 'plantlink-file-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export function csvConfig(folder: string, overrides: Partial<FileSourceConfigInput> = {}): FileSourceConfigInput {
  return {
    name: 'erp-files',
    kind: 'file',
    folder,
    pattern: '*.csv',
    format: { type: 'csv' },
    ready: { mode: 'rename' },
    watch: { mode: 'events', pollIntervalMs: 200 },
    map: SHIPMENT_MAP,
    ...overrides,
  };
}

/** Resolves with the next `count` file outcomes of the source. */
export function nextOutcomes(source: FileSource, count = 1): Promise<FileOutcome[]> {
  return new Promise((resolve) => {
    const seen: FileOutcome[] = [];
    const on = (o: FileOutcome) => {
      seen.push(o);
      if (seen.length === count) {
        source.off('file', on);
        resolve(seen);
      }
    };
    source.on('file', on);
  });
}

/** Resolves after the source has looked at the folder `count` more times. */
export function nextScans(source: FileSource, count: number, filter: (s: { waiting: string[]; ready: string[] }) => boolean = () => true): Promise<void> {
  return new Promise((resolve) => {
    let n = 0;
    const on = (s: { waiting: string[]; ready: string[] }) => {
      if (filter(s) && ++n === count) {
        source.off('scan', on);
        resolve();
      }
    };
    source.on('scan', on);
  });
}

/** Polls `check` until it holds (no timing assertion: the test timeout is the only limit). */
export async function waitFor(check: () => boolean | Promise<boolean>, everyMs = 10): Promise<void> {
  while (!(await check())) await new Promise((r) => setTimeout(r, everyMs));
}

export async function filesIn(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch {
    return [];
  }
}
