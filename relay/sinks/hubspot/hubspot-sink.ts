/**
 * HubSpot sink: delivers events as batch upserts by unique property values (CRM v3
 * objects API), so a redelivered event rewrites the same records with the same values
 * and changes nothing.
 *
 * Invariants:
 * - `deliver` returns exactly one outcome per item, in input order, and never throws
 *   for a per-item problem: `delivered` (with the HubSpot record ids written), `errored`
 *   (TransientError, retry later) or `rejected` (PermanentError, dead-letter). How a
 *   batch becomes calls and answers become outcomes is in batch-run.ts.
 * - Calls go one at a time: HubSpot's rate limit counts calls per app (100 to 190 per
 *   10 s), and one call already carries up to 100 records.
 * - The token is sent only as the Authorization header to `baseUrl`; it is never
 *   logged nor put in an error message.
 */
import { describeError, PermanentError, TransientError } from '../../../protocols/errors.js';
import { pacedFetch, type SinkRuntime } from '../http.js';
import type { Logger } from '../../../protocols/log.js';
import { SinkLifecycle, type SinkState } from '../shared/lifecycle.js';
import type { DeliveryItem, ExpectedRecords, FoundRecord, Outcome, RecordReader, RecordRef, Sink } from '../sink.js';
import { HubSpotBatchClient } from './batch-client.js';
import { runBatch } from './batch-run.js';
import { toError, type HubSpotQuota } from './classify.js';
import { HubSpotSinkConfig, type HubSpotSinkConfigInput } from './config.js';
import { HubSpotRecords } from './records.js';

export type HubSpotSinkState = SinkState;

/** Below this share of the daily limit left, a warning is logged (once per crossing). */
const DAILY_WARN_RATIO = 0.1;

export class HubSpotSink implements Sink, RecordReader {
  readonly name: string;
  readonly kind = 'hubspot';
  readonly config: HubSpotSinkConfig;

  private readonly lifecycle: SinkLifecycle;
  private readonly logger: Logger;
  private readonly client: HubSpotBatchClient;
  private readonly reader: HubSpotRecords;
  private lastQuota: HubSpotQuota | undefined;
  private dailyWarned = false;

  /** Parses `config` (throws a ZodError when it is invalid). */
  constructor(config: HubSpotSinkConfigInput, logger: Logger, runtime: SinkRuntime = {}) {
    this.config = HubSpotSinkConfig.parse(config);
    this.name = this.config.name;
    this.lifecycle = new SinkLifecycle(`HubSpot sink "${this.name}"`);
    this.logger = logger.child({ sink: this.name, kind: this.kind });
    this.client = new HubSpotBatchClient({
      fetch: pacedFetch(runtime.gate),
      baseUrl: this.config.baseUrl,
      token: this.config.token,
      timeoutMs: this.config.timeoutMs,
      stopSignal: this.lifecycle.stopSignal,
      onQuota: (quota) => this.noteQuota(quota),
    });
    this.reader = new HubSpotRecords(this.client, this.config.mappings, this.config.batchSize);
  }

  /**
   * Reads one record of the first mapped object to check the token. A refused token
   * (401) fails the start, since every delivery would fail the same way; any other
   * problem (HubSpot unreachable, a missing read scope, throttling) is logged and
   * deliveries go ahead: they classify their own failures.
   */
  async start(): Promise<void> {
    if (!this.lifecycle.begin()) return;
    const objectType = this.config.mappings[0]!.objectType;
    const verdict = await this.client.probe(objectType);
    if (!verdict) return;
    const what = `starting HubSpot sink "${this.name}": reading ${objectType}`;
    if (verdict.kind === 'transient' && verdict.auth) {
      this.lifecycle.failStart();
      throw new PermanentError(`${what}: ${verdict.detail}`, { code: 'INVALID_AUTHENTICATION' });
    }
    this.logger.warn({ err: toError(what, verdict).message }, 'HubSpot check at start failed; deliveries will go ahead and retry as needed');
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

  /** The record per ref, by batch read (records.ts); same token, pacing and timeouts as deliveries. */
  readRecords(refs: readonly RecordRef[]): Promise<FoundRecord[][]> {
    return this.reader.readRecords(refs);
  }

  /** Archives records by HubSpot record id (records.ts). */
  deleteRecords(object: string, ids: readonly string[]): Promise<void> {
    return this.reader.deleteRecords(object, ids);
  }

  /** Rate-limit state from the last `X-HubSpot-RateLimit-*` headers seen, if any. */
  quota(): HubSpotQuota | undefined {
    return this.lastQuota && { ...this.lastQuota };
  }

  private async deliverBatch(items: DeliveryItem[]): Promise<Outcome[]> {
    let outcomes: Outcome[];
    try {
      outcomes = await runBatch(items, {
        mappings: this.config.mappings,
        batchSize: this.config.batchSize,
        upsert: (objectType, inputs) => this.client.upsert(objectType, inputs),
        onRejected: (item, error) =>
          this.logger.warn(
            { correlationid: item.event.correlationid, eventId: item.event.id, type: item.event.type, code: error.code, err: error.message },
            'event rejected by HubSpot',
          ),
        onHalt: (item, error) =>
          this.logger.warn(
            { correlationid: item.event.correlationid, err: error.message, retryAfterMs: error.retryAfterMs },
            'HubSpot call failed transiently; the rest of the batch is not attempted',
          ),
      });
    } catch (error) {
      // Unclassified means a bug here, not a verdict on the events: keep them for retry.
      const failure = new TransientError(`delivering to HubSpot: ${describeError(error)}`, { cause: error });
      this.logger.error({ err: failure.message }, 'HubSpot batch failed unexpectedly');
      outcomes = items.map(() => ({ status: 'errored', error: failure }));
    }
    this.logger.debug(
      {
        items: items.length,
        delivered: outcomes.filter((o) => o.status === 'delivered').length,
        errored: outcomes.filter((o) => o.status === 'errored').length,
        rejected: outcomes.filter((o) => o.status === 'rejected').length,
      },
      'batch delivered to HubSpot',
    );
    return outcomes;
  }

  private noteQuota(quota: HubSpotQuota): void {
    this.lastQuota = quota;
    const { daily, dailyRemaining } = quota;
    if (daily === undefined || dailyRemaining === undefined || daily <= 0) return;
    const low = dailyRemaining <= daily * DAILY_WARN_RATIO;
    if (low && !this.dailyWarned) this.logger.warn({ daily, dailyRemaining }, 'HubSpot daily API limit: less than 10% left');
    this.dailyWarned = low;
  }
}
