/**
 * Batch intake: the transport-neutral half of every ingress (WebSocket, embedded MQTT
 * broker, external MQTT broker). Takes one frame (a batch, a backlog status report, or a
 * ledger frame) from
 * an agent whose identity the transport has established, and answers with the frame to
 * send back, if any.
 *
 * Invariants
 * - An `ack` is returned only after `store.store` resolved, i.e. after the batch's durable
 *   commit; a failed commit returns an `internal` error and nothing is acknowledged, so the
 *   agent keeps the batch and resends it.
 * - Bad events are refused one by one (recorded in the inbox with their reason, listed in the
 *   ack); the rest of their batch is stored. A frame that is not a batch at all gets an error.
 * - An event is stored only when its `plant` attribute is the agent's registered plant and its
 *   `source` lies under that plant's source prefix: credentials are bound to one plant.
 * - A ledger frame's entries are checked one by one: an invalid one, or one naming a source
 *   outside the agent's plant, is refused alone and counted in the `ledger-ack` (`refused`);
 *   the connection stays. The ack is returned only after `store.addLedger` resolved (the
 *   durable commit; idempotent on (source, id), so a resent frame changes nothing).
 * - Asynchronous (the store's commit is); a transport that wants acks in batch order feeds it
 *   one frame of a connection at a time (`SerialQueue`), awaiting each. The observer hears of
 *   a batch after its commit and before its ack.
 */
import { MAX_EVENT_BYTES, sourceUri } from '../../protocols/events/envelope.js';
import { validateEvent } from '../../protocols/events/registry.js';
import { describeError } from '../../protocols/errors.js';
import type { Logger } from '../../protocols/log.js';
import { AgentFrame, LedgerEntryWire, MAX_LEDGER_ENTRIES, type AckFrame, type ErrorFrame, type LedgerAckFrame, type LedgerFrame, type Rejection } from '../../protocols/uplink/frames.js';
import type { IncomingEvent, IngressRejection, RelayStore } from '../store/store.js';
import type { Router } from '../router/router.js';
import type { AgentCredential } from './agent-auth.js';
import type { IngressObserver } from './observer.js';

/** The string attributes the stores index or key on. */
const NUL_ATTRIBUTES = ['id', 'source', 'type', 'subject', 'plant', 'correlationid'] as const;

export interface IntakeLimits {
  maxFrameBytes: number;
  maxBatchEvents: number;
}

export type IntakeResult =
  | { kind: 'ack'; frame: AckFrame; events: number }
  /** A status report: nothing to answer. */
  | { kind: 'status' }
  /** A ledger frame, stored: answer with the ledger-ack. */
  | { kind: 'ledger'; frame: LedgerAckFrame; entries: number }
  | { kind: 'error'; frame: ErrorFrame };

export class BatchIntake {
  constructor(
    private readonly deps: {
      store: RelayStore;
      router: Router;
      limits: IntakeLimits;
      /** Called after a batch with new events was committed (wakes the delivery engine). */
      onStored?: (() => void) | undefined;
      /** Told about committed batches and backlog reports (agent tracking, metrics). */
      observer?: IngressObserver | undefined;
    },
  ) {}

  get limits(): IntakeLimits {
    return this.deps.limits;
  }

  /** Validates, stores and acknowledges one batch (or records one status report) from `agent`; `log` carries the transport's context. */
  async handle(agent: AgentCredential, payload: string | Buffer, log: Logger): Promise<IntakeResult> {
    const bytes = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
    if (bytes > this.deps.limits.maxFrameBytes) {
      // The WebSocket transport never gets here (its maxPayload closes first); MQTT brokers do.
      return error('frame_too_large', `frame is ${bytes} bytes; the limit is ${this.deps.limits.maxFrameBytes}`, batchNumberOf(payload));
    }
    let json: unknown;
    try {
      json = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'));
    } catch (e) {
      return error('malformed_frame', `frame is not JSON (${describeError(e)})`);
    }
    const frame = AgentFrame.safeParse(json);
    if (!frame.success) {
      const issue = frame.error.issues[0];
      const batch = (json as { batch?: unknown } | null)?.batch;
      return error('unexpected_frame', `not a batch, status or ledger frame: ${issue?.path.join('.') || '(root)'}: ${issue?.message}`, typeof batch === 'number' && Number.isSafeInteger(batch) && batch >= 0 ? batch : undefined);
    }
    if (frame.data.t === 'status') {
      this.deps.observer?.status(agent, frame.data);
      return { kind: 'status' };
    }
    if (frame.data.t === 'ledger') return this.ledger(agent, frame.data, log);
    const { batch, events } = frame.data;
    if (events.length > this.deps.limits.maxBatchEvents) {
      return error('batch_too_large', `${events.length} events in one batch; the limit is ${this.deps.limits.maxBatchEvents}`, batch);
    }
    const { accepted, rejections, rejected } = this.check(agent, events, log);
    let result;
    try {
      result = await this.deps.store.store(agent.id, accepted, rejections);
    } catch (e) {
      // Not acknowledged: the agent keeps the batch and resends it.
      log.error({ err: describeError(e), batch }, 'could not store a batch; the agent will resend it');
      return error('internal', 'relay could not store the batch', batch);
    }
    this.deps.observer?.batch(agent, { received: events.length, result, accepted, rejected });
    if (rejected.length > 0) log.warn({ batch, rejected: rejected.map((r) => ({ id: r.id, code: r.code, reason: r.reason })) }, 'events rejected at ingress');
    if (result.stored > 0) this.deps.onStored?.();
    return { kind: 'ack', frame: { t: 'ack', batch, stored: result.stored, duplicates: result.duplicates, rejected }, events: events.length };
  }

  /**
   * Checks and stores one ledger frame; the ack only after the store's commit. Entries are
   * checked one by one: a malformed one, or one naming another plant's source, is refused
   * alone (counted in the ack, logged), so it can neither hold the agent's ledger back nor
   * cost it its connection.
   */
  private async ledger(agent: AgentCredential, frame: LedgerFrame, log: Logger): Promise<IntakeResult> {
    const { upto } = frame;
    if (frame.entries.length > MAX_LEDGER_ENTRIES) {
      return error('batch_too_large', `${frame.entries.length} entries in one ledger frame; the limit is ${MAX_LEDGER_ENTRIES}`);
    }
    const entries: LedgerEntryWire[] = [];
    const refusals: string[] = [];
    for (const raw of frame.entries) {
      const parsed = LedgerEntryWire.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        refusals.push(`malformed entry: ${issue?.path.join('.') || '(root)'}: ${issue?.message}`);
        continue;
      }
      const e = parsed.data;
      if (!isPlantSource(agent, e.source)) {
        refusals.push(`entry ${e.id.slice(0, 128)} names a source outside ${sourceUri(agent.plant, '')}: "${e.source.slice(0, 512)}"`);
        continue;
      }
      entries.push(e);
    }
    if (refusals.length > 0) log.warn({ upto, refused: refusals.length, reasons: refusals.slice(0, 5) }, 'ledger entries refused');
    let added = 0;
    try {
      if (entries.length > 0) added = await this.deps.store.addLedger(agent.id, agent.plant, entries);
    } catch (e) {
      // Not acknowledged: the agent keeps its cursor and resends the entries.
      log.error({ err: describeError(e), upto }, 'could not store ledger entries; the agent will resend them');
      return error('internal', 'relay could not store the ledger entries');
    }
    log.debug({ upto, entries: entries.length, added }, 'ledger entries stored');
    return { kind: 'ledger', frame: { t: 'ledger-ack', upto, ...(refusals.length ? { refused: refusals.length } : {}) }, entries: entries.length };
  }

  /** Splits a batch into events to store and refusals (with reasons), event by event. */
  private check(agent: AgentCredential, events: readonly unknown[], log: Logger) {
    const accepted: IncomingEvent[] = [];
    const rejections: IngressRejection[] = [];
    const rejected: Rejection[] = [];
    events.forEach((raw, index) => {
      const id = typeof raw === 'object' && raw !== null && typeof (raw as { id?: unknown }).id === 'string' ? (raw as { id: string }).id.slice(0, 128) : undefined;
      let body: string;
      try {
        body = JSON.stringify(raw);
      } catch (e) {
        // e.g. nesting deep enough to overflow the stack: refuse this event, keep the rest.
        body = '"<not serialisable>"';
        return refuse('invalid_envelope', `event cannot be serialised: ${describeError(e)}`);
      }
      function refuse(code: Rejection['code'], reason: string) {
        rejected.push({ index, ...(id ? { id } : {}), code, reason });
        rejections.push({ agent: agent.id, plant: agent.plant, id, code, reason, body: body.slice(0, MAX_EVENT_BYTES) });
      }
      const bytes = Buffer.byteLength(body);
      if (bytes > MAX_EVENT_BYTES) return refuse('event_too_large', `event is ${bytes} bytes; the limit is ${MAX_EVENT_BYTES}`);
      const check = validateEvent(raw);
      if (!check.ok) return refuse(check.code, check.reason);
      if (check.event.plant !== agent.plant) {
        return refuse('plant_mismatch', `agent ${agent.id} speaks for plant "${agent.plant}", not "${check.event.plant}"`);
      }
      if (!isPlantSource(agent, check.event.source)) {
        return refuse('plant_mismatch', `agent ${agent.id} may only send events from sources under ${sourceUri(agent.plant, '')}, not "${check.event.source}"`);
      }
      // NUL is valid JSON but no store key: PostgreSQL text cannot hold it, and a batch the
      // store cannot commit would be resent forever. Refused here, the same for every store.
      if (NUL_ATTRIBUTES.some((a) => check.event[a].includes('\u0000'))) {
        return refuse('invalid_envelope', `event attributes (${NUL_ATTRIBUTES.join(', ')}) must not contain NUL characters`);
      }
      const sinks = this.deps.router.route(check.event);
      if (sinks.length === 0) log.warn({ id: check.event.id, type: check.event.type }, 'event matches no route; stored but delivered nowhere');
      accepted.push({ event: check.event, body, sinks });
    });
    return { accepted, rejections, rejected };
  }
}

/** Whether `source` (an event's or a ledger entry's) is one of the agent's own plant: credentials are bound to one plant. */
function isPlantSource(agent: AgentCredential, source: string): boolean {
  return source.startsWith(sourceUri(agent.plant, ''));
}

function error(code: ErrorFrame['code'], reason: string, batch?: number): IntakeResult {
  return { kind: 'error', frame: { t: 'error', code, reason, ...(batch === undefined ? {} : { batch }) } };
}

/**
 * Runs tasks one after another in the order they were queued, e.g. one agent's frames, so
 * their answers leave in that order although each awaits a commit.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const next = this.tail.then(task, task);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

/** The batch number of a frame without parsing it (too large, or refused before parsing): it is near the start of every frame agents send. */
export function batchNumberOf(payload: string | Buffer): number | undefined {
  const head = (typeof payload === 'string' ? payload.slice(0, 200) : payload.subarray(0, 200).toString('utf8'));
  const m = /"batch"\s*:\s*(\d{1,15})\b/.exec(head);
  return m ? Number(m[1]) : undefined;
}
