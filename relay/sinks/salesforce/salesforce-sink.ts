/**
 * Salesforce sink: delivers each event as upserts by external id, so a redelivered
 * event rewrites the same records with the same values and changes nothing.
 *
 * Invariants:
 * - `deliver` returns exactly one outcome per item, in input order, and never throws
 *   for a per-item problem: `delivered` (with the record ids written), `errored`
 *   (TransientError, retry later) or `rejected` (PermanentError, dead-letter).
 * - Items with the same `event.subject` are applied one after another in batch order;
 *   different subjects run with at most `concurrency` upserts in flight.
 * - An item's mappings run in config order; it is delivered only when all its writes
 *   succeeded. A failed item may leave earlier writes behind: they are idempotent, and
 *   the retry or replay rewrites them unchanged.
 * - After the first transient failure in a batch no further item is started: Salesforce
 *   is down, throttling or out of API calls, and hammering it would only burn the daily
 *   allocation. The items not attempted are `errored` with the same retry hint.
 */
import { describeError, PermanentError, TransientError } from '../../../protocols/errors.js';
import type { Logger } from '../../../protocols/log.js';
import type { DeliveryItem, Outcome, Sink } from '../sink.js';
import { SalesforceSinkConfig, type SalesforceSinkConfigInput } from './config.js';
import { ClientCredentialsTokenSource, type TokenSource } from './oauth.js';
import { planWrites } from './plan.js';
import { SalesforceRestClient } from './rest-client.js';

export type SalesforceSinkState = 'INITIALIZED' | 'RUNNING' | 'STOPPING' | 'STOPPED';

/** Above this share of the daily API allocation, a warning is logged (once per crossing). */
const QUOTA_WARN_RATIO = 0.9;

export class SalesforceSink implements Sink {
  readonly name: string;
  readonly kind = 'salesforce';
  readonly config: SalesforceSinkConfig;

  private state: SalesforceSinkState = 'INITIALIZED';
  private readonly logger: Logger;
  private readonly stopController = new AbortController();
  private readonly tokens: TokenSource;
  private readonly client: SalesforceRestClient;
  private readonly batches = new Set<Promise<Outcome[]>>();
  private lastQuota: { used: number; max: number } | undefined;
  private quotaWarned = false;

  /** Parses `config` (throws a ZodError when it is invalid). */
  constructor(config: SalesforceSinkConfigInput, logger: Logger) {
    this.config = SalesforceSinkConfig.parse(config);
    this.name = this.config.name;
    this.logger = logger.child({ sink: this.name, kind: this.kind });
    const { auth } = this.config;
    this.tokens = new ClientCredentialsTokenSource(
      { loginUrl: this.config.loginUrl, clientId: auth.clientId, clientSecret: auth.clientSecret, timeoutMs: this.config.timeoutMs, stopSignal: this.stopController.signal },
      this.logger,
    );
    this.client = new SalesforceRestClient(this.tokens, {
      apiVersion: this.config.apiVersion,
      timeoutMs: this.config.timeoutMs,
      stopSignal: this.stopController.signal,
      onLimitInfo: (usage) => this.noteQuota(usage),
    });
  }

  /**
   * Gets a first access token. Refused credentials (a PermanentError) fail the start,
   * since every delivery would fail the same way; an unreachable Salesforce does not:
   * deliveries retry later.
   */
  async start(): Promise<void> {
    if (this.state !== 'INITIALIZED') return;
    this.state = 'RUNNING';
    try {
      await this.tokens.get();
    } catch (error) {
      if (error instanceof PermanentError) {
        this.state = 'STOPPED';
        throw new PermanentError(`starting Salesforce sink "${this.name}": ${error.message}`, { code: error.code, cause: error });
      }
      this.logger.warn({ err: describeError(error) }, 'Salesforce is not reachable yet; deliveries will retry');
    }
  }

  async deliver(items: DeliveryItem[]): Promise<Outcome[]> {
    if (this.state === 'STOPPING' || this.state === 'STOPPED') {
      const error = new TransientError(`Salesforce sink "${this.name}" is stopped`);
      return items.map(() => ({ status: 'errored', error }));
    }
    const batch = this.deliverBatch(items);
    this.batches.add(batch);
    try {
      return await batch;
    } finally {
      this.batches.delete(batch);
    }
  }

  /** Aborts requests in flight (their items end `errored`) and waits for running batches to return. */
  async stop(): Promise<void> {
    if (this.state === 'STOPPED') return;
    this.state = 'STOPPING';
    this.stopController.abort();
    await Promise.allSettled([...this.batches]);
    this.state = 'STOPPED';
  }

  /** API usage from the last `Sforce-Limit-Info` header seen, if any. */
  quota(): { used: number; max: number } | undefined {
    return this.lastQuota && { ...this.lastQuota };
  }

  private async deliverBatch(items: DeliveryItem[]): Promise<Outcome[]> {
    const outcomes = new Array<Outcome | undefined>(items.length);
    const groups = groupBySubject(items);
    let halt: TransientError | undefined;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < groups.length) {
        const group = groups[next++]!;
        for (const index of group) {
          if (halt) {
            outcomes[index] = { status: 'errored', error: notAttempted(halt) };
            continue;
          }
          const outcome = await this.deliverItem(items[index]!);
          outcomes[index] = outcome;
          if (outcome.status === 'errored' && !halt) {
            halt = outcome.error;
            this.logger.warn(
              { correlationid: items[index]!.event.correlationid, err: outcome.error.message, retryAfterMs: outcome.error.retryAfterMs },
              'Salesforce write failed transiently; the rest of the batch is not attempted',
            );
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.config.concurrency, groups.length) }, worker));
    const result = outcomes.map((o) => o ?? { status: 'errored' as const, error: new TransientError('item not processed') });
    this.logger.debug(
      {
        items: items.length,
        delivered: result.filter((o) => o.status === 'delivered').length,
        errored: result.filter((o) => o.status === 'errored').length,
        rejected: result.filter((o) => o.status === 'rejected').length,
      },
      'batch delivered to Salesforce',
    );
    return result;
  }

  private async deliverItem(item: DeliveryItem): Promise<Outcome> {
    const plan = planWrites(item, this.config.mappings);
    if (!plan.ok) return this.rejected(item, plan.error);
    const recordIds: string[] = [];
    for (const write of plan.writes) {
      try {
        recordIds.push((await this.client.upsert(write)).id);
      } catch (error) {
        if (error instanceof PermanentError) return this.rejected(item, error);
        if (error instanceof TransientError) return { status: 'errored', error };
        // Unclassified means a bug here, not a verdict on the event: keep it for retry.
        return { status: 'errored', error: new TransientError(`upserting ${write.object}/${write.externalId}: ${describeError(error)}`, { cause: error }) };
      }
    }
    return { status: 'delivered', recordIds };
  }

  private rejected(item: DeliveryItem, error: PermanentError): Outcome {
    this.logger.warn(
      { correlationid: item.event.correlationid, eventId: item.event.id, type: item.event.type, code: error.code, err: error.message },
      'event rejected by Salesforce',
    );
    return { status: 'rejected', error };
  }

  private noteQuota(usage: { used: number; max: number }): void {
    this.lastQuota = usage;
    const high = usage.max > 0 && usage.used >= usage.max * QUOTA_WARN_RATIO;
    if (high && !this.quotaWarned) this.logger.warn(usage, 'Salesforce daily API usage above 90% of the allocation');
    this.quotaWarned = high;
  }
}

/** Item indexes grouped by subject, groups in order of first appearance, items in batch order. */
function groupBySubject(items: readonly DeliveryItem[]): number[][] {
  const groups = new Map<string, number[]>();
  items.forEach((item, index) => {
    const group = groups.get(item.event.subject);
    if (group) group.push(index);
    else groups.set(item.event.subject, [index]);
  });
  return [...groups.values()];
}

function notAttempted(cause: TransientError): TransientError {
  return new TransientError(`not attempted: an earlier write in this batch failed transiently (${cause.message})`, {
    cause,
    ...(cause.retryAfterMs === undefined ? {} : { retryAfterMs: cause.retryAfterMs }),
  });
}
