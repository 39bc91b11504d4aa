/**
 * Shared set-up for SOAP source tests: the simulated ERP (real `soap` server on port 0), a
 * SoapSource (real `soap` client) on an in-memory SourceContext, and helpers that wait on
 * what happened (poll reports, events) rather than on the clock.
 */
import { expect, vi } from 'vitest';
import type { SoapSourceConfigInput } from '../../../../agent/sources/soap/config.js';
import { SoapSource, type PollReport } from '../../../../agent/sources/soap/soap-source.js';
import { ShipmentV1 } from '../../../../protocols/events/shipment.v1.js';
import type { ErpSimulator } from '../../../sim/erp/erp-simulator.js';
import { MemorySourceContext } from '../opcua/memory-source-context.js';

export const WAIT = { timeout: 15_000, interval: 10 };

export { ERP_SHIPMENT_MAP as SHIPMENT_MAP } from '../../../sim/erp/shipment-map.js';
import { ERP_SHIPMENT_MAP as SHIPMENT_MAP } from '../../../sim/erp/shipment-map.js';

export function shipmentConfig(sim: ErpSimulator, overrides: Partial<SoapSourceConfigInput> = {}): SoapSourceConfigInput {
  return {
    kind: 'soap',
    name: 'erp-shipments',
    wsdlUrl: sim.url,
    operation: 'GetShipmentChanges',
    request: { pageSize: 50 },
    cursor: {
      requestField: 'changedSince',
      watermarkField: 'ChangedAt',
      pageTokenField: 'pageToken',
      nextPageTokenPath: 'nextPageToken',
    },
    itemsPath: 'shipments.Shipment',
    pollIntervalMs: 20,
    timeoutMs: 5_000,
    retry: { baseMs: 10, maxMs: 50 },
    map: SHIPMENT_MAP,
    ...overrides,
  };
}

/** Collects the source's poll reports. */
export function recordPolls(source: SoapSource): PollReport[] {
  const reports: PollReport[] = [];
  source.on('poll', (r) => reports.push(r));
  return reports;
}

/** Waits until a poll report satisfies `match` (counting only reports from now on). */
export function nextPoll(source: SoapSource, match: (r: PollReport) => boolean = () => true): Promise<PollReport> {
  return new Promise((resolve) => {
    const listener = (r: PollReport) => {
      if (!match(r)) return;
      source.off('poll', listener);
      resolve(r);
    };
    source.on('poll', listener);
  });
}

/** `shipmentNo|status|changedAt` of every shipment change the ERP made. */
export function truthKeys(sim: ErpSimulator): string[] {
  return sim.truth.filter((c) => c.kind === 'shipment').map((c) => `${c.key}|${c.status.toLowerCase()}|${c.changedAt}`).sort();
}

/** The same for the events the source committed; every one a valid Shipment v1. */
export function eventKeys(ctx: MemorySourceContext): string[] {
  return ctx.events
    .map((e) => {
      const data = ShipmentV1.parse(e.draft.data);
      return `${data.shipment}|${data.status}|${data.occurredAt}`;
    })
    .sort();
}

/** Waits until the committed events are exactly the ERP's shipment changes, then checks no id was sent twice. */
export async function expectExactlyTheTruth(sim: ErpSimulator, ctx: MemorySourceContext): Promise<void> {
  await vi.waitFor(() => expect(eventKeys(ctx)).toEqual(truthKeys(sim)), WAIT);
  const ids = ctx.events.map((e) => e.id);
  expect(new Set(ids).size).toBe(ids.length);
}

export function cursorOf(ctx: MemorySourceContext): { watermarkMs: number; recent: Array<[string, number]> } | undefined {
  return ctx.loadState('cursor');
}

export { MemorySourceContext };
