/**
 * The line state machine: a PURE function from (persisted line state, value changes)
 * to (production milestone drafts, new line state). No I/O, no clock.
 *
 * Invariants:
 * - The state records the last-seen value AND source timestamp of every node. A change
 *   that is not newer than that (the initial values after a restart or resubscription,
 *   a replay) emits nothing, so a restart never re-emits milestones.
 * - Transitions are judged on the work order's lifecycle, not on raw values: the same
 *   state value with a newer timestamp (a server that restarts and re-stamps its
 *   values) is not a transition either.
 * - Changes are applied in source-timestamp order, so several changes that happened while
 *   disconnected replay in the order they happened: last committed Running/3 good, now
 *   Completed/5 good -> quantity-reported 5, then completed. Equal timestamps apply in a fixed
 *   order of roles (work order and its data, counts, state), whatever order they came in.
 * - Bad/Uncertain values change nothing; they are returned as ignored for logging.
 * - Every draft's data is valid ProductionMilestoneV1; a draft that cannot be (e.g. a
 *   work-order id longer than the schema allows) is returned as ignored, never emitted.
 *
 * - Quantity deadband (`quantityDeadband`, N >= 0, the OPC UA AbsoluteDeadband rule): per
 *   counter (good, scrap) the state keeps a baseline; a value more than N away from it becomes
 *   the new baseline, and if it went up while the work order is active, it is reported. Values
 *   within N change no baseline and report nothing. Because the baseline is persisted with the
 *   rest of the state and the rule sees only values, live notifications, history replay and
 *   current values yield the same reports for the same values, so the same event ids; a
 *   restart neither re-reports nor skips. N = 0 reports every increase.
 * - Every milestone carries the counts as last seen, never the deadband baseline: a hold or a
 *   completion carries the exact current counts.
 * - One `quantity-reported` per counter that moves past its deadband; its fact is told apart
 *   by that counter and value (discriminator: the good count, as before deadbands, or
 *   `scrap:<count>`), so its id does not depend on how values were split into batches.
 *
 * Rules: state -> released: `released`; -> running from released/idle: `started`;
 * -> running from held: `resumed`; -> held: `held`; -> completed: `completed`;
 * a good or scrap count that rose more than the deadband above its baseline while the work
 * order is released/running/held: `quantity-reported` with the new counts; a new work-order
 * id starts a new work order (counts and baselines from zero).
 */
import type { EventDraft } from '../source.js';
import { PRODUCTION_MILESTONE_V1, ProductionMilestoneV1, type MilestoneKind } from '../../../protocols/events/production-milestone.v1.js';
import { subjectFor } from '../../../protocols/events/envelope.js';

export const NODE_ROLES = ['workOrder', 'state', 'goodCount', 'scrapCount', 'salesOrder', 'product', 'plannedQuantity'] as const;
export type NodeRole = (typeof NODE_ROLES)[number];

export const LINE_LIFECYCLES = ['idle', 'released', 'running', 'held', 'completed'] as const;
export type LineLifecycle = (typeof LINE_LIFECYCLES)[number];

/**
 * Changes made at the same instant apply in this order: the work order and its data first (a
 * count stamped with the new work order belongs to it), then the counts, the state last (a
 * completion stamped with the final count carries it).
 */
const SAME_INSTANT_ORDER: Readonly<Record<NodeRole, number>> = {
  workOrder: 0,
  salesOrder: 1,
  product: 2,
  plannedQuantity: 3,
  goodCount: 4,
  scrapCount: 5,
  state: 6,
};
const NUMERIC_ROLES: ReadonlySet<NodeRole> = new Set(['goodCount', 'scrapCount', 'plannedQuantity']);
const ACTIVE: ReadonlySet<LineLifecycle> = new Set(['released', 'running', 'held']);

export interface SeenValue {
  value: string | number;
  /** Source timestamp, Unix ms. */
  ts: number;
}

export const COUNTERS = { goodCount: 'good', scrapCount: 'scrap' } as const;
export type CounterRole = keyof typeof COUNTERS;
export type Counter = (typeof COUNTERS)[CounterRole];

/** What the source persists per line (JSON). Version 1 (no baselines) is read and upgraded. */
export interface LineState {
  version: 2;
  /** Last-seen value and source timestamp per node. */
  nodes: Partial<Record<NodeRole, SeenValue>>;
  /** Work order on the line; '' when none. */
  workOrder: string;
  /** Where that work order is, as far as milestones were emitted. */
  lifecycle: LineLifecycle;
  /** Good quantity of that work order as last seen (0 from a new work order on): what milestones carry. */
  good: number;
  /**
   * Per counter, the value its deadband is measured from: the last value that moved more than
   * the deadband from the baseline before it (reported if it went up while the work order was
   * active). 0 from a new work order on.
   */
  baseline: Record<Counter, number>;
}

export interface LineContext {
  plant: string;
  sourceName: string;
  /** ISA-95 EquipmentID of the line. */
  equipment: string;
  unit: string;
  /** Plant state value (as a string) -> lifecycle. */
  states: Readonly<Record<string, LineLifecycle>>;
  /** A counter is reported when it rose MORE than this above its baseline (absolute, in `unit`); 0 = every increase. */
  quantityDeadband: number;
}

export interface LineChange {
  role: NodeRole;
  value: unknown;
  sourceTimestampMs: number;
  statusGood: boolean;
  status?: string;
}

export type IgnoreReason = 'bad-status' | 'not-newer' | 'unmapped-state' | 'not-a-number' | 'invalid-event';

export interface LineResult {
  drafts: EventDraft[];
  state: LineState;
  ignored: Array<{ change: LineChange; reason: IgnoreReason; detail?: string }>;
  /** Things worth a log line, e.g. a work order that left the line without its completion being seen. */
  notes: string[];
}

export function initialLineState(): LineState {
  return { version: 2, nodes: {}, workOrder: '', lifecycle: 'idle', good: 0, baseline: { good: 0, scrap: 0 } };
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/**
 * Accepts what `loadState` returned if it has our shape; anything else starts fresh. A
 * version 1 state (before deadbands) reported every increase over `good`, so that is its good
 * baseline; scrap was never reported, so its baseline is the scrap count last seen.
 */
export function coerceLineState(raw: unknown): LineState {
  if (!raw || typeof raw !== 'object') return initialLineState();
  const s = raw as Partial<Omit<LineState, 'version'>> & { version?: unknown };
  if ((s.version !== 1 && s.version !== 2) || typeof s.workOrder !== 'string' || !isCount(s.good) || !s.nodes || typeof s.nodes !== 'object') {
    return initialLineState();
  }
  if (!LINE_LIFECYCLES.includes(s.lifecycle as LineLifecycle)) return initialLineState();
  const scrapSeen = s.nodes.scrapCount?.value;
  const baseline =
    s.version === 1
      ? { good: s.good, scrap: isCount(scrapSeen) ? scrapSeen : 0 }
      : s.baseline && isCount(s.baseline.good) && isCount(s.baseline.scrap)
        ? { good: s.baseline.good, scrap: s.baseline.scrap }
        : undefined;
  if (!baseline) return initialLineState();
  return { version: 2, nodes: { ...s.nodes }, workOrder: s.workOrder, lifecycle: s.lifecycle as LineLifecycle, good: s.good, baseline };
}

function transitionMilestone(from: LineLifecycle, to: LineLifecycle): MilestoneKind | undefined {
  if (from === to) return undefined;
  switch (to) {
    case 'released':
      return 'released';
    case 'running':
      if (from === 'held') return 'resumed';
      if (from === 'released' || from === 'idle') return 'started';
      return undefined; // completed -> running: re-opened; no rule for it
    case 'held':
      return 'held';
    case 'completed':
      return 'completed';
    case 'idle':
      return undefined;
  }
}

function nonEmpty(seen: SeenValue | undefined): string | undefined {
  return seen && typeof seen.value === 'string' && seen.value.length > 0 ? seen.value : undefined;
}

function quantity(seen: SeenValue | undefined, unit: string): { value: number; unit: string } | undefined {
  return seen && typeof seen.value === 'number' && Number.isFinite(seen.value) && seen.value >= 0 ? { value: seen.value, unit } : undefined;
}

function draftFor(ctx: LineContext, state: LineState, milestone: MilestoneKind, ts: number, discriminator?: string | number): EventDraft | { invalid: string } {
  const n = state.nodes;
  const data: Record<string, unknown> = {
    workOrder: state.workOrder,
    milestone,
    equipment: ctx.equipment,
    occurredAt: new Date(ts).toISOString(),
  };
  const salesOrder = nonEmpty(n.salesOrder);
  if (salesOrder !== undefined) data.salesOrder = salesOrder;
  const product = nonEmpty(n.product);
  if (product !== undefined) data.product = product;
  if (n.goodCount) data.goodQuantity = { value: state.good, unit: ctx.unit };
  const scrap = quantity(n.scrapCount, ctx.unit);
  if (scrap) data.scrapQuantity = scrap;
  const planned = quantity(n.plannedQuantity, ctx.unit);
  if (planned) data.plannedQuantity = planned;
  const parsed = ProductionMilestoneV1.safeParse(data);
  if (!parsed.success) return { invalid: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') };
  return {
    type: PRODUCTION_MILESTONE_V1,
    subject: subjectFor('work-order', state.workOrder),
    data: parsed.data,
    fact: {
      plant: ctx.plant,
      source: ctx.sourceName,
      key: state.workOrder,
      what: milestone,
      occurredAtMs: ts,
      ...(discriminator === undefined ? {} : { discriminator }),
    },
  };
}

function normalise(change: LineChange): string | number | { bad: IgnoreReason } {
  if (NUMERIC_ROLES.has(change.role)) {
    const n = typeof change.value === 'number' ? change.value : Number(change.value);
    return Number.isFinite(n) ? n : { bad: 'not-a-number' };
  }
  return change.value === null || change.value === undefined ? '' : String(change.value).trim();
}

/**
 * The deadband rule for one counter value: the new baseline, and whether the value is a rise
 * to report (when the work order is active). Exported for the tests that predict reports.
 */
export function deadbandStep(baseline: number, value: number, deadband: number): { baseline: number; rose: boolean } {
  if (!(Math.abs(value - baseline) > deadband)) return { baseline, rose: false };
  return { baseline: value, rose: value > baseline };
}

export function applyChanges(ctx: LineContext, previous: LineState | undefined, changes: readonly LineChange[]): LineResult {
  const state: LineState = previous
    ? { ...previous, nodes: { ...previous.nodes }, baseline: { ...previous.baseline } }
    : initialLineState();
  const result: LineResult = { drafts: [], state, ignored: [], notes: [] };
  // Equal timestamps apply in a fixed order of roles, whichever path (live, history, current
  // read) delivered them, so the milestones do not depend on it; the same node twice keeps
  // its arrival order (stable sort).
  const ordered = [...changes].sort((a, b) => a.sourceTimestampMs - b.sourceTimestampMs || SAME_INSTANT_ORDER[a.role] - SAME_INSTANT_ORDER[b.role]);

  const emit = (milestone: MilestoneKind, change: LineChange, discriminator?: string | number) => {
    const draft = draftFor(ctx, state, milestone, change.sourceTimestampMs, discriminator);
    if ('invalid' in draft) result.ignored.push({ change, reason: 'invalid-event', detail: `${milestone}: ${draft.invalid}` });
    else result.drafts.push(draft);
  };

  for (const change of ordered) {
    if (!change.statusGood) {
      result.ignored.push({ change, reason: 'bad-status', detail: change.status });
      continue;
    }
    const seen = state.nodes[change.role];
    if (seen && change.sourceTimestampMs <= seen.ts) {
      result.ignored.push({ change, reason: 'not-newer' });
      continue;
    }
    const value = normalise(change);
    if (typeof value === 'object') {
      result.ignored.push({ change, reason: value.bad, detail: String(change.value) });
      continue;
    }
    state.nodes[change.role] = { value, ts: change.sourceTimestampMs };

    switch (change.role) {
      case 'workOrder': {
        const wo = String(value);
        if (wo === state.workOrder) break;
        if (state.workOrder && state.lifecycle !== 'completed' && state.lifecycle !== 'idle') {
          result.notes.push(`work order ${state.workOrder} left line ${ctx.equipment} while ${state.lifecycle}; its later milestones were not seen`);
        }
        state.workOrder = wo;
        state.lifecycle = 'idle';
        state.good = 0;
        state.baseline = { good: 0, scrap: 0 };
        break;
      }
      case 'state': {
        const target = ctx.states[String(value)];
        if (!target) {
          result.ignored.push({ change, reason: 'unmapped-state', detail: String(value) });
          break;
        }
        // a finished work order stays finished while the line idles
        if (target === 'idle' && state.lifecycle === 'completed') break;
        const milestone = state.workOrder ? transitionMilestone(state.lifecycle, target) : undefined;
        state.lifecycle = target;
        if (milestone) emit(milestone, change);
        break;
      }
      case 'goodCount':
      case 'scrapCount': {
        const count = Number(value);
        const counter = COUNTERS[change.role];
        if (counter === 'good') state.good = count;
        // a fall past the deadband is a counter reset: the new baseline, nothing reported
        const step = deadbandStep(state.baseline[counter], count, ctx.quantityDeadband);
        state.baseline[counter] = step.baseline;
        if (step.rose && state.workOrder && ACTIVE.has(state.lifecycle)) {
          emit('quantity-reported', change, counter === 'good' ? count : `scrap:${count}`);
        }
        break;
      }
      default:
        break; // sales order, product, planned quantity: carried in the next milestone
    }
  }
  return result;
}
