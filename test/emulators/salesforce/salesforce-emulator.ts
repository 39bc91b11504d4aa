/**
 * An in-memory emulator of the slice of Salesforce's wire behaviour plantlink uses:
 * the OAuth 2.0 client-credentials token endpoint and REST upsert by external id,
 * with Salesforce's status codes, error arrays and `Sforce-Limit-Info` header
 * (see README.md for what is documented and what is assumed).
 *
 * Invariants:
 * - Every answer goes over real HTTP; tests drive faults either through the methods
 *   here or through `/__emulator/*` (so another process can drive it too). Control
 *   requests are never counted, never faulted and never refused by an outage.
 * - `writes` counts every applied upsert of a record, `changes` those that changed a
 *   stored value (a create counts as both), so "redelivery changed nothing" is
 *   `changes` unchanged while `writes` grew.
 * - A rejected upsert (300, 4xx) changes nothing.
 */
import { randomBytes, createHmac } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { IdGenerator, keyPrefix } from './ids.js';
import {
  checkUpsertBody,
  defaultObjects,
  sameFields,
  type SalesforceError,
  type SObjectFieldSpec,
  type SObjectSpec,
  type ValidationRule,
} from './objects.js';

export type { SObjectFieldSpec, SObjectSpec, SalesforceError, ValidationRule };
export { defaultObjects };

export interface SalesforceEmulatorOptions {
  /** 0 = ephemeral (default). Pass a stopped emulator's port to "restart" it. */
  port?: number;
  /** Default: one client, 'plantlink-client' / 'plantlink-secret'. */
  clients?: { clientId: string; clientSecret: string }[];
  /** Access token lifetime; expired or unknown tokens get 401 INVALID_SESSION_ID. Default 2 h. */
  tokenTtlMs?: number;
  /** Custom objects of the org. Default: `defaultObjects`. */
  objects?: Record<string, SObjectSpec>;
  /** Daily API allocation reported in Sforce-Limit-Info; past it: 403 REQUEST_LIMIT_EXCEEDED. Default 100000. */
  apiLimit?: number;
  /** Request bodies above this get 413. Default 1 MiB. */
  maxBodyBytes?: number;
}

export interface UpsertRecord {
  object: string;
  externalIdField: string;
  externalId: string;
  id: string;
  fields: Record<string, unknown>;
  createdAt: number;
  writes: number;
  changes: number;
}

export interface UpsertEvent {
  record: UpsertRecord;
  created: boolean;
  changed: boolean;
}

export interface FaultResponse {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface EmulatorStats {
  requests: number;
  upserts: number;
  created: number;
  updated: number;
  unchanged: number;
  rejected: number;
  tokenRequests: number;
  status: Record<number, number>;
}

/** Body of `POST /__emulator/faults`; every key optional, applied in this order. */
export interface FaultsRequest {
  failNext?: { n: number } & FaultResponse;
  outage?: boolean;
  latencyMs?: number;
  expireTokens?: boolean;
  clearValidationRules?: boolean;
}

const JSON_TYPE = 'application/json;charset=UTF-8';
const API_PATH = /^\/services\/data\/(v\d+\.\d)(\/.*)?$/;
const SESSION_INVALID: SalesforceError[] = [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }];
const NOT_FOUND: SalesforceError[] = [{ message: 'The requested resource does not exist', errorCode: 'NOT_FOUND' }];
const ORG_ID = '00D5P0000000PLT';
const USER_ID = '0055P0000000PLT';

class RequestTooLarge extends Error {}

export class SalesforceEmulator extends EventEmitter<{ upsert: [UpsertEvent] }> {
  readonly url: string;
  readonly port: number;

  private readonly server: Server;
  private readonly clients: Map<string, string>;
  private readonly tokenTtlMs: number;
  private readonly objects: Record<string, SObjectSpec>;
  private readonly prefixes = new Map<string, string>();
  private readonly apiLimit: number;
  private readonly maxBodyBytes: number;
  private readonly ids = new IdGenerator();
  private readonly tokens = new Map<string, number>(); // access token -> expires at (ms)
  /** object -> external id -> matching records (more than one only via seedDuplicate). */
  private readonly store = new Map<string, Map<string, UpsertRecord[]>>();
  private readonly rules = new Map<string, ValidationRule[]>();
  private readonly faults: FaultResponse[] = [];
  private outage = false;
  private latencyMs = 0;
  private apiUsed = 0;
  private readonly counters: EmulatorStats = {
    requests: 0,
    upserts: 0,
    created: 0,
    updated: 0,
    unchanged: 0,
    rejected: 0,
    tokenRequests: 0,
    status: {},
  };

  static async start(options: SalesforceEmulatorOptions = {}): Promise<SalesforceEmulator> {
    const server = createServer({ keepAliveTimeout: 30_000 });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new SalesforceEmulator(server, options);
  }

  private constructor(server: Server, options: SalesforceEmulatorOptions) {
    super();
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    this.url = `http://127.0.0.1:${this.port}`;
    const clients = options.clients ?? [{ clientId: 'plantlink-client', clientSecret: 'plantlink-secret' }];
    this.clients = new Map(clients.map((c) => [c.clientId, c.clientSecret]));
    this.tokenTtlMs = options.tokenTtlMs ?? 2 * 60 * 60 * 1000;
    this.objects = options.objects ?? defaultObjects;
    Object.keys(this.objects).forEach((name, i) => this.prefixes.set(name, keyPrefix(i)));
    this.apiLimit = options.apiLimit ?? 100_000;
    this.maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
    server.on('request', (req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) this.send(res, 500, [{ message: String(error), errorCode: 'UNKNOWN_EXCEPTION' }]);
        else res.destroy();
      });
    });
  }

  // ---- inspection -------------------------------------------------------------

  records(object: string): UpsertRecord[] {
    const byId = this.store.get(object);
    if (!byId) return [];
    return [...byId.values()].flat().map(copyRecord);
  }

  record(object: string, externalId: string): UpsertRecord | undefined {
    const found = this.store.get(object)?.get(externalId)?.[0];
    return found && copyRecord(found);
  }

  stats(): EmulatorStats {
    return { ...this.counters, status: { ...this.counters.status } };
  }

  // ---- fault injection --------------------------------------------------------

  /** The next n API requests (under /services/data) get this answer instead of being processed. */
  failNext(n: number, response: FaultResponse): void {
    for (let i = 0; i < n; i++) this.faults.push(response);
  }

  /** While on, requests are answered by closing the connection without an HTTP response. */
  setOutage(on: boolean): void {
    this.outage = on;
    if (on) this.server.closeIdleConnections();
  }

  setLatency(ms: number): void {
    this.latencyMs = Math.max(0, ms);
  }

  addValidationRule(object: string, rule: ValidationRule): void {
    const list = this.rules.get(object) ?? [];
    list.push(rule);
    this.rules.set(object, list);
  }

  clearValidationRules(): void {
    this.rules.clear();
  }

  /** Invalidates every access token issued so far, as a session timeout or revocation would. */
  expireTokens(): void {
    this.tokens.clear();
  }

  /**
   * Adds a second record with an existing external id, as an external id field
   * without the Unique attribute allows; upserts of that id then answer 300.
   */
  seedDuplicate(object: string, externalId: string): void {
    const matches = this.store.get(object)?.get(externalId);
    if (!matches?.[0]) throw new Error(`no ${object} record with external id ${externalId} to duplicate`);
    const original = matches[0];
    matches.push({ ...copyRecord(original), id: this.ids.next(this.prefixes.get(object)!), createdAt: Date.now(), writes: 1, changes: 1 });
  }

  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  // ---- HTTP -------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = req.url ?? '/';
    const q = target.indexOf('?');
    const pathname = q < 0 ? target : target.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : target.slice(q + 1));
    if (pathname.startsWith('/__emulator/')) return this.control(req, res, pathname, query);

    this.counters.requests++;
    if (this.outage) return void req.socket.destroy();
    if (this.latencyMs > 0) {
      await sleep(this.latencyMs);
      if (this.outage) return void req.socket.destroy();
    }

    let body: string;
    try {
      body = await this.readBody(req);
    } catch (error) {
      if (!(error instanceof RequestTooLarge)) throw error;
      res.setHeader('Connection', 'close');
      return this.send(res, 413, [{ message: `Request body exceeds ${this.maxBodyBytes} bytes`, errorCode: 'REQUEST_ENTITY_TOO_LARGE' }]);
    }

    if (pathname === '/services/oauth2/token') return this.token(req, res, body);
    const api = API_PATH.exec(pathname);
    if (api) return this.api(req, res, query, api[1]!, api[2] ?? '', body);
    return this.send(res, 404, NOT_FOUND);
  }

  private readBody(req: IncomingMessage): Promise<string> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let tooLarge = false;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > this.maxBodyBytes) tooLarge = true;
        else chunks.push(chunk);
      });
      req.on('end', () => (tooLarge ? reject(new RequestTooLarge()) : resolve(Buffer.concat(chunks).toString('utf8'))));
      req.on('error', reject);
    });
  }

  private send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    this.counters.status[status] = (this.counters.status[status] ?? 0) + 1;
    const text = body === undefined ? '' : JSON.stringify(body);
    res.writeHead(status, { ...(text ? { 'Content-Type': JSON_TYPE } : {}), 'Content-Length': Buffer.byteLength(text), ...headers });
    res.end(text);
  }

  /** `POST /services/oauth2/token`, grant_type=client_credentials; credentials in the form or HTTP Basic. */
  private token(req: IncomingMessage, res: ServerResponse, body: string): void {
    this.counters.tokenRequests++;
    if (req.method !== 'POST') return this.send(res, 400, { error: 'invalid_request', error_description: 'must use HTTP POST' });
    const form = new URLSearchParams(body);
    let clientId = form.get('client_id');
    let clientSecret = form.get('client_secret');
    const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '');
    if (basic) {
      const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      clientId = decodeURIComponent(decoded.slice(0, colon));
      clientSecret = decodeURIComponent(decoded.slice(colon + 1));
    }
    if (form.get('grant_type') !== 'client_credentials') {
      return this.send(res, 400, { error: 'unsupported_grant_type', error_description: 'grant type not supported' });
    }
    const expected = clientId === null ? undefined : this.clients.get(clientId);
    if (expected === undefined) return this.send(res, 400, { error: 'invalid_client_id', error_description: 'client identifier invalid' });
    if (clientSecret !== expected) return this.send(res, 400, { error: 'invalid_client', error_description: 'invalid client credentials' });

    const accessToken = `${ORG_ID}!${randomBytes(42).toString('base64url')}`;
    this.tokens.set(accessToken, Date.now() + this.tokenTtlMs);
    const id = `${this.url}/id/${ORG_ID}AAA/${USER_ID}AAA`;
    const issuedAt = String(Date.now());
    this.send(res, 200, {
      access_token: accessToken,
      // Documented: HMAC-SHA256 of id + issued_at, keyed with the consumer secret, Base64.
      signature: createHmac('sha256', expected).update(id + issuedAt).digest('base64'),
      scope: 'api',
      token_format: 'opaque',
      instance_url: this.url,
      id,
      token_type: 'Bearer',
      issued_at: issuedAt,
    });
  }

  private api(req: IncomingMessage, res: ServerResponse, query: URLSearchParams, version: string, rest: string, body: string): void {
    const fault = this.faults.shift();
    if (fault) {
      const faultBody = fault.body ?? [{ message: STATUS_CODES[fault.status] ?? 'error', errorCode: fault.status === 503 ? 'SERVER_UNAVAILABLE' : 'UNKNOWN_EXCEPTION' }];
      return this.send(res, fault.status, faultBody, fault.headers);
    }
    const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const expiresAt = bearer === undefined ? undefined : this.tokens.get(bearer);
    if (expiresAt === undefined || expiresAt <= Date.now()) {
      if (bearer !== undefined) this.tokens.delete(bearer);
      return this.send(res, 401, SESSION_INVALID, { 'WWW-Authenticate': 'Token' });
    }
    if (this.apiUsed >= this.apiLimit) {
      return this.send(res, 403, [{ message: 'TotalRequests Limit exceeded.', errorCode: 'REQUEST_LIMIT_EXCEEDED' }], this.limitHeader());
    }
    this.apiUsed++;

    const parts = rest.split('/').slice(1); // '', 'sobjects', Object, Field, value
    if (parts[0] !== 'sobjects' || parts.length !== 4 || !parts[3]) return this.send(res, 404, NOT_FOUND, this.limitHeader());
    const [, object, field, rawValue] = parts as [string, string, string, string];
    let externalId: string;
    try {
      externalId = decodeURIComponent(rawValue);
    } catch {
      return this.send(res, 400, [{ message: 'Malformed external id in the URL', errorCode: 'MALFORMED_ID' }], this.limitHeader());
    }
    if (req.method === 'PATCH') return this.upsert(req, res, { version, object, field, externalId, updateOnly: query.get('updateOnly') === 'true' }, body);
    if (req.method === 'GET') return this.retrieve(res, version, object, field, externalId);
    return this.send(res, 405, [{ message: `HTTP Method '${req.method}' not allowed. Allowed are GET,PATCH`, errorCode: 'METHOD_NOT_ALLOWED' }], this.limitHeader());
  }

  private limitHeader(): Record<string, string> {
    return { 'Sforce-Limit-Info': `api-usage=${this.apiUsed}/${this.apiLimit}` };
  }

  private externalIdSpec(object: string, field: string): SObjectSpec | undefined {
    const spec = Object.hasOwn(this.objects, object) ? this.objects[object] : undefined;
    const fieldSpec = spec && Object.hasOwn(spec, field) ? spec[field] : undefined;
    return fieldSpec?.externalId ? spec : undefined;
  }

  private retrieve(res: ServerResponse, version: string, object: string, field: string, externalId: string): void {
    if (!this.externalIdSpec(object, field)) return this.send(res, 404, NOT_FOUND, this.limitHeader());
    const matches = this.store.get(object)?.get(externalId) ?? [];
    if (matches.length > 1) return this.send(res, 300, matches.map((r) => recordUrl(version, r)), this.limitHeader());
    const record = matches[0];
    if (!record) return this.send(res, 404, NOT_FOUND, this.limitHeader());
    this.send(res, 200, { attributes: { type: object, url: recordUrl(version, record) }, Id: record.id, ...record.fields }, this.limitHeader());
  }

  private upsert(
    req: IncomingMessage,
    res: ServerResponse,
    target: { version: string; object: string; field: string; externalId: string; updateOnly: boolean },
    body: string,
  ): void {
    const { object, field, externalId } = target;
    const reject = (status: number, payload: unknown): void => {
      this.counters.rejected++;
      this.send(res, status, payload, this.limitHeader());
    };
    const spec = this.externalIdSpec(object, field);
    if (!spec) return reject(404, NOT_FOUND); // unknown object, or a field that is not an external id
    const matches = this.store.get(object)?.get(externalId);
    if (matches && matches.length > 1) return reject(300, matches.map((r) => recordUrl(target.version, r)));
    if (!matches && target.updateOnly) return reject(404, NOT_FOUND);
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
      return reject(415, [{ message: 'Content type not supported; send application/json', errorCode: 'UNSUPPORTED_MEDIA_TYPE' }]);
    }

    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch (error) {
      return reject(400, [{ message: `Unexpected character in JSON: ${(error as Error).message} at [line:1, column:1]`, errorCode: 'JSON_PARSER_ERROR' }]);
    }
    const existing = matches?.[0];
    const check = checkUpsertBody(
      { object, spec, externalIdField: field, externalId },
      parsed,
      existing?.fields,
      this.rules.get(object) ?? [],
    );
    if (!check.ok) return reject(check.status, check.errors);

    this.counters.upserts++;
    if (existing) {
      const changed = !sameFields(existing.fields, check.fields);
      existing.fields = check.fields;
      existing.writes++;
      if (changed) {
        existing.changes++;
        this.counters.updated++;
      } else {
        this.counters.unchanged++;
      }
      this.send(res, 200, { id: existing.id, success: true, errors: [], created: false }, this.limitHeader());
      if (this.listenerCount('upsert') > 0) this.emit('upsert', { record: copyRecord(existing), created: false, changed });
      return;
    }
    const record: UpsertRecord = {
      object,
      externalIdField: field,
      externalId,
      id: this.ids.next(this.prefixes.get(object)!),
      fields: check.fields,
      createdAt: Date.now(),
      writes: 1,
      changes: 1,
    };
    let byId = this.store.get(object);
    if (!byId) this.store.set(object, (byId = new Map()));
    byId.set(externalId, [record]);
    this.counters.created++;
    this.send(res, 201, { id: record.id, success: true, errors: [], created: true }, this.limitHeader());
    if (this.listenerCount('upsert') > 0) this.emit('upsert', { record: copyRecord(record), created: true, changed: true });
  }

  // ---- control plane (other processes drive faults over HTTP) -----------------

  private async control(req: IncomingMessage, res: ServerResponse, pathname: string, query: URLSearchParams): Promise<void> {
    const reply = (status: number, body?: unknown): void => {
      const text = body === undefined ? '' : JSON.stringify(body);
      res.writeHead(status, text ? { 'Content-Type': 'application/json' } : {}).end(text);
    };
    if (req.method === 'GET' && pathname === '/__emulator/stats') return reply(200, this.stats());
    if (req.method === 'GET' && pathname === '/__emulator/records') return reply(200, this.records(query.get('object') ?? ''));
    if (req.method === 'POST' && pathname === '/__emulator/faults') {
      let faults: FaultsRequest;
      try {
        faults = JSON.parse(await this.readBody(req)) as FaultsRequest;
      } catch (error) {
        return reply(400, { error: `invalid faults request: ${(error as Error).message}` });
      }
      if (faults.failNext) this.failNext(faults.failNext.n, faults.failNext);
      if (faults.outage !== undefined) this.setOutage(faults.outage);
      if (faults.latencyMs !== undefined) this.setLatency(faults.latencyMs);
      if (faults.expireTokens) this.expireTokens();
      if (faults.clearValidationRules) this.clearValidationRules();
      return reply(204);
    }
    reply(404, { error: 'unknown emulator control route' });
  }
}

function copyRecord(record: UpsertRecord): UpsertRecord {
  return { ...record, fields: { ...record.fields } };
}

function recordUrl(version: string, record: UpsertRecord): string {
  return `/services/data/${version}/sobjects/${record.object}/${record.id}`;
}
