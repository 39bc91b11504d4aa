/**
 * An in-memory emulator of the slice of Salesforce's wire behaviour plantlink uses:
 * the OAuth 2.0 token endpoint (client credentials, and JWT bearer with assertions
 * checked in jwt-bearer.ts) and REST upsert by external id, one
 * record per request (sObject Rows by External ID) or up to 200 (sObject Collections),
 * with Salesforce's status codes, error arrays and `Sforce-Limit-Info` header
 * (see README.md for what is documented and what is assumed).
 *
 * Invariants:
 * - Every answer goes over real HTTP; tests drive faults either through the methods
 *   here or through `/__emulator/*` (so another process can drive it too). Control
 *   requests are never counted, never faulted and never refused by an outage.
 * - Both upsert endpoints write through one `RecordStore`, so per record `writes`
 *   counts every applied upsert, `changes` those that changed a stored value (a create
 *   counts as both): "redelivery changed nothing" is `changes` unchanged while `writes`
 *   grew. A rejected upsert (300, 4xx, a failed collection record) changes nothing.
 * - Every authenticated API request is one API call, whatever it carries.
 * - Records can be read back with SOQL (query.ts) and deleted with sObject Collections;
 *   tests change records "behind the relay's back" with `deleteRecord`, `setFields`
 *   and `seedDuplicate` (no validation, counters untouched).
 */
import { randomBytes, createHmac } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { EmulatorServer } from '../shared/emulator-server.js';
import { controlJson, countStatus, readBodyDrained, replyControl, RequestTooLarge, sendJson } from '../shared/http-helpers.js';
import { JWT_BEARER_GRANT_TYPE, JwtBearerVerifier, type JwtBearerClient, type ReceivedAssertion } from './jwt-bearer.js';
import { collectionUpsert, MAX_COLLECTION_RECORDS, type RecordError, type UpsertResult } from './collections.js';
import { defaultObjects, type SalesforceError, type SObjectFieldSpec, type SObjectSpec, type ValidationRule } from './objects.js';
import { DEFAULT_QUERY_PAGE_SIZE, QueryEngine, type QueryAnswer } from './query.js';
import { recordUrl, RecordStore, type UpsertEvent, type UpsertRecord } from './store.js';

export type { JwtBearerClient, ReceivedAssertion };
export type { SObjectFieldSpec, SObjectSpec, SalesforceError, ValidationRule, UpsertEvent, UpsertRecord, RecordError, UpsertResult };
export { defaultObjects, MAX_COLLECTION_RECORDS };

export interface SalesforceEmulatorOptions {
  /** 0 = ephemeral (default). Pass a stopped emulator's port to "restart" it. */
  port?: number;
  /** Default: one client, 'plantlink-client' / 'plantlink-secret'. */
  clients?: { clientId: string; clientSecret: string }[];
  /** Apps that use the JWT bearer flow: consumer key, uploaded certificate, approved users. Default none. */
  jwtClients?: JwtBearerClient[];
  /** `aud` values JWT bearer assertions may carry. Default: the emulator's own URL only (it stands in for the login URL). */
  jwtAudiences?: string[];
  /** Access token lifetime; expired or unknown tokens get 401 INVALID_SESSION_ID. Default 2 h. */
  tokenTtlMs?: number;
  /** Custom objects of the org. Default: `defaultObjects`. */
  objects?: Record<string, SObjectSpec>;
  /** Daily API allocation reported in Sforce-Limit-Info; past it: 403 REQUEST_LIMIT_EXCEEDED. Default 100000. */
  apiLimit?: number;
  /** Request bodies above this get 413. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Records per Query answer before `nextRecordsUrl`. Default 2000 (Salesforce's maximum). */
  queryPageSize?: number;
}

/** A Query or Query More Results request that was answered 200. */
export interface QueryCallEvent {
  /** The SOQL text; undefined for Query More Results. */
  soql?: string;
  /** Length of the request's path and query string, as sent. */
  urlLength: number;
  records: number;
  done: boolean;
}

/** One id of a collections delete and its fate. */
export interface DeleteResult {
  id: string;
  success: boolean;
  errors: RecordError[];
}

/** Body of `POST /__emulator/tamper`: changes made "behind the relay's back"; every key optional. */
export interface TamperRequest {
  deleteRecord?: { object: string; externalId: string };
  setFields?: { object: string; externalId: string; fields: Record<string, unknown> };
  duplicate?: { object: string; externalId: string };
}

/** A well-formed sObject Collections upsert request; emitted when it is answered, before its records' `upsert` events. */
export interface CollectionCallEvent {
  object: string;
  externalIdField: string;
  /** External ids of the records, in request order ('' where a record had none). */
  externalIds: string[];
  allOrNone: boolean;
}

export interface FaultResponse {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface EmulatorStats {
  /** Every HTTP request except control routes, token requests included. */
  requests: number;
  /** Authenticated API requests counted against the daily allocation (as in Sforce-Limit-Info). */
  apiCalls: number;
  /** Applied record upserts, whichever endpoint carried them. */
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
  failRecord?: { object: string; externalId: string; n?: number } & RecordError;
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

export class SalesforceEmulator extends EventEmitter<{ upsert: [UpsertEvent]; collection: [CollectionCallEvent]; query: [QueryCallEvent] }> {
  readonly url: string;
  readonly port: number;

  private readonly http: EmulatorServer;
  private readonly clients: Map<string, string>;
  private readonly jwt: JwtBearerVerifier;
  private readonly tokenTtlMs: number;
  private readonly apiLimit: number;
  private readonly maxBodyBytes: number;
  private readonly tokens = new Map<string, number>(); // access token -> expires at (ms)
  private readonly store: RecordStore;
  private readonly queries: QueryEngine;
  private readonly rules = new Map<string, ValidationRule[]>();
  private readonly faults: FaultResponse[] = [];
  /** "object external id" -> per-record errors the next collection upserts of that record get. */
  private readonly recordFaults = new Map<string, RecordError[]>();
  private apiUsed = 0;
  private readonly counters = { requests: 0, rejected: 0, tokenRequests: 0, status: {} as Record<number, number> };

  static async start(options: SalesforceEmulatorOptions = {}): Promise<SalesforceEmulator> {
    return new SalesforceEmulator(await EmulatorServer.listen(options.port), options);
  }

  private constructor(http: EmulatorServer, options: SalesforceEmulatorOptions) {
    super();
    this.http = http;
    this.port = http.port;
    this.url = `${http.origin}`;
    const clients = options.clients ?? [{ clientId: 'plantlink-client', clientSecret: 'plantlink-secret' }];
    this.clients = new Map(clients.map((c) => [c.clientId, c.clientSecret]));
    const audiences = options.jwtAudiences ?? [this.url];
    this.jwt = new JwtBearerVerifier(options.jwtClients ?? [], () => audiences);
    this.tokenTtlMs = options.tokenTtlMs ?? 2 * 60 * 60 * 1000;
    this.store = new RecordStore(options.objects ?? defaultObjects);
    this.queries = new QueryEngine(this.store, options.queryPageSize ?? DEFAULT_QUERY_PAGE_SIZE);
    this.apiLimit = options.apiLimit ?? 100_000;
    this.maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
    http.server.on('request', (req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) this.send(res, 500, [{ message: String(error), errorCode: 'UNKNOWN_EXCEPTION' }]);
        else res.destroy();
      });
    });
  }

  // ---- inspection -------------------------------------------------------------

  records(object: string): UpsertRecord[] {
    return this.store.records(object);
  }

  record(object: string, externalId: string): UpsertRecord | undefined {
    return this.store.record(object, externalId);
  }

  /** JWT bearer assertions received (decoded header and claims, and the answer each got), oldest first. */
  jwtAssertions(): ReceivedAssertion[] {
    return this.jwt.assertions();
  }

  stats(): EmulatorStats {
    return {
      requests: this.counters.requests,
      apiCalls: this.apiUsed,
      ...this.store.counters,
      rejected: this.counters.rejected,
      tokenRequests: this.counters.tokenRequests,
      status: { ...this.counters.status },
    };
  }

  // ---- fault injection --------------------------------------------------------

  /** The next n API requests (under /services/data) get this answer instead of being processed. */
  failNext(n: number, response: FaultResponse): void {
    for (let i = 0; i < n; i++) this.faults.push(response);
  }

  /**
   * The next n sObject Collections upserts of this record fail with `error` as their
   * per-record result (e.g. UNABLE_TO_LOCK_ROW); the rest of the request is processed.
   */
  failRecord(object: string, externalId: string, error: RecordError, n = 1): void {
    const key = `${object} ${externalId}`;
    const list = this.recordFaults.get(key) ?? [];
    for (let i = 0; i < n; i++) list.push(error);
    this.recordFaults.set(key, list);
  }

  /** While on, requests are answered by closing the connection without an HTTP response. */
  setOutage(on: boolean): void {
    this.http.setOutage(on);
  }

  setLatency(ms: number): void {
    this.http.setLatency(ms);
  }

  addValidationRule(object: string, rule: ValidationRule): void {
    const list = this.rules.get(object) ?? [];
    list.push(rule);
    this.rules.set(object, list);
  }

  clearValidationRules(): void {
    this.rules.clear();
  }

  /** Approves or revokes a user for a JWT bearer app (as adding or removing its profile on the app would). */
  setJwtUserApproved(clientId: string, username: string, approved: boolean): void {
    this.jwt.setApproved(clientId, username, approved);
  }

  /** Invalidates every access token issued so far, as a session timeout or revocation would. */
  expireTokens(): void {
    this.tokens.clear();
  }

  /**
   * Adds a second record with an existing external id, as an external id field
   * without the Unique attribute allows; upserts of that id then answer 300.
   */
  seedDuplicate(object: string, externalId: string): UpsertRecord {
    return this.store.seedDuplicate(object, externalId);
  }

  /** Deletes every record with this external id, as a user would in the UI; returns how many. */
  deleteRecord(object: string, externalId: string): number {
    return this.store.removeByExternalId(object, externalId);
  }

  /**
   * Overwrites fields of the record with this external id (null clears one), as another
   * user or integration would: no validation, counters untouched. False when there is none.
   */
  setFields(object: string, externalId: string, fields: Record<string, unknown>): boolean {
    return this.store.setFields(object, externalId, fields);
  }

  async stop(): Promise<void> {
    return this.http.stop();
  }

  // ---- HTTP -------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = req.url ?? '/';
    const q = target.indexOf('?');
    const pathname = q < 0 ? target : target.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : target.slice(q + 1));
    if (pathname.startsWith('/__emulator/')) return this.control(req, res, pathname, query);

    this.counters.requests++;
    if (!(await this.http.admit(req))) return;

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
    return readBodyDrained(req, this.maxBodyBytes);
  }

  private send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    countStatus(this.counters.status, status);
    sendJson(res, status, body, JSON_TYPE, headers);
  }

  /** `POST /services/oauth2/token`: the client credentials or the JWT bearer grant. */
  private token(req: IncomingMessage, res: ServerResponse, body: string): void {
    this.counters.tokenRequests++;
    if (req.method !== 'POST') return this.send(res, 400, { error: 'invalid_request', error_description: 'must use HTTP POST' });
    const form = new URLSearchParams(body);
    if (form.get('grant_type') === JWT_BEARER_GRANT_TYPE) return this.jwtBearerToken(res, form);
    this.clientCredentialsToken(req, res, form);
  }

  /** grant_type=client_credentials; credentials in the form or HTTP Basic. */
  private clientCredentialsToken(req: IncomingMessage, res: ServerResponse, form: URLSearchParams): void {
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

    const accessToken = this.issueToken();
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

  /**
   * grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer, assertion=<JWT> (checked in
   * jwt-bearer.ts). Refusals are 400 `{ error, error_description }`. The answer has no
   * refresh token, no expiry and no signature (that is an HMAC keyed with the consumer
   * secret, which this flow does not use).
   */
  private jwtBearerToken(res: ServerResponse, form: URLSearchParams): void {
    const verdict = this.jwt.verify(form.get('assertion'), Date.now());
    if (!verdict.ok) return this.send(res, 400, { error: verdict.error, error_description: verdict.description });
    this.send(res, 200, {
      access_token: this.issueToken(),
      scope: 'api',
      instance_url: this.url,
      id: `${this.url}/id/${ORG_ID}AAA/${USER_ID}AAA`,
      token_type: 'Bearer',
    });
  }

  private issueToken(): string {
    const accessToken = `${ORG_ID}!${randomBytes(42).toString('base64url')}`;
    this.tokens.set(accessToken, Date.now() + this.tokenTtlMs);
    return accessToken;
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

    const parts = rest.split('/').slice(1); // e.g. sobjects/Object/Field/value, composite/sobjects/Object/Field, query, query/locator
    const urlLength = (req.url ?? '').length;
    if (parts[0] === 'query' && parts.length <= 2) {
      if (req.method !== 'GET') return this.methodNotAllowed(res, req.method, 'GET');
      if (parts.length === 2) return this.answerQuery(res, this.queries.more(parts[1] ?? ''), urlLength);
      const soql = query.get('q');
      if (soql === null) return this.send(res, 400, [{ message: 'A query string has to be specified', errorCode: 'MALFORMED_QUERY' }], this.limitHeader());
      return this.answerQuery(res, this.queries.run(version, soql), urlLength, soql);
    }
    if (parts[0] === 'composite' && parts[1] === 'sobjects' && parts.length === 2) {
      if (req.method !== 'DELETE') return this.methodNotAllowed(res, req.method, 'DELETE');
      return this.collectionDelete(res, query);
    }
    if (parts[0] === 'composite' && parts[1] === 'sobjects' && parts.length === 4 && parts[2] && parts[3]) {
      if (req.method !== 'PATCH') return this.methodNotAllowed(res, req.method, 'PATCH');
      return this.collectionUpsert(req, res, parts[2], parts[3], body);
    }
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
    return this.methodNotAllowed(res, req.method, 'GET,PATCH');
  }

  private answerQuery(res: ServerResponse, answer: QueryAnswer, urlLength: number, soql?: string): void {
    if (!answer.ok) return this.send(res, answer.status, answer.errors, this.limitHeader());
    this.send(res, 200, answer.body, this.limitHeader());
    if (this.listenerCount('query') > 0) {
      this.emit('query', { ...(soql === undefined ? {} : { soql }), urlLength, records: answer.body.records.length, done: answer.body.done });
    }
  }

  /**
   * sObject Collections delete: `DELETE .../composite/sobjects?ids=a,b[&allOrNone=true]`,
   * up to 200 ids, one result per id in request order; 200 whatever their fate.
   */
  private collectionDelete(res: ServerResponse, query: URLSearchParams): void {
    const ids = (query.get('ids') ?? '').split(',').filter((id) => id !== '');
    if (ids.length === 0) return this.send(res, 400, [{ message: 'ids: required parameter missing', errorCode: 'MISSING_ARGUMENT' }], this.limitHeader());
    if (ids.length > MAX_COLLECTION_RECORDS) {
      return this.send(res, 400, [{ message: 'record limit reached. cannot submit more than 200 records into this call', errorCode: 'EXCEEDED_ID_LIMIT' }], this.limitHeader());
    }
    const allOrNone = query.get('allOrNone') === 'true';
    const known = new Set(this.store.scanAll().map((r) => r.id));
    const failure = (id: string): RecordError | undefined => {
      if (known.has(id)) return undefined;
      return this.store.wasDeleted(id)
        ? { statusCode: 'ENTITY_IS_DELETED', message: 'entity is deleted', fields: [] }
        : { statusCode: 'INVALID_CROSS_REFERENCE_KEY', message: 'invalid cross reference id', fields: [] };
    };
    const failures = ids.map(failure);
    if (allOrNone && failures.some((f) => f !== undefined)) {
      const rolledBack: RecordError = {
        statusCode: 'ALL_OR_NONE_OPERATION_ROLLED_BACK',
        message: 'Record rolled back because not all records were valid and the request was using AllOrNone header',
        fields: [],
      };
      return this.send(res, 200, ids.map((id, i): DeleteResult => ({ id, success: false, errors: [failures[i] ?? rolledBack] })), this.limitHeader());
    }
    const results = ids.map((id, i): DeleteResult => {
      const error = failures[i] ?? (this.store.deleteById(id) === 'deleted' ? undefined : failure(id));
      return error ? { id, success: false, errors: [error] } : { id, success: true, errors: [] };
    });
    this.send(res, 200, results, this.limitHeader());
  }

  private methodNotAllowed(res: ServerResponse, method: string | undefined, allowed: string): void {
    this.send(res, 405, [{ message: `HTTP Method '${method}' not allowed. Allowed are ${allowed}`, errorCode: 'METHOD_NOT_ALLOWED' }], this.limitHeader());
  }

  private limitHeader(): Record<string, string> {
    return { 'Sforce-Limit-Info': `api-usage=${this.apiUsed}/${this.apiLimit}` };
  }

  private retrieve(res: ServerResponse, version: string, object: string, field: string, externalId: string): void {
    if (!this.store.externalIdSpec(object, field)) return this.send(res, 404, NOT_FOUND, this.limitHeader());
    const matches = this.store.matches(object, externalId);
    if (matches.length > 1) return this.send(res, 300, matches.map((r) => recordUrl(version, r)), this.limitHeader());
    const record = matches[0];
    if (!record) return this.send(res, 404, NOT_FOUND, this.limitHeader());
    this.send(res, 200, { attributes: { type: object, url: recordUrl(version, record) }, Id: record.id, ...record.fields }, this.limitHeader());
  }

  /** Shared by both upsert endpoints: the content type and JSON body, or the answer refusing them. */
  private parseJson(req: IncomingMessage, body: string): { ok: true; value: unknown } | { ok: false; status: number; errors: SalesforceError[] } {
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
      return { ok: false, status: 415, errors: [{ message: 'Content type not supported; send application/json', errorCode: 'UNSUPPORTED_MEDIA_TYPE' }] };
    }
    try {
      return { ok: true, value: JSON.parse(body) };
    } catch (error) {
      return { ok: false, status: 400, errors: [{ message: `Unexpected character in JSON: ${(error as Error).message} at [line:1, column:1]`, errorCode: 'JSON_PARSER_ERROR' }] };
    }
  }

  /** sObject Rows by External ID: one record, 201 created / 200 updated / 300 several matches. */
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
    const spec = this.store.externalIdSpec(object, field);
    if (!spec) return reject(404, NOT_FOUND); // unknown object, or a field that is not an external id
    const matches = this.store.matches(object, externalId);
    if (matches.length > 1) return reject(300, matches.map((r) => recordUrl(target.version, r)));
    if (matches.length === 0 && target.updateOnly) return reject(404, NOT_FOUND);
    const parsed = this.parseJson(req, body);
    if (!parsed.ok) return reject(parsed.status, parsed.errors);

    const prepared = this.store.prepare({ object, spec, externalIdField: field, externalId }, parsed.value, this.rules.get(object) ?? []);
    if (!prepared.ok) return reject(prepared.status, prepared.errors);
    const event = this.store.apply(prepared);
    this.send(res, event.created ? 201 : 200, { id: event.record.id, success: true, errors: [], created: event.created }, this.limitHeader());
    if (this.listenerCount('upsert') > 0) this.emit('upsert', event);
  }

  /**
   * sObject Collections upsert: up to 200 records of one object by one external id field,
   * 200 with one result per record in request order (see collections.ts). A request
   * refused whole counts once in `rejected`; otherwise every failed record counts once.
   */
  private collectionUpsert(req: IncomingMessage, res: ServerResponse, rawObject: string, rawField: string, body: string): void {
    const reject = (status: number, errors: SalesforceError[]): void => {
      this.counters.rejected++;
      this.send(res, status, errors, this.limitHeader());
    };
    const object = safeDecode(rawObject);
    const field = safeDecode(rawField);
    const spec = object === undefined || field === undefined ? undefined : this.store.externalIdSpec(object, field);
    if (!spec || object === undefined || field === undefined) return reject(404, NOT_FOUND);
    const parsed = this.parseJson(req, body);
    if (!parsed.ok) return reject(parsed.status, parsed.errors);

    const recordFault = (externalId: string): RecordError | undefined => {
      const list = this.recordFaults.get(`${object} ${externalId}`);
      const fault = list?.shift();
      if (list?.length === 0) this.recordFaults.delete(`${object} ${externalId}`);
      return fault;
    };
    const answer = collectionUpsert(this.store, { object, externalIdField: field, spec }, parsed.value, this.rules.get(object) ?? [], recordFault);
    if (!answer.ok) return reject(answer.status, answer.errors);
    if (this.listenerCount('collection') > 0) this.emit('collection', { object, externalIdField: field, externalIds: answer.externalIds, allOrNone: answer.allOrNone });
    this.counters.rejected += answer.results.filter((r) => !r.success).length;
    this.send(res, 200, answer.results, this.limitHeader());
    if (this.listenerCount('upsert') > 0) for (const event of answer.events) this.emit('upsert', event);
  }

  // ---- control plane (other processes drive faults over HTTP) -----------------

  private async control(req: IncomingMessage, res: ServerResponse, pathname: string, query: URLSearchParams): Promise<void> {
    const reply = (status: number, body?: unknown): void => replyControl(res, status, body);
    if (req.method === 'GET' && pathname === '/__emulator/stats') return reply(200, this.stats());
    if (req.method === 'GET' && pathname === '/__emulator/records') return reply(200, this.records(query.get('object') ?? ''));
    if (req.method === 'POST' && pathname === '/__emulator/tamper') return this.tamper(req, reply);
    if (req.method === 'POST' && pathname === '/__emulator/faults') {
      const faults = await controlJson<FaultsRequest>(this.readBody(req), 'faults', reply);
      if (!faults) return;
      if (faults.failNext) this.failNext(faults.failNext.n, faults.failNext);
      if (faults.failRecord) {
        const { object, externalId, n, statusCode, message, fields } = faults.failRecord;
        this.failRecord(object, externalId, { statusCode, message, fields: fields ?? [] }, n);
      }
      if (faults.outage !== undefined) this.setOutage(faults.outage);
      if (faults.latencyMs !== undefined) this.setLatency(faults.latencyMs);
      if (faults.expireTokens) this.expireTokens();
      if (faults.clearValidationRules) this.clearValidationRules();
      return reply(204);
    }
    reply(404, { error: 'unknown emulator control route' });
  }

  /** `POST /__emulator/tamper`: 204, or 404 naming the first change that found no record. */
  private async tamper(req: IncomingMessage, reply: (status: number, body?: unknown) => void): Promise<void> {
    const body = await controlJson<TamperRequest>(this.readBody(req), 'tamper', reply);
    if (!body) return;
    const missing: string[] = [];
    if (body.duplicate) {
      const { object, externalId } = body.duplicate;
      if (this.store.matches(object, externalId).length === 0) missing.push(`duplicate: no ${object} record ${externalId}`);
      else this.seedDuplicate(object, externalId);
    }
    if (body.setFields && !this.setFields(body.setFields.object, body.setFields.externalId, body.setFields.fields ?? {})) {
      missing.push(`setFields: no ${body.setFields.object} record ${body.setFields.externalId}`);
    }
    if (body.deleteRecord && this.deleteRecord(body.deleteRecord.object, body.deleteRecord.externalId) === 0) {
      missing.push(`deleteRecord: no ${body.deleteRecord.object} record ${body.deleteRecord.externalId}`);
    }
    return missing.length > 0 ? reply(404, { error: missing.join('; ') }) : reply(204);
  }
}

function safeDecode(value: string): string | undefined {
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}
