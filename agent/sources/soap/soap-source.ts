/**
 * The SOAP source: polls a "what changed since T" operation of an on-prem ERP/MES web
 * service, maps each changed record to a canonical event and commits them to the outbox.
 *
 * Invariants:
 * - One `ctx.commit` per response page, with the page's drafts AND the new cursor (cursor.ts),
 *   so after a crash either both are on disk or neither is. The in-memory cursor moves only
 *   after `committed`; the next page is requested only then.
 * - Never miss: each poll asks from the committed watermark inclusive (minus overlapMs), so
 *   changes stamped with the boundary time are read again. Never re-send: records already
 *   committed at or after the boundary are recognised by their event id and skipped.
 * - A record that cannot be mapped (MappingError) is quarantined: logged with its reason,
 *   counted and kept in a bounded list for status; it does not stop the page or the cursor.
 * - `paused` (outbox full): nothing of the page is kept, the cursor stays, and the source
 *   waits for `ctx.onResume`, then polls again from the committed cursor.
 * - Failures are classified once (soap-errors.ts). Transient: retried with jittered backoff,
 *   health `disconnected`. Permanent: health `stalled` with the fault text, polled again on
 *   the normal schedule. Neither ends the loop; `stop` does, without waiting for the network.
 */
import { EventEmitter } from 'node:events';
import { hash } from 'node:crypto';
import { deriveEventId } from '../../../protocols/events/event-id.js';
import { backoffMs, describeError, PermanentError, TransientError } from '../../../protocols/errors.js';
import type { Logger } from '../../../protocols/log.js';
import { compileMapping, MappingError, type CompiledMapping } from '../../mapping/record-mapping.js';
import type { EventDraft, Source, SourceContext, SourceHealth } from '../source.js';
import { SoapSourceConfig, type SoapSourceConfigInput } from './config.js';
import { advanceCursor, coerceCursor, CURSOR_STATE_KEY, initialCursor, sameCursor, type CursorState, type SeenRecord } from './cursor.js';
import { getPath, hasPath, setPath, timeMs } from './paths.js';
import { SoapOperation } from './soap-call.js';

/** A record that could not become an event. */
export interface QuarantinedRecord {
  atMs: number;
  /** The mapping field at fault (`key`, `occurredAt`, `fields.status`, `data`). */
  field: string;
  reason: string;
  /** The record as JSON, cut to 500 characters. */
  record: string;
}

/** What one poll did, emitted as `poll` after it ends. */
export interface PollReport {
  outcome: 'ok' | 'paused' | 'transient' | 'permanent' | 'stopped';
  pages: number;
  appended: number;
  duplicates: number;
  /** Records re-read at the boundary and recognised as already committed. */
  skipped: number;
  quarantined: number;
  error?: string;
}

export interface SoapSourceStatus {
  health: SourceHealth;
  /** Watermark of the committed cursor (ISO 8601). */
  watermark: string | undefined;
  polls: number;
  /** Records quarantined since start. */
  quarantined: number;
  /** The latest quarantined records, newest last. */
  recentQuarantine: QuarantinedRecord[];
  lastError: { kind: 'transient' | 'permanent'; message: string; atMs: number } | undefined;
}

export interface SoapSourceEvents {
  poll: [PollReport];
}

interface PreparedPage {
  drafts: EventDraft[];
  cursor: CursorState;
  skipped: number;
  quarantined: QuarantinedRecord[];
  recentTruncated: boolean;
}

/** Thrown inside a poll when the source stops. */
class Stopped extends Error {}
/** Thrown inside a poll when the outbox answers `paused`. */
class Paused extends Error {}

export class SoapSource extends EventEmitter<SoapSourceEvents> implements Source {
  readonly kind = 'soap';
  readonly name: string;
  private readonly config: SoapSourceConfig;
  private readonly mapping: CompiledMapping;
  private ctx: SourceContext | undefined;
  private log: Logger | undefined;
  private op: SoapOperation | undefined;
  private cursor: CursorState | undefined;
  /** Incremented by start and stop: a loop or call of an older run finds it changed and ends. */
  private run = 0;
  private stopped = true;
  private loopDone: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private stopSignal: { promise: Promise<never>; reject: (e: Error) => void } | undefined;
  private unsubscribeResume: (() => void) | undefined;
  private paused: { reason: string } | undefined;
  private polls = 0;
  private lastActivityMs: number | undefined;
  private lastError: SoapSourceStatus['lastError'];
  private quarantinedCount = 0;
  private readonly recentQuarantine: QuarantinedRecord[] = [];
  private warnedTruncated = false;
  /** Retry-After of the last transient failure, if the server sent one. */
  private retryDelay: number | undefined;

  constructor(
    config: SoapSourceConfigInput,
    private readonly logger?: Logger,
  ) {
    super();
    this.config = SoapSourceConfig.parse(config);
    this.name = this.config.name;
    this.mapping = compileMapping(this.config.map);
  }

  async start(ctx: SourceContext): Promise<void> {
    if (!this.stopped) throw new Error(`source ${this.name} is already started`);
    this.stopped = false;
    const run = ++this.run;
    this.ctx = ctx;
    const log = (this.logger ?? ctx.logger).child({ source: this.name, kind: this.kind });
    this.log = log;
    const saved = ctx.loadState<unknown>(CURSOR_STATE_KEY);
    const cursor = saved === undefined ? undefined : coerceCursor(saved);
    if (saved !== undefined && !cursor) log.error('the saved SOAP cursor is not readable; starting from cursor.initial (re-read records are deduplicated by id)');
    this.cursor = cursor ?? initialCursor(this.config.cursor.initial);
    if (this.config.tls && !this.config.tls.rejectUnauthorized) log.warn('tls.rejectUnauthorized is off: the ERP server certificate is not verified');
    let reject!: (e: Error) => void;
    const promise = new Promise<never>((_resolve, rej) => (reject = rej));
    promise.catch(() => undefined); // observed by raceStop only
    this.stopSignal = { promise, reject };
    this.unsubscribeResume = ctx.onResume(() => {
      if (!this.paused) return;
      this.paused = undefined;
      log.info('outbox resumed; polling the SOAP service again');
      this.wake?.();
    });
    log.info({ operation: this.config.operation, watermark: new Date(this.cursor.watermarkMs).toISOString() }, 'SOAP source started');
    this.loopDone = this.loop(run);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.run++;
    this.unsubscribeResume?.();
    this.unsubscribeResume = undefined;
    this.stopSignal?.reject(new Stopped());
    this.wake?.();
    await this.loopDone;
    this.op?.close();
    this.op = undefined;
    this.paused = undefined;
  }

  health(): SourceHealth {
    if (this.stopped) return { state: 'stopped' };
    const activity = this.lastActivityMs === undefined ? {} : { lastActivityMs: this.lastActivityMs };
    if (this.paused) return { state: 'paused', detail: this.paused.reason, ...activity };
    const error = this.lastError;
    if (error?.kind === 'transient') return { state: 'disconnected', detail: error.message, ...activity };
    if (error?.kind === 'permanent') {
      return { state: 'stalled', detail: `${error.message} (permanent; polling again every ${this.config.pollIntervalMs} ms)`, ...activity };
    }
    if (this.polls === 0) return { state: 'starting', ...activity };
    const last = this.recentQuarantine.at(-1);
    const detail = last ? `${this.quarantinedCount} record(s) quarantined; latest: ${last.field}: ${last.reason}` : undefined;
    return { state: 'connected', ...(detail ? { detail } : {}), ...activity };
  }

  status(): SoapSourceStatus {
    return {
      health: this.health(),
      watermark: this.cursor ? new Date(this.cursor.watermarkMs).toISOString() : undefined,
      polls: this.polls,
      quarantined: this.quarantinedCount,
      recentQuarantine: [...this.recentQuarantine],
      lastError: this.lastError,
    };
  }

  // ---- schedule ----------------------------------------------------------------------------

  private live(run: number): boolean {
    return !this.stopped && this.run === run;
  }

  private async loop(run: number): Promise<void> {
    let failures = 0;
    while (this.live(run)) {
      const report = await this.pollOnce(run);
      if (!this.live(run)) return;
      this.polls++;
      try {
        this.emit('poll', report);
      } catch (e) {
        this.log?.error({ err: describeError(e) }, 'a poll listener threw; ignored');
      }
      let delay: number;
      switch (report.outcome) {
        case 'paused':
          delay = Infinity; // until onResume
          break;
        case 'transient': {
          failures++;
          delay = this.retryDelay ?? backoffMs(failures - 1, this.config.retry.baseMs, this.config.retry.maxMs);
          break;
        }
        default:
          failures = 0;
          delay = this.config.pollIntervalMs;
      }
      this.retryDelay = undefined;
      await this.sleep(delay);
    }
  }

  /** Waits `ms` (Infinity: until woken), or until `wake` (resume, stop). */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = Number.isFinite(ms) ? setTimeout(() => done(), ms) : undefined;
      const done = () => {
        clearTimeout(timer);
        if (this.wake === done) this.wake = undefined;
        resolve();
      };
      this.wake = done;
      if (!this.live(this.run) || (ms === Infinity && !this.paused)) done();
    });
  }

  /** Settles like `promise`, or rejects with Stopped as soon as the source stops. */
  private raceStop<T>(promise: Promise<T>): Promise<T> {
    const signal = this.stopSignal;
    return signal ? Promise.race([promise, signal.promise]) : promise;
  }

  // ---- one poll ----------------------------------------------------------------------------

  private async pollOnce(run: number): Promise<PollReport> {
    const report: PollReport = { outcome: 'ok', pages: 0, appended: 0, duplicates: 0, skipped: 0, quarantined: 0 };
    try {
      await this.readAllPages(run, report);
      if (!this.live(run)) return { ...report, outcome: 'stopped' };
      if (this.lastError) this.log?.info({ watermark: new Date(this.cursor!.watermarkMs).toISOString() }, 'SOAP service answers again');
      this.lastError = undefined;
      return report;
    } catch (e) {
      if (e instanceof Stopped || !this.live(run)) return { ...report, outcome: 'stopped' };
      if (e instanceof Paused) return { ...report, outcome: 'paused' };
      const error = e instanceof TransientError || e instanceof PermanentError ? e : new PermanentError(describeError(e), { cause: e });
      const kind = error instanceof TransientError ? 'transient' : 'permanent';
      if (error instanceof TransientError && error.retryAfterMs !== undefined) this.retryDelay = error.retryAfterMs;
      const repeated = this.lastError?.message === error.message;
      this.lastError = { kind, message: error.message, atMs: Date.now() };
      const fields = { err: error.message, kind, pages: report.pages };
      if (repeated) this.log?.debug(fields, 'SOAP poll failed again');
      else if (kind === 'transient') this.log?.warn(fields, 'SOAP poll failed; retrying with backoff');
      else this.log?.error(fields, 'SOAP poll failed permanently; polling again on schedule');
      return { ...report, outcome: kind, error: error.message };
    }
  }

  private async readAllPages(run: number, report: PollReport): Promise<void> {
    const c = this.config;
    const ctx = this.ctx!;
    this.op ??= new SoapOperation(c);
    const op = this.op;
    let cursor = this.cursor!;
    const since = new Date(cursor.watermarkMs - c.cursor.overlapMs).toISOString();
    const tokens = new Set<string>();
    let pageToken: string | undefined;
    let runWatermarkMs: number | undefined;
    for (;;) {
      const args = structuredClone(c.request);
      setPath(args, c.cursor.requestField, since);
      if (pageToken !== undefined && c.cursor.pageTokenField) setPath(args, c.cursor.pageTokenField, pageToken);
      const response = await this.raceStop(op.call(args));
      if (!this.live(run)) return;
      this.lastActivityMs = Date.now();
      const items = this.itemsOf(response);
      if (c.cursor.watermarkFrom === 'response' && runWatermarkMs === undefined) {
        runWatermarkMs = timeMs(getPath(response, c.cursor.watermarkField));
        if (runWatermarkMs === undefined) throw this.shapeError(`has no time at cursor.watermarkField \`${c.cursor.watermarkField}\``);
      }
      const next = this.nextToken(response);
      if (next !== undefined && (next === pageToken || tokens.has(next))) {
        throw new PermanentError(`calling ${c.operation}: the service answered page token "${next.slice(0, 64)}" twice; ending the poll instead of looping`, { code: 'paging' });
      }
      const page = await this.preparePage(items, cursor, runWatermarkMs, next === undefined);
      if (!this.live(run)) return;
      if (page.drafts.length > 0 || !sameCursor(page.cursor, cursor)) {
        let outcome;
        try {
          outcome = ctx.commit(page.drafts, [{ key: CURSOR_STATE_KEY, value: page.cursor }]);
        } catch (e) {
          throw new TransientError(`committing ${page.drafts.length} event(s) to the outbox: ${describeError(e)}`, { cause: e });
        }
        if (outcome.status === 'paused') {
          this.paused = { reason: outcome.reason };
          this.log?.warn({ reason: outcome.reason, dropped: page.drafts.length }, 'outbox paused; the SOAP cursor stays and the page is read again on resume');
          throw new Paused();
        }
        report.appended += outcome.appended;
        report.duplicates += outcome.duplicates;
      }
      cursor = page.cursor;
      this.cursor = cursor;
      report.pages++;
      report.skipped += page.skipped;
      report.quarantined += page.quarantined.length;
      this.noteQuarantine(page.quarantined);
      if (page.recentTruncated && !this.warnedTruncated) {
        this.warnedTruncated = true;
        this.log?.warn('more records share the boundary time than the cursor remembers; some re-reads may be sent again (deduplicated by id downstream)');
      }
      if (next === undefined) return;
      tokens.add(next);
      pageToken = next;
    }
  }

  private async preparePage(items: unknown[], cursor: CursorState, runWatermarkMs: number | undefined, lastPage: boolean): Promise<PreparedPage> {
    const c = this.config;
    const ctx = this.ctx!;
    const fromItems = c.cursor.watermarkFrom === 'item';
    const known = new Set(cursor.recent.map(([key]) => key));
    const drafts: EventDraft[] = [];
    const seen: SeenRecord[] = [];
    const quarantined: QuarantinedRecord[] = [];
    let skipped = 0;
    let watermarkMs = fromItems ? cursor.watermarkMs : lastPage ? (runWatermarkMs ?? cursor.watermarkMs) : cursor.watermarkMs;
    for (const item of items) {
      const itemTime = fromItems ? timeMs(getPath(item, c.cursor.watermarkField)) : runWatermarkMs;
      // A record without a usable change time is still sent; it just cannot move the watermark.
      const t = itemTime ?? cursor.watermarkMs;
      if (fromItems && itemTime === undefined) {
        this.log?.warn({ field: c.cursor.watermarkField }, 'SOAP record has no change time at cursor.watermarkField; it does not move the watermark');
      }
      let key: string;
      let draft: EventDraft | undefined;
      let problem: MappingError | undefined;
      try {
        draft = await this.mapping.toDraft(item, { plant: ctx.plant, sourceName: this.name });
        key = deriveEventId(draft.fact);
      } catch (e) {
        if (!(e instanceof MappingError)) throw e;
        problem = e;
        key = `q:${hash('sha256', safeJson(item), 'hex').slice(0, 32)}`;
      }
      seen.push({ key, timeMs: t });
      if (fromItems && itemTime !== undefined) watermarkMs = Math.max(watermarkMs, itemTime);
      if (known.has(key)) {
        skipped++;
        continue;
      }
      known.add(key);
      if (draft) drafts.push(draft);
      else if (problem) quarantined.push({ atMs: Date.now(), field: problem.field, reason: problem.message, record: safeJson(item).slice(0, 500) });
    }
    const { cursor: next, truncated } = advanceCursor(cursor, seen, watermarkMs, c.cursor.overlapMs);
    return { drafts, cursor: next, skipped, quarantined, recentTruncated: truncated };
  }

  /** The list at `itemsPath`: absent last element = no records; anything else missing = unexpected shape. */
  private itemsOf(response: unknown): unknown[] {
    const path = this.config.itemsPath;
    if (response === null || typeof response !== 'object') throw this.shapeError('is empty');
    const parent = path.includes('.') ? path.slice(0, path.lastIndexOf('.')) : undefined;
    if (parent !== undefined && !hasPath(response, parent)) {
      throw this.shapeError(`has no \`${parent}\` (itemsPath \`${path}\`); it has ${Object.keys(response).map((k) => `\`${k}\``).join(', ') || 'nothing'}`);
    }
    const value = getPath(response, path);
    if (value === undefined || value === null || value === '') return [];
    if (Array.isArray(value)) return value;
    if (typeof value === 'object') return [value]; // a single record, if the WSDL does not say it repeats
    throw this.shapeError(`has a ${typeof value} at itemsPath \`${path}\`, not a list of records`);
  }

  private nextToken(response: unknown): string | undefined {
    const path = this.config.cursor.nextPageTokenPath;
    if (!path) return undefined;
    const value = getPath(response, path);
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string' && typeof value !== 'number') throw this.shapeError(`has a non-text page token at \`${path}\``);
    const token = String(value);
    return token === '' ? undefined : token;
  }

  private shapeError(what: string): PermanentError {
    return new PermanentError(`calling ${this.config.operation}: unexpected response shape: the response ${what}`, { code: 'unexpected-response' });
  }

  private noteQuarantine(records: QuarantinedRecord[]): void {
    for (const record of records) {
      this.quarantinedCount++;
      this.recentQuarantine.push(record);
      if (this.recentQuarantine.length > this.config.quarantineKept) this.recentQuarantine.shift();
      this.log?.warn({ field: record.field, reason: record.reason, record: record.record }, 'SOAP record quarantined: it does not map to an event');
    }
  }
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'undefined';
  } catch {
    return String(value);
  }
}
