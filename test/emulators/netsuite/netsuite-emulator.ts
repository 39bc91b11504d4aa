/**
 * An in-memory emulator of the slice of NetSuite's wire behaviour plantlink uses:
 * the OAuth 2.0 client credentials (M2M) token endpoint, REST record service upsert by
 * external id (`PUT /services/rest/record/v1/{recordType}/eid:{externalId}`), record
 * retrieval, `GET /services/rest/system/v1/governanceLimits`, NetSuite's error bodies
 * and account-wide concurrency governance (see README.md for what is documented and
 * what is assumed).
 *
 * Invariants:
 * - Every answer goes over real HTTP; tests drive faults through the methods here or
 *   through `/__emulator/*` (so another process can drive it too). Control requests
 *   are never counted, faulted, throttled or refused by an outage.
 * - Concurrency is counted per account: every REST request (record or system
 *   service) holds one slot from arrival until its answer is written, plus the slots
 *   other integrations hold (`occupy`). A request that finds no free slot is answered
 *   429 `SSS_REQUEST_LIMIT_EXCEEDED` at once and writes nothing.
 * - `writes` counts every applied upsert of a record, `changes` those that changed a
 *   stored value (a create counts as both), so "redelivery changed nothing" is
 *   `changes` unchanged while `writes` grew. A rejected upsert changes nothing.
 * - Time (token and assertion expiry) comes from the `now` option, so tests move the
 *   clock instead of sleeping.
 * - Records are read back by external id (optionally only `?fields=`) and deleted by
 *   internal or external id; tests change records "behind the relay's back" with
 *   `deleteRecord` and `setFields` (no validation, counters untouched).
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { KeyObject } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { EmulatorServer } from '../shared/emulator-server.js';
import { controlJson, countStatus, readBodyDrained, replyControl, RequestTooLarge, sendJson } from '../shared/http-helpers.js';
import { decodeJwt, isAssertionAlgorithm, signAccessToken, toPublicKey, verifyJwtSignature } from './jwt.js';
import {
  checkUpsertBody,
  defaultRecordTypes,
  sameFields,
  type FieldSpec,
  type NetSuiteErrorDetail,
  type RecordTypeSpec,
  type SelectValue,
  type ValidationRule,
} from './records.js';

export type { FieldSpec, NetSuiteErrorDetail, RecordTypeSpec, SelectValue, ValidationRule };
export { defaultRecordTypes };

/** One row of Setup > Integration > OAuth 2.0 Client Credentials (M2M) Setup: application + certificate. */
export interface M2MClientMapping {
  /** Client ID of the integration record (the assertion's `iss`). */
  clientId: string;
  /** Certificate ID shown after uploading the certificate (the assertion's `kid`). */
  certificateId: string;
  /** Public part of the certificate: a KeyObject (public or private) or a PEM string. */
  publicKey: KeyObject | string;
  /** Scopes enabled on the integration record. Default: rest_webservices. */
  scopes?: string[];
  revoked?: boolean;
}

export interface NetSuiteEmulatorOptions {
  /** 0 = ephemeral (default). Pass a stopped emulator's port to "restart" it. */
  port?: number;
  /** Account ID, used in access token claims only. Default TSTDRV1234567. */
  accountId?: string;
  clients: M2MClientMapping[];
  /** Access token lifetime. Default 60 minutes (documented). */
  tokenTtlMs?: number;
  /** Record types of the account. Default: `defaultRecordTypes`. */
  recordTypes?: Record<string, RecordTypeSpec>;
  /** Account concurrency limit (REST requests in flight). Default 5, a developer account's limit. */
  concurrencyLimit?: number;
  /** When set, the integration's own limit (enforced instead of the account's, reported as integrationSpecific). */
  integrationConcurrencyLimit?: number;
  /** Clock for token and assertion expiry. Default Date.now. */
  now?: () => number;
  /** Request bodies above this get 413. Default 1 MiB. */
  maxBodyBytes?: number;
}

export interface StoredRecord {
  recordType: string;
  externalId: string;
  /** Internal id, as in the Location header. */
  id: string;
  fields: Record<string, unknown>;
  createdAt: number;
  writes: number;
  changes: number;
}

export interface UpsertEvent {
  record: StoredRecord;
  created: boolean;
  changed: boolean;
}

export interface FaultResponse {
  status: number;
  /** Default: a NetSuite error body with `o:errorCode` from the status. */
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
  /** Requests answered 429 SSS_REQUEST_LIMIT_EXCEEDED. */
  throttled: number;
  /** REST requests of this client in flight now, and the most at once (slots held by `occupy` not included). */
  inFlight: number;
  maxInFlight: number;
  tokenRequests: number;
  tokensIssued: number;
  status: Record<number, number>;
}

/** What NetSuite shows in the Login Audit Trail for a token request or a refused access token. */
export interface LoginAuditEntry {
  at: number;
  status: 'Success' | 'Failure';
  detail: string;
  clientId?: string;
  certificateId?: string;
}

/** Body of `POST /__emulator/faults`; every key optional, applied in this order. */
export interface FaultsRequest {
  failNext?: { n: number } & FaultResponse;
  outage?: boolean;
  latencyMs?: number;
  expireTokens?: boolean;
  clearValidationRules?: boolean;
  /** Slots other integrations hold from now on (replaces the previous value). */
  occupied?: number;
}

/** Body of `POST /__emulator/tamper`: changes made "behind the relay's back"; every key optional. */
export interface TamperRequest {
  deleteRecord?: { type: string; externalId: string };
  setFields?: { type: string; externalId: string; fields: Record<string, unknown> };
}

const JSON_TYPE = 'application/json; charset=UTF-8';
const RECORD_PATH = /^\/services\/rest\/record\/v1\/([^/]+)(?:\/([^/]+))?\/?$/;
const GOVERNANCE_PATH = '/services/rest/system/v1/governanceLimits';
const TOKEN_PATH = '/services/rest/auth/oauth2/v1/token';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Documented: "An external ID can be any string containing letters, numbers, underscore (_), and hyphen (-)." */
const EXTERNAL_ID = /^[A-Za-z0-9_-]+$/;
/** Documented: exp must be less than 60 minutes after iat. */
const MAX_ASSERTION_LIFETIME_S = 3600;
/** Assumed clock skew allowed on iat. */
const IAT_SKEW_S = 300;

const TYPE_URI: Record<number, string> = {
  400: 'https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.1',
  401: 'https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html',
  403: 'https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.4',
  404: 'https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.5',
  405: 'https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.6',
  413: 'https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.14',
  415: 'https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.16',
  429: 'https://tools.ietf.org/html/rfc6585#section-4',
  500: 'https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.5.1',
  503: 'https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.5.4',
};
const TITLE: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};
const DEFAULT_FAULT_CODE: Record<number, string> = { 429: 'SSS_REQUEST_LIMIT_EXCEEDED', 500: 'UNEXPECTED_ERROR', 503: 'SERVICE_UNAVAILABLE' };

/** NetSuite's error body: `{ type, title, status, o:errorDetails: [{ detail, o:errorCode, ... }] }`. */
export function errorBody(status: number, details: NetSuiteErrorDetail[]): Record<string, unknown> {
  return { type: TYPE_URI[status] ?? TYPE_URI[400], title: TITLE[status] ?? 'Error', status, 'o:errorDetails': details };
}

const INVALID_LOGIN: NetSuiteErrorDetail = {
  detail: 'Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI at Setup > Users/Roles > User Management > View Login Audit Trail.',
  'o:errorCode': 'INVALID_LOGIN',
};
const CONCURRENCY_EXCEEDED: NetSuiteErrorDetail = {
  detail: 'Concurrent request limit exceeded. Request blocked.',
  'o:errorCode': 'SSS_REQUEST_LIMIT_EXCEEDED',
};

interface IssuedToken {
  expiresAt: number;
  clientId: string;
}

export class NetSuiteEmulator extends EventEmitter<{ upsert: [UpsertEvent] }> {
  readonly url: string;
  readonly port: number;
  /** The token endpoint URL, which is also the `aud` client assertions must carry. */
  readonly tokenUrl: string;

  private readonly http: EmulatorServer;
  private readonly accountId: string;
  private readonly clients: Map<string, { mapping: M2MClientMapping; key: KeyObject }>;
  private readonly tokenTtlMs: number;
  private readonly recordTypes: Record<string, RecordTypeSpec>;
  private readonly concurrencyLimit: number;
  private readonly integrationLimit: number | undefined;
  private readonly now: () => number;
  private readonly maxBodyBytes: number;
  private readonly tokens = new Map<string, IssuedToken>();
  /** recordType -> external id -> record. */
  private readonly store = new Map<string, Map<string, StoredRecord>>();
  private readonly rules = new Map<string, ValidationRule[]>();
  private readonly faults: FaultResponse[] = [];
  private readonly audit: LoginAuditEntry[] = [];
  private nextInternalId = 101;
  private inFlight = 0;
  private occupied = 0;
  private gate: Promise<void> | undefined;
  private readonly counters: EmulatorStats = {
    requests: 0,
    upserts: 0,
    created: 0,
    updated: 0,
    unchanged: 0,
    rejected: 0,
    throttled: 0,
    inFlight: 0,
    maxInFlight: 0,
    tokenRequests: 0,
    tokensIssued: 0,
    status: {},
  };

  static async start(options: NetSuiteEmulatorOptions): Promise<NetSuiteEmulator> {
    return new NetSuiteEmulator(await EmulatorServer.listen(options.port), options);
  }

  private constructor(http: EmulatorServer, options: NetSuiteEmulatorOptions) {
    super();
    this.http = http;
    this.port = http.port;
    this.url = `${http.origin}`;
    this.tokenUrl = `${this.url}${TOKEN_PATH}`;
    this.accountId = options.accountId ?? 'TSTDRV1234567';
    this.clients = new Map(options.clients.map((mapping) => [mapping.certificateId, { mapping, key: toPublicKey(mapping.publicKey) }]));
    this.tokenTtlMs = options.tokenTtlMs ?? 60 * 60 * 1000;
    this.recordTypes = options.recordTypes ?? defaultRecordTypes;
    this.concurrencyLimit = options.concurrencyLimit ?? 5;
    this.integrationLimit = options.integrationConcurrencyLimit;
    this.now = options.now ?? Date.now;
    this.maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
    http.server.on('request', (req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) this.send(res, 500, errorBody(500, [{ detail: String(error), 'o:errorCode': 'UNEXPECTED_ERROR' }]));
        else res.destroy();
      });
    });
  }

  // ---- inspection -------------------------------------------------------------

  records(recordType: string): StoredRecord[] {
    return [...(this.store.get(recordType)?.values() ?? [])].map(copyRecord);
  }

  record(recordType: string, externalId: string): StoredRecord | undefined {
    const found = this.store.get(recordType)?.get(externalId);
    return found && copyRecord(found);
  }

  stats(): EmulatorStats {
    return { ...this.counters, inFlight: this.inFlight, status: { ...this.counters.status } };
  }

  /** Login Audit Trail: one entry per token request and per refused access token, oldest first. */
  loginAuditTrail(): LoginAuditEntry[] {
    return this.audit.map((e) => ({ ...e }));
  }

  // ---- fault injection --------------------------------------------------------

  /** The next n REST requests (record or system service) get this answer instead of being processed. */
  failNext(n: number, response: FaultResponse): void {
    for (let i = 0; i < n; i++) this.faults.push(response);
  }

  /** While on, requests are answered by closing the connection without an HTTP response. */
  setOutage(on: boolean): void {
    this.http.setOutage(on);
  }

  /** Delay before each REST request is processed; the request holds its concurrency slot meanwhile. */
  setLatency(ms: number): void {
    this.http.setLatency(ms);
  }

  /**
   * Admitted REST requests wait (holding their slots) until the returned function is
   * called: a deterministic way to have several requests in flight at once.
   */
  hold(): () => void {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    this.gate = gate;
    return () => {
      if (this.gate === gate) this.gate = undefined;
      open();
    };
  }

  /** Other integrations of the account hold `n` concurrency slots until the returned function is called. */
  occupy(n: number): () => void {
    this.occupied += n;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.occupied -= n;
    };
  }

  /** A rule the account enforces on the record as it would be after the write (user event script, workflow). */
  addValidationRule(recordType: string, rule: ValidationRule): void {
    const list = this.rules.get(recordType) ?? [];
    list.push(rule);
    this.rules.set(recordType, list);
  }

  clearValidationRules(): void {
    this.rules.clear();
  }

  /** Deletes the record with this external id, as a user would in the UI; false when there is none. */
  deleteRecord(recordType: string, externalId: string): boolean {
    return this.store.get(recordType)?.delete(externalId) ?? false;
  }

  /**
   * Overwrites fields of the record with this external id (null clears one; a select is
   * `{ id, refName }`), as another user or integration would: no validation, counters
   * untouched. False when there is none.
   */
  setFields(recordType: string, externalId: string, fields: Record<string, unknown>): boolean {
    const record = this.store.get(recordType)?.get(externalId);
    if (!record) return false;
    for (const [name, value] of Object.entries(fields)) {
      if (value === null) delete record.fields[name];
      else record.fields[name] = structuredClone(value);
    }
    return true;
  }

  /** Invalidates every access token issued so far, as a revoked mapping would. */
  expireTokens(): void {
    this.tokens.clear();
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
    if (this.http.cutIfOutage(req)) return;
    if (pathname === TOKEN_PATH) {
      const body = await this.readBodyOr413(req, res);
      if (body !== undefined) this.token(req, res, body);
      return;
    }
    if (!RECORD_PATH.test(pathname) && pathname !== GOVERNANCE_PATH) {
      return this.send(res, 404, errorBody(404, [{ detail: `The requested resource ${pathname} was not found.`, 'o:errorCode': 'NONEXISTENT_ID', 'o:urlPath': pathname }]));
    }
    return this.admitted(req, res, pathname);
  }

  /** A REST request that needs a concurrency slot: throttled at once when none is free. */
  private async admitted(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> {
    const limit = this.integrationLimit ?? this.concurrencyLimit;
    if (this.inFlight + this.occupied >= limit) {
      this.counters.throttled++;
      req.resume();
      return this.send(res, 429, errorBody(429, [CONCURRENCY_EXCEEDED]));
    }
    this.inFlight++;
    this.counters.maxInFlight = Math.max(this.counters.maxInFlight, this.inFlight);
    try {
      if (this.http.latencyMs > 0) {
        await sleep(this.http.latencyMs);
        if (this.http.cutIfOutage(req)) return;
      }
      if (this.gate) {
        await this.gate;
        if (this.http.cutIfOutage(req)) return;
      }
      const body = await this.readBodyOr413(req, res);
      if (body === undefined) return;
      const fault = this.faults.shift();
      if (fault) {
        const code = DEFAULT_FAULT_CODE[fault.status] ?? (fault.status >= 500 ? 'UNEXPECTED_ERROR' : 'INVALID_REQUEST');
        return this.send(res, fault.status, fault.body ?? errorBody(fault.status, [{ detail: TITLE[fault.status] ?? 'error', 'o:errorCode': code }]), fault.headers);
      }
      if (!this.authorized(req)) return this.send(res, 401, errorBody(401, [INVALID_LOGIN]));
      if (pathname === GOVERNANCE_PATH) return this.governance(req, res);
      const [, recordType, key] = RECORD_PATH.exec(pathname)!;
      return this.recordService(req, res, decodeSegment(recordType!), key === undefined ? undefined : decodeSegment(key), body);
    } finally {
      this.inFlight--;
    }
  }

  private async readBodyOr413(req: IncomingMessage, res: ServerResponse): Promise<string | undefined> {
    try {
      return await this.readBody(req);
    } catch (error) {
      if (!(error instanceof RequestTooLarge)) throw error;
      res.setHeader('Connection', 'close');
      this.send(res, 413, errorBody(413, [{ detail: `The request body exceeds ${this.maxBodyBytes} bytes.`, 'o:errorCode': 'INVALID_REQUEST' }]));
      return undefined;
    }
  }

  private readBody(req: IncomingMessage): Promise<string> {
    return readBodyDrained(req, this.maxBodyBytes);
  }

  private send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    countStatus(this.counters.status, status);
    sendJson(res, status, body, JSON_TYPE, headers);
  }

  // ---- OAuth 2.0 client credentials (M2M) ------------------------------------

  /**
   * `POST /services/rest/auth/oauth2/v1/token`: grant_type=client_credentials,
   * client_assertion_type=jwt-bearer, client_assertion = JWT signed with the
   * certificate's private key (header kid = certificate id; claims iss, scope, aud, exp, iat).
   */
  private token(req: IncomingMessage, res: ServerResponse, body: string): void {
    this.counters.tokenRequests++;
    const oauthError = (status: number, error: string): void => this.send(res, status, { error });
    if (req.method !== 'POST') return oauthError(400, 'invalid_request');
    if (!/^application\/x-www-form-urlencoded\b/i.test(req.headers['content-type'] ?? '')) return oauthError(400, 'invalid_request');
    const form = new URLSearchParams(body);
    if (form.get('grant_type') !== 'client_credentials') return oauthError(400, 'unsupported_grant_type');
    const assertion = form.get('client_assertion');
    if (form.get('client_assertion_type') !== JWT_BEARER || !assertion) return oauthError(400, 'invalid_request');

    const now = this.now();
    const refuse = (detail: string, ids: { clientId?: string; certificateId?: string } = {}): void => {
      this.audit.push({ at: now, status: 'Failure', detail, ...ids });
      oauthError(401, 'invalid_client');
    };
    const jwt = decodeJwt(assertion);
    if (!jwt) return refuse('InvalidToken');
    const { header, payload } = jwt;
    const kid = typeof header.kid === 'string' ? header.kid : undefined;
    const client = kid === undefined ? undefined : this.clients.get(kid);
    if (!client) return refuse('InvalidCertificateId', kid === undefined ? {} : { certificateId: kid });
    const ids = { clientId: client.mapping.clientId, certificateId: client.mapping.certificateId };
    if (client.mapping.revoked) return refuse('RevokedCertificate', ids);
    if (header.typ !== undefined && header.typ !== 'JWT') return refuse('InvalidToken', ids);
    if (!isAssertionAlgorithm(header.alg) || !verifyJwtSignature(jwt, header.alg, client.key)) return refuse('InvalidSignature', ids);
    if (payload.iss !== client.mapping.clientId) return refuse('InvalidIntegration', ids);
    if (payload.aud !== this.tokenUrl) return refuse('InvalidAudience', ids);
    const iat = payload.iat;
    const exp = payload.exp;
    const nowS = now / 1000;
    if (typeof iat !== 'number' || typeof exp !== 'number' || iat > nowS + IAT_SKEW_S || exp <= nowS || exp - iat > MAX_ASSERTION_LIFETIME_S) {
      return refuse('InvalidTokenTimestamp', ids);
    }
    const requested = scopesOf(payload.scope);
    const allowed = client.mapping.scopes ?? ['rest_webservices'];
    if (requested.length === 0 || requested.some((s) => !allowed.includes(s))) return refuse('ScopeMismatched', ids);

    const ttlS = Math.max(1, Math.round(this.tokenTtlMs / 1000));
    const accessToken = signAccessToken({
      sub: '3;7', // role;entity
      aud: [`${randomUUID().toUpperCase()};${this.accountId}`, client.mapping.clientId],
      scope: requested,
      iss: 'https://system.netsuite.com',
      exp: Math.floor(nowS) + ttlS,
      iat: Math.floor(nowS),
      jti: randomUUID(),
    });
    this.tokens.set(accessToken, { expiresAt: now + this.tokenTtlMs, clientId: client.mapping.clientId });
    this.counters.tokensIssued++;
    this.audit.push({ at: now, status: 'Success', detail: '', ...ids });
    this.send(res, 200, { access_token: accessToken, expires_in: String(ttlS), token_type: 'bearer' });
  }

  private authorized(req: IncomingMessage): boolean {
    const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const issued = bearer === undefined ? undefined : this.tokens.get(bearer);
    const now = this.now();
    if (issued && issued.expiresAt > now) return true;
    if (bearer !== undefined) this.tokens.delete(bearer);
    this.audit.push({ at: now, status: 'Failure', detail: issued ? 'AccessTokenExpired' : 'InvalidToken', ...(issued ? { clientId: issued.clientId } : {}) });
    return false;
  }

  // ---- system service ---------------------------------------------------------

  private governance(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET') return this.send(res, 405, errorBody(405, [{ detail: `HTTP method ${req.method} is not allowed.`, 'o:errorCode': 'INVALID_REQUEST' }]));
    const base = { accountConcurrencyLimit: this.concurrencyLimit, accountUnallocatedConcurrencyLimit: this.concurrencyLimit - (this.integrationLimit ?? 0) };
    this.send(
      res,
      200,
      this.integrationLimit === undefined
        ? { ...base, integrationLimitType: 'accountLimit' }
        : { ...base, integrationConcurrencyLimit: this.integrationLimit, integrationLimitType: 'integrationSpecific' },
    );
  }

  // ---- record service ---------------------------------------------------------

  private recordService(req: IncomingMessage, res: ServerResponse, recordType: string, key: string | undefined, body: string): void {
    const reject = (status: number, details: NetSuiteErrorDetail[]): void => {
      if (req.method === 'PUT') this.counters.rejected++;
      this.send(res, status, errorBody(status, details));
    };
    const spec = Object.hasOwn(this.recordTypes, recordType) ? this.recordTypes[recordType] : undefined;
    if (!spec) {
      return reject(404, [{ detail: `Record type '${recordType}' does not exist.`, 'o:errorCode': 'INVALID_RCRD_TYPE', 'o:urlPath': recordType }]);
    }
    if (key === undefined) return reject(405, [{ detail: 'Only record instances are served here.', 'o:errorCode': 'INVALID_REQUEST' }]);
    const externalId = key.startsWith('eid:') ? key.slice(4) : undefined;
    if (req.method === 'GET') return this.retrieve(req, res, recordType, key, externalId);
    if (req.method === 'DELETE') return this.remove(res, recordType, key, externalId);
    if (req.method !== 'PUT') {
      return reject(405, [{ detail: `HTTP method ${req.method} is not supported by this emulator; use PUT with an external ID.`, 'o:errorCode': 'INVALID_REQUEST' }]);
    }
    if (externalId === undefined) {
      return reject(400, [{ detail: 'The upsert operation requires an external ID in the request URL (eid:...).', 'o:errorCode': 'INVALID_REQUEST', 'o:urlPath': key }]);
    }
    if (!EXTERNAL_ID.test(externalId)) {
      return reject(400, [{ detail: `Invalid external ID '${externalId}': use letters, numbers, underscore and hyphen only.`, 'o:errorCode': 'INVALID_ID', 'o:urlPath': key }]);
    }
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
      return reject(415, [{ detail: 'Unsupported Content-Type; send application/json.', 'o:errorCode': 'INVALID_HEADER', 'o:errorHeader': 'Content-Type' }]);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch (error) {
      return reject(400, [{ detail: `The request body is not valid JSON: ${(error as Error).message}`, 'o:errorCode': 'INVALID_CONTENT' }]);
    }
    const validation = String(req.headers['x-netsuite-propertynamevalidation'] ?? 'Error').toLowerCase();
    const byId = this.store.get(recordType);
    const existing = byId?.get(externalId);
    const check = checkUpsertBody(
      { recordType, spec, externalId, unknownFields: validation === 'warning' || validation === 'ignore' ? 'ignore' : 'error' },
      parsed,
      existing?.fields,
      this.rules.get(recordType) ?? [],
    );
    if (!check.ok) return reject(check.status, check.errors);
    this.apply(res, recordType, externalId, existing, check.fields);
  }

  private apply(res: ServerResponse, recordType: string, externalId: string, existing: StoredRecord | undefined, fields: Record<string, unknown>): void {
    this.counters.upserts++;
    let record: StoredRecord;
    let created = false;
    let changed = true;
    if (existing) {
      changed = !sameFields(existing.fields, fields);
      existing.fields = fields;
      existing.writes++;
      if (changed) {
        existing.changes++;
        this.counters.updated++;
      } else {
        this.counters.unchanged++;
      }
      record = existing;
    } else {
      created = true;
      record = { recordType, externalId, id: String(this.nextInternalId++), fields, createdAt: this.now(), writes: 1, changes: 1 };
      let byId = this.store.get(recordType);
      if (!byId) this.store.set(recordType, (byId = new Map()));
      byId.set(externalId, record);
      this.counters.created++;
    }
    this.send(res, 204, undefined, { Location: `${this.url}/services/rest/record/v1/${recordType}/${record.id}` });
    if (this.listenerCount('upsert') > 0) this.emit('upsert', { record: copyRecord(record), created, changed });
  }

  private find(recordType: string, key: string, externalId: string | undefined): StoredRecord | undefined {
    const byId = this.store.get(recordType);
    return externalId !== undefined ? byId?.get(externalId) : [...(byId?.values() ?? [])].find((r) => r.id === key);
  }

  private notFound(res: ServerResponse, key: string): void {
    this.send(res, 404, errorBody(404, [{ detail: `The record instance does not exist. Provide a valid record instance ID.`, 'o:errorCode': 'NONEXISTENT_ID', 'o:urlPath': key }]));
  }

  /** The record; with `?fields=a,b` only those fields (plus links and id), leaving out unset ones. */
  private retrieve(req: IncomingMessage, res: ServerResponse, recordType: string, key: string, externalId: string | undefined): void {
    const record = this.find(recordType, key, externalId);
    if (!record) return this.notFound(res, key);
    const self = `${this.url}/services/rest/record/v1/${recordType}/${record.id}`;
    const fieldsParam = new URL(req.url ?? '/', 'http://emulator').searchParams.get('fields');
    const all: Record<string, unknown> = { externalId: record.externalId, ...record.fields };
    const shown = fieldsParam === null ? all : Object.fromEntries(fieldsParam.split(',').filter((f) => Object.hasOwn(all, f)).map((f) => [f, all[f]]));
    this.send(res, 200, { links: [{ rel: 'self', href: self }], id: record.id, ...structuredClone(shown) });
  }

  /** `DELETE .../{recordType}/{id or eid:...}`: 204 without a body, or 404 NONEXISTENT_ID. */
  private remove(res: ServerResponse, recordType: string, key: string, externalId: string | undefined): void {
    const record = this.find(recordType, key, externalId);
    if (!record) return this.notFound(res, key);
    this.store.get(recordType)?.delete(record.externalId);
    this.send(res, 204, undefined);
  }

  // ---- control plane (other processes drive faults over HTTP) -----------------

  private async control(req: IncomingMessage, res: ServerResponse, pathname: string, query: URLSearchParams): Promise<void> {
    const reply = (status: number, body?: unknown): void => replyControl(res, status, body);
    if (req.method === 'GET' && pathname === '/__emulator/stats') return reply(200, this.stats());
    if (req.method === 'GET' && pathname === '/__emulator/records') return reply(200, this.records(query.get('type') ?? ''));
    if (req.method === 'GET' && pathname === '/__emulator/audit') return reply(200, this.loginAuditTrail());
    if (req.method === 'POST' && pathname === '/__emulator/tamper') {
      const tamper = await controlJson<TamperRequest>(this.readBody(req), 'tamper', reply);
      if (!tamper) return;
      const missing: string[] = [];
      const s = tamper.setFields;
      if (s && !this.setFields(s.type, s.externalId, s.fields ?? {})) missing.push(`setFields: no ${s.type} record ${s.externalId}`);
      const d = tamper.deleteRecord;
      if (d && !this.deleteRecord(d.type, d.externalId)) missing.push(`deleteRecord: no ${d.type} record ${d.externalId}`);
      return missing.length > 0 ? reply(404, { error: missing.join('; ') }) : reply(204);
    }
    if (req.method === 'POST' && pathname === '/__emulator/faults') {
      const faults = await controlJson<FaultsRequest>(this.readBody(req), 'faults', reply);
      if (!faults) return;
      if (faults.failNext) this.failNext(faults.failNext.n, faults.failNext);
      if (faults.outage !== undefined) this.setOutage(faults.outage);
      if (faults.latencyMs !== undefined) this.setLatency(faults.latencyMs);
      if (faults.expireTokens) this.expireTokens();
      if (faults.clearValidationRules) this.clearValidationRules();
      if (faults.occupied !== undefined) this.occupied = Math.max(0, faults.occupied);
      return reply(204);
    }
    reply(404, { error: 'unknown emulator control route' });
  }
}

function copyRecord(record: StoredRecord): StoredRecord {
  return { ...record, fields: structuredClone(record.fields) };
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** The `scope` claim: documented as comma-separated values; the documented example token carries an array. */
function scopesOf(claim: unknown): string[] {
  const values = Array.isArray(claim) ? claim : typeof claim === 'string' ? claim.split(',') : [];
  return values.filter((v): v is string => typeof v === 'string').map((v) => v.trim()).filter(Boolean);
}
