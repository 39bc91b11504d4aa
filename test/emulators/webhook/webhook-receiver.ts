/**
 * A CloudEvents webhook receiver for tests: verifies `Plantlink-Signature`, parses
 * every request with the official cloudevents SDK (`HTTP.toEvent`), and dedupes on
 * (`source`, `id`) as CloudEvents defines event identity.
 *
 * Invariants:
 * - Every answer goes over real HTTP on loopback. Order of checks per request: outage
 *   (connection closed, no answer), injected faults (`failNext`), in-transit tampering
 *   (`tamperNext`), signature (401), parsing (400), `rejectEvents` (its status), then
 *   acceptance (200 with `{ accepted, duplicates }`).
 * - A request is all-or-nothing: a batch with one refused event records none of them.
 * - `events` holds each distinct event once, in order of first arrival; a duplicate
 *   only raises its `deliveries`.
 * - Binary-mode `ce-*` values are percent-decoded before the SDK sees them, as the
 *   binding requires and the SDK (10.0.0) does not do.
 */
import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { CloudEvent, HTTP } from 'cloudevents';
import { contentModeOf, decodeHeaderValue, type ContentMode } from '../../../relay/sinks/webhook/binding.js';
import { signedContent, verify, type VerifyFailure } from '../../../relay/sinks/webhook/signature.js';
import { EmulatorServer } from '../shared/emulator-server.js';
import { countStatus } from '../shared/http-helpers.js';

export interface WebhookReceiverOptions {
  /** Key(s) the signature must match (several during a rotation). */
  secret: string | string[];
  /** 0 = ephemeral (default). */
  port?: number;
  /** Default 300 s. */
  toleranceSeconds?: number;
  /** Request bodies above this get 413. Default 1 MiB. */
  maxBodyBytes?: number;
}

export interface ReceivedEvent {
  event: CloudEvent<unknown>;
  /** Content mode of the request that first brought it. */
  mode: ContentMode;
  /** Accepted requests that carried it: 1, or more after redeliveries. */
  deliveries: number;
}

export interface ReceivedRequest {
  mode: ContentMode;
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** Why the request was refused, if it was. */
  reason?: VerifyFailure | 'fault' | 'parse_error' | 'refused_event' | 'too_large' | 'method';
}

export interface FaultResponse {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

/** What an intermediary may change in a request before it reaches the receiver. */
export type Tamper = (request: { headers: IncomingHttpHeaders; body: Buffer }) => { headers: IncomingHttpHeaders; body: Buffer };

export interface ReceiverStats {
  requests: number;
  accepted: number;
  duplicates: number;
  status: Record<number, number>;
  /** Most requests being handled at once. */
  maxInFlight: number;
}

class RequestTooLarge extends Error {}

export class WebhookReceiver extends EventEmitter<{ event: [ReceivedEvent]; request: [ReceivedRequest] }> {
  readonly url: string;
  readonly port: number;

  private readonly http: EmulatorServer;
  private readonly secrets: string[];
  private readonly toleranceSeconds: number;
  private readonly maxBodyBytes: number;
  private readonly byKey = new Map<string, ReceivedEvent>();
  private readonly log: ReceivedRequest[] = [];
  private readonly faults: FaultResponse[] = [];
  private readonly tampers: Tamper[] = [];
  private refuse: { predicate: (event: CloudEvent<unknown>) => boolean; status: number } | undefined;
  private clockSkewSeconds = 0;
  private inFlight = 0;
  private readonly counters: ReceiverStats = { requests: 0, accepted: 0, duplicates: 0, status: {}, maxInFlight: 0 };

  static async start(options: WebhookReceiverOptions): Promise<WebhookReceiver> {
    return new WebhookReceiver(await EmulatorServer.listen(options.port), options);
  }

  private constructor(http: EmulatorServer, options: WebhookReceiverOptions) {
    super();
    this.http = http;
    this.port = http.port;
    this.url = `${http.origin}/hooks/plantlink`;
    this.secrets = typeof options.secret === 'string' ? [options.secret] : [...options.secret];
    this.toleranceSeconds = options.toleranceSeconds ?? 300;
    this.maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
    http.server.on('request', (req, res) => {
      this.inFlight++;
      this.counters.maxInFlight = Math.max(this.counters.maxInFlight, this.inFlight);
      this.handle(req, res)
        .catch(() => {
          if (!res.headersSent) res.writeHead(500).end();
          else res.destroy();
        })
        .finally(() => this.inFlight--);
    });
  }

  // ---- inspection -------------------------------------------------------------

  /** Distinct events accepted, in order of first arrival. */
  get events(): CloudEvent<unknown>[] {
    return [...this.byKey.values()].map((r) => r.event);
  }

  received(source: string, id: string): ReceivedEvent | undefined {
    const found = this.byKey.get(key(source, id));
    return found && { ...found };
  }

  /** Accepted requests that carried the event (source, id); 0 if never accepted. */
  deliveries(source: string, id: string): number {
    return this.byKey.get(key(source, id))?.deliveries ?? 0;
  }

  /** Every request that reached the handler (not those cut by an outage), in order. */
  get requests(): ReceivedRequest[] {
    return [...this.log];
  }

  stats(): ReceiverStats {
    return { ...this.counters, status: { ...this.counters.status } };
  }

  // ---- fault injection --------------------------------------------------------

  /** The next n requests get this answer instead of being processed. */
  failNext(n: number, status: number, headers?: Record<string, string>, body?: string): void {
    for (let i = 0; i < n; i++) this.faults.push({ status, ...(headers ? { headers } : {}), ...(body === undefined ? {} : { body }) });
  }

  /** While on, requests are answered by closing the connection without an HTTP response. */
  setOutage(on: boolean): void {
    this.http.setOutage(on);
  }

  setLatency(ms: number): void {
    this.http.setLatency(ms);
  }

  /** The next n requests are changed by `tamper` before verification, as by an intermediary. */
  tamperNext(n: number, tamper: Tamper): void {
    for (let i = 0; i < n; i++) this.tampers.push(tamper);
  }

  /** Requests carrying an event that matches are refused with `status` (default 422), as a receiver's validation would. */
  rejectEvents(predicate: ((event: CloudEvent<unknown>) => boolean) | undefined, status = 422): void {
    this.refuse = predicate && { predicate, status };
  }

  /** Moves the receiver's clock, to test the timestamp tolerance. */
  setClockSkew(seconds: number): void {
    this.clockSkewSeconds = seconds;
  }

  async stop(): Promise<void> {
    return this.http.stop();
  }

  // ---- HTTP -------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.counters.requests++;
    if (!(await this.http.admit(req))) return;
    let headers = req.headers;
    const mode = contentModeOf(headers['content-type']);
    let body: Buffer;
    try {
      body = await this.readBody(req);
    } catch (error) {
      if (!(error instanceof RequestTooLarge)) throw error;
      res.setHeader('Connection', 'close');
      return this.answer(res, { mode, headers, body: '' }, 413, { error: `body exceeds ${this.maxBodyBytes} bytes` }, 'too_large');
    }
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST');
      return this.answer(res, { mode, headers, body: '' }, 405, { error: 'POST only' }, 'method');
    }

    const fault = this.faults.shift();
    if (fault) {
      for (const [name, value] of Object.entries(fault.headers ?? {})) res.setHeader(name, value);
      return this.answer(res, { mode, headers, body: body.toString('utf8') }, fault.status, fault.body ?? { error: 'injected fault' }, 'fault');
    }
    const tamper = this.tampers.shift();
    if (tamper) ({ headers, body } = tamper({ headers, body }));
    const text = body.toString('utf8');
    const seen = { mode, headers, body: text };

    const now = Math.floor(Date.now() / 1000) + this.clockSkewSeconds;
    const check = verify(this.secrets, single(headers['plantlink-signature']), signedContent(headers, body), { toleranceSeconds: this.toleranceSeconds, now });
    if (!check.ok) return this.answer(res, seen, 401, { error: check.reason, message: check.message }, check.reason);

    let events: CloudEvent<unknown>[];
    try {
      events = parse(headers, text, mode);
    } catch (error) {
      return this.answer(res, seen, 400, { error: 'not a valid CloudEvents request', message: error instanceof Error ? error.message : String(error) }, 'parse_error');
    }
    const refused = this.refuse && events.find((e) => this.refuse!.predicate(e));
    if (refused && this.refuse) return this.answer(res, seen, this.refuse.status, { error: `event ${refused.id} refused` }, 'refused_event');

    let accepted = 0;
    let duplicates = 0;
    for (const event of events) {
      const k = key(event.source, event.id);
      const known = this.byKey.get(k);
      if (known) {
        known.deliveries++;
        duplicates++;
        continue;
      }
      const received: ReceivedEvent = { event, mode, deliveries: 1 };
      this.byKey.set(k, received);
      accepted++;
      this.emit('event', received);
    }
    this.counters.accepted += accepted;
    this.counters.duplicates += duplicates;
    return this.answer(res, seen, 200, { accepted, duplicates });
  }

  private answer(res: ServerResponse, seen: Omit<ReceivedRequest, 'status'>, status: number, body: unknown, reason?: ReceivedRequest['reason']): void {
    countStatus(this.counters.status, status);
    const request: ReceivedRequest = { ...seen, status, ...(reason ? { reason } : {}) };
    this.log.push(request);
    this.emit('request', request);
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': typeof body === 'string' ? 'text/plain' : 'application/json' }).end(text);
  }

  private async readBody(req: IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > this.maxBodyBytes) throw new RequestTooLarge();
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  }
}

/**
 * The SDK's view of the request. Binary mode: `ce-*` values are percent-decoded first;
 * the SDK validates batch events itself but not single ones, so those are validated here.
 */
function parse(headers: IncomingHttpHeaders, body: string, mode: ContentMode): CloudEvent<unknown>[] {
  const sdkHeaders: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const joined = Array.isArray(value) ? value.join(', ') : value;
    sdkHeaders[name] = mode === 'binary' && name.startsWith('ce-') ? decodeHeaderValue(joined) : joined;
  }
  const parsed = HTTP.toEvent<unknown>({ headers: sdkHeaders, body });
  const events = (Array.isArray(parsed) ? parsed : [parsed]) as CloudEvent<unknown>[];
  for (const event of events) {
    if (!(event instanceof CloudEvent)) throw new TypeError('the SDK returned something that is not a CloudEvent');
    event.validate();
  }
  return events;
}

const key = (source: string, id: string): string => `${source}\u0000${id}`;

const single = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value.join(',') : value);
