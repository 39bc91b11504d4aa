/**
 * The file source's state in the outbox (committed with the events, see source.ts):
 *
 *   progress/<name>  FileProgress of the file being read in processing/ (deleted when done)
 *   seen/<hash>      SeenFile: a file with this content was fully committed
 *   ledger/<slot>    the hash in ring slot `slot` (0 .. ledgerSize-1)
 *   ledger/next      how many files the ring has taken; next slot = next % ledgerSize
 *
 * The ring bounds the ledger: taking a slot evicts the oldest `seen/` entry in the same commit.
 */
import type { SourceContext, StateWrite } from '../source.js';

export interface FileProgress {
  /** SHA-256 of the file content: the progress applies to exactly this content. */
  hash: string;
  /** Rows (good and bad) handled and committed so far. */
  rowsDone: number;
  /** Rows of those that went to quarantine. */
  rowsRejected: number;
  /** Stem of the rejected-rows files in the quarantine folder. */
  stem: string;
  /** Bytes of the rejected-rows file and its reasons file as of this commit. */
  rejectedBytes: number;
  reasonsBytes: number;
}

export interface SeenFile {
  file: string;
  rows: number;
  rowsRejected: number;
  atMs: number;
}

export const progressKey = (name: string) => `progress/${name}`;
export const seenKey = (hash: string) => `seen/${hash}`;

/** The writes that record a finished file in the ledger (and evict the oldest entry when full). */
export function ledgerWrites(ctx: SourceContext, hash: string, seen: SeenFile, ledgerSize: number): StateWrite[] {
  const next = ctx.loadState<number>('ledger/next') ?? 0;
  const slot = `ledger/${next % ledgerSize}`;
  const evicted = ctx.loadState<string>(slot);
  const writes: StateWrite[] = [];
  if (evicted !== undefined && evicted !== hash) writes.push({ key: seenKey(evicted), value: undefined });
  writes.push({ key: seenKey(hash), value: seen }, { key: slot, value: hash }, { key: 'ledger/next', value: next + 1 });
  return writes;
}
