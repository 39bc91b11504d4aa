/**
 * NetSuite sink: delivers each event as upserts by external id on the REST record
 * service, so a redelivered event rewrites the same records with the same values and
 * changes nothing.
 *
 * Invariants:
 * - `deliver` returns exactly one outcome per item, in input order, and never throws
 *   for a per-item problem: `delivered` (with the record ids written), `errored`
 *   (TransientError, retry later) or `rejected` (PermanentError, dead-letter).
 * - Items with the same `event.subject` are applied one after another in batch order;
 *   different subjects run with at most `concurrency` requests in flight. NetSuite's
 *   concurrency limit is per account and shared with every other integration, hence
 *   the small default.
 * - An item's mappings run in config order; it is delivered only when all its writes
 *   succeeded. A failed item may leave earlier writes behind: they are idempotent, and
 *   the retry or replay rewrites them unchanged.
 * - After the first transient failure in a batch no further item is started: NetSuite
 *   is down or the account's concurrency is used up, and more requests would only be
 *   refused too (and hold slots other integrations need). The items not attempted are
 *   `errored` with the same retry hint.
 */
import type { KeyObject } from 'node:crypto';
import { describeError, PermanentError, TransientError } from '../../../protocols/errors.js';
import { pacedFetch, type SinkRuntime } from '../http.js';
import type { Logger } from '../../../protocols/log.js';
import { notAttempted } from '../shared/failures.js';
import { SinkLifecycle, type SinkState } from '../shared/lifecycle.js';
import { attemptBySubject } from '../shared/subject-order.js';
import type { DeliveryItem, ExpectedRecords, FoundRecord, Outcome, RecordReader, RecordRef, Sink } from '../sink.js';
import { loadPrivateKey } from './assertion.js';
import { netSuiteBaseUrl, NetSuiteSinkConfig, type NetSuiteSinkConfigInput } from './config.js';
import { ClientCredentialsTokenSource, type TokenSource } from './oauth.js';
import { planWrites } from './plan.js';
import { NetSuiteRecords } from './records.js';
import { NetSuiteRestClient, type GovernanceLimits } from './rest-client.js';

export type NetSuiteSinkState = SinkState;

export interface NetSuiteSinkOptions {
  /** Paces API calls (relay/delivery/rate-limiter.ts). */
  gate?: SinkRuntime['gate'];
  /** Clock for token expiry and assertion timestamps. Default Date.now. */
  now?: () => number;
}

export class NetSuiteSink implements Sink, RecordReader {
  readonly name: string;
  readonly kind = 'netsuite';
  readonly config: NetSuiteSinkConfig;

  private readonly lifecycle: SinkLifecycle;
  private readonly logger: Logger;
  private readonly tokens: TokenSource;
  private readonly client: NetSuiteRestClient;
  private readonly reader: NetSuiteRecords;
  private limits: GovernanceLimits | undefined;

  /**
   * Parses `config` (throws a ZodError when it is invalid) and loads the private key
   * (throws a PermanentError `invalid_private_key` when it is unreadable or does not
   * suit the algorithm).
   */
  constructor(config: NetSuiteSinkConfigInput, logger: Logger, options: NetSuiteSinkOptions = {}) {
    this.config = NetSuiteSinkConfig.parse(config);
    this.name = this.config.name;
    this.lifecycle = new SinkLifecycle(`NetSuite sink "${this.name}"`);
    this.logger = logger.child({ sink: this.name, kind: this.kind });
    const { auth } = this.config;
    const privateKey: KeyObject = loadPrivateKey(auth, auth.algorithm);
    const baseUrl = netSuiteBaseUrl(this.config);
    this.tokens = new ClientCredentialsTokenSource(
      {
        tokenUrl: `${baseUrl}/services/rest/auth/oauth2/v1/token`,
        clientId: auth.clientId,
        certificateId: auth.certificateId,
        privateKey,
        algorithm: auth.algorithm,
        scopes: auth.scope.split(','),
        timeoutMs: this.config.timeoutMs,
        stopSignal: this.lifecycle.stopSignal,
        now: options.now ?? Date.now,
      },
      this.logger,
    );
    this.client = new NetSuiteRestClient(this.tokens, { baseUrl, timeoutMs: this.config.timeoutMs, stopSignal: this.lifecycle.stopSignal, fetch: pacedFetch(options.gate) });
    this.reader = new NetSuiteRecords(this.client, this.config.mappings, this.config.concurrency);
  }

  /**
   * Gets a first access token and reads the governance limits. Refused credentials (a
   * PermanentError) fail the start, since every delivery would fail the same way; an
   * unreachable NetSuite does not: deliveries retry later. Governance limits are only
   * advice (NetSuite answers them to administrator roles only): when `concurrency` is
   * above the integration's limit a warning is logged.
   */
  async start(): Promise<void> {
    if (!this.lifecycle.begin()) return;
    if (await this.lifecycle.firstContact(() => this.tokens.get(), 'NetSuite', this.logger)) await this.checkGovernance();
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

  /** The record per ref, one GET by external id each, at most `concurrency` at once (records.ts). */
  readRecords(refs: readonly RecordRef[]): Promise<FoundRecord[][]> {
    return this.reader.readRecords(refs);
  }

  /** Deletes records by internal id (records.ts). */
  deleteRecords(object: string, ids: readonly string[]): Promise<void> {
    return this.reader.deleteRecords(object, ids);
  }

  /** Concurrency limits read at start, if NetSuite answered them. */
  governanceLimits(): GovernanceLimits | undefined {
    return this.limits && { ...this.limits };
  }

  private async checkGovernance(): Promise<void> {
    try {
      this.limits = await this.client.governanceLimits();
    } catch (error) {
      this.logger.info({ err: describeError(error) }, 'NetSuite governance limits not readable (administrator roles only); concurrency is not checked');
      return;
    }
    const limit = this.limits.integrationConcurrencyLimit ?? this.limits.accountConcurrencyLimit;
    if (limit !== undefined && this.config.concurrency > limit) {
      this.logger.warn(
        { concurrency: this.config.concurrency, limit, limitType: this.limits.integrationLimitType },
        'concurrency is above the NetSuite concurrency limit; requests beyond it will be refused',
      );
    }
  }

  private async deliverBatch(items: DeliveryItem[]): Promise<Outcome[]> {
    const outcomes = new Array<Outcome | undefined>(items.length);
    await attemptBySubject(
      items,
      items.map((_, index) => index),
      outcomes,
      {
        concurrency: this.config.concurrency,
        attempt: (item) => this.deliverItem(item),
        notAttempted: (cause) => notAttempted('write', cause),
        onHalt: (item, error) =>
          this.logger.warn(
            { correlationid: item.event.correlationid, err: error.message, retryAfterMs: error.retryAfterMs },
            'NetSuite write failed transiently; the rest of the batch is not attempted',
          ),
      },
    );
    const result = outcomes.map((o) => o ?? { status: 'errored' as const, error: new TransientError('item not processed') });
    this.logger.debug(
      {
        items: items.length,
        delivered: result.filter((o) => o.status === 'delivered').length,
        errored: result.filter((o) => o.status === 'errored').length,
        rejected: result.filter((o) => o.status === 'rejected').length,
      },
      'batch delivered to NetSuite',
    );
    return result;
  }

  private async deliverItem(item: DeliveryItem): Promise<Outcome> {
    const plan = planWrites(item, this.config.mappings);
    if (!plan.ok) return this.rejected(item, plan.error);
    const recordIds: string[] = [];
    for (const write of plan.writes) {
      try {
        recordIds.push((await this.client.upsert(write)).recordId);
      } catch (error) {
        if (error instanceof PermanentError) return this.rejected(item, error);
        if (error instanceof TransientError) return { status: 'errored', error };
        // Unclassified means a bug here, not a verdict on the event: keep it for retry.
        return { status: 'errored', error: new TransientError(`upserting ${write.recordType}/eid:${write.externalId}: ${describeError(error)}`, { cause: error }) };
      }
    }
    return { status: 'delivered', recordIds };
  }

  private rejected(item: DeliveryItem, error: PermanentError): Outcome {
    this.logger.warn(
      { correlationid: item.event.correlationid, eventId: item.event.id, type: item.event.type, code: error.code, err: error.message },
      'event rejected by NetSuite',
    );
    return { status: 'rejected', error };
  }
}
