/**
 * The file drop source: files the ERP or MES writes into a shared folder become events.
 *
 * Protocol, one file at a time, oldest first:
 *   1. ready    a file matching `pattern` is read only once the writer has finished it
 *               (`ready`: size-stable | done-marker | rename); until then it is not touched.
 *   2. claim    it is renamed into `<folder>/processing/` (atomic); files found there on start
 *               were claimed by an earlier run and are resumed first.
 *   3. scan     first pass: content hash, encoding, decodability (and XML structure). A file
 *               that fails is quarantined whole, nothing committed.
 *   4. rows     second pass, streamed: each row is mapped (record-mapping.ts); bad rows go to
 *               quarantine with their reasons. Every `batchRows` rows, ONE `ctx.commit` holds
 *               the batch's events and the file's progress (hash, rows done, rejected bytes).
 *   5. done     the last commit also deletes the progress and records the hash in the ledger;
 *               only then is the file moved to the archive.
 *
 * Crash safety: a crash between any two steps resumes from the last commit. Rows up to
 * `rowsDone` are skipped, nothing is re-sent; rejected-rows files are cut back to their
 * committed length; a file already in the ledger (finished, or dropped twice) is archived
 * without a row read. Event ids come from the mapped facts only (never the row number, file
 * name or hash), so even a file renamed and dropped again yields the same ids.
 *
 * Outbox full (`paused`): the batch is held, the claim kept, nothing more is read until
 * `ctx.onResume`. Failures: a bad file or row is quarantined with its reason; a folder or
 * outbox error is retried with backoff (health `disconnected` / `stalled`), never dropped;
 * an unexpected error on one file is retried, then the file is quarantined, never a crash loop.
 */
import { EventEmitter } from 'node:events';
import { rename, stat, unlink } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { backoffMs, describeError } from '../../../protocols/errors.js';
import type { Logger } from '../../../protocols/log.js';
import { compileMapping, MappingError, type CompiledMapping } from '../../mapping/record-mapping.js';
import type { CommitOutcome, EventDraft, Source, SourceContext, SourceHealth, SourceHealthState, StateWrite } from '../source.js';
import { FileSourceConfig, foldersOf, type FileSourceConfigInput, type FileSourceFolders } from './config.js';
import { BadFileError } from './decode.js';
import { ensureDir, exists, freeName, fsyncDir, globMatcher, listFiles, moveFile, type DropEntry } from './folder.js';
import { Readiness } from './ready.js';
import { createSplitter, readRows } from './records/index.js';
import { pickRejectedStem, quarantineFile, RejectedRows } from './quarantine.js';
import { scanFile } from './scan.js';
import { ledgerWrites, progressKey, seenKey, type FileProgress, type SeenFile } from './state.js';
import { FolderWatcher } from './watch.js';

export interface FileSourceCounters {
  /** Files fully committed and archived. */
  filesArchived: number;
  /** Files whose content was already committed (dropped twice), archived without re-sending. */
  filesDuplicate: number;
  /** Bad files moved to quarantine. */
  filesQuarantined: number;
  /** Rows committed as events. */
  rowsCommitted: number;
  /** Bad rows written to quarantine. */
  rowsQuarantined: number;
}

export interface FileSourceHealth extends SourceHealth {
  counters: FileSourceCounters;
  /** The file being read and the rows of it committed so far. */
  current?: { file: string; rowsDone: number };
}

export interface FileOutcome {
  file: string;
  outcome: 'archived' | 'duplicate' | 'quarantined';
  /** Where the file went. */
  path: string;
  rows: number;
  rowsRejected: number;
  reason?: string;
}

export interface FileSourceEvents {
  /** After every look at the drop folder: files waiting to be complete, and the one claimed next. */
  scan: [{ waiting: string[]; ready: string[] }];
  /** A batch of a file was committed. */
  committed: [{ file: string; rowsDone: number }];
  /** A file left processing/. */
  file: [FileOutcome];
}

/** Thrown to unwind the read loop when the source stops; nothing after the last commit is kept. */
class Stopped extends Error {}

/** Unexpected (non-I/O) failures on one file before it is quarantined instead of retried again. */
const MAX_FILE_ATTEMPTS = 3;
const RETRY_BASE_MS = 200;
const RETRY_MAX_MS = 30_000;

const isIoError = (e: unknown) => typeof (e as NodeJS.ErrnoException)?.code === 'string' && /^E[A-Z]+$/.test((e as NodeJS.ErrnoException).code!);
const stamp = () => new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');

export class FileSource extends EventEmitter<FileSourceEvents> implements Source {
  readonly kind = 'file';
  readonly name: string;
  readonly config: FileSourceConfig;
  readonly folders: FileSourceFolders;
  private readonly mapping: CompiledMapping;
  private readonly matches: (name: string) => boolean;
  private readiness: Readiness;
  private ctx: SourceContext | undefined;
  private log: Logger | undefined;
  private watcher: FolderWatcher | undefined;
  private loop: Promise<void> | undefined;
  private unsubscribeResume: (() => void) | undefined;
  private stopped = true;
  private state: SourceHealthState = 'stopped';
  private detail: string | undefined;
  private lastActivityMs: number | undefined;
  private paused: { reason: string } | undefined;
  private resumed = false;
  private woken = false;
  private wakeUp: (() => void) | undefined;
  private current: { file: string; rowsDone: number } | undefined;
  private readonly counters: FileSourceCounters = { filesArchived: 0, filesDuplicate: 0, filesQuarantined: 0, rowsCommitted: 0, rowsQuarantined: 0 };
  private readonly attempts = new Map<string, number>();
  /** Files whose claim failed (locked by the writer on Windows, ...), not tried again before the time. */
  private readonly deferred = new Map<string, number>();

  constructor(
    config: FileSourceConfigInput,
    private readonly logger?: Logger,
  ) {
    super();
    this.config = FileSourceConfig.parse(config);
    this.name = this.config.name;
    this.folders = foldersOf(this.config);
    this.mapping = compileMapping(this.config.map);
    this.matches = globMatcher(this.config.pattern);
    this.readiness = new Readiness(this.config.ready);
  }

  async start(ctx: SourceContext): Promise<void> {
    if (!this.stopped) throw new Error(`source ${this.name} is already started`);
    this.stopped = false;
    this.ctx = ctx;
    this.log = (this.logger ?? ctx.logger).child({ source: this.name, kind: this.kind });
    this.state = 'starting';
    this.detail = undefined;
    this.paused = undefined;
    this.readiness = new Readiness(this.config.ready);
    this.unsubscribeResume = ctx.onResume(() => {
      this.resumed = true;
      this.wake();
    });
    this.watcher = new FolderWatcher(this.folders.drop, this.config.watch, () => this.wake(), this.log);
    this.watcher.start();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.watcher?.stop();
    this.unsubscribeResume?.();
    this.unsubscribeResume = undefined;
    this.wake();
    await this.loop;
    this.state = 'stopped';
  }

  health(): FileSourceHealth {
    const counters = { ...this.counters };
    const extra = {
      counters,
      ...(this.current ? { current: { ...this.current } } : {}),
      ...(this.lastActivityMs === undefined ? {} : { lastActivityMs: this.lastActivityMs }),
    };
    if (this.stopped) return { state: 'stopped', ...extra };
    if (this.paused) return { state: 'paused', detail: `outbox paused (${this.paused.reason}); holding ${this.current?.file ?? 'the current file'}`, ...extra };
    return { state: this.state, ...(this.detail ? { detail: this.detail } : {}), ...extra };
  }

  // --- the loop -----------------------------------------------------------------------------

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      try {
        await this.step();
        failures = 0;
      } catch (e) {
        if (e instanceof Stopped || this.stopped) break;
        const delay = backoffMs(failures++, RETRY_BASE_MS, RETRY_MAX_MS);
        const missing = (e as NodeJS.ErrnoException).code === 'ENOENT' && !(await exists(this.folders.drop).catch(() => false));
        this.setHealth(missing ? 'disconnected' : 'stalled', `${missing ? `drop folder ${this.folders.drop} is not there` : describeError(e)}; retrying in ${delay} ms`);
        this.log?.warn({ err: describeError(e), retryInMs: delay }, missing ? 'drop folder is not accessible' : 'file source step failed; retrying');
        await this.sleep(delay, false);
      }
    }
  }

  /** One unit of work: resume a claimed file, or claim the next ready one, or wait. */
  private async step(): Promise<void> {
    const f = this.folders;
    await stat(f.drop); // a share that is not mounted: ENOENT, disconnected (we never create the drop folder)
    await Promise.all([ensureDir(f.processing), ensureDir(f.archive), ensureDir(f.quarantine)]);
    const claimed = await listFiles(f.processing);
    if (claimed[0]) return this.processClaimed(claimed[0].name);

    const next = await this.nextReady();
    if (this.state !== 'connected' || this.detail !== undefined) this.setHealth('connected');
    if (next) return this.claim(next);
    // Files still being written are looked at again after `ready.intervalMs`; otherwise a
    // folder change, a resume or the next poll wakes us.
    await this.sleep(this.waiting > 0 ? (this.readiness.recheckMs ?? this.config.watch.pollIntervalMs) : undefined);
  }

  private waiting = 0;

  private async nextReady(): Promise<DropEntry | undefined> {
    const all = await listFiles(this.folders.drop);
    const present = new Set(all.map((e) => e.name));
    const now = Date.now();
    const candidates = all.filter((e) => this.matches(e.name) && !this.readiness.isMarker(e.name) && (this.deferred.get(e.name) ?? 0) <= now);
    for (const [name, until] of this.deferred) if (until <= now || !present.has(name)) this.deferred.delete(name);
    const { ready, waiting } = this.readiness.observe(candidates, present, now);
    this.waiting = waiting.length + this.deferred.size;
    this.emit('scan', { waiting: waiting.map((e) => e.name), ready: ready.map((e) => e.name) });
    return ready[0];
  }

  private async claim(entry: DropEntry): Promise<void> {
    const f = this.folders;
    const to = join(f.processing, entry.name);
    try {
      if (await exists(to)) throw Object.assign(new Error(`${to} is already being processed`), { code: 'EEXIST' });
      await rename(join(f.drop, entry.name), to);
    } catch (e) {
      // Gone (the writer renamed it away), locked (Windows), or a name clash: look again later.
      this.log?.warn({ file: entry.name, err: describeError(e) }, 'cannot claim the file yet');
      this.deferred.set(entry.name, Date.now() + this.config.watch.pollIntervalMs);
      return;
    }
    this.readiness.forget(entry.name);
    await fsyncDir(f.processing);
    const marker = this.readiness.markerOf(entry.name);
    if (marker) await unlink(join(f.drop, marker)).catch(() => undefined);
    this.log?.info({ file: entry.name, bytes: entry.size }, 'file claimed');
  }

  // --- one file -----------------------------------------------------------------------------

  private async processClaimed(name: string): Promise<void> {
    try {
      await this.readClaimed(name);
      this.attempts.delete(name);
    } catch (e) {
      if (e instanceof Stopped || this.stopped) throw e;
      if (e instanceof BadFileError) return this.rejectFile(name, e.message);
      if (isIoError(e) || e instanceof CommitFailed) throw e; // the folder or the outbox, not the file: retried
      const n = (this.attempts.get(name) ?? 0) + 1;
      this.attempts.set(name, n);
      if (n < MAX_FILE_ATTEMPTS) throw e;
      this.attempts.delete(name);
      return this.rejectFile(name, `processing failed ${n} times: ${describeError(e)}`);
    } finally {
      this.current = undefined;
    }
  }

  private async readClaimed(name: string): Promise<void> {
    const ctx = this.ctx!;
    const path = join(this.folders.processing, name);
    // When the agent read the file: every event of it gets this `readtime`.
    const readAtMs = Date.now();
    const scanned = await scanFile(path, this.config);
    const key = progressKey(name);
    let progress = ctx.loadState<FileProgress>(key);
    if (progress && progress.hash !== scanned.hash) {
      this.log?.warn({ file: name }, 'the claimed file changed since its progress was committed; reading it from the start');
      progress = undefined;
    }
    if (!progress) {
      const seen = ctx.loadState<SeenFile>(seenKey(scanned.hash));
      if (seen) {
        if (ctx.loadState(key) !== undefined) await this.commit([], [{ key, value: undefined }]);
        this.log?.info({ file: name, sameAs: seen.file }, 'file content already committed; archived without re-sending');
        return this.archive(name, scanned.hash, 'duplicate', seen.rows, seen.rowsRejected);
      }
      const stem = await pickRejectedStem(this.folders.quarantine, name, scanned.hash);
      progress = { hash: scanned.hash, rowsDone: 0, rowsRejected: 0, stem, rejectedBytes: 0, reasonsBytes: 0 };
      // Commits the stem of the rejected-rows files before anything is written to them.
      await this.commit([], [{ key, value: progress }]);
    } else {
      this.log?.info({ file: name, rowsDone: progress.rowsDone }, 'resuming a claimed file after its last committed row');
    }

    this.current = { file: name, rowsDone: progress.rowsDone };
    const splitter = createSplitter(this.config.format, this.config.maxLineBytes);
    const rejected = new RejectedRows(this.folders.quarantine, progress.stem, extname(name), scanned.encoding, splitter, {
      rowsBytes: progress.rejectedBytes,
      reasonsBytes: progress.reasonsBytes,
    });
    let rows = 0;
    try {
      await rejected.restore();
      let drafts: EventDraft[] = [];
      let rowsRejected = progress.rowsRejected;
      for await (const row of readRows(path, scanned.encoding, splitter)) {
        rows++;
        if (rows <= progress.rowsDone) continue; // committed before a restart
        if (this.stopped) throw new Stopped();
        const reason = row.ok ? await this.map(row.record, drafts, readAtMs) : row.reason;
        if (reason !== undefined) {
          await rejected.add(row.raw, `row ${rows} (line ${row.line}): ${reason}`);
          rowsRejected++;
        }
        if (rows - progress.rowsDone >= this.config.batchRows) {
          progress = await this.commitBatch(name, progress, rows, rowsRejected, drafts, rejected);
          drafts = [];
        }
      }
      if (this.stopped) throw new Stopped();
      await rejected.finish();
      const seen: SeenFile = { file: name, rows, rowsRejected, atMs: Date.now() };
      const done = [{ key, value: undefined }, ...ledgerWrites(ctx, scanned.hash, seen, this.config.ledgerSize)];
      progress = await this.commitBatch(name, progress, rows, rowsRejected, drafts, rejected, done);
    } finally {
      await rejected.close();
    }
    await this.archive(name, scanned.hash, 'archived', rows, progress.rowsRejected);
  }

  /** Maps a record into `drafts`; returns why not when the record is bad. */
  private async map(record: unknown, drafts: EventDraft[], readAtMs: number): Promise<string | undefined> {
    try {
      drafts.push({ ...(await this.mapping.toDraft(record, { plant: this.ctx!.plant, sourceName: this.name })), readAtMs });
      return undefined;
    } catch (e) {
      if (e instanceof MappingError) return e.message;
      throw e;
    }
  }

  /** Commits a batch with the file's progress (or, for the last one, `finalWrites`). */
  private async commitBatch(
    name: string,
    progress: FileProgress,
    rowsDone: number,
    rowsRejected: number,
    drafts: EventDraft[],
    rejected: RejectedRows,
    finalWrites?: StateWrite[],
  ): Promise<FileProgress> {
    const sizes = await rejected.sync(); // rejected rows are on disk before the progress passes them
    const next: FileProgress = { ...progress, rowsDone, rowsRejected, rejectedBytes: sizes.rowsBytes, reasonsBytes: sizes.reasonsBytes };
    await this.commit(drafts, finalWrites ?? [{ key: progressKey(name), value: next }]);
    this.counters.rowsCommitted += drafts.length;
    this.counters.rowsQuarantined += rowsRejected - progress.rowsRejected;
    this.current = { file: name, rowsDone };
    this.emit('committed', { file: name, rowsDone });
    return next;
  }

  /** `ctx.commit` until committed: waits out `paused` (until onResume) and retries failures. */
  private async commit(drafts: EventDraft[], writes: StateWrite[]): Promise<CommitOutcome> {
    const ctx = this.ctx!;
    for (let failures = 0; ; ) {
      if (this.stopped) throw new Stopped();
      let outcome: CommitOutcome;
      try {
        outcome = ctx.commit(drafts, writes);
      } catch (e) {
        // Not the file's fault: keep the claim and the batch, retry; never skip the rows.
        const delay = backoffMs(failures++, RETRY_BASE_MS, RETRY_MAX_MS);
        this.setHealth('stalled', `outbox commit failed: ${describeError(e)}; retrying in ${delay} ms`);
        this.log?.error({ err: describeError(e), drafts: drafts.length, retryInMs: delay }, 'committing file rows failed; retrying');
        if (failures >= MAX_FILE_ATTEMPTS) throw new CommitFailed(describeError(e), { cause: e });
        await this.sleep(delay, false);
        continue;
      }
      if (outcome.status === 'committed') {
        if (this.paused) this.log?.info({ file: this.current?.file }, 'outbox resumed; reading on');
        this.paused = undefined;
        if (this.state === 'stalled') this.setHealth('connected');
        this.lastActivityMs = Date.now();
        return outcome;
      }
      if (!this.paused) this.log?.warn({ reason: outcome.reason, file: this.current?.file }, 'outbox paused; holding the file until it resumes');
      this.paused = { reason: outcome.reason };
      this.resumed = false;
      while (!this.resumed && !this.stopped) await this.sleep(undefined);
    }
  }

  private async archive(name: string, hash: string, outcome: 'archived' | 'duplicate', rows: number, rowsRejected: number): Promise<void> {
    const dir = this.folders.archive;
    const target = await freeName(name, hash.slice(0, 12), (candidate) => exists(join(dir, candidate)));
    await moveFile(join(this.folders.processing, name), join(dir, target));
    await fsyncDir(dir);
    if (outcome === 'archived') this.counters.filesArchived++;
    else this.counters.filesDuplicate++;
    if (outcome === 'archived') this.log?.info({ file: name, rows, rowsRejected, archivedAs: target }, 'file committed and archived');
    this.emit('file', { file: name, outcome, path: join(dir, target), rows, rowsRejected });
  }

  private async rejectFile(name: string, reason: string): Promise<void> {
    const ctx = this.ctx!;
    const key = progressKey(name);
    const progress = ctx.loadState<FileProgress>(key);
    const note = progress && progress.rowsDone > 0 ? ` (rows 1-${progress.rowsDone} had been committed before this was found)` : '';
    const where = await quarantineFile(join(this.folders.processing, name), this.folders.quarantine, name, stamp(), `${reason}${note}`);
    if (progress) await this.commit([], [{ key, value: undefined }]);
    this.counters.filesQuarantined++;
    this.log?.error({ file: name, reason: `${reason}${note}`, quarantinedAs: where }, 'bad file quarantined');
    this.emit('file', { file: name, outcome: 'quarantined', path: where, rows: progress?.rowsDone ?? 0, rowsRejected: progress?.rowsRejected ?? 0, reason: `${reason}${note}` });
  }

  // --- plumbing -----------------------------------------------------------------------------

  private setHealth(state: SourceHealthState, detail?: string): void {
    this.state = state;
    this.detail = detail;
  }

  private wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /** Waits for `ms` (undefined: no limit), a wake-up (folder change, resume) when `wakeable`, or stop. */
  private sleep(ms: number | undefined, wakeable = true): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (wakeable && this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        clearTimeout(timer);
        if (this.wakeUp === wake) this.wakeUp = undefined;
        resolve();
      };
      const wake = () => {
        if (this.stopped || wakeable) {
          this.woken = false;
          done();
        }
      };
      this.wakeUp = wake;
      if (ms !== undefined) timer = setTimeout(done, ms);
    });
  }
}

/** The outbox kept refusing a commit (disk full, I/O error): retried later, without blaming the file. */
class CommitFailed extends Error {
  override readonly name = 'CommitFailed';
}
