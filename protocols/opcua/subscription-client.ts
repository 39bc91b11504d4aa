/**
 * A supervised OPC UA subscription: one session, ONE subscription, many monitored items
 * (node-opcua maintainers advise against one subscription per item: #906, #195).
 *
 * Invariants:
 * - A subscription never stops silently. Every "generation" (client + session +
 *   subscription + items) is watched; when it cannot deliver any more it is torn down
 *   and a new one is built, with jittered exponential backoff between attempts:
 *   - connection lost: node-opcua re-opens the channel and reactivates the SAME session
 *     (the server keeps queuing notifications meanwhile, and Republish recovers the
 *     ones lost in flight, so a short network drop loses nothing). If that takes longer
 *     than `channelReconnectGraceMs`, or the server no longer knows the session
 *     (restart: node-opcua then makes a new session, which we detect by its id), we
 *     recycle ourselves. node-opcua's own repair is known not to always restore
 *     subscriptions (node-opcua #1059), so it is never the only safety net;
 *   - stalled: no notification and no keep-alive within `stallAfterKeepAlives` keep-alive
 *     periods while "connected" -> health `stalled`, then recycle;
 *   - the server ends the subscription (BadTimeout, session closed) -> recycle.
 * - Browse paths are resolved again on every new generation.
 * - After every (re)subscription the initial value of every item arrives as ONE ordinary
 *   change batch (held back until each item reported or a short deadline passed), so a
 *   consumer reconciles against all of them at once and in source-timestamp order.
 * - Every batch is sorted by source timestamp, then server timestamp, then item order.
 * - Nothing is coalesced: sampling interval 0 (exception-based) by default and a queue
 *   per item (default 100) with discardOldest=false.
 * - An item may carry its own absolute deadband (DataChangeFilter, trigger StatusValue): the
 *   server then sends a value only when it moved MORE than the deadband from the last value it
 *   sent. Items are created in one request per distinct filter. An item whose filter the server
 *   refuses (BadFilterNotAllowed, BadMonitoredItemFilterUnsupported, ...: e.g. a node not
 *   declared numeric) is created again without it and listed in `deadbandRefused`; the first
 *   refusal per item is logged at warn, later ones at debug.
 * - stop() leaves no timer or socket behind.
 * - Security (`security.ts`, `pki.ts`): with Sign or SignAndEncrypt, our certificate is
 *   made (or renewed when it nears expiry) in `pkiDir` before each generation connects,
 *   and the server's certificate must already be in `pkiDir/trusted/certs`: an unknown
 *   one is filed under `pkiDir/rejected/`, never accepted, and health carries a
 *   `problem` naming that file. Such failures are retried with the usual backoff, so a
 *   certificate trusted meanwhile is used at the next attempt without a restart.
 */
import { EventEmitter } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import {
  AttributeIds,
  DataChangeFilter,
  DataChangeTrigger,
  DeadbandType,
  defaultClientTransportFactory,
  makeBrowsePath,
  OPCUAClient,
  resolveNodeId,
  StatusCodes,
  TimestampsToReturn,
  UserTokenType,
  type ClientSession,
  type ClientSubscription,
  type DataChangeNotification,
  type IClientTransport,
  type NodeId,
  type NotificationMessage,
  type StatusChangeNotification,
  type StatusCode,
} from 'node-opcua';
import { backoffMs, describeError, TransientError } from '../errors.js';
import type { Logger } from '../log.js';
import { sortChanges, toChange, type Change, type SortableChange } from './changes.js';
import { readHistorySince } from './history.js';
import { routeNodeOpcuaLogs } from './node-opcua-logs.js';
import { ensureOwnCertificate, type OwnCertificate } from './pki.js';
import {
  classifySecurityFailure,
  messageSecurityMode,
  OpcUaSecurityError,
  RecordingCertificateManager,
  securityPolicy,
  type OpcUaIdentity,
  type OpcUaSecurity,
  type SecurityProblem,
} from './security.js';

export type { Change } from './changes.js';
export type { OpcUaIdentity, OpcUaSecurity, SecurityProblem } from './security.js';

export interface MonitoredItemSpec {
  /** Key reported in every change of this item. Unique within the client. */
  key: string;
  /** A NodeId string (`ns=1;s=L1.State`) or a browse path from the Root folder (`/Objects/1:Plant/1:L1/1:State`). */
  node: string;
  /**
   * Ask the server to send a value only when it moved MORE than `value` from the last value it
   * sent (OPC UA AbsoluteDeadband; numeric nodes only). Refused by the server: monitored without.
   */
  deadband?: { type: 'absolute'; value: number };
}

/** Statuses by which a server refuses an item's filter (not the item itself). */
const FILTER_REFUSED = new Set<number>([
  StatusCodes.BadFilterNotAllowed.value,
  StatusCodes.BadMonitoredItemFilterUnsupported.value,
  StatusCodes.BadMonitoredItemFilterInvalid.value,
  StatusCodes.BadDeadbandFilterInvalid.value,
]);

export interface SubscriptionClientOptions {
  endpointUrl: string;
  items: MonitoredItemSpec[];
  /** Requested publishing interval. Default 250 ms. */
  publishingIntervalMs?: number;
  /** Publishing intervals without data after which the server sends a keep-alive. Default 10. */
  maxKeepAliveCount?: number;
  /** Keep-alive periods without any notification before the subscription counts as stalled. Default 3. */
  stallAfterKeepAlives?: number;
  /** Requested sampling interval; 0 = every change (exception-based). Default 0. */
  samplingIntervalMs?: number;
  /** Server-side queue per item, so bursts between publishes are not coalesced. Default 100. */
  queueSize?: number;
  /** Requested session timeout; the server keeps our session (and queues notifications) this long after a drop. Default 60 s. */
  sessionTimeoutMs?: number;
  /** Upper bound on connect, create session, subscribe, read and close. Default 10 s. */
  operationTimeoutMs?: number;
  /** Backoff between generations: base and cap. Defaults 500 ms and 10 s. */
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  /** How long node-opcua may try to reopen a dropped channel and reactivate the session before we recycle. Default: the session timeout. */
  channelReconnectGraceMs?: number;
  /** Message security. Default `{ mode: 'None' }`. */
  security?: OpcUaSecurity;
  /** User identity. Default anonymous. */
  identity?: OpcUaIdentity;
  /** Folder for the client's certificate store (own certificate, trusted and rejected server certificates). Default `<tmpdir>/plantlink-opcua-pki`. */
  pkiDir?: string;
  applicationName?: string;
  /** Name (subject CN, application URI) of the certificate made when `pkiDir` has none. Default `applicationName`. */
  certificateName?: string;
  /** Our certificate: validity of a new one (default 3650 days), and renewal when fewer days remain (default 30). */
  ownCertificate?: { validityDays?: number; renewBeforeDays?: number };
  logger?: Logger;
  /** For tests: the jitter source. */
  random?: () => number;
}

export type ClientHealthState = 'connecting' | 'connected' | 'stalled' | 'disconnected' | 'stopped';

export interface ClientHealth {
  state: ClientHealthState;
  detail?: string;
  /** Set while the last attempt failed for a reason an operator must fix (certificate trust, credentials). */
  problem?: SecurityProblem;
  /** Unix ms of the last notification or keep-alive received. */
  lastActivityMs?: number;
}

export interface ResubscribedInfo {
  /** Counts attempts to build a session and subscription, from 1 (failed attempts included). */
  generation: number;
  /** Item keys that could not be monitored this time (unknown node, unresolvable path), with why. */
  failedItems: Array<{ key: string; reason: string }>;
  /** Items with a deadband the server refused: monitored without it this time (every change is sent), with the status. */
  deadbandRefused: Array<{ key: string; reason: string }>;
  /**
   * True when the server had lost our session (restart) and we verified and kept the
   * session and subscription node-opcua recreated during its reconnection, instead of
   * building new ones: that keeps the changes made right after the restart.
   */
  adopted: boolean;
}

export interface SubscriptionClientEvents {
  changes: [Change[]];
  health: [ClientHealth];
  resubscribed: [ResubscribedInfo];
}

type Resolved = { key: string; order: number; nodeId: NodeId; deadband?: MonitoredItemSpec['deadband'] };

class GenerationEnded extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

/** Everything one attempt built; torn down as a whole. */
class Generation {
  client: OPCUAClient | undefined;
  session: ClientSession | undefined;
  sessionId = '';
  subscription: ClientSubscription | undefined;
  /** Our certificate as this generation uses it (security other than None). */
  own: OwnCertificate | undefined;
  resolved: Resolved[] = [];
  byHandle = new Map<number, Resolved>();
  deadbandRefused: ResubscribedInfo['deadbandRefused'] = [];
  /** Messages held until we know they are ours: before the item handles are known, or while a recreated session is verified. */
  early: NotificationMessage[] = [];
  phase: 'building' | 'adopting' | 'initial' | 'live' = 'building';
  awaitingInitial = new Set<string>();
  initialBuffer: SortableChange[] = [];
  initialTimer: NodeJS.Timeout | undefined;
  graceTimer: NodeJS.Timeout | undefined;
  keepAlivePeriodMs = 0;
  channelDown = false;
  /** Every transport (socket) this generation's client opened, to force them shut if a polite close hangs. */
  readonly transports = new Set<IClientTransport>();
  endReason: string | undefined;
  readonly ended: Promise<string>;
  private resolveEnded!: (reason: string) => void;

  constructor(readonly number: number) {
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
  }

  end(reason: string): void {
    if (this.endReason !== undefined) return;
    this.endReason = reason;
    this.resolveEnded(reason);
  }

  /** Resolves with the promise, or rejects when the generation ends or the time is up. */
  async step<T>(what: string, promise: Promise<T>, timeoutMs: number): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    promise.catch(() => undefined); // a late rejection after a timeout must not go unhandled
    try {
      return await Promise.race([
        promise,
        this.ended.then((reason) => {
          throw new GenerationEnded(`${what}: ${reason}`);
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new TransientError(`${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}

const DEFAULT_PKI_DIR = path.join(os.tmpdir(), 'plantlink-opcua-pki');
/** Bound on notifications held back while a recreated session is verified. */
const MAX_HELD_MESSAGES = 10_000;
/** How often a long-lived session checks whether our certificate is due for renewal. */
const CERTIFICATE_CHECK_EVERY_MS = 6 * 60 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

export class OpcUaSubscriptionClient extends EventEmitter<SubscriptionClientEvents> {
  private readonly o: Required<Omit<SubscriptionClientOptions, 'logger' | 'channelReconnectGraceMs' | 'ownCertificate'>> & {
    channelReconnectGraceMs: number;
    ownCertificate: { validityDays: number; renewBeforeDays: number };
  };
  private readonly log: Logger | undefined;
  private current: ClientHealth = { state: 'stopped' };
  private gen: Generation | undefined;
  private generations = 0;
  private running: Promise<void> | undefined;
  private stopping = false;
  private lastActivityMs: number | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private certificateTimer: NodeJS.Timeout | undefined;
  /** Why the last attempt failed, until one succeeds: shown while the next attempt runs. */
  private lastFailure: { reason: string; problem?: SecurityProblem } | undefined;
  private sleepTimer: NodeJS.Timeout | undefined;
  private wakeSleep: (() => void) | undefined;
  /** Items whose refused deadband was logged at warn already. */
  private readonly warnedRefusedDeadband = new Set<string>();

  constructor(options: SubscriptionClientOptions) {
    super();
    const keys = new Set<string>();
    for (const item of options.items) {
      if (keys.has(item.key)) throw new Error(`duplicate monitored item key "${item.key}"`);
      keys.add(item.key);
      if (item.deadband && !(Number.isFinite(item.deadband.value) && item.deadband.value >= 0)) {
        throw new Error(`monitored item "${item.key}": the deadband must be a number >= 0`);
      }
    }
    const sessionTimeoutMs = options.sessionTimeoutMs ?? 60_000;
    this.o = {
      endpointUrl: options.endpointUrl,
      items: options.items,
      publishingIntervalMs: options.publishingIntervalMs ?? 250,
      maxKeepAliveCount: options.maxKeepAliveCount ?? 10,
      stallAfterKeepAlives: options.stallAfterKeepAlives ?? 3,
      samplingIntervalMs: options.samplingIntervalMs ?? 0,
      queueSize: options.queueSize ?? 100,
      sessionTimeoutMs,
      operationTimeoutMs: options.operationTimeoutMs ?? 10_000,
      reconnectBaseMs: options.reconnectBaseMs ?? 500,
      reconnectMaxMs: options.reconnectMaxMs ?? 10_000,
      channelReconnectGraceMs: options.channelReconnectGraceMs ?? sessionTimeoutMs,
      security: options.security ?? { mode: 'None' },
      identity: options.identity ?? { type: 'anonymous' },
      pkiDir: options.pkiDir ?? DEFAULT_PKI_DIR,
      applicationName: options.applicationName ?? 'plantlink-agent',
      certificateName: options.certificateName ?? options.applicationName ?? 'plantlink-agent',
      ownCertificate: {
        validityDays: options.ownCertificate?.validityDays ?? 3650,
        renewBeforeDays: options.ownCertificate?.renewBeforeDays ?? 30,
      },
      random: options.random ?? Math.random,
    };
    this.log = options.logger?.child({ component: 'opcua-client', endpointUrl: options.endpointUrl });
    routeNodeOpcuaLogs(options.logger);
  }

  health(): ClientHealth {
    return { ...this.current, ...(this.lastActivityMs === undefined ? {} : { lastActivityMs: this.lastActivityMs }) };
  }

  /** Starts supervising; returns at once. Connection problems show in health(), never as a rejection. */
  start(): void {
    if (this.running) return;
    this.stopping = false;
    this.setHealth('connecting');
    this.running = this.supervise();
    const checkEveryMs = Math.max(100, Math.min(1000, (this.o.publishingIntervalMs * this.o.maxKeepAliveCount) / 4));
    this.watchdog = setInterval(() => this.checkStall(), checkEveryMs);
    if (this.o.security.mode !== 'None') {
      this.certificateTimer = setInterval(() => this.checkOwnCertificate(), CERTIFICATE_CHECK_EVERY_MS);
      this.certificateTimer.unref();
    }
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.stopping = true;
    clearInterval(this.watchdog);
    this.watchdog = undefined;
    clearInterval(this.certificateTimer);
    this.certificateTimer = undefined;
    this.gen?.end('stopping');
    this.wakeSleep?.();
    await this.running;
    this.running = undefined;
    this.setHealth('stopped');
  }

  /** Reads every monitored item (or those with the given keys) now (Read service, both timestamps), sorted like a change batch. */
  async readCurrent(keys?: ReadonlySet<string>): Promise<Change[]> {
    const gen = this.gen;
    if (!gen || gen.phase === 'building' || gen.phase === 'adopting' || !gen.session || gen.channelDown) {
      throw new TransientError('reading current values: not connected');
    }
    const session = gen.session;
    const items = keys ? gen.resolved.filter((r) => keys.has(r.key)) : gen.resolved;
    if (items.length === 0) return [];
    let dataValues;
    try {
      dataValues = await gen.step(
        'reading current values',
        session.read(items.map((r) => ({ nodeId: r.nodeId, attributeId: AttributeIds.Value })), 0),
        this.o.operationTimeoutMs,
      );
    } catch (e) {
      throw new TransientError(`reading current values: ${describeError(e)}`, { cause: e });
    }
    const now = Date.now();
    return sortChanges(dataValues.map((dv, i) => toChange(items[i]!.key, items[i]!.order, dv, now)));
  }

  /**
   * Raw history (OPC UA Historical Access) of every monitored item since the given source
   * timestamp per item key, oldest first. Items whose nodes keep no history come back in
   * `unsupported`; `truncated` means more is waiting: apply these and call again. Only items
   * with a `since` are read, up to `untilMs` (inclusive; default now).
   */
  async readHistory(
    since: ReadonlyMap<string, number>,
    untilMs?: number,
  ): Promise<{ changes: Change[]; unsupported: string[]; truncated: string[] }> {
    const gen = this.gen;
    if (!gen || gen.phase === 'building' || !gen.session || gen.channelDown) {
      throw new TransientError('reading history: not connected');
    }
    if (gen.resolved.length === 0) return { changes: [], unsupported: [], truncated: [] };
    return gen.step(
      'reading history',
      readHistorySince(
        gen.session,
        gen.resolved.map((r) => ({ item: r.key, nodeId: r.nodeId })),
        since,
        untilMs === undefined ? {} : { until: new Date(untilMs) },
      ),
      this.o.operationTimeoutMs * 3,
    );
  }

  // ---- supervision -------------------------------------------------------------------

  private async supervise(): Promise<void> {
    let attempt = 0;
    while (!this.stopping) {
      const gen = new Generation(++this.generations);
      this.gen = gen;
      let establishedAt: number | undefined;
      try {
        const last = this.lastFailure;
        const detail = this.generations > 1 ? `attempt ${attempt + 1}${last ? `; the last one failed: ${last.reason}` : ''}` : undefined;
        this.setHealth('connecting', detail, last?.problem);
        await this.establish(gen);
        establishedAt = Date.now();
        const reason = await gen.ended;
        if (!this.stopping) this.log?.warn({ reason, generation: gen.number }, 'recycling the OPC UA session');
      } catch (e) {
        const reason = e instanceof GenerationEnded ? e.reason : describeError(e);
        gen.end(reason);
        if (!this.stopping) this.onAttemptFailed(gen, reason, e instanceof OpcUaSecurityError ? e.problem : undefined, attempt);
      }
      await this.teardown(gen);
      if (this.stopping) break;
      // A session that lived a while resets the backoff; one that dies at once, or an attempt
      // that never got a session (however slowly it failed, e.g. on a loaded machine), keeps
      // growing it.
      attempt = establishedAt !== undefined && Date.now() - establishedAt > this.o.reconnectMaxMs ? 0 : attempt + 1;
      if (this.current.state === 'connected' || this.current.state === 'stalled') this.setHealth('disconnected', gen.endReason);
      await this.sleep(backoffMs(attempt, this.o.reconnectBaseMs, this.o.reconnectMaxMs, this.o.random));
    }
    this.gen = undefined;
  }

  private onAttemptFailed(gen: Generation, reason: string, problem: SecurityProblem | undefined, attempt: number): void {
    const repeated = this.lastFailure?.reason === reason;
    this.lastFailure = problem ? { reason, problem } : { reason };
    this.setHealth('disconnected', reason, problem);
    if (problem) {
      // An operator must act: said at error level once per distinct problem, then every 10th attempt.
      const level = !repeated || attempt % 10 === 0 ? 'error' : 'debug';
      this.log?.[level]({ alarm: `opcua_${problem.kind.replace(/-/g, '_')}`, ...problem, generation: gen.number, attempt }, reason);
      return;
    }
    // a server that is down for hours must not flood the log: every 10th failure at warn
    const level = attempt % 10 === 0 ? 'warn' : 'debug';
    this.log?.[level]({ err: reason, generation: gen.number, attempt }, 'could not subscribe to the OPC UA server');
  }

  /** A long-lived session does not wait for a reconnection to renew our certificate. */
  private checkOwnCertificate(): void {
    const gen = this.gen;
    const own = gen?.own;
    if (!gen || !own || gen.endReason !== undefined) return;
    const daysLeft = (own.notAfter.getTime() - Date.now()) / DAY_MS;
    if (daysLeft < this.o.ownCertificate.renewBeforeDays) gen.end(`our certificate expires in ${Math.floor(daysLeft)} days; reconnecting with a renewed one`);
  }

  /** Our certificate, made or renewed as needed, and a certificate manager that trusts only what is in trusted/. */
  private async prepareSecurity(gen: Generation): Promise<RecordingCertificateManager> {
    const o = this.o;
    if (o.security.mode !== 'None') {
      gen.own = await gen.step(
        'preparing our certificate',
        ensureOwnCertificate({ pkiDir: o.pkiDir, applicationName: o.certificateName, ...o.ownCertificate, ...(this.log ? { logger: this.log } : {}) }),
        Math.max(o.operationTimeoutMs, 60_000), // the first run generates a key pair
      );
    }
    return new RecordingCertificateManager({
      rootFolder: o.pkiDir,
      automaticallyAcceptUnknownCertificate: false, // trust is explicit: an unknown server certificate lands in rejected/
      disableFileWatchers: true, // every generation reads the store afresh; no watcher per generation
    });
  }

  /** Runs one step of building a session; a security failure comes out as an OpcUaSecurityError. */
  private async securedStep<T>(
    gen: Generation,
    what: 'connecting' | 'creating a session',
    manager: RecordingCertificateManager,
    promise: Promise<T>,
  ): Promise<T> {
    try {
      return await gen.step(what, promise, this.o.operationTimeoutMs);
    } catch (e) {
      if (e instanceof GenerationEnded) throw e;
      const problem = classifySecurityFailure(describeError(e), {
        phase: what,
        security: this.o.security,
        identity: this.o.identity,
        pkiDir: this.o.pkiDir,
        refused: manager.refused,
        own: gen.own,
      });
      throw problem ? new OpcUaSecurityError(problem, { cause: e }) : e;
    }
  }

  private async establish(gen: Generation): Promise<void> {
    const o = this.o;
    const keepAlivePeriodMs = o.publishingIntervalMs * o.maxKeepAliveCount;
    const certificateManager = await this.prepareSecurity(gen);
    const client = OPCUAClient.create({
      applicationName: o.applicationName,
      // the server checks that the URI we claim is the one in our certificate
      ...(gen.own?.applicationUri ? { applicationUri: gen.own.applicationUri } : {}),
      clientName: `${o.applicationName}-${gen.number}`,
      endpointMustExist: false,
      securityMode: messageSecurityMode(o.security),
      securityPolicy: securityPolicy(o.security),
      requestedSessionTimeout: o.sessionTimeoutMs,
      keepSessionAlive: false, // the subscription's publish traffic keeps the session alive
      // maxRetry 1: the first connect fails fast (our backoff takes over); a dropped channel is
      // re-opened by node-opcua (it always retries reconnections) so the session can be reactivated.
      connectionStrategy: {
        maxRetry: 1,
        initialDelay: Math.min(1000, o.reconnectBaseMs),
        maxDelay: Math.max(1000, Math.min(o.reconnectMaxMs, 5000)),
        randomisationFactor: 0.5,
      },
      transportTimeout: Math.max(o.operationTimeoutMs, 2 * o.stallAfterKeepAlives * keepAlivePeriodMs),
      clientCertificateManager: certificateManager,
      transportFactory: {
        create: (settings) => {
          const transport = defaultClientTransportFactory.create(settings);
          gen.transports.add(transport);
          return transport;
        },
      },
    });
    gen.client = client;
    client.on('connection_lost', () => this.onConnectionLost(gen));
    client.on('connection_reestablished', () => this.onConnectionReestablished(gen));
    client.on('close', (err?: Error | null) => {
      if (err) gen.end(`connection closed: ${err.message}`);
    });

    await this.securedStep(gen, 'connecting', certificateManager, client.connect(o.endpointUrl));
    const identity = o.identity;
    const session = await this.securedStep(
      gen,
      'creating a session',
      certificateManager,
      client.createSession(
        identity.type === 'username'
          ? { type: UserTokenType.UserName, userName: identity.userName, password: identity.password }
          : { type: UserTokenType.Anonymous },
      ),
    );
    gen.session = session;
    gen.sessionId = session.sessionId.toString();
    session.on('session_closed', (status: StatusCode) => gen.end(`session closed by the server (${status.name})`));

    const failedItems: ResubscribedInfo['failedItems'] = [];
    gen.resolved = await this.resolveItems(gen, session, failedItems);

    const subscription = await gen.step(
      'creating the subscription',
      session.createSubscription2({
        requestedPublishingInterval: o.publishingIntervalMs,
        requestedMaxKeepAliveCount: o.maxKeepAliveCount,
        // the server keeps the subscription (and queues) this long without publish requests
        requestedLifetimeCount: Math.max(3 * o.maxKeepAliveCount, Math.ceil(o.sessionTimeoutMs / o.publishingIntervalMs)),
        maxNotificationsPerPublish: 0, // no limit from our side
        publishingEnabled: true,
        priority: 10,
      }),
      o.operationTimeoutMs,
    );
    gen.subscription = subscription;
    gen.keepAlivePeriodMs = subscription.publishingInterval * subscription.maxKeepAliveCount || keepAlivePeriodMs;
    subscription.on('raw_notification', (message: NotificationMessage) => this.onNotification(gen, message));
    subscription.on('terminated', () => gen.end('the subscription was terminated'));
    subscription.on('error', (err: Error) => gen.end(`subscription error: ${err.message}`));

    gen.resolved = await this.monitor(gen, subscription, gen.resolved, failedItems);
    for (const f of failedItems) this.log?.error({ item: f.key, reason: f.reason }, 'an OPC UA item cannot be monitored');

    this.beginInitial(gen, { generation: gen.number, failedItems, deadbandRefused: gen.deadbandRefused, adopted: false });
  }

  /**
   * Creates the monitored items, one request per distinct deadband (the parameters of a
   * request apply to all its items). Items whose filter is refused are created again without.
   * Returns the items monitored, in configuration order.
   */
  private async monitor(gen: Generation, subscription: ClientSubscription, items: Resolved[], failed: ResubscribedInfo['failedItems']): Promise<Resolved[]> {
    const groups = new Map<string, Resolved[]>();
    for (const r of items) {
      const key = r.deadband ? `${r.deadband.type}:${r.deadband.value}` : '';
      groups.set(key, [...(groups.get(key) ?? []), r]);
    }
    const monitored: Resolved[] = [];
    const unfiltered: Resolved[] = [];
    const create = async (group: Resolved[], deadband: Resolved['deadband']) => {
      const created = await gen.step(
        'creating monitored items',
        subscription.monitorItems(
          group.map((r) => ({ nodeId: r.nodeId, attributeId: AttributeIds.Value })),
          {
            samplingInterval: this.o.samplingIntervalMs,
            queueSize: this.o.queueSize,
            discardOldest: false,
            ...(deadband
              ? { filter: new DataChangeFilter({ trigger: DataChangeTrigger.StatusValue, deadbandType: DeadbandType.Absolute, deadbandValue: deadband.value }) }
              : {}),
          },
          TimestampsToReturn.Both,
        ),
        this.o.operationTimeoutMs,
      );
      created.monitoredItems.forEach((item, i) => {
        const r = group[i]!;
        if (item.statusCode.isGood()) {
          gen.byHandle.set(item.monitoringParameters.clientHandle, r);
          monitored.push(r);
        } else if (deadband && FILTER_REFUSED.has(item.statusCode.value)) {
          gen.deadbandRefused.push({ key: r.key, reason: item.statusCode.name });
          unfiltered.push(r);
        } else {
          failed.push({ key: r.key, reason: `monitoring refused: ${item.statusCode.name}` });
        }
      });
    };
    for (const group of groups.values()) await create(group, group[0]!.deadband);
    if (unfiltered.length > 0) {
      for (const { key, reason } of gen.deadbandRefused) {
        const level = this.warnedRefusedDeadband.has(key) ? 'debug' : 'warn';
        this.warnedRefusedDeadband.add(key);
        this.log?.[level]({ item: key, reason }, 'the OPC UA server refused the deadband filter of an item; monitoring every change of it instead');
      }
      await create(unfiltered, undefined);
    }
    return monitored.sort((a, b) => a.order - b.order);
  }

  /** From here on the initial value of every item is collected into one batch. */
  private beginInitial(gen: Generation, info: ResubscribedInfo): void {
    this.lastActivityMs = Date.now();
    gen.phase = 'initial';
    gen.awaitingInitial = new Set([...gen.byHandle.values()].map((r) => r.key));
    gen.initialBuffer = [];
    this.emitSafely('resubscribed', info);
    for (const message of gen.early.splice(0)) this.onNotification(gen, message);
    if (gen.phase !== 'initial') return; // flushed already
    if (gen.awaitingInitial.size === 0) this.flushInitial(gen);
    else {
      const deadline = Math.max(1000, 4 * (gen.subscription?.publishingInterval ?? this.o.publishingIntervalMs));
      gen.initialTimer = setTimeout(() => this.flushInitial(gen), deadline);
    }
  }

  private async resolveItems(gen: Generation, session: ClientSession, failed: ResubscribedInfo['failedItems']): Promise<Resolved[]> {
    const resolved: Resolved[] = [];
    const paths: Array<{ key: string; order: number; path: string; deadband: MonitoredItemSpec['deadband'] }> = [];
    this.o.items.forEach((item, order) => {
      if (item.node.startsWith('/')) {
        paths.push({ key: item.key, order, path: item.node, deadband: item.deadband });
        return;
      }
      try {
        resolved.push({ key: item.key, order, nodeId: resolveNodeId(item.node), ...(item.deadband ? { deadband: item.deadband } : {}) });
      } catch (e) {
        failed.push({ key: item.key, reason: `invalid NodeId "${item.node}": ${describeError(e)}` });
      }
    });
    if (paths.length > 0) {
      const browsePaths = [];
      const valid: typeof paths = [];
      for (const p of paths) {
        try {
          browsePaths.push(makeBrowsePath('RootFolder', p.path));
          valid.push(p);
        } catch (e) {
          failed.push({ key: p.key, reason: `invalid browse path "${p.path}": ${describeError(e)}` });
        }
      }
      const results = await gen.step('resolving browse paths', session.translateBrowsePath(browsePaths), this.o.operationTimeoutMs);
      results.forEach((result, i) => {
        const p = valid[i]!;
        const target = result.targets?.[0];
        if (result.statusCode.isGood() && target) {
          resolved.push({ key: p.key, order: p.order, nodeId: target.targetId, ...(p.deadband ? { deadband: p.deadband } : {}) });
        } else {
          failed.push({ key: p.key, reason: `browse path "${p.path}" not found: ${result.statusCode.name}` });
        }
      });
    }
    return resolved.sort((a, b) => a.order - b.order);
  }

  private onNotification(gen: Generation, message: NotificationMessage): void {
    if (gen.endReason !== undefined || gen !== this.gen) return;
    // Held back: before the item handles are known, and while node-opcua works in a new
    // session (the server lost ours) that we have not verified yet; replayed if we keep it.
    const unverified = gen.session !== undefined && gen.session.sessionId.toString() !== gen.sessionId;
    if (gen.phase === 'building' || gen.phase === 'adopting' || unverified) {
      if (gen.early.push(message) > MAX_HELD_MESSAGES) gen.end(`more than ${MAX_HELD_MESSAGES} notifications held back`);
      return;
    }
    this.lastActivityMs = Date.now();
    const changes: SortableChange[] = [];
    for (const data of message.notificationData ?? []) {
      if (!data) continue;
      if (data.schema.name === 'DataChangeNotification') {
        for (const n of (data as DataChangeNotification).monitoredItems ?? []) {
          const r = gen.byHandle.get(n.clientHandle);
          if (r) changes.push(toChange(r.key, r.order, n.value, this.lastActivityMs));
        }
      } else if (data.schema.name === 'StatusChangeNotification') {
        const status = (data as StatusChangeNotification).status;
        if (status.isNotGood()) gen.end(`the server reported the subscription ${status.name}`);
      }
    }
    if (changes.length === 0) return;
    if (gen.phase === 'initial') {
      gen.initialBuffer.push(...changes);
      for (const c of changes) gen.awaitingInitial.delete(c.item);
      if (gen.awaitingInitial.size === 0) this.flushInitial(gen);
      return;
    }
    this.emitSafely('changes', sortChanges(changes));
  }

  private flushInitial(gen: Generation): void {
    if (gen.phase !== 'initial' || gen.endReason !== undefined) return;
    clearTimeout(gen.initialTimer);
    gen.initialTimer = undefined;
    gen.phase = 'live';
    if (gen.awaitingInitial.size > 0) {
      this.log?.warn({ items: [...gen.awaitingInitial] }, 'no initial value from some OPC UA items; going on without them');
    }
    this.lastFailure = undefined;
    this.setHealth('connected');
    const batch = sortChanges(gen.initialBuffer.splice(0));
    if (batch.length > 0) this.emitSafely('changes', batch);
  }

  private onConnectionLost(gen: Generation): void {
    if (gen.endReason !== undefined) return;
    if (gen.phase !== 'live') {
      gen.end('connection lost while subscribing');
      return;
    }
    gen.channelDown = true;
    this.setHealth('disconnected', 'connection lost; reopening the channel to reactivate the session');
    clearTimeout(gen.graceTimer);
    gen.graceTimer = setTimeout(
      () => gen.end(`the connection was not restored within ${this.o.channelReconnectGraceMs} ms`),
      this.o.channelReconnectGraceMs,
    );
  }

  private onConnectionReestablished(gen: Generation): void {
    if (gen.endReason !== undefined) return;
    clearTimeout(gen.graceTimer);
    gen.graceTimer = undefined;
    gen.channelDown = false;
    const sessionId = gen.session?.sessionId.toString();
    if (sessionId !== gen.sessionId) {
      void this.adopt(gen);
      return;
    }
    this.lastActivityMs = Date.now(); // the stall clock restarts with the channel
    this.setHealth('connected', 'session reactivated after a connection loss');
    this.log?.info({ generation: gen.number }, 'OPC UA session reactivated after a connection loss');
  }

  /**
   * The server no longer knew our session (it restarted), so node-opcua created a new one
   * and recreated the subscription and items in it. We keep them only after checking:
   * every item recreated with a good status, and every browse path still leading to the
   * same node. Anything else, and we build everything anew. The watchdog still guards
   * what we keep (node-opcua #1059: its repair does not always restore subscriptions).
   */
  private async adopt(gen: Generation): Promise<void> {
    gen.phase = 'adopting';
    this.setHealth('connecting', 'the server lost our session; verifying the one recreated on reconnection');
    try {
      const session = gen.session;
      const subscription = gen.subscription;
      if (!session || !subscription) throw new Error('no session or subscription to verify');
      const recreated = subscription.monitoredItems;
      for (const [handle, r] of gen.byHandle) {
        const item = recreated[handle];
        if (!item || !item.statusCode.isGood()) throw new Error(`item ${r.key} was not recreated (${item?.statusCode.name ?? 'missing'})`);
      }
      const failed: ResubscribedInfo['failedItems'] = [];
      const again = await this.resolveItems(gen, session, failed);
      for (const r of gen.byHandle.values()) {
        const now = again.find((a) => a.key === r.key);
        if (!now || now.nodeId.toString() !== r.nodeId.toString()) {
          throw new Error(`item ${r.key} now resolves to ${now ? now.nodeId.toString() : 'nothing'}, not ${r.nodeId.toString()}`);
        }
      }
      if (gen.endReason !== undefined) return;
      gen.sessionId = session.sessionId.toString();
      this.log?.info({ generation: gen.number }, 'kept the session and subscription recreated after the server lost ours');
      this.beginInitial(gen, { generation: gen.number, failedItems: [], deadbandRefused: gen.deadbandRefused, adopted: true });
    } catch (e) {
      gen.end(`the server lost our session and its replacement did not check out: ${describeError(e)}`);
    }
  }

  private checkStall(): void {
    const gen = this.gen;
    if (!gen || gen.phase !== 'live' || gen.channelDown || gen.endReason !== undefined) return;
    if (this.current.state !== 'connected') return;
    const silentMs = Date.now() - (this.lastActivityMs ?? 0);
    const limitMs = this.o.stallAfterKeepAlives * gen.keepAlivePeriodMs;
    if (silentMs > limitMs) {
      const detail = `no notification or keep-alive for ${silentMs} ms (limit ${limitMs} ms)`;
      this.setHealth('stalled', detail);
      this.log?.warn({ generation: gen.number, silentMs, limitMs }, 'OPC UA subscription stalled');
      gen.end(`stalled: ${detail}`);
    }
  }

  private async teardown(gen: Generation): Promise<void> {
    clearTimeout(gen.initialTimer);
    clearTimeout(gen.graceTimer);
    const closeTimeoutMs = Math.min(this.o.operationTimeoutMs, 3000);
    const client = gen.client;
    // Closing the session politely needs a working channel; a stalled or lost one would only make us wait.
    const channelUsable = !gen.channelDown && !(gen.endReason ?? '').startsWith('stalled');
    const session = gen.session;
    if (session && client && channelUsable) {
      await this.bounded(() => session.close(true), closeTimeoutMs);
    }
    if (client) {
      client.removeAllListeners();
      await this.bounded(() => client.disconnect(), closeTimeoutMs);
    }
    // A disconnect over a black-holed link never completes: drop its sockets ourselves,
    // so nothing of this generation outlives it.
    for (const transport of gen.transports) {
      try {
        if (transport.isValid()) transport.dispose();
      } catch {
        // already half torn down by node-opcua; nothing left to free
      }
    }
    gen.transports.clear();
    gen.subscription?.removeAllListeners();
    gen.session?.removeAllListeners();
  }

  /** Waits for a promise but never longer than `ms`; failures are ignored (this is cleanup). */
  /** Runs `work` for at most `ms`; its failure, thrown or rejected, is ignored (teardown goes on). */
  private async bounded(work: () => Promise<unknown>, ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.resolve().then(work).catch(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
      }),
    ]);
    clearTimeout(timer);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wakeSleep = () => {
        clearTimeout(this.sleepTimer);
        this.wakeSleep = undefined;
        resolve();
      };
      this.sleepTimer = setTimeout(() => this.wakeSleep?.(), ms);
    });
  }

  private setHealth(state: ClientHealthState, detail?: string, problem?: SecurityProblem): void {
    const changed = state !== this.current.state || detail !== this.current.detail || problem?.kind !== this.current.problem?.kind;
    this.current = { state, ...(detail === undefined ? {} : { detail }), ...(problem ? { problem } : {}) };
    if (changed) {
      this.log?.debug({ state, detail }, 'OPC UA client health changed');
      this.emitSafely('health', this.health());
    }
  }

  private emitSafely<K extends keyof SubscriptionClientEvents>(event: K, ...args: SubscriptionClientEvents[K]): void {
    try {
      // EventEmitter's generic emit cannot relate K to its arguments here, hence the cast.
      (this.emit as (e: K, ...a: SubscriptionClientEvents[K]) => boolean)(event, ...args);
    } catch (e) {
      this.log?.error({ err: describeError(e), event }, 'a listener of the OPC UA client threw');
    }
  }
}
