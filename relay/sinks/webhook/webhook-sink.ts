/**
 * Webhook sink: POSTs events to one HTTP endpoint with the CloudEvents HTTP binding
 * (structured, binary or batch mode), every request signed (see signature.ts).
 *
 * Invariants:
 * - `deliver` returns exactly one outcome per item, in input order, and never throws
 *   for a per-item problem: `delivered`, `errored` (TransientError, retry later) or
 *   `rejected` (PermanentError, dead-letter).
 * - Any 2xx is `delivered`. Redelivery is expected (a crash between the receiver's 2xx
 *   and the relay's commit, a batch split after a 400): receivers dedupe on
 *   (`source`, `id`), which CloudEvents defines as the identity of an event.
 * - Structured and binary mode: items with the same `event.subject` are sent one after
 *   another in batch order; different subjects run with at most `concurrency`
 *   requests in flight. Batch mode: chunks of up to `batchSize` events, in batch order,
 *   one request at a time.
 * - After the first transient failure no further request is started: the receiver is
 *   down or throttling. The items not attempted are `errored` with the same retry hint.
 * - Stale items (a newer event of the subject was already delivered here) are still
 *   sent, with the extension attribute `plantstale: true`, so receivers that keep a
 *   "latest state" can skip them; a fresh event goes out exactly as the relay stored it.
 * - Batch mode: a 400, 413 or 422 for a batch of several events is split in halves and
 *   retried, so only the events at fault are rejected and their neighbours delivered.
 */
import { describeError, PermanentError, TransientError } from '../../../protocols/errors.js';
import { pacedFetch, type SinkRuntime } from '../http.js';
import type { Logger } from '../../../protocols/log.js';
import { notAttempted as notAttemptedAfter } from '../shared/failures.js';
import { SinkLifecycle, type SinkState } from '../shared/lifecycle.js';
import { attemptBySubject } from '../shared/subject-order.js';
import { timedFetch } from '../shared/timed-fetch.js';
import type { DeliveryItem, Outcome, Sink } from '../sink.js';
import { batchMessage, binaryMessage, structuredMessage, type HttpMessage, type WireEvent } from './binding.js';
import { classifyNetworkError, classifyResponse, isSplittable } from './classify.js';
import { WebhookSinkConfig, type WebhookSinkConfigInput } from './config.js';
import { sign, signedContent, SIGNATURE_HEADER } from './signature.js';

export type WebhookSinkState = SinkState;

const USER_AGENT = 'plantlink-relay';
/** Most of an answer's body read, for error excerpts; the rest is discarded. */
const MAX_ANSWER_BYTES = 4096;

type Failure = TransientError | PermanentError;

export class WebhookSink implements Sink {
  readonly name: string;
  readonly kind = 'webhook';
  readonly config: WebhookSinkConfig;

  private readonly lifecycle: SinkLifecycle;
  private readonly logger: Logger;
  private readonly eventTypes: ReadonlySet<string> | undefined;

  /** Parses `config` (throws a ZodError when it is invalid; the secret is never in it). */
  private readonly fetch: typeof fetch;

  constructor(config: WebhookSinkConfigInput, logger: Logger, runtime: SinkRuntime = {}) {
    this.fetch = pacedFetch(runtime.gate);
    this.config = WebhookSinkConfig.parse(config);
    this.name = this.config.name;
    this.lifecycle = new SinkLifecycle(`webhook sink "${this.name}"`);
    this.eventTypes = this.config.eventTypes && new Set(this.config.eventTypes);
    // The origin only: a path or query may carry an access token.
    this.logger = logger.child({ sink: this.name, kind: this.kind, target: new URL(this.config.url).origin, mode: this.config.mode });
  }

  /** Nothing to connect: a webhook endpoint need not answer anything but POST. */
  async start(): Promise<void> {
    this.lifecycle.begin();
  }

  async deliver(items: DeliveryItem[]): Promise<Outcome[]> {
    return this.lifecycle.run(items, (batch) => this.deliverBatch(batch));
  }

  /** Aborts requests in flight (their items end `errored`) and waits for running batches to return. */
  async stop(): Promise<void> {
    return this.lifecycle.stop();
  }

  private async deliverBatch(items: DeliveryItem[]): Promise<Outcome[]> {
    const outcomes = new Array<Outcome | undefined>(items.length);
    const toSend: number[] = [];
    items.forEach((item, index) => {
      if (this.eventTypes && !this.eventTypes.has(item.event.type)) outcomes[index] = { status: 'delivered', recordIds: [] };
      else toSend.push(index);
    });
    if (this.config.mode === 'batch') await this.sendChunks(items, toSend, outcomes);
    else await this.sendEach(items, toSend, outcomes);

    const result = outcomes.map((o) => o ?? { status: 'errored' as const, error: new TransientError('item not processed') });
    this.logger.debug(
      {
        items: items.length,
        skipped: items.length - toSend.length,
        delivered: result.filter((o) => o.status === 'delivered').length,
        errored: result.filter((o) => o.status === 'errored').length,
        rejected: result.filter((o) => o.status === 'rejected').length,
      },
      'batch delivered to webhook',
    );
    return result;
  }

  /** Structured and binary mode: one request per event, subjects in parallel, each subject in order. */
  private async sendEach(items: readonly DeliveryItem[], indexes: readonly number[], outcomes: (Outcome | undefined)[]): Promise<void> {
    await attemptBySubject(items, indexes, outcomes, {
      concurrency: this.config.concurrency,
      attempt: (item) => this.sendOne(item),
      notAttempted,
      onHalt: (item, error) => this.warnHalted([item], error),
    });
  }

  private async sendOne(item: DeliveryItem): Promise<Outcome> {
    const what = `posting event ${item.event.id} to webhook "${this.name}"`;
    let message: HttpMessage;
    try {
      message = this.config.mode === 'binary' ? binaryMessage(onWire(item)) : structuredMessage(onWire(item));
    } catch (error) {
      if (error instanceof PermanentError) return this.rejected(item, new PermanentError(`${what}: ${error.message}`, { code: error.code, cause: error }));
      // Unclassified means a bug here, not a verdict on the event: keep it for retry.
      return { status: 'errored', error: new TransientError(`${what}: ${describeError(error)}`, { cause: error }) };
    }
    const failure = await this.post(message, what);
    if (!failure) return { status: 'delivered', recordIds: [] };
    if (failure instanceof PermanentError) return this.rejected(item, failure);
    return { status: 'errored', error: failure };
  }

  /** Batch mode: chunks of `batchSize`, in order; a transient failure halts the rest. */
  private async sendChunks(items: readonly DeliveryItem[], indexes: readonly number[], outcomes: (Outcome | undefined)[]): Promise<void> {
    let halt: TransientError | undefined;
    for (let start = 0; start < indexes.length; start += this.config.batchSize) {
      const chunk = indexes.slice(start, start + this.config.batchSize);
      if (halt) {
        for (const index of chunk) outcomes[index] = { status: 'errored', error: notAttempted(halt) };
        continue;
      }
      halt = await this.sendChunk(items, chunk, outcomes);
      if (halt) this.warnHalted(chunk.map((i) => items[i]!), halt);
    }
  }

  /** Sends one batch request; returns the transient failure that halts the rest, if any. */
  private async sendChunk(items: readonly DeliveryItem[], chunk: readonly number[], outcomes: (Outcome | undefined)[]): Promise<TransientError | undefined> {
    const what = `posting a batch of ${chunk.length} event${chunk.length === 1 ? '' : 's'} to webhook "${this.name}"`;
    const failure = await this.post(batchMessage(chunk.map((i) => onWire(items[i]!))), what);
    if (!failure) {
      for (const index of chunk) outcomes[index] = { status: 'delivered', recordIds: [] };
      return undefined;
    }
    if (failure instanceof TransientError) {
      for (const index of chunk) outcomes[index] = { status: 'errored', error: failure };
      return failure;
    }
    if (chunk.length > 1 && isSplittable(failure)) {
      this.logger.info({ events: chunk.length, code: failure.code }, 'webhook refused a batch; splitting it to find the events at fault');
      const mid = Math.ceil(chunk.length / 2);
      const halted = await this.sendChunk(items, chunk.slice(0, mid), outcomes);
      if (!halted) return this.sendChunk(items, chunk.slice(mid), outcomes);
      for (const index of chunk.slice(mid)) outcomes[index] = { status: 'errored', error: notAttempted(halted) };
      return halted;
    }
    for (const index of chunk) outcomes[index] = this.rejected(items[index]!, failure);
    return undefined;
  }

  /** One signed POST; resolves to the classified failure, or undefined on 2xx. */
  private async post(message: HttpMessage, what: string): Promise<Failure | undefined> {
    const headers = new Headers({ 'user-agent': USER_AGENT });
    for (const [name, value] of Object.entries(this.config.headers)) headers.set(name, value);
    for (const [name, value] of Object.entries(message.headers)) headers.set(name, value);
    const timestamp = Math.floor(Date.now() / 1000);
    headers.set(SIGNATURE_HEADER, sign(this.config.secret, timestamp, signedContent(message.headers, message.body)));

    let res: Response;
    try {
      // The CloudEvents webhook spec: a sender MUST NOT follow redirects (timedFetch never does).
      res = await timedFetch(this.fetch, this.config.url, { method: 'POST', headers, body: message.body }, { timeoutMs: this.config.timeoutMs, stopSignal: this.lifecycle.stopSignal });
    } catch (error) {
      return classifyNetworkError(what, error, this.config.timeoutMs);
    }
    const text = await readAnswer(res);
    if (res.status >= 200 && res.status <= 299) return undefined;
    return classifyResponse(what, res.status, res.headers, text);
  }

  private rejected(item: DeliveryItem, error: PermanentError): Outcome {
    this.logger.warn(
      { correlationid: item.event.correlationid, eventId: item.event.id, type: item.event.type, code: error.code, err: error.message },
      'event rejected by webhook',
    );
    return { status: 'rejected', error };
  }

  private warnHalted(items: readonly DeliveryItem[], error: TransientError): void {
    this.logger.warn(
      { correlationid: items[0]?.event.correlationid, events: items.length, err: error.message, retryAfterMs: error.retryAfterMs },
      'webhook request failed transiently; the rest of the batch is not attempted',
    );
  }
}

/** The event as sent: stale items carry `plantstale: true`, fresh ones are unchanged. */
function onWire(item: DeliveryItem): WireEvent {
  return item.stale ? { ...item.event, plantstale: true } : item.event;
}

const notAttempted = (cause: TransientError): TransientError => notAttemptedAfter('request', cause);

/**
 * Reads at most MAX_ANSWER_BYTES of the answer. Once the status is known, a body that
 * breaks off changes nothing: a 2xx stays delivered.
 */
async function readAnswer(res: Response): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < MAX_ANSWER_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
    if (size >= MAX_ANSWER_BYTES) await reader.cancel();
  } catch {
    // Timeout or reset while reading the body: keep what arrived.
  }
  return Buffer.concat(chunks).subarray(0, MAX_ANSWER_BYTES).toString('utf8');
}
