/**
 * Delivers one batch of items as HubSpot batch upserts and maps every answer back to
 * the items, one outcome per item in input order.
 *
 * Invariants:
 * - Writes go out in rounds (rounds.ts): a call never names a record twice, and writes
 *   to one record land in batch order, so the latest-state record of a subject ends at
 *   its newest event.
 * - Each input carries an `objectWriteTraceId` ("<item>.<write>"); results and errors
 *   map back by it, else by the id property value. An input HubSpot's answer does not
 *   account for is resent: alone if it is the only one, else in halves.
 * - A call refused as a whole for invalid property values (400 "Property values were
 *   not valid") is split in halves and resent until the refused inputs stand alone, so
 *   one bad record never fails its neighbours, whether HubSpot answers 207 or 400.
 *   Resending is harmless: upserts are idempotent.
 * - An item is delivered when all its writes succeeded, with the HubSpot record ids in
 *   write order; rejected at its first permanent failure (its later writes are
 *   dropped); errored at a transient one. A failed item may leave earlier writes
 *   behind: idempotent, the retry or replay rewrites them unchanged.
 * - After a call fails transiently (HubSpot down, throttling, token refused) no further
 *   call is made: the items not finished are errored with the same retry hint, since
 *   more calls would only add 429s and errors to the portal's daily count.
 */
import { PermanentError, TransientError } from '../../../protocols/errors.js';
import type { DeliveryItem, Outcome } from '../sink.js';
import type { BatchInput, CallAnswer, UpsertResult } from './batch-client.js';
import { classifyInputError, notAttempted, toError, type HubSpotError } from './classify.js';
import type { HubSpotMapping } from './config.js';
import { planWrites } from './plan.js';
import { nextRound, split, toCalls, type Call, type PendingWrite } from './rounds.js';

export interface BatchRunDeps {
  mappings: readonly HubSpotMapping[];
  batchSize: number;
  upsert: (objectType: string, inputs: BatchInput[]) => Promise<CallAnswer>;
  /** Called once per rejected item. */
  onRejected: (item: DeliveryItem, error: PermanentError) => void;
  /** Called once, for the transient failure that stops the batch. */
  onHalt: (item: DeliveryItem, error: TransientError) => void;
}

const traceId = (p: PendingWrite): string => `${p.item}.${p.index}`;
const what = (p: PendingWrite): string => `upserting ${p.write.objectType}/${p.write.id}`;

export async function runBatch(items: readonly DeliveryItem[], deps: BatchRunDeps): Promise<Outcome[]> {
  return new BatchRun(items, deps).run();
}

class BatchRun {
  private readonly outcomes: (Outcome | undefined)[];
  private readonly recordIds: string[][];
  private halt: TransientError | undefined;

  constructor(
    private readonly items: readonly DeliveryItem[],
    private readonly deps: BatchRunDeps,
  ) {
    this.outcomes = new Array<Outcome | undefined>(items.length);
    this.recordIds = items.map(() => []);
  }

  async run(): Promise<Outcome[]> {
    let pending: PendingWrite[] = [];
    this.items.forEach((item, i) => {
      const plan = planWrites(item, this.deps.mappings);
      if (!plan.ok) return this.fail(i, plan.error);
      plan.writes.forEach((write, index) => pending.push({ item: i, index, write }));
    });

    for (;;) {
      pending = pending.filter((p) => this.open(p));
      if (pending.length === 0 || this.halt) break;
      const { round, later } = nextRound(pending);
      pending = later;
      const queue = toCalls(round, this.deps.batchSize);
      while (queue.length > 0) {
        const call = queue.shift()!;
        const inputs = call.inputs.filter((p) => this.open(p));
        if (inputs.length === 0) continue;
        if (this.halt) {
          for (const p of inputs) this.fail(p.item, notAttempted(this.halt));
          continue;
        }
        const answer = await this.deps.upsert(call.objectType, inputs.map(toInput));
        queue.unshift(...this.settle({ objectType: call.objectType, inputs }, answer));
      }
    }
    if (this.halt) for (const p of pending) this.fail(p.item, notAttempted(this.halt));
    // Array.from, not map: map would skip the holes, which are exactly the delivered items.
    return Array.from(this.outcomes, (o, i): Outcome => o ?? { status: 'delivered', recordIds: this.recordIds[i]! });
  }

  /** Applies a call's answer to its inputs; returns the calls to make next (inputs to resend), if any. */
  private settle(call: Call, answer: CallAnswer): Call[] {
    if (!answer.ok) {
      const { verdict } = answer;
      if (verdict.kind === 'permanent' && verdict.splittable && call.inputs.length > 1) return split(call);
      for (const p of call.inputs) {
        const error = toError(what(p), verdict);
        this.fail(p.item, error);
        if (error instanceof TransientError && !this.halt) {
          this.halt = error;
          this.deps.onHalt(this.items[p.item]!, error);
        }
      }
      return [];
    }

    const unresolved = new Map(call.inputs.map((p) => [traceId(p), p]));
    for (const result of answer.results) {
      const p = this.match(unresolved, result.objectWriteTraceId, (q) => resultId(result, q));
      if (!p) continue;
      this.recordIds[p.item]![p.index] = result.id;
      unresolved.delete(traceId(p));
    }
    const unmatched: HubSpotError[] = [];
    for (const error of answer.errors) {
      const traces = stringsOf(error.context?.objectWriteTraceId);
      const ids = stringsOf(error.context?.ids);
      const p = this.match(unresolved, traces[0], (q) => ids.includes(q.write.id));
      if (!p) {
        unmatched.push(error);
        continue;
      }
      this.fail(p.item, toError(what(p), classifyInputError(error)));
      unresolved.delete(traceId(p));
    }

    const left = [...unresolved.values()];
    if (left.length === 0) return [];
    if (left.length === 1 && unmatched.length > 0) {
      this.fail(left[0]!.item, toError(what(left[0]!), classifyInputError(unmatched[0]!)));
      return [];
    }
    if (left.length === 1 && call.inputs.length === 1) {
      const p = left[0]!;
      this.fail(p.item, new TransientError(`${what(p)}: HubSpot answered the call without a result or an error for this input`));
      return [];
    }
    // HubSpot did not say what became of these inputs: ask again, in smaller calls.
    return left.length === 1 ? [{ objectType: call.objectType, inputs: left }] : split({ objectType: call.objectType, inputs: left });
  }

  private match(unresolved: Map<string, PendingWrite>, trace: string | undefined, byId: (p: PendingWrite) => boolean): PendingWrite | undefined {
    if (trace !== undefined && unresolved.has(trace)) return unresolved.get(trace);
    for (const p of unresolved.values()) if (byId(p)) return p;
    return undefined;
  }

  private open(p: PendingWrite): boolean {
    return this.outcomes[p.item] === undefined;
  }

  /** Records an item's first failure; later ones are ignored. */
  private fail(item: number, error: TransientError | PermanentError): void {
    if (this.outcomes[item] !== undefined) return;
    if (error instanceof PermanentError) {
      this.outcomes[item] = { status: 'rejected', error };
      this.deps.onRejected(this.items[item]!, error);
    } else {
      this.outcomes[item] = { status: 'errored', error };
    }
  }
}

function toInput(p: PendingWrite): BatchInput {
  return { id: p.write.id, idProperty: p.write.idProperty, properties: p.write.properties, objectWriteTraceId: traceId(p) };
}

/** True when the result names the input's record by its id property value. */
function resultId(result: UpsertResult, p: PendingWrite): boolean {
  return result.properties?.[p.write.idProperty] === p.write.id;
}

function stringsOf(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}
