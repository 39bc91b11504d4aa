/**
 * What a server-side deadband hides from the OPC UA source, and when the source must read it
 * back before applying a live batch.
 *
 * With a deadband N on a counter node, the server sends a value only when it moved more than N
 * from the last value it SENT (its reference). The line machine moves its baseline by the same
 * rule (`deadbandStep`), from the last value that moved it. While both start from the same
 * value ("aligned"), the server sends exactly the values that move the baseline, so reports
 * made from live notifications equal reports made from the full history. The hidden values
 * still matter when:
 * - the line's state changes: that milestone carries the exact counts;
 * - a counter changes while not aligned: after every (re)subscription (the server's reference
 *   is then the initial value it sent), after a new work order (the machine's baselines restart
 *   at 0), after a bad status;
 * - a counter moves: a report carries the other counter too.
 * Then the source reads those counters back (history up to the batch, else the current value)
 * and applies them merged with the batch. The server's reference is known only from what it
 * sent in this generation: every live change of a filtered item, in arrival order, initial
 * values included; a change that is not a good number makes it unknown (not aligned).
 */
import type { Change } from '../../../protocols/opcua/changes.js';
import { COUNTERS, type CounterRole, type LineState, type NodeRole } from './line-machine.js';

/** A batch as the subscription delivered it, with what the server had sent before each change. */
export interface LiveBatch {
  changes: Change[];
  /** Index-aligned with `changes`: for a server-filtered item, the server's reference before that change (undefined: unknown). */
  reference: Array<number | undefined>;
  /** Its counters were read back already (or cannot be): apply as it is. */
  filled: boolean;
  /** Read-backs that failed so far. */
  failures: number;
  /** When the agent received it (Unix ms): the events' `readtime`. */
  receivedMs?: number;
}

/** The reference value (last sent) of every server-filtered item in the current generation. */
export class ServerReferences {
  private filtered = new Set<string>();
  private readonly sent = new Map<string, number>();

  /** A new generation: these items carry a deadband on the server; nothing was sent yet. */
  reset(filtered: Iterable<string>): void {
    this.filtered = new Set(filtered);
    this.sent.clear();
  }

  isFiltered(item: string): boolean {
    return this.filtered.has(item);
  }

  /** Records a live batch; must see every one, in arrival order, also those the source drops. */
  receive(changes: Change[]): LiveBatch {
    const reference = changes.map((c) => {
      if (!this.filtered.has(c.item)) return undefined;
      const before = this.sent.get(c.item);
      if (c.statusGood && typeof c.value === 'number' && Number.isFinite(c.value)) this.sent.set(c.item, c.value);
      else this.sent.delete(c.item);
      return before;
    });
    return { changes, reference, filled: false, failures: 0 };
  }
}

/** A batch that needs no read-back: a read's result, or a batch without server-filtered items. */
export function asFilled(changes: Change[]): LiveBatch {
  return { changes, reference: [], filled: true, failures: 0 };
}

export interface ReadBackView {
  itemOf(item: string): { line: number; role: NodeRole } | undefined;
  stateOf(line: number): LineState;
  /** The line's counter items the server applies a deadband to in this generation. */
  filteredCounters(line: number): ReadonlyArray<{ item: string; role: CounterRole }>;
}

/**
 * The server-filtered counter items to read back before `batch` is applied; empty: apply it
 * as it is. Only changes the machine would apply count (good status, newer than last seen).
 * A counter may be skipped only when it is the one counter of its line that moved, no state
 * changed, and it is aligned: then the server sent every value that matters.
 */
export function countersToReadBack(batch: LiveBatch, view: ReadBackView): Set<string> {
  const perLine = new Map<number, { stateChanged: boolean; moved: Map<CounterRole, number> }>();
  batch.changes.forEach((change, i) => {
    const item = view.itemOf(change.item);
    if (!item || !change.statusGood) return;
    if (item.role !== 'state' && !(item.role in COUNTERS)) return;
    const state = view.stateOf(item.line);
    const seen = state.nodes[item.role];
    if (seen && change.sourceTimestampMs <= seen.ts) return;
    let line = perLine.get(item.line);
    if (!line) perLine.set(item.line, (line = { stateChanged: false, moved: new Map() }));
    if (item.role === 'state') line.stateChanged = true;
    else if (!line.moved.has(item.role as CounterRole)) line.moved.set(item.role as CounterRole, i);
  });

  const keys = new Set<string>();
  for (const [index, { stateChanged, moved }] of perLine) {
    const counters = view.filteredCounters(index);
    if (counters.length === 0) continue;
    let exact: string | undefined;
    const only = moved.size === 1 ? [...moved][0] : undefined;
    if (!stateChanged && only) {
      const [role, first] = only;
      const counter = counters.find((c) => c.role === role);
      const baseline = view.stateOf(index).baseline[COUNTERS[role]];
      if (counter && batch.reference[first] === baseline) exact = counter.item;
    }
    for (const { item } of counters) if (item !== exact) keys.add(item);
  }
  return keys;
}
