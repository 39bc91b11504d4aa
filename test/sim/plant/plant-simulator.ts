/**
 * A simulated plant: a real node-opcua server whose lines run work orders through
 * Released -> Running -> (Held -> Running) -> GoodCount 1..N -> Completed, one state
 * change per line per step, and record every milestone they make as ground truth.
 *
 * Invariants the tests rely on:
 * - Every value written carries a source timestamp from one simulator clock that
 *   strictly increases (>= previous + 1 ms), also across stopServer/restartServer,
 *   so a client can order changes of different variables.
 * - A truth entry is recorded in the same synchronous step as the write that makes it.
 * - restartServer() rebuilds the address space with the current values AND their
 *   source timestamps: the plant did not change while its server was down. Every
 *   variable is historized (OPC UA Historical Access) into arrays this object keeps, so
 *   the history survives restarts and a client can read what it missed. Progression
 *   resumes at once after a restart; `holdUntilObserved` makes it wait for a client to
 *   monitor the plant again (at the latest RESUME_UNOBSERVED_MS), for tests without
 *   history, where a change made before any client subscribed again is invisible.
 * - The server never throttles or coalesces: exception-based sampling
 *   (minSupportedSampleRate 0, node MinimumSamplingInterval 0) and a high
 *   notifications-per-publish cap (node-opcua defaults: 100 ms and 1,000; FIELD-NOTES).
 * - Work-order ids are unique per run and line (`WO-L1-0001`).
 * - Every monitored item a client creates on a plant variable is recorded in
 *   `monitoredItems` with its data-change filter, so tests can see what the server applies.
 *   With `untypedCounters` the counters are declared BaseDataType (as gateways that publish
 *   untyped tags do), and node-opcua then refuses a deadband on them (BadFilterNotAllowed).
 * - Security is None and anonymous unless asked for (`securityModes`, `users`,
 *   `allowAnonymous`). A secure-only server still offers a restricted None endpoint for
 *   GetEndpoints (node-opcua's discovery endpoint: no session possible on it), as real
 *   servers do, so clients can learn its certificate. Its certificate lives in `pkiDir`
 *   (own folder per test, so trust lists never leak between tests) and survives restarts.
 */
import { EventEmitter } from 'node:events';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  DataChangeFilter,
  DataType,
  DeadbandType,
  MessageSecurityMode,
  nodesets,
  OPCUACertificateManager,
  OPCUAServer,
  SecurityPolicy,
  StatusCodes,
  Subscription,
  Variant,
  type DataValue,
  type UAObject,
  type UAVariable,
} from 'node-opcua';
import type { MilestoneKind } from '../../../protocols/events/production-milestone.v1.js';
import { routeNodeOpcuaLogs } from '../../../protocols/opcua/node-opcua-logs.js';
import { MemoryHistorian } from './historian.js';

export interface GroundTruthMilestone {
  line: string;
  workOrder: string;
  milestone: MilestoneKind;
  goodQuantity: number;
  sourceTimestampMs: number;
}

export interface PlantSimulatorOptions {
  /** 0 (default) = ephemeral; restartServer() reuses the port it got. */
  port?: number;
  /** Default ['L1']. */
  lines?: string[];
  /** Default Infinity (runs until stopped). */
  workOrdersPerLine?: number;
  /** Default 5: good count goes 1..N, one increment per step. */
  quantityPerOrder?: number;
  /** Default 200: one state change per line per step. */
  stepMs?: number;
  /** Every Nth work order is held once mid-run and then resumed (default 3, 0 = never). */
  holdEvery?: number;
  /** Default 'WO-'. */
  orderPrefix?: string;
  /**
   * Keep every variable's history (OPC UA Historical Access), across server restarts, as
   * an MES historian does (default true). Clients can then read what changed while they
   * were away.
   */
  historize?: boolean;
  /** Security modes of the session endpoints. Default ['None']. */
  securityModes?: SimSecurityMode[];
  /** Policies of the Sign / SignAndEncrypt endpoints. Default all three node-opcua supports that OPC UA does not deprecate. */
  securityPolicies?: SimSecurityPolicy[];
  /** Default true. */
  allowAnonymous?: boolean;
  /** User names and passwords the server accepts. Default none. */
  users?: Array<{ name: string; password: string }>;
  /** Root of the server's certificate stores (`server/`, `user/` under it). Default a folder shared by all simulators in os.tmpdir(). */
  pkiDir?: string;
  /** Trust every client certificate the server has not seen (default true, as today); false files them under its rejected folder and refuses the channel. */
  acceptUnknownClientCertificates?: boolean;
  /** Declare GoodCount and ScrapCount as BaseDataType instead of UInt32 (values stay UInt32): the server refuses deadband filters on them. Default false. */
  untypedCounters?: boolean;
}

/** A monitored item a client created on a plant variable, as the server accepted it. */
export interface SimMonitoredItem {
  /** `${line}.${variable}`, e.g. `L1.goodCount`. */
  variable: string;
  /** The absolute deadband the server applies to it, if any. */
  absoluteDeadband?: number;
}

export type SimSecurityMode = 'None' | 'Sign' | 'SignAndEncrypt';
export type SimSecurityPolicy = 'Basic256Sha256' | 'Aes128_Sha256_RsaOaep' | 'Aes256_Sha256_RsaPss';

export type PlantVariable = 'workOrder' | 'salesOrder' | 'product' | 'plannedQuantity' | 'state' | 'goodCount' | 'scrapCount';
export type PlantState = 'Idle' | 'Released' | 'Running' | 'Held' | 'Completed';

const VARIABLES: ReadonlyArray<{ key: PlantVariable; browseName: string; dataType: DataType }> = [
  { key: 'workOrder', browseName: 'WorkOrder', dataType: DataType.String },
  { key: 'salesOrder', browseName: 'SalesOrder', dataType: DataType.String },
  { key: 'product', browseName: 'Product', dataType: DataType.String },
  { key: 'plannedQuantity', browseName: 'PlannedQuantity', dataType: DataType.Double },
  { key: 'state', browseName: 'State', dataType: DataType.String },
  { key: 'goodCount', browseName: 'GoodCount', dataType: DataType.UInt32 },
  { key: 'scrapCount', browseName: 'ScrapCount', dataType: DataType.UInt32 },
];

const RESOURCE_PATH = '/UA/PlantSim';
/** After a restart, progression resumes at the latest this long after the server is up, observed or not. */
const RESUME_UNOBSERVED_MS = 10_000;
/** Shared by every simulator in every process: node-opcua guards certificate creation with a file lock. */
const PKI_ROOT = path.join(os.tmpdir(), 'plantlink-sim-pki');

interface Stamped {
  value: string | number;
  ts: number;
}

/** One step of a line: the writes it makes and the milestone they stand for. */
type Step = { writes: Array<[PlantVariable, string | number]>; milestone: MilestoneKind };

interface LineRun {
  line: string;
  values: Record<PlantVariable, Stamped>;
  orders: number; // work orders started so far
  pending: Step[]; // rest of the current work order
  done: boolean;
}

export class PlantSimulator extends EventEmitter<{ milestone: [GroundTruthMilestone] }> {
  readonly truth: GroundTruthMilestone[] = [];
  /** Every monitored item created on a plant variable, in creation order, across restarts. */
  readonly monitoredItems: SimMonitoredItem[] = [];
  private readonly options: Required<PlantSimulatorOptions>;
  /** The server's certificate store, kept for trusting client certificates at run time. */
  private serverCertificates: OPCUACertificateManager | undefined;
  private readonly runs = new Map<string, LineRun>();
  private readonly variables = new Map<string, UAVariable>(); // `${line}.${key}`
  /** Per variable, its whole history; outlives server restarts (each new server reads the same arrays). */
  private readonly histories = new Map<string, DataValue[]>();
  private server: OPCUAServer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private clockMs = 0;
  private boundPort: number;
  private finishedWaiters: Array<() => void> = [];
  private stopped = false;
  /** Set after a restart until a client monitors a plant variable again. */
  private holdTimer: NodeJS.Timeout | undefined;

  private constructor(options: PlantSimulatorOptions) {
    super();
    this.options = {
      port: options.port ?? 0,
      lines: options.lines ?? ['L1'],
      workOrdersPerLine: options.workOrdersPerLine ?? Number.POSITIVE_INFINITY,
      quantityPerOrder: options.quantityPerOrder ?? 5,
      stepMs: options.stepMs ?? 200,
      holdEvery: options.holdEvery ?? 3,
      orderPrefix: options.orderPrefix ?? 'WO-',
      historize: options.historize ?? true,
      securityModes: options.securityModes ?? ['None'],
      securityPolicies: options.securityPolicies ?? ['Basic256Sha256', 'Aes128_Sha256_RsaOaep', 'Aes256_Sha256_RsaPss'],
      allowAnonymous: options.allowAnonymous ?? true,
      users: options.users ?? [],
      pkiDir: options.pkiDir ?? PKI_ROOT,
      acceptUnknownClientCertificates: options.acceptUnknownClientCertificates ?? true,
      untypedCounters: options.untypedCounters ?? false,
    };
    if (this.options.securityModes.length === 0) throw new Error('securityModes must not be empty');
    if (this.options.quantityPerOrder < 1) throw new Error('quantityPerOrder must be >= 1');
    this.boundPort = this.options.port;
    for (const line of this.options.lines) {
      const ts = this.tick();
      this.runs.set(line, {
        line,
        orders: 0,
        pending: [],
        done: this.options.workOrdersPerLine <= 0,
        values: {
          workOrder: { value: '', ts },
          salesOrder: { value: '', ts },
          product: { value: '', ts },
          plannedQuantity: { value: 0, ts },
          state: { value: 'Idle', ts },
          goodCount: { value: 0, ts },
          scrapCount: { value: 0, ts },
        },
      });
    }
  }

  static async start(options: PlantSimulatorOptions = {}): Promise<PlantSimulator> {
    routeNodeOpcuaLogs();
    const sim = new PlantSimulator(options);
    await sim.startServer();
    sim.resume();
    return sim;
  }

  get port(): number {
    return this.boundPort;
  }

  get endpointUrl(): string {
    return `opc.tcp://127.0.0.1:${this.boundPort}${RESOURCE_PATH}`;
  }

  /** The server's own certificate (PEM), e.g. to trust it in a client ahead of time. */
  get certificateFile(): string {
    return path.join(this.options.pkiDir, 'server', 'own', 'certs', 'certificate.pem');
  }

  /** The server's folder of client certificates it refused. */
  get rejectedClientCertificatesFolder(): string {
    return path.join(this.options.pkiDir, 'server', 'rejected');
  }

  /** Trusts every client certificate the server refused so far (as its administrator would). Returns how many. */
  async trustRejectedClientCertificates(): Promise<number> {
    const manager = this.serverCertificates;
    if (!manager) throw new Error('simulator server is not running');
    const folder = this.rejectedClientCertificatesFolder;
    const files = existsSync(folder) ? readdirSync(folder).filter((f) => f.endsWith('.pem')) : [];
    for (const f of files) {
      const pem = readFileSync(path.join(folder, f), 'utf8');
      const der = Buffer.from(pem.replace(/-----(BEGIN|END) CERTIFICATE-----|\s+/g, ''), 'base64');
      await manager.trustCertificate(der); // updates the manager's index too (its file watchers are off)
    }
    return files.length;
  }

  nodeIdsFor(line: string): Record<PlantVariable, string> {
    if (!this.runs.has(line)) throw new Error(`unknown line "${line}"`);
    const ids = {} as Record<PlantVariable, string>;
    for (const v of VARIABLES) ids[v.key] = `ns=1;s=${line}.${v.browseName}`;
    return ids;
  }

  /** Browse path of a variable, e.g. `/Objects/1:Plant/1:L1/1:State`. */
  browsePathFor(line: string, variable: PlantVariable): string {
    const v = VARIABLES.find((x) => x.key === variable);
    if (!v || !this.runs.has(line)) throw new Error(`unknown line or variable "${line}.${variable}"`);
    return `/Objects/1:Plant/1:${line}/1:${v.browseName}`;
  }

  /** Current value of a variable (what a client reading it now gets). */
  current(line: string, variable: PlantVariable): string | number {
    const run = this.runs.get(line);
    if (!run) throw new Error(`unknown line "${line}"`);
    return run.values[variable].value;
  }

  pause(): void {
    this.endHold();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  resume(): void {
    this.endHold();
    if (this.timer || this.stopped || this.isFinished()) return;
    this.timer = setInterval(() => this.step(), this.options.stepMs);
  }

  /** Advances every line by one step now (for tests that drive the plant by hand). */
  step(): void {
    for (const run of this.runs.values()) this.stepLine(run);
    if (this.isFinished()) {
      this.pause();
      for (const w of this.finishedWaiters.splice(0)) w();
    }
  }

  async stopServer(): Promise<void> {
    this.pause();
    const server = this.server;
    this.server = undefined;
    this.serverCertificates = undefined;
    this.variables.clear();
    if (server) await server.shutdown(0);
  }

  /**
   * New server, same port, same values and history. The plant runs on at once, as a real
   * one does; with `holdUntilObserved` it waits until a client monitors it again (see top),
   * for tests of a server without history.
   */
  async restartServer(options: { holdUntilObserved?: boolean } = {}): Promise<void> {
    if (this.stopped) throw new Error('simulator is stopped');
    if (this.server) await this.stopServer();
    await this.startServer();
    if (options.holdUntilObserved) this.holdTimer = setTimeout(() => this.resume(), RESUME_UNOBSERVED_MS);
    else this.resume();
  }

  private endHold(): void {
    clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
  }

  /** A client created a monitored item on one of our variables. */
  private observed(): void {
    if (this.holdTimer) this.resume();
  }

  finished(): Promise<void> {
    if (this.isFinished()) return Promise.resolve();
    return new Promise((resolve) => this.finishedWaiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.pause();
    await this.stopServer();
  }

  private isFinished(): boolean {
    return [...this.runs.values()].every((r) => r.done);
  }

  /** Strictly increasing simulator clock: never goes back, even if the wall clock does. */
  private tick(): number {
    this.clockMs = Math.max(Date.now(), this.clockMs + 1);
    return this.clockMs;
  }

  private stepLine(run: LineRun): void {
    if (run.done) return;
    if (run.pending.length === 0) {
      if (run.orders >= this.options.workOrdersPerLine) {
        run.done = true;
        return;
      }
      run.orders += 1;
      run.pending = this.planOrder(run.line, run.orders);
    }
    const step = run.pending.shift()!;
    for (const [variable, value] of step.writes) this.write(run, variable, value);
    const milestone: GroundTruthMilestone = {
      line: run.line,
      workOrder: String(run.values.workOrder.value),
      milestone: step.milestone,
      goodQuantity: Number(run.values.goodCount.value),
      sourceTimestampMs: run.values[step.writes[step.writes.length - 1]![0]].ts,
    };
    this.truth.push(milestone);
    this.emit('milestone', milestone);
    if (run.pending.length === 0 && run.orders >= this.options.workOrdersPerLine) run.done = true;
  }

  private planOrder(line: string, n: number): Step[] {
    const seq = String(n).padStart(4, '0');
    const quantity = this.options.quantityPerOrder;
    const steps: Step[] = [
      {
        writes: [
          ['workOrder', `${this.options.orderPrefix}${line}-${seq}`],
          ['salesOrder', `SO-${line}-${seq}`],
          ['product', `P-${(n % 3) + 1}`],
          ['plannedQuantity', quantity],
          ['goodCount', 0],
          ['scrapCount', 0],
          ['state', 'Released'],
        ],
        milestone: 'released',
      },
      { writes: [['state', 'Running']], milestone: 'started' },
    ];
    const holdAfter = this.options.holdEvery > 0 && n % this.options.holdEvery === 0 ? Math.max(1, Math.floor(quantity / 2)) : -1;
    for (let good = 1; good <= quantity; good++) {
      steps.push({ writes: [['goodCount', good]], milestone: 'quantity-reported' });
      if (good === holdAfter) {
        steps.push({ writes: [['state', 'Held']], milestone: 'held' });
        steps.push({ writes: [['state', 'Running']], milestone: 'resumed' });
      }
    }
    steps.push({ writes: [['state', 'Completed']], milestone: 'completed' });
    return steps;
  }

  private write(run: LineRun, variable: PlantVariable, value: string | number): void {
    const ts = this.tick();
    run.values[variable] = { value, ts };
    const node = this.variables.get(`${run.line}.${variable}`);
    if (node) node.setValueFromSource(this.variant(variable, value), StatusCodes.Good, new Date(ts));
  }

  private variant(variable: PlantVariable, value: string | number): Variant {
    const dataType = VARIABLES.find((v) => v.key === variable)!.dataType;
    return new Variant({ dataType, value });
  }

  private async startServer(): Promise<void> {
    // node-opcua caps notifications per publish at this static limit (1,000 by default).
    Subscription.maxNotificationPerPublishHighLimit = Math.max(Subscription.maxNotificationPerPublishHighLimit, 100_000);
    const o = this.options;
    const secureOnly = !o.securityModes.includes('None');
    const users = o.users;
    const serverCertificates = new OPCUACertificateManager({
      rootFolder: path.join(o.pkiDir, 'server'),
      automaticallyAcceptUnknownCertificate: o.acceptUnknownClientCertificates,
      disableFileWatchers: true,
    });
    this.serverCertificates = serverCertificates;
    const server = new OPCUAServer({
      port: this.boundPort,
      host: '127.0.0.1',
      hostname: '127.0.0.1',
      resourcePath: RESOURCE_PATH,
      nodeset_filename: [nodesets.standard],
      securityModes: o.securityModes.map((m) => MessageSecurityMode[m]),
      securityPolicies: [
        ...(o.securityModes.includes('None') ? [SecurityPolicy.None] : []),
        ...(o.securityModes.some((m) => m !== 'None') ? o.securityPolicies.map((p) => SecurityPolicy[p]) : []),
      ],
      allowAnonymous: o.allowAnonymous,
      // a secure-only server keeps node-opcua's restricted None endpoint (GetEndpoints only)
      disableDiscovery: !secureOnly,
      userManager: {
        isValidUser: (userName: string, password: string) => users.some((u) => u.name === userName && u.password === password),
      },
      serverCertificateManager: serverCertificates,
      userCertificateManager: new OPCUACertificateManager({
        rootFolder: path.join(o.pkiDir, 'user'),
        automaticallyAcceptUnknownCertificate: true,
        disableFileWatchers: true,
      }),
      serverCapabilities: {
        minSupportedSampleRate: 0,
        maxSessions: 200,
        maxSubscriptions: 1000,
        maxSubscriptionsPerSession: 50,
        maxMonitoredItemsQueueSize: 100_000,
        operationLimits: {
          maxNodesPerRead: 100_000,
          maxNodesPerBrowse: 100_000,
          maxNodesPerTranslateBrowsePathsToNodeIds: 100_000,
          maxMonitoredItemsPerCall: 100_000,
        },
      },
      buildInfo: { productName: 'plantlink plant simulator', buildNumber: '1', buildDate: new Date(0) },
      onCreateMonitoredItem: async (_subscription, monitoredItem) => {
        const nodeId = monitoredItem.node?.nodeId.toString() ?? '';
        const variable = [...this.variables].find(([, node]) => node.nodeId.toString() === nodeId)?.[0];
        if (variable) {
          const filter = monitoredItem.filter;
          const deadband = filter instanceof DataChangeFilter && filter.deadbandType === DeadbandType.Absolute ? filter.deadbandValue : undefined;
          this.monitoredItems.push({ variable, ...(deadband === undefined ? {} : { absoluteDeadband: deadband }) });
          this.observed();
        }
        return StatusCodes.Good;
      },
    });
    await server.initialize();
    this.buildAddressSpace(server);
    await server.start();
    this.server = server;
    const port = server.endpoints[0]?.port;
    if (typeof port !== 'number') throw new Error('simulator server did not report its port');
    this.boundPort = port;
  }

  private buildAddressSpace(server: OPCUAServer): void {
    const addressSpace = server.engine.addressSpace;
    if (!addressSpace) throw new Error('simulator server has no address space');
    const namespace = addressSpace.getOwnNamespace();
    const plant: UAObject = namespace.addObject({
      organizedBy: addressSpace.rootFolder.objects,
      browseName: 'Plant',
      nodeId: 's=Plant',
    });
    for (const run of this.runs.values()) {
      const lineObject = namespace.addObject({ componentOf: plant, browseName: run.line, nodeId: `s=${run.line}` });
      for (const v of VARIABLES) {
        const untyped = this.options.untypedCounters && (v.key === 'goodCount' || v.key === 'scrapCount');
        const node = namespace.addVariable({
          componentOf: lineObject,
          browseName: v.browseName,
          nodeId: `s=${run.line}.${v.browseName}`,
          dataType: untyped ? DataType.Variant : v.dataType, // Variant = BaseDataType (i=24)
          minimumSamplingInterval: 0, // exception-based: every change is reported
        });
        const stamped = run.values[v.key];
        node.setValueFromSource(this.variant(v.key, stamped.value), StatusCodes.Good, new Date(stamped.ts));
        if (this.options.historize) {
          const key = `${run.line}.${v.key}`;
          let history = this.histories.get(key);
          if (!history) this.histories.set(key, (history = []));
          // node-opcua pushes every later setValueFromSource into the historian by itself.
          addressSpace.installHistoricalDataNode(node, { historian: new MemoryHistorian(history) });
        }
        this.variables.set(`${run.line}.${v.key}`, node);
      }
    }
  }
}
