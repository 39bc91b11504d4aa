/** The simulated ERP honours the contract its module comment states, seen through a plain `soap` client. */
import { afterEach, describe, expect, it } from 'vitest';
import soap from 'soap';
import { ErpSimulator } from './erp-simulator.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Page = { shipments: { Shipment?: Array<{ ShipmentNo: string; Status: string }> } | null; nextPageToken?: string; serverTime: unknown };

async function client(sim: ErpSimulator) {
  const c = await soap.createClientAsync(sim.url, { disableCache: true });
  return async (args: Record<string, unknown>): Promise<Page> => ((await c.GetShipmentChangesAsync(args)) as [Page])[0];
}

describe('ErpSimulator', () => {
  it('pages a change log, changedSince inclusive, tokens tied to their query, and survives a restart', async () => {
    const sim = await ErpSimulator.start();
    cleanups.push(() => sim.stop());
    for (let i = 1; i <= 3; i++) sim.addShipment({ shipmentNo: `SH-${i}`, salesOrder: `SO-${i}` });
    sim.advance('SH-1', 'SHIPPED');
    const call = await client(sim);

    const first = await call({ changedSince: '1970-01-01T00:00:00Z', pageSize: 3 });
    expect(first.shipments?.Shipment?.map((s) => `${s.ShipmentNo}:${s.Status}`)).toEqual(['SH-1:PACKED', 'SH-2:PACKED', 'SH-3:PACKED']);
    expect(first.nextPageToken).toBeTruthy();
    const port = sim.port;
    await sim.restart();
    expect(sim.port).toBe(port);
    // A kept-alive connection from before the restart may be reset once, as with a real ERP restart.
    const next = { changedSince: '1970-01-01T00:00:00Z', pageSize: 3, pageToken: first.nextPageToken };
    const second = await call(next).catch(() => call(next));
    expect(second.shipments?.Shipment?.map((s) => `${s.ShipmentNo}:${s.Status}`)).toEqual(['SH-1:SHIPPED']);
    expect(second.nextPageToken).toBeUndefined();

    const boundary = sim.truth[3]!.changedAt;
    const fromBoundary = await call({ changedSince: boundary, pageSize: 10 });
    expect(fromBoundary.shipments?.Shipment).toHaveLength(1);
    const after = await call({ changedSince: new Date(Date.parse(boundary) + 1).toISOString(), pageSize: 10 });
    expect(after.shipments).toBeNull(); // an empty <shipments/>
    await expect(call({ changedSince: '2026-01-01T00:00:00Z', pageSize: 3, pageToken: first.nextPageToken })).rejects.toThrow(/soap:Client: Invalid pageToken/);
  });

  it('answers the injected faults, then normally', async () => {
    const sim = await ErpSimulator.start();
    cleanups.push(() => sim.stop());
    const call = await client(sim);
    sim.failNext(1, { fault: 'transient' });
    await expect(call({ changedSince: '1970-01-01T00:00:00Z', pageSize: 3 })).rejects.toThrow('soap:Server: Database busy');
    sim.failNext(1, { fault: 'permanent', message: 'Invalid changedSince' });
    await expect(call({ changedSince: '1970-01-01T00:00:00Z', pageSize: 3 })).rejects.toThrow('soap:Client: Invalid changedSince');
    await expect(call({ changedSince: '1970-01-01T00:00:00Z', pageSize: 3 })).resolves.toMatchObject({ shipments: null });
  });
});
