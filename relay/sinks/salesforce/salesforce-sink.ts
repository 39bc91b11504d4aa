/**
 * Salesforce sink: delivers each event as record upserts by external id, so a
 * redelivered event rewrites the same records with the same values and changes nothing.
 * Records travel in sObject Collections calls of up to `maxRecordsPerCall` (calls.ts
 * packs them; one API call each).
 *
 * Invariants:
 * - `deliver` returns exactly one outcome per item, in input order, and never throws
 *   for a per-item problem: `delivered` (with the record ids written, in mapping order),
 *   `errored` (TransientError, retry later) or `rejected` (PermanentError, dead-letter).
 * - Items with the same `event.subject` are applied one after another in batch order,
 *   an item's writes in mapping order, and no call carries an external id twice
 *   (calls.ts); up to `concurrency` calls of a round run at once.
 * - An item is delivered only when every one of its records was written. A permanent
 *   per-record error rejects the item with Salesforce's statusCode; a transient one
 *   (UNABLE_TO_LOCK_ROW, ...) errors it. Either way its later writes are not sent. A
 *   failed item may leave earlier writes behind: they are idempotent, and the retry or
 *   replay rewrites them unchanged.
 * - A call failing as a whole fails every item in it: transient (401 after a fresh
 *   token, 408/429/5xx, network, timeout) -> errored with the retry hint; other 4xx ->
 *   rejected.
 * - After the first transient failure in a batch no further call is started: Salesforce
 *   is down, throttling or out of API calls, and hammering it would only burn the daily
 *   allocation. Items not fully attempted are `errored` with the same retry hint.
 */
import { describeError, PermanentError, TransientError } from '../../../protocols/errors.js';
import { pacedFetch, type SinkRuntime } from '../http.js';
import type { Logger } from '../../../protocols/log.js';
import { notAttempted } from '../shared/failures.js';
import { SinkLifecycle, type SinkState } from '../shared/lifecycle.js';
import type { DeliveryItem, ExpectedRecords, FoundRecord, Outcome, RecordReader, RecordRef, Sink } from '../sink.js';
import { planCalls, type CollectionCall } from './calls.js';
import { classifyRecordErrors, withContext } from './classify.js';
import { SalesforceSinkConfig, type SalesforceSinkConfigInput } from './config.js';
import { assertionAudience, loadSalesforcePrivateKey } from './assertion.js';
import { clientCredentialsGrant, jwtBearerGrant, OAuthTokenSource, type TokenGrant, type TokenSource } from './oauth.js';
import { planWrites } from './plan.js';
import { SalesforceRecords } from './records.js';
import { SalesforceRestClient, type RecordResult } from './rest-client.js';

export type SalesforceSinkState = SinkState;

/** Above this share of the daily API allocation, a warning is logged (once per crossing). */
const QUOTA_WARN_RATIO = 0.9;

export class SalesforceSink implements Sink, RecordReader {
  readonly name: string;
  readonly kind = 'salesforce';
  readonly config: SalesforceSinkConfig;

  private readonly lifecycle: SinkLifecycle;
  private readonly logger: Logger;
  private readonly tokens: TokenSource;
  private readonly client: SalesforceRestClient;
  private readonly reader: SalesforceRecords;
  private lastQuota: { used: number; max: number } | undefined;
  private quotaWarned = false;

  /**
   * Parses `config` (throws a ZodError when it is invalid) and, for the JWT bearer
   * flow, loads the private key (throws PermanentError invalid_private_key).
   */
  constructor(config: SalesforceSinkConfigInput, logger: Logger, runtime: SinkRuntime = {}) {
    this.config = SalesforceSinkConfig.parse(config);
    this.name = this.config.name;
    this.lifecycle = new SinkLifecycle(`Salesforce sink "${this.name}"`);
    this.logger = logger.child({ sink: this.name, kind: this.kind });
    this.tokens = new OAuthTokenSource(
      { loginUrl: this.config.loginUrl, grant: grantFor(this.config), timeoutMs: this.config.timeoutMs, stopSignal: this.lifecycle.stopSignal },
      this.logger,
    );
    this.client = new SalesforceRestClient(this.tokens, {
      fetch: pacedFetch(runtime.gate),
      apiVersion: this.config.apiVersion,
      timeoutMs: this.config.timeoutMs,
      stopSignal: this.lifecycle.stopSignal,
      onLimitInfo: (usage) => this.noteQuota(usage),
    });
    this.reader = new SalesforceRecords(this.client, this.config.mappings);
  }

  /**
   * Gets a first access token. Refused credentials (a PermanentError) fail the start,
   * since every delivery would fail the same way; an unreachable Salesforce does not:
   * deliveries retry later.
   */
  async start(): Promise<void> {
    if (!this.lifecycle.begin()) return;
    await this.lifecycle.firstContact(() => this.tokens.get(), 'Salesforce', this.logger);
  }

  async deliver(items: DeliveryItem[]): Promise<Outcome[]> {
    return this.lifecycle.run(items, (batch) => this.deliverBatch(batch));
  }

  /** Aborts requests in flight (their items end `errored`) and waits for running batches to return. */
  async stop(): Promise<void> {
    return this.lifecycle.stop();
  }

  /** The records `item` would be written as (records.ts; nothing is sent). */
  expectedRecords(item: DeliveryItem): ExpectedRecords {
    return this.reader.expectedRecords(item);
  }

  /** Every record per ref, by SOQL query (records.ts); same token, pacing and timeouts as deliveries. */
  readRecords(refs: readonly RecordRef[]): Promise<FoundRecord[][]> {
    return this.reader.readRecords(refs);
  }

  /** Deletes records by Salesforce id with sObject Collections (records.ts). */
  deleteRecords(object: string, ids: readonly string[]): Promise<void> {
    return this.reader.deleteRecords(object, ids);
  }

  /** API usage from the last `Sforce-Limit-Info` header seen, if any. */
  quota(): { used: number; max: number } | undefined {
    return this.lastQuota && { ...this.lastQuota };
  }

  private async deliverBatch(items: DeliveryItem[]): Promise<Outcome[]> {
    const plans = items.map((item) => planWrites(item, this.config.mappings));
    const progress: ItemProgress[] = plans.map((plan) => ({ recordIds: plan.ok ? new Array<string | undefined>(plan.writes.length) : [] }));
    const rounds = planCalls(
      items.map((item, i) => {
        const plan = plans[i]!;
        return { subject: item.event.subject, writes: plan.ok ? plan.writes : undefined };
      }),
      this.config.maxRecordsPerCall,
    );

    let halt: TransientError | undefined;
    for (const round of rounds) {
      if (halt) break;
      // Records of items that already failed are not sent again in later rounds.
      const calls = round
        .map((call) => ({ ...call, records: call.records.filter((r) => progress[r.item]!.failure === undefined) }))
        .filter((call) => call.records.length > 0);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < calls.length && !halt) {
          const call = calls[next++]!;
          const transient = await this.runCall(call, progress);
          if (transient && !halt) {
            halt = transient;
            const first = items[call.records[0]!.item]!;
            this.logger.warn(
              { correlationid: first.event.correlationid, object: call.object, records: call.records.length, err: transient.message, retryAfterMs: transient.retryAfterMs },
              'Salesforce write failed transiently; the rest of the batch is not attempted',
            );
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.config.concurrency, calls.length) }, worker));
    }

    const result = items.map((item, i): Outcome => {
      const plan = plans[i]!;
      if (!plan.ok) return this.rejected(item, plan.error);
      const { failure, recordIds } = progress[i]!;
      if (failure instanceof PermanentError) return this.rejected(item, failure);
      if (failure) return { status: 'errored', error: failure };
      const written = recordIds.filter((id): id is string => id !== undefined);
      if (written.length === recordIds.length) return { status: 'delivered', recordIds: written };
      return { status: 'errored', error: notAttempted('call', halt ?? new TransientError('the batch ended before this item was written')) };
    });
    this.logger.debug(
      {
        items: items.length,
        plannedCalls: rounds.reduce((n, round) => n + round.length, 0),
        delivered: result.filter((o) => o.status === 'delivered').length,
        errored: result.filter((o) => o.status === 'errored').length,
        rejected: result.filter((o) => o.status === 'rejected').length,
      },
      'batch delivered to Salesforce',
    );
    return result;
  }

  /**
   * Makes one call and records each record's fate on its item. Returns the transient
   * failure that should halt the batch, if any.
   */
  private async runCall(call: CollectionCall, progress: ItemProgress[]): Promise<TransientError | undefined> {
    const what = (externalId: string): string => `upserting ${call.object}/${externalId}`;
    let results: RecordResult[];
    try {
      results = await this.client.upsertCollection(call);
    } catch (error) {
      // Unclassified means a bug here, not a verdict on the events: keep them for retry.
      const failure = error instanceof PermanentError || error instanceof TransientError ? error : new TransientError(describeError(error), { cause: error });
      for (const r of call.records) noteFailure(progress[r.item]!, withContext(what(r.externalId), failure));
      return failure instanceof TransientError ? failure : undefined;
    }
    let transient: TransientError | undefined;
    results.forEach((result, k) => {
      const record = call.records[k]!;
      const item = progress[record.item]!;
      if (result.success) {
        item.recordIds[record.write] = result.id;
        return;
      }
      const failure = classifyRecordErrors(what(record.externalId), result.errors);
      noteFailure(item, failure);
      if (failure instanceof TransientError) transient ??= failure;
    });
    return transient;
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

function grantFor({ auth, loginUrl }: SalesforceSinkConfig): TokenGrant {
  if (auth.flow === 'client_credentials') return clientCredentialsGrant(auth);
  return jwtBearerGrant({
    clientId: auth.clientId,
    username: auth.username,
    audience: assertionAudience(auth.audience, loginUrl),
    privateKey: loadSalesforcePrivateKey(auth),
    now: Date.now,
  });
}

/** What is known of one item while its batch runs. */
interface ItemProgress {
  /** Record id per write (mapping order), once written. */
  recordIds: (string | undefined)[];
  /** The first failure; a permanent one wins over a transient one, as retrying cannot fix it. */
  failure?: TransientError | PermanentError;
}

function noteFailure(item: ItemProgress, failure: TransientError | PermanentError): void {
  if (item.failure === undefined || (failure instanceof PermanentError && item.failure instanceof TransientError)) item.failure = failure;
}
