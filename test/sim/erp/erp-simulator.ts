/**
 * A simulated on-prem ERP logistics SOAP service, served by the real `soap` package from the
 * `erp.wsdl` fixture: for the SOAP source's tests and for the product demo.
 *
 * Semantics (what the SOAP source relies on, stated so tests can hold the simulator to them):
 * - The ERP keeps a change log: one entry per status change of a shipment or work order, a
 *   snapshot of the document at that change. `truth` is that log.
 * - `ChangedAt` never decreases along the log (each change is stamped max(now, last + 1 ms)
 *   unless a test forces a time with `at`, which may repeat the previous one).
 * - `Get*Changes(changedSince, pageToken?, pageSize)` answers the entries with
 *   ChangedAt >= changedSince (inclusive), in log order, `pageSize` at a time; `nextPageToken`
 *   is set while more remain. A token is tied to its `changedSince` and survives a restart.
 * - Faults are SOAP 1.1: `soap:Server` for what may pass (database busy), `soap:Client` for
 *   what will not (bad arguments, authentication), always with HTTP 500 as SOAP 1.1 says,
 *   except authentication failures (401).
 * - With `users`, every call must carry a WS-Security UsernameToken (PasswordText) of one of them.
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import soap from 'soap';

export const ERP_WSDL_FILE = new URL('./erp.wsdl', import.meta.url);
const WSDL_LOCATION = 'http://127.0.0.1:0/erp/logistics';
const SERVICE_PATH = '/erp/logistics';

export type ShipmentStatus = 'PACKED' | 'SHIPPED' | 'DELIVERED' | 'EXCEPTION';
export type WorkOrderStatus = 'RELEASED' | 'STARTED' | 'HELD' | 'COMPLETED';

export interface ShipmentLine {
  LineNo: number;
  Sku: string;
  Qty: number;
  Uom: string;
}

export interface Shipment {
  ShipmentNo: string;
  SalesOrder: string;
  Status: ShipmentStatus;
  Carrier?: string;
  TrackingNo?: string;
  Reason?: string;
  /** ISO 8601, UTC. */
  ChangedAt: string;
  Lines: ShipmentLine[];
}

export interface WorkOrder {
  WorkOrderNo: string;
  SalesOrder?: string;
  Product: string;
  WorkCenter: string;
  Status: WorkOrderStatus;
  PlannedQty: number;
  GoodQty: number;
  Uom: string;
  ChangedAt: string;
}

export type Change =
  | { kind: 'shipment'; key: string; status: ShipmentStatus; changedAt: string; snapshot: Shipment }
  | { kind: 'workOrder'; key: string; status: WorkOrderStatus; changedAt: string; snapshot: WorkOrder };

export interface ErpUser {
  username: string;
  password: string;
}

export interface ErpSimulatorOptions {
  /** Port to listen on; 0 (default) picks a free one. */
  port?: number;
  /** When given, every call must carry a WS-Security UsernameToken of one of these users. */
  users?: ErpUser[];
  /** Serve HTTPS with this certificate and key (PEM). */
  tls?: { cert: string | Buffer; key: string | Buffer };
}

export type FaultKind = 'transient' | 'permanent';

interface SoapFault {
  Fault: { faultcode: string; faultstring: string; statusCode: number };
}

export interface ErpSimulatorEvents {
  /** A call reached an operation (after authentication), before latency and faults. */
  call: [{ operation: string; args: Record<string, unknown> }];
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function fault(kind: FaultKind, message: string, statusCode = 500): SoapFault {
  return { Fault: { faultcode: kind === 'transient' ? 'soap:Server' : 'soap:Client', faultstring: message, statusCode } };
}

/** `Password` parses to a string, or to `{ attributes, $value }` when it carries a Type. */
function passwordOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && '$value' in value) return String((value as { $value: unknown }).$value);
  return undefined;
}

export class ErpSimulator extends EventEmitter<ErpSimulatorEvents> {
  /** Every change made, in log order. */
  readonly truth: Change[] = [];
  private readonly shipments = new Map<string, Shipment>();
  private readonly workOrders = new Map<string, WorkOrder>();
  private lastChangedMs = 0;
  private faults: { remaining: number; kind: FaultKind; message: string } | undefined;
  private malformed = 0;
  private latencyMs = 0;
  private server: http.Server | https.Server | undefined;
  private readonly sockets = new Set<import('node:net').Socket>();
  private autoTimer: NodeJS.Timeout | undefined;
  private autoOrder = 0;
  /** Calls answered per operation (including faults), for tests. */
  readonly calls: Record<string, number> = {};

  private constructor(private readonly options: ErpSimulatorOptions, private boundPort: number) {
    super();
  }

  static async start(options: ErpSimulatorOptions = {}): Promise<ErpSimulator> {
    const sim = new ErpSimulator(options, options.port ?? 0);
    await sim.listen();
    return sim;
  }

  get port(): number {
    return this.boundPort;
  }

  /** Base URL of the service endpoint. */
  get endpoint(): string {
    return `${this.options.tls ? 'https' : 'http'}://127.0.0.1:${this.boundPort}${SERVICE_PATH}`;
  }

  /** The WSDL URL (what a client is configured with). */
  get url(): string {
    return `${this.endpoint}?wsdl`;
  }

  /** Stops listening and drops open connections (in-flight calls fail as on a crash). Data is kept. */
  async stop(): Promise<void> {
    this.stopAutomatic();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    await closed;
  }

  /** Stops and starts again on the same port with the same data (an ERP service restart). */
  async restart(): Promise<void> {
    await this.stop();
    await this.listen();
  }

  // ---- data --------------------------------------------------------------------------------

  /** Creates a shipment (status PACKED unless given) and logs the change. */
  addShipment(input: {
    shipmentNo: string;
    salesOrder: string;
    status?: ShipmentStatus;
    carrier?: string;
    trackingNo?: string;
    lines?: ShipmentLine[];
    at?: number;
  }): Shipment {
    if (this.shipments.has(input.shipmentNo)) throw new Error(`shipment ${input.shipmentNo} exists`);
    const shipment: Shipment = {
      ShipmentNo: input.shipmentNo,
      SalesOrder: input.salesOrder,
      Status: input.status ?? 'PACKED',
      ...(input.carrier ? { Carrier: input.carrier } : {}),
      ...(input.trackingNo ? { TrackingNo: input.trackingNo } : {}),
      ChangedAt: this.stamp(input.at),
      Lines: input.lines ?? [{ LineNo: 1, Sku: 'SKU-100', Qty: 1, Uom: 'EA' }],
    };
    this.shipments.set(shipment.ShipmentNo, shipment);
    this.log({ kind: 'shipment', key: shipment.ShipmentNo, status: shipment.Status, changedAt: shipment.ChangedAt, snapshot: structuredClone(shipment) });
    return shipment;
  }

  /** Moves a shipment to a status and logs the change. */
  advance(
    shipmentNo: string,
    status: ShipmentStatus,
    extra: { carrier?: string; trackingNo?: string; reason?: string; at?: number } = {},
  ): Shipment {
    const current = this.shipments.get(shipmentNo);
    if (!current) throw new Error(`no shipment ${shipmentNo}`);
    const next: Shipment = {
      ...current,
      Status: status,
      ...(extra.carrier ? { Carrier: extra.carrier } : {}),
      ...(extra.trackingNo ? { TrackingNo: extra.trackingNo } : {}),
      ChangedAt: this.stamp(extra.at),
    };
    if (extra.reason) next.Reason = extra.reason;
    else delete next.Reason;
    this.shipments.set(shipmentNo, next);
    this.log({ kind: 'shipment', key: shipmentNo, status, changedAt: next.ChangedAt, snapshot: structuredClone(next) });
    return next;
  }

  /** Creates or updates a work order and logs the change. */
  setWorkOrder(input: Omit<WorkOrder, 'ChangedAt'> & { at?: number }): WorkOrder {
    // Schema order, so the XML follows the WSDL's xsd:sequence.
    const order: WorkOrder = {
      WorkOrderNo: input.WorkOrderNo,
      ...(input.SalesOrder ? { SalesOrder: input.SalesOrder } : {}),
      Product: input.Product,
      WorkCenter: input.WorkCenter,
      Status: input.Status,
      PlannedQty: input.PlannedQty,
      GoodQty: input.GoodQty,
      Uom: input.Uom,
      ChangedAt: this.stamp(input.at),
    };
    this.workOrders.set(order.WorkOrderNo, order);
    this.log({ kind: 'workOrder', key: order.WorkOrderNo, status: order.Status, changedAt: order.ChangedAt, snapshot: structuredClone(order) });
    return order;
  }

  shipment(shipmentNo: string): Shipment | undefined {
    return this.shipments.get(shipmentNo);
  }

  // ---- behaviour ---------------------------------------------------------------------------

  /** The next `n` calls answer a SOAP Fault: soap:Server (transient) or soap:Client (permanent). */
  failNext(n: number, options: { fault: FaultKind; message?: string }): void {
    const message = options.message ?? (options.fault === 'transient' ? 'Database busy' : 'Invalid changedSince');
    this.faults = n > 0 ? { remaining: n, kind: options.fault, message } : undefined;
  }

  /** The next `n` calls answer a well-formed SOAP response whose body has an unexpected shape (a renamed list element). */
  malformNext(n: number): void {
    this.malformed = Math.max(0, n);
  }

  /** Every call waits this long before answering. */
  setLatency(ms: number): void {
    this.latencyMs = Math.max(0, ms);
  }

  /**
   * Demo mode: every `everyMs`, packs a shipment for the next sales order (SO-L1-0001, ...)
   * and moves earlier shipments on, PACKED -> SHIPPED -> DELIVERED. Returns a stop function.
   */
  runAutomatically(options: { everyMs: number; carrier?: string }): () => void {
    this.stopAutomatic();
    const carrier = options.carrier ?? 'DHL';
    const tick = () => {
      for (const s of [...this.shipments.values()]) {
        if (s.Status === 'SHIPPED') this.advance(s.ShipmentNo, 'DELIVERED');
        else if (s.Status === 'PACKED') this.advance(s.ShipmentNo, 'SHIPPED', { carrier, trackingNo: `1Z${s.ShipmentNo.replace(/\D/g, '').padStart(10, '0')}` });
      }
      this.autoOrder++;
      const n = String(this.autoOrder).padStart(4, '0');
      this.addShipment({
        shipmentNo: `SH-${n}`,
        salesOrder: `SO-L1-${n}`,
        lines: [
          { LineNo: 1, Sku: 'WIDGET-A', Qty: 10 * this.autoOrder, Uom: 'EA' },
          { LineNo: 2, Sku: 'BRACKET-B', Qty: 4, Uom: 'EA' },
        ],
      });
    };
    tick();
    this.autoTimer = setInterval(tick, options.everyMs);
    return () => this.stopAutomatic();
  }

  stopAutomatic(): void {
    clearInterval(this.autoTimer);
    this.autoTimer = undefined;
  }

  // ---- internals ---------------------------------------------------------------------------

  private stamp(at: number | undefined): string {
    const ms = at ?? Math.max(Date.now(), this.lastChangedMs + 1);
    this.lastChangedMs = Math.max(this.lastChangedMs, ms);
    return new Date(ms).toISOString();
  }

  private log(change: Change): void {
    this.truth.push(change);
  }

  private async listen(): Promise<void> {
    const tls = this.options.tls;
    const server = tls ? https.createServer({ cert: tls.cert, key: tls.key }) : http.createServer();
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.boundPort, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.boundPort = (server.address() as AddressInfo).port;
    const xml = readFileSync(ERP_WSDL_FILE, 'utf8').replace(WSDL_LOCATION, this.endpoint);
    const handler = (operation: 'GetShipmentChanges' | 'GetOrderStatusChanges') =>
      (args: Record<string, unknown>, _callback: unknown, headers: unknown) => this.answer(operation, args, headers);
    soap.listen(server, {
      path: SERVICE_PATH,
      xml,
      services: { LogisticsService: { LogisticsPort: { GetShipmentChanges: handler('GetShipmentChanges'), GetOrderStatusChanges: handler('GetOrderStatusChanges') } } },
      suppressStack: true,
    });
    this.server = server;
  }

  private authenticate(headers: unknown): void {
    const users = this.options.users;
    if (!users || users.length === 0) return;
    const token = (headers as { Security?: { UsernameToken?: { Username?: unknown; Password?: unknown } } } | undefined)?.Security?.UsernameToken;
    if (!token) throw fault('permanent', 'Authentication required: WS-Security UsernameToken missing', 401);
    const username = typeof token.Username === 'string' ? token.Username : undefined;
    const password = passwordOf(token.Password);
    if (!users.some((u) => u.username === username && u.password === password)) {
      throw fault('permanent', 'Authentication failed: invalid username or password', 401);
    }
  }

  /** Throws a SOAP Fault object (what the `soap` server turns into a Fault response) or answers. */
  private async answer(operation: 'GetShipmentChanges' | 'GetOrderStatusChanges', args: Record<string, unknown>, headers: unknown): Promise<unknown> {
    this.calls[operation] = (this.calls[operation] ?? 0) + 1;
    this.authenticate(headers);
    this.emit('call', { operation, args });
    if (this.latencyMs > 0) await sleep(this.latencyMs);
    if (this.faults && this.faults.remaining > 0) {
      const { kind, message } = this.faults;
      if (--this.faults.remaining === 0) this.faults = undefined;
      throw fault(kind, message);
    }
    const kind = operation === 'GetShipmentChanges' ? 'shipment' : 'workOrder';
    const page = this.page(kind, args);
    const serverTime = new Date().toISOString();
    if (this.malformed > 0) {
      this.malformed--;
      // An upgrade renamed the list element: still valid XML and SOAP, but not what the WSDL says.
      return { changeList: { Entry: page.items }, serverTime };
    }
    const items = operation === 'GetShipmentChanges' ? { shipments: { Shipment: page.items.map(toWireShipment) } } : { workOrders: { WorkOrder: page.items } };
    return { ...items, ...(page.next ? { nextPageToken: page.next } : {}), serverTime };
  }

  private page(kind: Change['kind'], args: Record<string, unknown>): { items: Array<Shipment | WorkOrder>; next: string | undefined } {
    // The `soap` server parses an xsd:dateTime argument into a Date, when it can.
    const raw = args.changedSince;
    const sinceText = raw instanceof Date ? raw.toISOString() : typeof raw === 'string' ? raw : '';
    const since = raw instanceof Date ? raw.getTime() : Date.parse(sinceText);
    if (Number.isNaN(since)) throw fault('permanent', `Invalid changedSince: "${sinceText}"`);
    const pageSize = Number(args.pageSize);
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 1000) throw fault('permanent', `Invalid pageSize: ${String(args.pageSize)} (1..1000)`);
    let offset = 0;
    if (typeof args.pageToken === 'string' && args.pageToken !== '') {
      const decoded = decodeToken(args.pageToken);
      if (!decoded || decoded.since !== since) throw fault('permanent', 'Invalid pageToken');
      offset = decoded.offset;
    }
    const matching = this.truth.filter((c) => c.kind === kind && Date.parse(c.changedAt) >= since);
    const items = matching.slice(offset, offset + pageSize).map((c) => c.snapshot);
    const end = offset + items.length;
    return { items, next: end < matching.length ? encodeToken({ since, offset: end }) : undefined };
  }
}

/** The wire form: elements in schema order, lines nested as `<Lines><Line>...</Line></Lines>`. */
function toWireShipment(item: Shipment | WorkOrder): unknown {
  const s = item as Shipment;
  return {
    ShipmentNo: s.ShipmentNo,
    SalesOrder: s.SalesOrder,
    Status: s.Status,
    ...(s.Carrier ? { Carrier: s.Carrier } : {}),
    ...(s.TrackingNo ? { TrackingNo: s.TrackingNo } : {}),
    ...(s.Reason ? { Reason: s.Reason } : {}),
    ChangedAt: s.ChangedAt,
    Lines: { Line: s.Lines },
  };
}

function encodeToken(token: { since: number; offset: number }): string {
  return Buffer.from(JSON.stringify(token)).toString('base64url');
}

function decodeToken(text: string): { since: number; offset: number } | undefined {
  try {
    const value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as { since?: unknown; offset?: unknown };
    if (typeof value.since === 'number' && typeof value.offset === 'number' && Number.isInteger(value.offset) && value.offset >= 0) {
      return { since: value.since, offset: value.offset };
    }
  } catch {
    // not a token of ours
  }
  return undefined;
}
