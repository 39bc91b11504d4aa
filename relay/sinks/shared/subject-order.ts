/**
 * One request per item, for sinks that write events one at a time (NetSuite records,
 * webhook structured/binary mode).
 *
 * Invariants:
 * - Items of one `event.subject` are attempted one after another in batch order, so a
 *   later event of a subject never overtakes an earlier one; different subjects run on
 *   up to `concurrency` workers.
 * - After the first `errored` outcome no further item is started (the target is down
 *   or throttling): each one left is `errored` with `notAttempted(cause)`. `onHalt` is
 *   called once, for the item that halted the batch.
 * - Every index in `indexes` gets an outcome; other slots of `outcomes` are untouched.
 */
import type { TransientError } from '../../../protocols/errors.js';
import type { DeliveryItem, Outcome } from '../sink.js';

export interface SubjectOrderOptions {
  concurrency: number;
  attempt: (item: DeliveryItem) => Promise<Outcome>;
  notAttempted: (cause: TransientError) => TransientError;
  onHalt: (item: DeliveryItem, error: TransientError) => void;
}

export async function attemptBySubject(
  items: readonly DeliveryItem[],
  indexes: readonly number[],
  outcomes: (Outcome | undefined)[],
  options: SubjectOrderOptions,
): Promise<void> {
  const groups = groupBySubject(items, indexes);
  let halt: TransientError | undefined;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < groups.length) {
      const group = groups[next++]!;
      for (const index of group) {
        if (halt) {
          outcomes[index] = { status: 'errored', error: options.notAttempted(halt) };
          continue;
        }
        const outcome = await options.attempt(items[index]!);
        outcomes[index] = outcome;
        if (outcome.status === 'errored' && !halt) {
          halt = outcome.error;
          options.onHalt(items[index]!, outcome.error);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, groups.length) }, worker));
}

/** Item indexes grouped by subject, groups in order of first appearance, items in batch order. */
export function groupBySubject(items: readonly DeliveryItem[], indexes: readonly number[]): number[][] {
  const groups = new Map<string, number[]>();
  for (const index of indexes) {
    const subject = items[index]!.event.subject;
    const group = groups.get(subject);
    if (group) group.push(index);
    else groups.set(subject, [index]);
  }
  return [...groups.values()];
}
