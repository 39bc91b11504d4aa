/**
 * An in-memory emulator of the slice of HubSpot's CRM v3 wire behaviour plantlink
 * uses: batch upsert by a unique property (`POST /crm/v3/objects/{objectType}/batch/upsert`),
 * reading records back, private-app bearer tokens, the per-app rolling rate window and
 * the daily limit with HubSpot's 429 bodies and `X-HubSpot-RateLimit-*` headers, and
 * HubSpot's 200/207/400 answers (see README.md for what is documented and what is assumed).
 *
 * Invariants:
 * - Every answer goes over real HTTP; tests drive faults through the methods here or
 *   through `/__emulator/*` (so another process can too). Control requests are never
 *   counted, faulted, rate limited or refused by an outage.
 * - A call refused as a whole (401, 429, 400, injected fault) writes nothing. With
 *   partial success (the default when every input has a unique `objectWriteTraceId`),
 *   the valid inputs of a call are written and the invalid ones listed in `errors`.
 * - `writes` counts every applied upsert of a record, `changes` those that changed a
 *   stored value (a create counts as both): "redelivery changed nothing" is `changes`
 *   unchanged while `writes` grew.
 * - Records are read back with batch read (by record id or a unique property) and
 *   removed with batch archive; tests change records "behind the relay's back" with
 *   `deleteRecord` and `setProperties` (no validation, counters untouched).
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { EmulatorServer } from '../shared/emulator-server.js';
import { controlJson, countStatus, replyControl } from '../shared/http-helpers.js';
import { RateLimits, type RollingWindow } from './rate-limits.js';
import {
  checkInput,
  defaultObjects,
  mergeProperties,
  sameProperties,
  validationDetails,
  validationMessage,
  type ObjectSpec,
  type PropertySpec,
  type ValidationResult,
  type ValidationRule,
} from './schema.js';

export type { ObjectSpec, PropertySpec, ValidationRule, RollingWindow };
export { defaultObjects };

/** The private app token every emulator accepts unless `tokens` says otherwise. */
export const DEFAULT_TOKEN = 'pat-na1-11111111-2222-3333-4444-plantlinkemu';

/** HubSpot's documented cap on inputs per batch request. */
export const MAX_BATCH_INPUTS = 100;

export interface HubSpotEmulatorOptions {
  /** 0 = ephemeral (default). Pass a stopped emulator's port to "restart" it. */
  port?: number;
  /** Valid private app tokens. Default: [DEFAULT_TOKEN]. */
  tokens?: string[];
  portalId?: number;
  /** Objects of the portal, by the name used in URLs. Default: `defaultObjects`. */
  objects?: Record<string, ObjectSpec>;
  /** Per-token rolling window (policy TEN_SECONDLY_ROLLING). Default 190 per 10 s (Professional/Enterprise private apps). */
  rateLimit?: RollingWindow;
  /** Requests per day for the portal (policy DAILY). Default 1,000,000 (Enterprise). */
  dailyLimit?: number;
  /** Send Retry-After (seconds) with 429. Default true; HubSpot documents it for workflows only. */
  retryAfter?: boolean;
  /**
   * When a call with some invalid inputs writes the valid ones and answers 207:
   * 'with-trace-ids' (default, as documented for batch create) when every input carries a
   * unique objectWriteTraceId; 'always'; or 'never' (the whole call answers 400, nothing written).
   */
  partialSuccess?: 'with-trace-ids' | 'always' | 'never';
  /** Request bodies above this get 413. Default 10 MiB. */
  maxBodyBytes?: number;
}

export interface HubSpotRecord {
  /** The object's name as configured, e.g. `p_plantlink_milestones` or `deals`. */
  objectType: string;
  /** HubSpot record id (`hs_object_id`). */
  id: string;
  properties: Record<string, string>;
  createdAt: string;
  updatedAt: string;
  writes: number;
  changes: number;
}

export interface UpsertEvent {
  record: HubSpotRecord;
  created: boolean;
  changed: boolean;
}

export interface FaultResponse {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface EmulatorStats {
  /** Every non-control request, counted before any check. */
  requests: number;
  /** Batch upsert calls that were processed (not refused by auth, limits or faults). */
  batchCalls: number;
  /** Inputs written (created, updated or unchanged). */
  upserts: number;
  created: number;
  updated: number;
  unchanged: number;
  /** Inputs not written: listed in a 207's errors, or in a call refused with 400. */
  rejected: number;
  rateLimited: number;
  status: Record<number, number>;
}

/** Body of `POST /__emulator/faults`; every key optional, applied in this order. */
export interface FaultsRequest {
  failNext?: { n: number } & FaultResponse;
  outage?: boolean;
  latencyMs?: number;
  revokeToken?: string;
  clearValidationRules?: boolean;
  resetRateLimits?: boolean;
}

/** Body of `POST /__emulator/tamper`: changes made "behind the relay's back"; every key optional. */
export interface TamperRequest {
  deleteRecord?: { objectType: string; property: string; value: string };
  setProperties?: { objectType: string; property: string; value: string; properties: Record<string, string | null> };
}

interface UpsertInput {
  id: string;
  idProperty: string;
  properties: Record<string, unknown>;
  objectWriteTraceId?: string;
}

interface BatchError {
  status: 'error';
  category: string;
  message: string;
  context?: Record<string, string[]>;
  errors?: unknown[];
}

const JSON_TYPE = 'application/json;charset=utf-8';
const OBJECTS_PATH = /^\/crm\/v3\/objects\/([^/]+)(?:\/(.+))?$/;
const NO_CREDENTIALS =
  'Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview';

class RequestTooLarge extends Error {}
/** A whole call refused with HubSpot's answer; nothing written. */
class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(String(body.message));
  }
}

export class HubSpotEmulator extends EventEmitter<{ upsert: [UpsertEvent] }> {
  readonly url: string;
  readonly port: number;
  readonly portalId: number;

  private readonly http: EmulatorServer;
  private readonly tokens: Set<string>;
  private readonly objects: Record<string, ObjectSpec>;
  /** Any name an object is addressed by -> its configured name. */
  private readonly names = new Map<string, string>();
  private readonly limits: RateLimits;
  private readonly retryAfter: boolean;
  private readonly partialSuccess: NonNullable<HubSpotEmulatorOptions['partialSuccess']>;
  private readonly maxBodyBytes: number;
  /** object -> record id -> record. */
  private readonly store = new Map<string, Map<string, HubSpotRecord>>();
  /** object -> unique property -> value -> record id. */
  private readonly unique = new Map<string, Map<string, Map<string, string>>>();
  private readonly rules = new Map<string, ValidationRule[]>();
  private readonly faults: FaultResponse[] = [];
  private nextId = 18_000_000_001;
  private readonly counters: EmulatorStats = {
    requests: 0,
    batchCalls: 0,
    upserts: 0,
    created: 0,
    updated: 0,
    unchanged: 0,
    rejected: 0,
    rateLimited: 0,
    status: {},
  };

  static async start(options: HubSpotEmulatorOptions = {}): Promise<HubSpotEmulator> {
    return new HubSpotEmulator(await EmulatorServer.listen(options.port), options);
  }

  private constructor(http: EmulatorServer, options: HubSpotEmulatorOptions) {
    super();
    this.http = http;
    this.port = http.port;
    this.url = `${http.origin}`;
    this.portalId = options.portalId ?? 4_242_001;
    this.tokens = new Set(options.tokens ?? [DEFAULT_TOKEN]);
    this.objects = options.objects ?? defaultObjects;
    for (const [name, spec] of Object.entries(this.objects)) {
      const aliases = [name, spec.objectTypeId, ...(spec.aliases ?? [])];
      // A custom object is also addressed by its fully qualified name, p{portalId}_{name}.
      if (name.startsWith('p_')) aliases.push(`p${this.portalId}_${name.slice(2)}`);
      for (const alias of aliases) this.names.set(alias.toLowerCase(), name);
    }
    this.limits = new RateLimits(options.rateLimit ?? { max: 190, intervalMs: 10_000 }, options.dailyLimit ?? 1_000_000);
    this.retryAfter = options.retryAfter ?? true;
    this.partialSuccess = options.partialSuccess ?? 'with-trace-ids';
    this.maxBodyBytes = options.maxBodyBytes ?? 10 * 1024 * 1024;
    http.server.on('request', (req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) this.send(res, 500, { status: 'error', message: `internal error: ${String(error)}`, correlationId: randomUUID() });
        else res.destroy();
      });
    });
  }

  // ---- inspection -------------------------------------------------------------

  records(objectType: string): HubSpotRecord[] {
    const name = this.resolve(objectType);
    return name ? [...(this.store.get(name)?.values() ?? [])].map(copyRecord) : [];
  }

  /** The record whose `property` holds `value` (the first, for a property without unique values). */
  record(objectType: string, property: string, value: string): HubSpotRecord | undefined {
    const name = this.resolve(objectType);
    if (!name) return undefined;
    const id = this.unique.get(name)?.get(property)?.get(value);
    const found = id !== undefined ? this.store.get(name)?.get(id) : [...(this.store.get(name)?.values() ?? [])].find((r) => r.properties[property] === value);
    return found && copyRecord(found);
  }

  stats(): EmulatorStats {
    return { ...this.counters, status: { ...this.counters.status } };
  }

  // ---- fault injection --------------------------------------------------------

  /** The next n API requests (under /crm) get this answer instead of being processed. */
  failNext(n: number, response: FaultResponse): void {
    for (let i = 0; i < n; i++) this.faults.push(response);
  }

  /** While on, requests are answered by closing the connection without an HTTP response. */
  setOutage(on: boolean): void {
    this.http.setOutage(on);
  }

  setLatency(ms: number): void {
    this.http.setLatency(ms);
  }

  addValidationRule(objectType: string, rule: ValidationRule): void {
    const name = this.resolve(objectType);
    if (!name) throw new Error(`no object ${objectType} in the emulated portal`);
    const list = this.rules.get(name) ?? [];
    list.push(rule);
    this.rules.set(name, list);
  }

  clearValidationRules(): void {
    this.rules.clear();
  }

  /** Archives the record whose `property` holds `value`, as a user deleting it would; false when there is none. */
  deleteRecord(objectType: string, property: string, value: string): boolean {
    const name = this.resolve(objectType);
    const record = name ? this.findAny(name, property, value) : undefined;
    if (!name || !record) return false;
    this.remove(name, record);
    return true;
  }

  /**
   * Overwrites properties of the record whose `property` holds `value` (null clears one),
   * as another user or integration would: no validation, counters untouched. False when there is none.
   */
  setProperties(objectType: string, property: string, value: string, properties: Record<string, string | null>): boolean {
    const name = this.resolve(objectType);
    const record = name ? this.findAny(name, property, value) : undefined;
    if (!name || !record) return false;
    this.unindex(name, record);
    for (const [key, v] of Object.entries(properties)) {
      if (v === null) delete record.properties[key];
      else record.properties[key] = v;
    }
    record.updatedAt = new Date().toISOString();
    this.index(name, record);
    return true;
  }

  /** The token is refused from now on (401), as when the private app's token is rotated or the app deleted. */
  revokeToken(token: string): void {
    this.tokens.delete(token);
  }

  /** Forgets rate-limit usage (window and daily count). */
  resetRateLimits(): void {
    this.limits.reset();
  }

  async stop(): Promise<void> {
    return this.http.stop();
  }

  // ---- HTTP -------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = new URL(req.url ?? '/', 'http://emulator');
    if (target.pathname.startsWith('/__emulator/')) return this.control(req, res, target);

    this.counters.requests++;
    if (!(await this.http.admit(req))) return;
    let body: string;
    try {
      body = await this.readBody(req);
    } catch (error) {
      if (!(error instanceof RequestTooLarge)) throw error;
      res.setHeader('Connection', 'close');
      return this.send(res, 413, { status: 'error', message: `Request body exceeds ${this.maxBodyBytes} bytes`, correlationId: randomUUID() });
    }

    const fault = target.pathname.startsWith('/crm/') ? this.faults.shift() : undefined;
    if (fault) return this.send(res, fault.status, fault.body ?? { status: 'error', message: 'injected fault', correlationId: randomUUID() }, fault.headers);

    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (token === undefined || !this.tokens.has(token)) {
      return this.send(
        res,
        401,
        { status: 'error', message: NO_CREDENTIALS, correlationId: randomUUID(), category: 'INVALID_AUTHENTICATION' },
        { 'X-HubSpot-Auth-Failure': '401 Unauthorized' },
      );
    }
    const admission = this.limits.admit(token);
    if (!admission.admitted) {
      this.counters.rateLimited++;
      const limit = admission.policy === 'DAILY' ? 'daily' : 'ten_secondly_rolling';
      return this.send(
        res,
        429,
        {
          status: 'error',
          message: `You have reached your ${limit} limit.`,
          errorType: 'RATE_LIMIT',
          correlationId: randomUUID(),
          policyName: admission.policy,
          requestId: randomUUID(),
        },
        { ...this.limits.headers(token), ...(this.retryAfter ? { 'Retry-After': String(Math.ceil(admission.retryAfterMs / 1000)) } : {}) },
      );
    }
    const headers = this.limits.headers(token);
    try {
      this.route(req, res, target, body, headers);
    } catch (error) {
      if (!(error instanceof Refusal)) throw error;
      this.send(res, error.status, error.body, headers);
    }
  }

  private route(req: IncomingMessage, res: ServerResponse, target: URL, body: string, headers: Record<string, string>): void {
    const match = OBJECTS_PATH.exec(target.pathname);
    if (!match) throw new Refusal(404, { status: 'error', message: `No route for ${req.method} ${target.pathname}`, correlationId: randomUUID(), category: 'OBJECT_NOT_FOUND' });
    const objectType = decodeURIComponent(match[1]!);
    const name = this.resolve(objectType);
    if (!name) throw new Refusal(400, { status: 'error', message: `Unable to infer object type from: ${objectType}`, correlationId: randomUUID() });
    const rest = match[2];
    const isBatch = req.method === 'POST' && (rest === 'batch/upsert' || rest === 'batch/read' || rest === 'batch/archive');
    if (isBatch && !/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
      throw new Refusal(415, { status: 'error', message: 'Unsupported Media Type: send application/json', correlationId: randomUUID() });
    }
    if (isBatch && rest === 'batch/read') {
      const answer = this.batchRead(name, body);
      return this.send(res, answer.status, answer.body, headers);
    }
    if (isBatch && rest === 'batch/archive') {
      this.batchArchive(name, body);
      return this.send(res, 204, undefined, headers);
    }
    if (isBatch && rest === 'batch/upsert') {
      const answer = this.batchUpsert(name, body);
      this.send(res, answer.status, answer.body, headers);
      for (const event of answer.events) this.emit('upsert', event);
      return;
    }
    if (req.method === 'GET' && rest === undefined) return this.send(res, 200, this.list(name, target.searchParams), headers);
    if (req.method === 'GET' && rest !== undefined && !rest.includes('/')) return this.send(res, 200, this.read(name, decodeURIComponent(rest), target.searchParams), headers);
    throw new Refusal(405, { status: 'error', message: `Method ${req.method} not allowed on ${target.pathname}`, correlationId: randomUUID() });
  }

  private batchUpsert(name: string, text: string): { status: number; body: unknown; events: UpsertEvent[] } {
    const startedAt = new Date().toISOString();
    const inputs = this.parseInputs(name, text);
    this.counters.batchCalls++;

    const checks = inputs.map((input) => {
      const existing = this.findBy(name, input.idProperty, input.id);
      return { input, existing, check: checkInput(this.inputTarget(name, input, existing), input.properties) };
    });
    const failed = checks.filter((c) => !c.check.ok);
    const traceIds = new Set(inputs.map((i) => i.objectWriteTraceId).filter((t) => t !== undefined && t !== ''));
    const partial = this.partialSuccess === 'always' || (this.partialSuccess === 'with-trace-ids' && traceIds.size === inputs.length);
    if (failed.length > 0 && !partial) {
      this.counters.rejected += inputs.length;
      const results = failed.flatMap((c) => (c.check.ok ? [] : c.check.results));
      throw new Refusal(400, {
        status: 'error',
        message: validationMessage(results),
        correlationId: randomUUID(),
        errors: validationDetails(results),
        category: 'VALIDATION_ERROR',
      });
    }

    const results: unknown[] = [];
    const errors: BatchError[] = [];
    const events: UpsertEvent[] = [];
    for (const { input, existing, check } of checks) {
      if (!check.ok) {
        this.counters.rejected++;
        errors.push(inputError(input, check.results));
        continue;
      }
      const event = this.apply(name, existing, check.changes);
      events.push(event);
      results.push({
        id: event.record.id,
        properties: { ...event.record.properties, hs_object_id: event.record.id, hs_createdate: event.record.createdAt, hs_lastmodifieddate: event.record.updatedAt },
        createdAt: event.record.createdAt,
        updatedAt: event.record.updatedAt,
        archived: false,
        new: event.created,
        ...(input.objectWriteTraceId === undefined ? {} : { objectWriteTraceId: input.objectWriteTraceId }),
      });
    }
    const completedAt = new Date().toISOString();
    if (errors.length === 0) return { status: 200, body: { status: 'COMPLETE', results, startedAt, completedAt }, events };
    return { status: 207, body: { status: 'COMPLETE', results, numErrors: errors.length, errors, startedAt, completedAt }, events };
  }

  /** The call-level checks: body shape, input count, id properties, duplicate ids. Any failure refuses the whole call. */
  private parseInputs(name: string, text: string): UpsertInput[] {
    const refuse = (message: string, extra: Record<string, unknown> = {}): Refusal =>
      new Refusal(400, { status: 'error', message, correlationId: randomUUID(), ...extra, category: 'VALIDATION_ERROR' });
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (error) {
      throw refuse(`Invalid input JSON on line 1, column 1: ${(error as Error).message}`);
    }
    const raw = (body as { inputs?: unknown } | null)?.inputs;
    if (!Array.isArray(raw)) throw refuse('Some required fields were not set: [inputs]');
    if (raw.length > MAX_BATCH_INPUTS) {
      throw refuse(`The maximum number of inputs supported in a batch request is ${MAX_BATCH_INPUTS}. Please reduce the number of items and try again`);
    }
    const inputs = raw.map((entry, i): UpsertInput => {
      const input = entry as Partial<UpsertInput> | null;
      const properties = input?.properties ?? {};
      if (typeof input?.id !== 'string' || input.id === '' || typeof properties !== 'object' || properties === null || Array.isArray(properties)) {
        throw refuse(`Invalid input JSON: inputs[${i}] needs a non-empty string id and a properties object`);
      }
      if (typeof input.idProperty !== 'string' || input.idProperty === '') throw refuse(`Some required fields were not set: [inputs[${i}].idProperty]`);
      const trace = input.objectWriteTraceId;
      return { id: input.id, idProperty: input.idProperty, properties: properties as Record<string, unknown>, ...(typeof trace === 'string' ? { objectWriteTraceId: trace } : {}) };
    });
    const spec = this.objects[name]!;
    for (const input of inputs) {
      const property: PropertySpec | undefined = Object.hasOwn(spec.properties, input.idProperty) ? spec.properties[input.idProperty] : undefined;
      if (!property) {
        const results: ValidationResult[] = [{ isValid: false, message: `Property "${input.idProperty}" does not exist`, error: 'PROPERTY_DOESNT_EXIST', name: input.idProperty }];
        throw refuse(validationMessage(results), { errors: validationDetails(results) });
      }
      if (!property.hasUniqueValue) {
        throw refuse(`Unable to perform update/upsert by non-unique ${spec.objectTypeId} property ${input.idProperty} in portal ID ${this.portalId}`);
      }
    }
    const seen = new Set<string>();
    const duplicates = new Set<string>();
    for (const input of inputs) {
      const key = `${input.idProperty}\u0000${input.id}`;
      if (seen.has(key)) duplicates.add(input.id);
      seen.add(key);
    }
    if (duplicates.size > 0) {
      throw refuse(`Duplicate IDs found in batch input: [${[...duplicates].join(', ')}]. IDs must be unique`, { context: { ids: [...duplicates] } });
    }
    return inputs;
  }

  private inputTarget(name: string, input: UpsertInput, existing: HubSpotRecord | undefined) {
    const index = this.unique.get(name);
    return {
      spec: this.objects[name]!,
      idProperty: input.idProperty,
      id: input.id,
      existing: existing?.properties,
      // The holder is named by its id property value, so "the record being upserted" compares equal to input.id.
      holderOf: (property: string, value: string): string | undefined => {
        const holderId = index?.get(property)?.get(value);
        if (holderId === undefined) return undefined;
        return holderId === existing?.id ? input.id : `record ${holderId}`;
      },
      rules: this.rules.get(name) ?? [],
    };
  }

  private apply(name: string, existing: HubSpotRecord | undefined, changes: Record<string, string>): UpsertEvent {
    const now = new Date().toISOString();
    this.counters.upserts++;
    if (existing) {
      const merged = mergeProperties(existing.properties, changes);
      const changed = !sameProperties(existing.properties, merged);
      this.unindex(name, existing);
      existing.properties = merged;
      this.index(name, existing);
      existing.writes++;
      if (changed) {
        existing.changes++;
        existing.updatedAt = now;
        this.counters.updated++;
      } else {
        this.counters.unchanged++;
      }
      return { record: copyRecord(existing), created: false, changed };
    }
    const record: HubSpotRecord = {
      objectType: name,
      id: String(this.nextId++),
      properties: mergeProperties({}, changes),
      createdAt: now,
      updatedAt: now,
      writes: 1,
      changes: 1,
    };
    let byId = this.store.get(name);
    if (!byId) this.store.set(name, (byId = new Map()));
    byId.set(record.id, record);
    this.index(name, record);
    this.counters.created++;
    return { record: copyRecord(record), created: true, changed: true };
  }

  /**
   * Batch read by record id, or by a unique property (`idProperty`): found records in
   * `results` with the requested properties (null where unset) plus hs_object_id,
   * hs_createdate and hs_lastmodifieddate; values not found in a 207's `errors`
   * (OBJECT_NOT_FOUND, `context.ids`).
   */
  private batchRead(name: string, text: string): { status: number; body: unknown } {
    const startedAt = new Date().toISOString();
    const refuse = (message: string): Refusal => new Refusal(400, { status: 'error', message, correlationId: randomUUID(), category: 'VALIDATION_ERROR' });
    let body: { inputs?: unknown; idProperty?: unknown; properties?: unknown } | null;
    try {
      body = JSON.parse(text) as typeof body;
    } catch (error) {
      throw refuse(`Invalid input JSON on line 1, column 1: ${(error as Error).message}`);
    }
    const inputs = body?.inputs;
    if (!Array.isArray(inputs)) throw refuse('Some required fields were not set: [inputs]');
    if (inputs.length > MAX_BATCH_INPUTS) {
      throw refuse(`The maximum number of inputs supported in a batch request is ${MAX_BATCH_INPUTS}. Please reduce the number of items and try again`);
    }
    const ids = inputs.map((input: unknown, i) => {
      const id = (input as { id?: unknown } | null)?.id;
      if (typeof id !== 'string' || id === '') throw refuse(`Invalid input JSON: inputs[${i}] needs a non-empty string id`);
      return id;
    });
    const idProperty = typeof body?.idProperty === 'string' && body.idProperty !== '' ? body.idProperty : undefined;
    const spec = this.objects[name]!;
    if (idProperty !== undefined && idProperty !== 'hs_object_id') {
      const property = Object.hasOwn(spec.properties, idProperty) ? spec.properties[idProperty] : undefined;
      if (!property) throw refuse(`Property "${idProperty}" does not exist`);
      if (!property.hasUniqueValue) throw refuse(`Unable to read by non-unique ${spec.objectTypeId} property ${idProperty} in portal ID ${this.portalId}`);
    }
    const requested = Array.isArray(body?.properties) ? body.properties.filter((p): p is string => typeof p === 'string') : [];
    const results: unknown[] = [];
    const missing: string[] = [];
    const seen = new Set<string>();
    for (const id of ids) {
      if (seen.has(id)) continue;
      seen.add(id);
      const record = idProperty === undefined || idProperty === 'hs_object_id' ? this.store.get(name)?.get(id) : this.findBy(name, idProperty, id);
      if (!record) {
        missing.push(id);
        continue;
      }
      const properties: Record<string, string | null> = {};
      for (const p of requested) properties[p] = record.properties[p] ?? null;
      Object.assign(properties, { hs_object_id: record.id, hs_createdate: record.createdAt, hs_lastmodifieddate: record.updatedAt });
      results.push({ id: record.id, properties, createdAt: record.createdAt, updatedAt: record.updatedAt, archived: false });
    }
    const completedAt = new Date().toISOString();
    if (missing.length === 0) return { status: 200, body: { status: 'COMPLETE', results, startedAt, completedAt } };
    const error = {
      status: 'error',
      category: 'OBJECT_NOT_FOUND',
      message: `Could not get some ${name.toUpperCase()} objects, they may be deleted or not exist. Check that ids are valid.`,
      context: { ids: missing },
    };
    return { status: 207, body: { status: 'COMPLETE', results, numErrors: 1, errors: [error], startedAt, completedAt } };
  }

  /** Batch archive by record id: 204; ids of no record are ignored. */
  private batchArchive(name: string, text: string): void {
    let inputs: unknown;
    try {
      inputs = (JSON.parse(text) as { inputs?: unknown } | null)?.inputs;
    } catch (error) {
      throw new Refusal(400, { status: 'error', message: `Invalid input JSON on line 1, column 1: ${(error as Error).message}`, correlationId: randomUUID(), category: 'VALIDATION_ERROR' });
    }
    if (!Array.isArray(inputs)) throw new Refusal(400, { status: 'error', message: 'Some required fields were not set: [inputs]', correlationId: randomUUID(), category: 'VALIDATION_ERROR' });
    if (inputs.length > MAX_BATCH_INPUTS) {
      throw new Refusal(400, {
        status: 'error',
        message: `The maximum number of inputs supported in a batch request is ${MAX_BATCH_INPUTS}. Please reduce the number of items and try again`,
        correlationId: randomUUID(),
        category: 'VALIDATION_ERROR',
      });
    }
    for (const input of inputs) {
      const id = (input as { id?: unknown } | null)?.id;
      const record = typeof id === 'string' ? this.store.get(name)?.get(id) : undefined;
      if (record) this.remove(name, record);
    }
  }

  /** Moves a record out of the portal (HubSpot's recycling bin), freeing its unique values. */
  private remove(name: string, record: HubSpotRecord): void {
    this.unindex(name, record);
    this.store.get(name)?.delete(record.id);
  }

  /** The record whose `property` holds `value`, by the unique index or else by scanning. */
  private findAny(name: string, property: string, value: string): HubSpotRecord | undefined {
    return this.findBy(name, property, value) ?? [...(this.store.get(name)?.values() ?? [])].find((r) => r.properties[property] === value);
  }

  private list(name: string, query: URLSearchParams): unknown {
    const limit = Math.min(100, Math.max(1, Number(query.get('limit') ?? 10) || 10));
    const results = [...(this.store.get(name)?.values() ?? [])].slice(0, limit).map(publicRecord);
    return { results };
  }

  private read(name: string, id: string, query: URLSearchParams): unknown {
    const idProperty = query.get('idProperty');
    const record = idProperty ? this.findBy(name, idProperty, id) : this.store.get(name)?.get(id);
    if (!record) throw new Refusal(404, { status: 'error', message: 'Object not found.', correlationId: randomUUID(), category: 'OBJECT_NOT_FOUND' });
    return publicRecord(record);
  }

  private findBy(name: string, idProperty: string, value: string): HubSpotRecord | undefined {
    const id = this.unique.get(name)?.get(idProperty)?.get(value);
    return id === undefined ? undefined : this.store.get(name)?.get(id);
  }

  private index(name: string, record: HubSpotRecord): void {
    const spec = this.objects[name]!;
    let byProperty = this.unique.get(name);
    if (!byProperty) this.unique.set(name, (byProperty = new Map()));
    for (const [property, value] of Object.entries(record.properties)) {
      if (!spec.properties[property]?.hasUniqueValue) continue;
      let byValue = byProperty.get(property);
      if (!byValue) byProperty.set(property, (byValue = new Map()));
      byValue.set(value, record.id);
    }
  }

  private unindex(name: string, record: HubSpotRecord): void {
    const byProperty = this.unique.get(name);
    for (const [property, value] of Object.entries(record.properties)) byProperty?.get(property)?.delete(value);
  }

  private resolve(objectType: string): string | undefined {
    return this.names.get(objectType.toLowerCase());
  }

  private readBody(req: IncomingMessage): Promise<string> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > this.maxBodyBytes) {
          req.removeAllListeners('data');
          req.resume();
          reject(new RequestTooLarge());
          return;
        }
        chunks.push(chunk);
      });
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', reject);
    });
  }

  private send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    countStatus(this.counters.status, status);
    if (body === undefined) {
      res.writeHead(status, { 'X-HubSpot-Correlation-Id': randomUUID(), ...headers }).end();
      return;
    }
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': JSON_TYPE, 'X-HubSpot-Correlation-Id': randomUUID(), ...headers }).end(text);
  }

  // ---- control plane (other processes drive faults over HTTP) -----------------

  private async control(req: IncomingMessage, res: ServerResponse, target: URL): Promise<void> {
    const reply = (status: number, body?: unknown): void => replyControl(res, status, body);
    if (req.method === 'GET' && target.pathname === '/__emulator/stats') return reply(200, this.stats());
    if (req.method === 'GET' && target.pathname === '/__emulator/records') return reply(200, this.records(target.searchParams.get('objectType') ?? ''));
    if (req.method === 'POST' && target.pathname === '/__emulator/tamper') {
      const tamper = await controlJson<TamperRequest>(this.readBody(req), 'tamper', reply);
      if (!tamper) return;
      const missing: string[] = [];
      const s = tamper.setProperties;
      if (s && !this.setProperties(s.objectType, s.property, s.value, s.properties ?? {})) missing.push(`setProperties: no ${s.objectType} record with ${s.property}=${s.value}`);
      const d = tamper.deleteRecord;
      if (d && !this.deleteRecord(d.objectType, d.property, d.value)) missing.push(`deleteRecord: no ${d.objectType} record with ${d.property}=${d.value}`);
      return missing.length > 0 ? reply(404, { error: missing.join('; ') }) : reply(204);
    }
    if (req.method === 'POST' && target.pathname === '/__emulator/faults') {
      const faults = await controlJson<FaultsRequest>(this.readBody(req), 'faults', reply);
      if (!faults) return;
      if (faults.failNext) this.failNext(faults.failNext.n, faults.failNext);
      if (faults.outage !== undefined) this.setOutage(faults.outage);
      if (faults.latencyMs !== undefined) this.setLatency(faults.latencyMs);
      if (faults.revokeToken) this.revokeToken(faults.revokeToken);
      if (faults.clearValidationRules) this.clearValidationRules();
      if (faults.resetRateLimits) this.resetRateLimits();
      return reply(204);
    }
    reply(404, { error: 'unknown emulator control route' });
  }
}

function inputError(input: UpsertInput, results: readonly ValidationResult[]): BatchError {
  return {
    status: 'error',
    category: 'VALIDATION_ERROR',
    message: validationMessage(results),
    context: input.objectWriteTraceId === undefined ? { ids: [input.id] } : { objectWriteTraceId: [input.objectWriteTraceId] },
    errors: validationDetails(results),
  };
}

function copyRecord(record: HubSpotRecord): HubSpotRecord {
  return { ...record, properties: { ...record.properties } };
}

function publicRecord(record: HubSpotRecord): unknown {
  return {
    id: record.id,
    properties: { ...record.properties, hs_object_id: record.id, hs_createdate: record.createdAt, hs_lastmodifieddate: record.updatedAt },
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
    archived: false,
  };
}
