/**
 * Reconciliation: for one day (UTC, by event time), does every sink hold exactly what the
 * plants produced?
 *
 * Three sources are compared, per plant and lane:
 * 1. the agents' ledgers (every event each agent's outbox committed, or dropped when full);
 * 2. the relay's inbox and each lane's delivery outcome (what the sink confirmed, with the
 *    record ids it returned);
 * 3. with `verify`, the target itself: each record the sink's mapping writes is read back by
 *    external id (Salesforce SOQL, HubSpot batch read by idProperty, NetSuite by `eid:`).
 *
 * Findings, per event or record:
 * - `dropped`: the agent's outbox was full under `drop_newest` and dropped it (by policy; not
 *   repairable from here, the source must send it again);
 * - `not_received`: in an agent's ledger, not at the relay (still in the agent's outbox, or lost
 *   on the way; the agent's backlog says which);
 * - `pending`, `dead`: not delivered yet, or dead-lettered (replay from the dead letters);
 * - `missing`: delivered, but the target has no record with its external id (deleted behind
 *   our back);
 * - `duplicated`: the target has several records with one external id;
 * - `stale`: the record's fields differ from what we last wrote (regressed or edited).
 *
 * Repair re-sends what is missing or stale (the delivery goes back to pending on its lane, and
 * the lane's usual order, versions and idempotent upserts apply: a per-event record is written
 * again by its own event, a latest-state record by the newest event applied for its subject)
 * and deletes the extra records of a duplicate, keeping the one the sink reported writing.
 * Repairs never touch what is in order, so running it twice changes nothing the second time.
 *
 * Reconciliation sees only what the relay still keeps: delivered events are pruned after
 * `relay.retentionHours`; a day that ended before that is refused.
 */
import { z } from 'zod';
import { PermanentError, TransientError } from '../../protocols/errors.js';
import type { CloudEventV1 } from '../../protocols/events/envelope.js';
import { isRecordReader, type ExpectedRecord, type FoundRecord, type RecordReader, type Sink } from '../sinks/sink.js';
import type { LedgerRow, RelayStore, TracedEvent } from '../store/store.js';
import { differingFields } from './compare.js';

export type FindingKind = 'dropped' | 'not_received' | 'pending' | 'dead' | 'missing' | 'duplicated' | 'stale';

/** Kinds that mean the target is not as it should be and a repair can fix it. */
export const REPAIRABLE: ReadonlySet<FindingKind> = new Set(['missing', 'duplicated', 'stale']);

/** Whether repair acts on this finding. */
export const isRepairable = (f: Finding): boolean => REPAIRABLE.has(f.kind) && !f.manual;

export interface Finding {
  kind: FindingKind;
  plant: string;
  /** Business key, e.g. `work-order/WO-1001`. */
  subject: string;
  eventId: string;
  lane?: string;
  inboxSeq?: number;
  /** The target record, for missing, duplicated and stale. */
  record?: { object: string; externalIdField: string; externalId: string; apply: 'event' | 'latest'; ids?: string[] };
  differences?: { field: string; expected: unknown; found: unknown }[];
  /** A duplicate that repair leaves alone: which record to keep is a person's call. */
  manual?: boolean;
  detail: string;
}

export interface LaneSummary {
  plant: string;
  lane: string;
  events: number;
  delivered: number;
  pending: number;
  dead: number;
  /** Whether the target was read back (a sink that can, and `verify`). */
  verified: boolean;
  recordsChecked: number;
  missing: number;
  duplicated: number;
  stale: number;
}

export interface PlantSummary {
  plant: string;
  /** Entries in the agents' ledgers for the day (stored + dropped). */
  ledger: number;
  dropped: number;
  notReceived: number;
  /** Events of the day at the relay. */
  received: number;
  /** Received with no ledger entry: the agent predates ledgers, or its ledger has not arrived yet. */
  withoutLedger: number;
}

export interface ReconcileReport {
  day: string;
  fromMs: number;
  toMs: number;
  plant?: string | undefined;
  lane?: string | undefined;
  verify: boolean;
  generatedMs: number;
  plants: PlantSummary[];
  lanes: LaneSummary[];
  findings: Finding[];
  /** Lanes whose target cannot be read back (webhooks): only the sink's confirmations count. */
  unverifiable: string[];
  /** Findings per business key: the orders and shipments to look at. */
  byKey: { plant: string; subject: string; kinds: FindingKind[] }[];
  /** True when a kind's findings were cut at MAX_FINDINGS (the counts are complete; repair what is listed, then run again). */
  truncated: boolean;
}

export interface RepairResult {
  resent: { lane: string; events: number }[];
  deleted: { lane: string; object: string; ids: string[] }[];
  errors: string[];
}

export interface ReconcileOptions {
  day: string;
  plant?: string | undefined;
  lane?: string | undefined;
  /** Read each record back from the target (default true). */
  verify?: boolean;
}

/** A repair request, as the operator API and the console take it. */
export const RepairRequest = z.object({ day: z.string(), plant: z.string().min(1).optional(), lane: z.string().min(1).optional() }).strict();
export type RepairRequest = z.infer<typeof RepairRequest>;

/** A report request from query parameters: `day`, `plant`, `lane`, `verify=false`. */
export function reconcileOptionsFrom(params: URLSearchParams): ReconcileOptions {
  return { day: params.get('day') ?? '', plant: params.get('plant') || undefined, lane: params.get('lane') || undefined, verify: params.get('verify') !== 'false' };
}

const REQUEST_ERROR_CODES: ReadonlySet<string> = new Set(['bad_day', 'day_out_of_retention', 'unknown_lane']);

/** Whether a reconciliation failed through the request's fault (a bad or too old day, an unknown lane), not the targets'. */
export function isRequestError(e: unknown): e is PermanentError {
  return e instanceof PermanentError && REQUEST_ERROR_CODES.has(e.code);
}

/**
 * How an HTTP caller hears of a failed reconciliation or repair: a bad request is 400, a
 * target that refused or did not answer 502; undefined for anything else (a bug: 500).
 */
export function reconcileFailure(e: unknown): { status: 400 | 502; message: string } | undefined {
  if (isRequestError(e)) return { status: 400, message: e.message };
  if (e instanceof PermanentError || e instanceof TransientError) return { status: 502, message: `the target refused or did not answer: ${e.message}` };
  return undefined;
}

export interface ReconcilerDeps {
  store: RelayStore;
  sinks: readonly Sink[];
  /** The relay's retention (`relay.retentionHours`): days that ended before it are refused. */
  retentionHours: number;
  now?: () => number;
}

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;
const PAGE = 1000;
const READ_CHUNK = 200;
/** Findings listed per kind, at most. */
export const MAX_FINDINGS = 5000;

export function dayBounds(day: string): { fromMs: number; toMs: number } {
  const m = DAY.exec(day);
  const fromMs = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : NaN;
  if (!m || !Number.isFinite(fromMs) || new Date(fromMs).toISOString().slice(0, 10) !== day) {
    throw new PermanentError(`day must be a calendar date YYYY-MM-DD (UTC), got "${day}"`, { code: 'bad_day' });
  }
  return { fromMs, toMs: fromMs + 86_400_000 };
}

/**
 * The SQLite store answers synchronously: between pages of a big day, let the relay's ingress,
 * acks and deliveries run.
 */
const yieldToIo = () => new Promise<void>((resolve) => setImmediate(resolve));

const recordKey = (r: Pick<ExpectedRecord, 'object' | 'externalIdField' | 'externalId'>) => `${r.object}\u0000${r.externalIdField}\u0000${r.externalId}`;

/** What one record should hold, and which delivery to re-send to restore it. */
interface Expectation {
  record: ExpectedRecord;
  plant: string;
  subject: string;
  eventId: string;
  inboxSeq: number;
  /** Record ids the sink reported for that delivery: the one to keep among duplicates. */
  reportedIds: string[];
}

export class Reconciler {
  private readonly now: () => number;
  private readonly sinks: Map<string, Sink>;
  /** The lanes whose target can be read back (and so verified and repaired), by name. */
  private readonly readers: Map<string, Sink & RecordReader>;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: ReconcilerDeps) {
    this.now = deps.now ?? Date.now;
    this.sinks = new Map(deps.sinks.map((s) => [s.name, s]));
    this.readers = new Map(deps.sinks.filter(isRecordReader).map((s) => [s.name, s]));
  }

  /**
   * One reconciliation at a time per relay: each reads a whole day and calls the targets, so
   * concurrent ones (a console page and a CLI) queue instead of multiplying the load.
   */
  reconcile(options: ReconcileOptions): Promise<ReconcileReport> {
    const run = this.queue.then(() => this.run(options));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async run(options: ReconcileOptions): Promise<ReconcileReport> {
    const { fromMs, toMs } = dayBounds(options.day);
    const oldest = this.now() - this.deps.retentionHours * 3_600_000;
    if (fromMs < oldest) {
      throw new PermanentError(`${options.day} is older than the relay keeps delivered events (relay.retentionHours = ${this.deps.retentionHours}): nothing left to compare`, { code: 'day_out_of_retention' });
    }
    if (options.lane !== undefined && !this.sinks.has(options.lane)) {
      throw new PermanentError(`no lane "${options.lane}"; lanes: ${[...this.sinks.keys()].join(', ')}`, { code: 'unknown_lane' });
    }
    const verify = options.verify ?? true;
    const findings: Finding[] = [];
    const perKind = new Map<FindingKind, number>();
    let truncated = false;
    // Capped per kind, so thousands of pending deliveries (a CRM outage) never push the
    // repairable findings out of the report, and so out of the repair.
    const add = (f: Finding) => {
      const n = perKind.get(f.kind) ?? 0;
      if (n < MAX_FINDINGS) {
        findings.push(f);
        perKind.set(f.kind, n + 1);
      } else truncated = true;
    };

    const ledger = await this.loadLedger(options.plant, fromMs, toMs);
    const plants = new Map<string, PlantSummary>();
    const plantOf = (plant: string) => {
      let p = plants.get(plant);
      if (!p) plants.set(plant, (p = { plant, ledger: 0, dropped: 0, notReceived: 0, received: 0, withoutLedger: 0 }));
      return p;
    };
    for (const row of ledger.values()) {
      const p = plantOf(row.plant);
      p.ledger++;
      if (row.status === 'dropped') p.dropped++;
    }

    const lanes = new Map<string, LaneSummary>();
    const laneOf = (plant: string, lane: string) => {
      const k = `${plant}\u0000${lane}`;
      let l = lanes.get(k);
      if (!l) {
        lanes.set(k, (l = { plant, lane, events: 0, delivered: 0, pending: 0, dead: 0, verified: verify && this.readers.has(lane), recordsChecked: 0, missing: 0, duplicated: 0, stale: 0 }));
      }
      return l;
    };
    // Per lane, the records the day's deliveries wrote (latest-state ones resolved below).
    const expected = new Map<string, Map<string, Expectation>>();
    const latestSubjects = new Map<string, Map<string, { plant: string; subject: string }>>();

    for await (const e of this.events(options.plant, fromMs, toMs)) {
      const p = plantOf(e.plant);
      p.received++;
      const key = `${e.source}\u0000${e.id}`;
      if (ledger.has(key)) ledger.delete(key);
      else p.withoutLedger++;
      for (const d of e.deliveries) {
        if (options.lane !== undefined && d.lane !== options.lane) continue;
        const l = laneOf(e.plant, d.lane);
        l.events++;
        if (d.status === 'pending') {
          l.pending++;
          add({ kind: 'pending', plant: e.plant, subject: e.subject, eventId: e.id, lane: d.lane, inboxSeq: e.seq, detail: d.attempts > 0 ? `not delivered yet: ${d.attempts} attempts, last error ${d.errorCode ?? ''} ${d.lastError ?? ''}`.trim() : 'not delivered yet: waiting for its turn' });
          continue;
        }
        if (d.status === 'dead') {
          l.dead++;
          add({ kind: 'dead', plant: e.plant, subject: e.subject, eventId: e.id, lane: d.lane, inboxSeq: e.seq, detail: `dead-lettered: ${d.errorCode ?? ''} ${d.lastError ?? ''}`.trim() });
          continue;
        }
        l.delivered++;
        if (!l.verified) continue;
        const reader = this.readers.get(d.lane)!;
        // Per-event records: what this event wrote (`stale` skips the latest-state mappings).
        const plan = reader.expectedRecords({ event: e.event as unknown as CloudEventV1, stale: true });
        if (plan.ok) {
          let forLane = expected.get(d.lane);
          if (!forLane) expected.set(d.lane, (forLane = new Map()));
          for (const record of plan.records) forLane.set(recordKey(record), { record, plant: e.plant, subject: e.subject, eventId: e.id, inboxSeq: e.seq, reportedIds: d.recordIds });
        }
        let subjects = latestSubjects.get(d.lane);
        if (!subjects) latestSubjects.set(d.lane, (subjects = new Map()));
        subjects.set(`${e.plant}/${e.subject}`, { plant: e.plant, subject: e.subject });
      }
    }

    for (const row of ledger.values()) {
      if (row.status === 'dropped') {
        add({ kind: 'dropped', plant: row.plant, subject: row.subject, eventId: row.id, detail: `agent ${row.agent} dropped it: its outbox was full (onFull: drop_newest); the source must send it again` });
      } else {
        plantOf(row.plant).notReceived++;
        add({ kind: 'not_received', plant: row.plant, subject: row.subject, eventId: row.id, detail: `in agent ${row.agent}'s ledger, not at the relay: still in its outbox (see its backlog) or refused at ingress` });
      }
    }

    if (verify) {
      for (const [lane, subjects] of latestSubjects) await this.addLatestExpectations(lane, subjects, expected);
      for (const [lane, records] of expected) {
        const reader = this.readers.get(lane)!;
        const list = [...records.values()];
        for (let i = 0; i < list.length; i += READ_CHUNK) {
          const chunk = list.slice(i, i + READ_CHUNK);
          const found = await reader.readRecords(chunk.map((x) => x.record));
          chunk.forEach((x, j) => this.judge(x, found[j] ?? [], lane, laneOf(x.plant, lane), add));
        }
      }
    }

    const unverifiable = [...this.sinks.keys()].filter((name) => !this.readers.has(name) && (options.lane === undefined || name === options.lane));
    const byKey = new Map<string, { plant: string; subject: string; kinds: Set<FindingKind> }>();
    for (const f of findings) {
      const k = `${f.plant}\u0000${f.subject}`;
      let g = byKey.get(k);
      if (!g) byKey.set(k, (g = { plant: f.plant, subject: f.subject, kinds: new Set() }));
      g.kinds.add(f.kind);
    }
    return {
      day: options.day,
      fromMs,
      toMs,
      plant: options.plant,
      lane: options.lane,
      verify,
      generatedMs: this.now(),
      plants: [...plants.values()].sort((a, b) => a.plant.localeCompare(b.plant)),
      lanes: [...lanes.values()].sort((a, b) => a.plant.localeCompare(b.plant) || a.lane.localeCompare(b.lane)),
      findings,
      unverifiable,
      byKey: [...byKey.values()].map((g) => ({ plant: g.plant, subject: g.subject, kinds: [...g.kinds] })),
      truncated,
    };
  }

  /** Reconciles the request's day, reading the targets back, then repairs what that found. */
  async reconcileAndRepair(request: RepairRequest): Promise<{ report: ReconcileReport; repair: RepairResult }> {
    const report = await this.reconcile({ ...request, verify: true });
    return { report, repair: await this.repair(report) };
  }

  /** Re-sends what is missing or stale and deletes the extra records of duplicates. */
  async repair(report: ReconcileReport): Promise<RepairResult> {
    const resend = new Map<string, Set<number>>();
    const deletes = new Map<string, { lane: string; object: string; ids: string[] }>();
    for (const f of report.findings) {
      if (!isRepairable(f) || f.lane === undefined || f.inboxSeq === undefined || !f.record) continue;
      if (f.kind === 'duplicated') {
        const [, ...extra] = f.record.ids ?? [];
        const k = `${f.lane}\u0000${f.record.object}`;
        let d = deletes.get(k);
        if (!d) deletes.set(k, (d = { lane: f.lane, object: f.record.object, ids: [] }));
        d.ids.push(...extra);
        continue;
      }
      let seqs = resend.get(f.lane);
      if (!seqs) resend.set(f.lane, (seqs = new Set()));
      seqs.add(f.inboxSeq);
    }
    const result: RepairResult = { resent: [], deleted: [], errors: [] };
    // Duplicates first: a Salesforce upsert by an external id held by two records fails.
    for (const d of deletes.values()) {
      const sink = this.readers.get(d.lane);
      if (!sink || d.ids.length === 0) continue;
      try {
        await sink.deleteRecords(d.object, d.ids);
        result.deleted.push(d);
      } catch (e) {
        result.errors.push(`deleting duplicates ${d.ids.join(', ')} of ${d.object} from ${d.lane}: ${(e as Error).message}`);
      }
    }
    for (const [lane, seqs] of resend) {
      const events = await this.deps.store.resend(lane, [...seqs].sort((a, b) => a - b));
      result.resent.push({ lane, events });
    }
    return result;
  }

  private judge(x: Expectation, found: FoundRecord[], lane: string, l: LaneSummary, add: (f: Finding) => void): void {
    l.recordsChecked++;
    const base = {
      plant: x.plant,
      subject: x.subject,
      eventId: x.eventId,
      lane,
      inboxSeq: x.inboxSeq,
      record: { object: x.record.object, externalIdField: x.record.externalIdField, externalId: x.record.externalId, apply: x.record.apply },
    };
    const what = `${x.record.object} ${x.record.externalIdField}=${x.record.externalId}`;
    if (found.length === 0) {
      l.missing++;
      add({ ...base, kind: 'missing', detail: `${what} is not in ${lane}: re-send` });
      return;
    }
    if (found.length > 1) {
      l.duplicated++;
      // Keep the record the sink reported writing. When none of them is (a delivery from before
      // record ids were kept), deleting one could take its children with it (a Salesforce
      // master-detail cascade): listed, and left to a person.
      const keep = found.find((r) => x.reportedIds.includes(r.id));
      if (!keep) {
        add({ ...base, record: { ...base.record, ids: found.map((r) => r.id) }, kind: 'duplicated', manual: true, detail: `${what} is held by ${found.length} records (${found.map((r) => r.id).join(', ')}), none of them the one plantlink recorded writing: decide by hand which to keep` });
        return;
      }
      const ids = [keep.id, ...found.filter((r) => r !== keep).map((r) => r.id)];
      add({ ...base, record: { ...base.record, ids }, kind: 'duplicated', detail: `${what} is held by ${found.length} records (${ids.join(', ')}): keep ${keep.id}, the one plantlink wrote; delete the rest` });
      const diff = differingFields(x.record.fields, keep.fields);
      if (diff.length) {
        l.stale++;
        add({ ...base, kind: 'stale', differences: diff, detail: `${what}: ${diff.map((d) => d.field).join(', ')} differ from what we wrote: re-send` });
      }
      return;
    }
    const diff = differingFields(x.record.fields, found[0]!.fields);
    if (diff.length) {
      l.stale++;
      add({ ...base, record: { ...base.record, ids: [found[0]!.id] }, kind: 'stale', differences: diff, detail: `${what}: ${diff.map((d) => `${d.field} is ${JSON.stringify(d.found)}, we wrote ${JSON.stringify(d.expected)}`).join('; ')}: re-send` });
    }
  }

  /**
   * Latest-state records (e.g. the work order's status) hold what the newest event applied for
   * the subject wrote, which may be another day's event: find that event by the lane's applied
   * version and expect its latest-state records.
   */
  private async addLatestExpectations(lane: string, subjects: Map<string, { plant: string; subject: string }>, expected: Map<string, Map<string, Expectation>>): Promise<void> {
    const reader = this.readers.get(lane)!;
    const versions = await this.deps.store.appliedVersions(lane, [...subjects.keys()]);
    let forLane = expected.get(lane);
    if (!forLane) expected.set(lane, (forLane = new Map()));
    const at = versions.map((v) => ({ ...subjects.get(v.orderKey)!, timeMs: v.timeMs }));
    const candidates = new Map<string, TracedEvent[]>();
    for (const e of await this.deps.store.eventsAt(at)) {
      const k = `${e.plant}\u0000${e.subject}\u0000${e.timeMs}`;
      candidates.set(k, [...(candidates.get(k) ?? []), e]);
    }
    for (const [i, v] of versions.entries()) {
      const s = at[i]!;
      const same = candidates.get(`${s.plant}\u0000${s.subject}\u0000${s.timeMs}`) ?? [];
      // Two events of one subject at the same instant: the version's plantseq tells them apart.
      const newest = same.find((e) => e.plantseq === v.plantseq) ?? same[0];
      if (!newest) continue; // pruned: its record can no longer be re-sent from here
      const delivery = newest.deliveries.find((d) => d.lane === lane);
      const plan = reader.expectedRecords({ event: newest.event as unknown as CloudEventV1, stale: false });
      if (!plan.ok) continue;
      for (const record of plan.records) {
        if (record.apply !== 'latest') continue;
        forLane.set(recordKey(record), { record, plant: s.plant, subject: s.subject, eventId: newest.id, inboxSeq: newest.seq, reportedIds: delivery?.recordIds ?? [] });
      }
    }
  }

  private async loadLedger(plant: string | undefined, fromMs: number, toMs: number): Promise<Map<string, LedgerRow>> {
    const out = new Map<string, LedgerRow>();
    let afterSeq = 0;
    for (;;) {
      const page = await this.deps.store.ledger({ plant, fromMs, toMs, afterSeq, limit: PAGE });
      for (const r of page) out.set(`${r.source}\u0000${r.id}`, r);
      if (page.length < PAGE) return out;
      afterSeq = page.at(-1)!.seq;
      await yieldToIo();
    }
  }

  private async *events(plant: string | undefined, fromMs: number, toMs: number): AsyncGenerator<TracedEvent> {
    let afterSeq = 0;
    for (;;) {
      const page = await this.deps.store.findEvents({ plant, fromMs, toMs, afterSeq, limit: PAGE });
      yield* page;
      if (page.length < PAGE) return;
      afterSeq = page.at(-1)!.seq;
      await yieldToIo();
    }
  }
}
