/**
 * The SOAP source against a real `soap` server built from the ERP WSDL fixture: records flow
 * to valid events, pages are followed, the cursor persisted with the events makes restarts
 * neither miss nor re-send, a full outbox holds the cursor, and bad records are quarantined.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SoapSource } from '../../../../agent/sources/soap/soap-source.js';
import { SHIPMENT_V1 } from '../../../../protocols/events/shipment.v1.js';
import { ProductionMilestoneV1, PRODUCTION_MILESTONE_V1 } from '../../../../protocols/events/production-milestone.v1.js';
import { ErpSimulator } from '../../../sim/erp/erp-simulator.js';
import { cursorOf, eventKeys, expectExactlyTheTruth, MemorySourceContext, nextPoll, recordPolls, shipmentConfig, truthKeys, WAIT } from './soap-harness.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function erp(): Promise<ErpSimulator> {
  const sim = await ErpSimulator.start();
  cleanups.push(() => sim.stop());
  return sim;
}

async function run(source: SoapSource, ctx: MemorySourceContext): Promise<SoapSource> {
  await source.start(ctx);
  cleanups.push(() => source.stop());
  return source;
}

describe('SoapSource', () => {
  it('turns ERP shipment changes into valid Shipment v1 drafts, one per status change', async () => {
    const sim = await erp();
    sim.addShipment({ shipmentNo: 'SH-1', salesOrder: 'SO-L1-0001', lines: [{ LineNo: 1, Sku: 'WIDGET-A', Qty: 10, Uom: 'EA' }, { LineNo: 2, Sku: 'BRACKET-B', Qty: 4, Uom: 'EA' }] });
    sim.advance('SH-1', 'SHIPPED', { carrier: 'DHL', trackingNo: '1Z999' });
    sim.addShipment({ shipmentNo: 'SH-2', salesOrder: 'SO-L1-0002' });
    sim.advance('SH-2', 'EXCEPTION', { reason: 'Damaged pallet' });
    const ctx = new MemorySourceContext();
    const source = await run(new SoapSource(shipmentConfig(sim)), ctx);

    await expectExactlyTheTruth(sim, ctx);
    const shipped = ctx.events.find((e) => (e.draft.data as { status: string }).status === 'shipped')!;
    expect(shipped.draft.type).toBe(SHIPMENT_V1);
    expect(shipped.draft.subject).toBe('shipment/SH-1');
    expect(shipped.draft.data).toEqual({
      shipment: 'SH-1',
      salesOrder: 'SO-L1-0001',
      status: 'shipped',
      carrier: 'DHL',
      trackingNumber: '1Z999',
      occurredAt: sim.truth[1]!.changedAt,
      lines: [
        { lineNumber: 1, product: 'WIDGET-A', quantity: { value: 10, unit: 'EA' } },
        { lineNumber: 2, product: 'BRACKET-B', quantity: { value: 4, unit: 'EA' } },
      ],
    });
    const exception = ctx.events.find((e) => (e.draft.data as { status: string }).status === 'exception')!;
    expect(exception.draft.data).toMatchObject({ shipment: 'SH-2', reason: 'Damaged pallet', lines: [{ lineNumber: 1 }] });
    await vi.waitFor(() => expect(source.health().state).toBe('connected'), WAIT);
  });

  it('follows page tokens until the last page and commits each page with its cursor', async () => {
    const sim = await erp();
    for (let i = 1; i <= 7; i++) sim.addShipment({ shipmentNo: `SH-${i}`, salesOrder: `SO-${i}` });
    const ctx = new MemorySourceContext();
    const source = new SoapSource(shipmentConfig(sim, { request: { pageSize: 2 } }));
    const first = nextPoll(source);
    await run(source, ctx);
    const report = await first;
    expect(report).toMatchObject({ outcome: 'ok', pages: 4, appended: 7 });
    expect(ctx.commits).toBe(4); // one transaction per page: events and cursor together
    await expectExactlyTheTruth(sim, ctx);
    expect(cursorOf(ctx)?.watermarkMs).toBe(Date.parse(sim.truth.at(-1)!.changedAt));
  });

  it('reads changes stamped with the boundary time again: a late one is not missed and none is re-sent', async () => {
    const sim = await erp();
    const t = Date.parse('2026-01-05T10:00:00.000Z');
    sim.addShipment({ shipmentNo: 'SH-1', salesOrder: 'SO-1', at: t });
    const ctx = new MemorySourceContext();
    const source = await run(new SoapSource(shipmentConfig(sim)), ctx);
    await vi.waitFor(() => expect(ctx.events).toHaveLength(1), WAIT);

    // Another change with exactly the same ChangedAt becomes visible only now.
    sim.addShipment({ shipmentNo: 'SH-2', salesOrder: 'SO-2', at: t });
    const report = await nextPoll(source, (r) => r.appended > 0);
    expect(report.skipped).toBe(1); // SH-1 was read again and recognised
    await expectExactlyTheTruth(sim, ctx);
    expect(ctx.duplicates).toBe(0); // not even offered to the outbox twice
  });

  it('resumes from the persisted cursor after a restart: nothing missed, nothing sent twice', async () => {
    const sim = await erp();
    for (let i = 1; i <= 3; i++) sim.addShipment({ shipmentNo: `SH-${i}`, salesOrder: `SO-${i}` });
    const ctx = new MemorySourceContext();
    const first = await run(new SoapSource(shipmentConfig(sim, { request: { pageSize: 2 } })), ctx);
    await expectExactlyTheTruth(sim, ctx);
    await first.stop();
    const watermark = cursorOf(ctx)!.watermarkMs;

    // While the agent is down the ERP moves on.
    sim.advance('SH-1', 'SHIPPED');
    sim.advance('SH-2', 'SHIPPED');
    sim.addShipment({ shipmentNo: 'SH-4', salesOrder: 'SO-4' });
    const calls: string[] = [];
    sim.on('call', ({ args }) => calls.push(args.changedSince instanceof Date ? args.changedSince.toISOString() : String(args.changedSince)));

    const second = new SoapSource(shipmentConfig(sim, { request: { pageSize: 2 } }));
    await run(second, ctx);
    await expectExactlyTheTruth(sim, ctx);
    expect(calls[0]).toBe(new Date(watermark).toISOString()); // asked from the committed watermark, not from the start
    expect(ctx.duplicates).toBe(0);
    expect(ctx.events).toHaveLength(6);
  });

  it('with overlapMs, picks up a change the ERP made visible late with an earlier time, without re-sending the rest', async () => {
    const sim = await erp();
    const t = Date.parse('2026-01-05T10:00:00.000Z');
    sim.addShipment({ shipmentNo: 'SH-1', salesOrder: 'SO-1', at: t });
    const ctx = new MemorySourceContext();
    const source = await run(new SoapSource(shipmentConfig(sim, { cursor: { ...shipmentConfig(sim).cursor, overlapMs: 1_000 } })), ctx);
    await vi.waitFor(() => expect(ctx.events).toHaveLength(1), WAIT);

    // A long ERP transaction commits a change stamped before the watermark.
    sim.addShipment({ shipmentNo: 'SH-0', salesOrder: 'SO-0', at: t - 400 });
    await nextPoll(source, (r) => r.appended > 0);
    await expectExactlyTheTruth(sim, ctx);
    expect(ctx.duplicates).toBe(0);
    expect(cursorOf(ctx)?.watermarkMs).toBe(t); // never moves backwards
  });

  it('can take the watermark from the response (serverTime) instead of the items', async () => {
    const sim = await erp();
    for (let i = 1; i <= 5; i++) sim.addShipment({ shipmentNo: `SH-${i}`, salesOrder: `SO-${i}` });
    const ctx = new MemorySourceContext();
    const config = shipmentConfig(sim, { request: { pageSize: 2 } });
    config.cursor = { ...config.cursor, watermarkFrom: 'response', watermarkField: 'serverTime' };
    const source = await run(new SoapSource(config), ctx);
    await expectExactlyTheTruth(sim, ctx);
    sim.advance('SH-5', 'SHIPPED');
    await expectExactlyTheTruth(sim, ctx);
    await source.stop();
    sim.advance('SH-4', 'SHIPPED');
    await run(new SoapSource(config), ctx);
    await expectExactlyTheTruth(sim, ctx);
    expect(ctx.duplicates).toBe(0);
  });

  it('holds the cursor while the outbox is paused and catches up after resume', async () => {
    const sim = await erp();
    sim.addShipment({ shipmentNo: 'SH-1', salesOrder: 'SO-1' });
    const ctx = new MemorySourceContext();
    const source = await run(new SoapSource(shipmentConfig(sim)), ctx);
    await vi.waitFor(() => expect(ctx.events).toHaveLength(1), WAIT);
    const before = JSON.stringify(cursorOf(ctx));

    ctx.pause('outbox full (test)');
    const paused = nextPoll(source, (r) => r.outcome === 'paused');
    sim.advance('SH-1', 'SHIPPED');
    sim.addShipment({ shipmentNo: 'SH-2', salesOrder: 'SO-2' });
    await paused;
    expect(source.health()).toMatchObject({ state: 'paused', detail: 'outbox full (test)' });
    expect(JSON.stringify(cursorOf(ctx))).toBe(before);
    expect(ctx.events).toHaveLength(1);
    // It waits for onResume instead of polling on: ten poll intervals later, no further call.
    // (A negative check: a slow machine can only make it pass, never fail spuriously.)
    const calls = sim.calls.GetShipmentChanges;
    await new Promise((r) => setTimeout(r, 200));
    expect(sim.calls.GetShipmentChanges).toBe(calls);

    ctx.resume();
    await expectExactlyTheTruth(sim, ctx);
    expect(source.health().state).toBe('connected');
  });

  it('quarantines a record that does not map, reports it in health, and carries on with its neighbours', async () => {
    const sim = await erp();
    sim.addShipment({ shipmentNo: 'SH-1', salesOrder: 'SO-1' });
    sim.addShipment({ shipmentNo: 'SH-BAD', salesOrder: 'SO-2', lines: [{ LineNo: 1, Sku: 'X', Qty: -5, Uom: 'EA' }] });
    sim.addShipment({ shipmentNo: 'SH-3', salesOrder: 'SO-3' });
    const ctx = new MemorySourceContext();
    const source = new SoapSource(shipmentConfig(sim));
    const reports = recordPolls(source);
    await run(source, ctx);
    await vi.waitFor(() => expect(ctx.events.map((e) => (e.draft.data as { shipment: string }).shipment)).toEqual(['SH-1', 'SH-3']), WAIT);
    await vi.waitFor(() => expect(reports.length).toBeGreaterThan(2), WAIT);

    const status = source.status();
    expect(status.quarantined).toBe(1); // counted once, although the boundary is read on every poll
    expect(status.recentQuarantine[0]).toMatchObject({ field: 'data' });
    expect(status.recentQuarantine[0]!.record).toContain('SH-BAD');
    expect(source.health().state).toBe('connected');
    expect(source.health().detail).toMatch(/1 record\(s\) quarantined; latest: data: /);
    // the bad record does not hold the watermark back
    expect(cursorOf(ctx)?.watermarkMs).toBe(Date.parse(sim.truth[2]!.changedAt));
  });

  it('maps work order status changes (GetOrderStatusChanges) to production milestones', async () => {
    const sim = await erp();
    const order = { WorkOrderNo: 'WO-1001', SalesOrder: 'SO-L1-0001', Product: 'WIDGET-A', WorkCenter: 'L1', PlannedQty: 40, GoodQty: 0, Uom: 'EA' };
    sim.setWorkOrder({ ...order, Status: 'RELEASED' });
    sim.setWorkOrder({ ...order, Status: 'STARTED' });
    sim.setWorkOrder({ ...order, Status: 'COMPLETED', GoodQty: 40 });
    const ctx = new MemorySourceContext();
    await run(
      new SoapSource(
        shipmentConfig(sim, {
          name: 'erp-work-orders',
          operation: 'GetOrderStatusChanges',
          itemsPath: 'workOrders.WorkOrder',
          map: {
            event: 'milestone',
            key: 'WorkOrderNo',
            occurredAt: 'ChangedAt',
            fields: {
              milestone: '$lowercase(Status)',
              salesOrder: 'SalesOrder',
              product: 'Product',
              equipment: 'WorkCenter',
              goodQuantity: "{ 'value': GoodQty, 'unit': Uom }",
              plannedQuantity: "{ 'value': PlannedQty, 'unit': Uom }",
            },
          },
        }),
      ),
      ctx,
    );
    await vi.waitFor(() => expect(ctx.events).toHaveLength(3), WAIT);
    const milestones = ctx.events.map((e) => ProductionMilestoneV1.parse(e.draft.data));
    expect(ctx.events.every((e) => e.draft.type === PRODUCTION_MILESTONE_V1)).toBe(true);
    expect(milestones.map((m) => m.milestone)).toEqual(['released', 'started', 'completed']);
    expect(milestones[2]).toMatchObject({ workOrder: 'WO-1001', equipment: 'L1', goodQuantity: { value: 40, unit: 'EA' } });
  });

  it('demo mode creates shipments for sales orders and moves them packed -> shipped -> delivered', async () => {
    const sim = await erp();
    const ctx = new MemorySourceContext();
    await run(new SoapSource(shipmentConfig(sim)), ctx);
    const stopAuto = sim.runAutomatically({ everyMs: 20 });
    await vi.waitFor(() => expect(sim.shipment('SH-0001')?.Status).toBe('DELIVERED'), WAIT);
    stopAuto();
    await expectExactlyTheTruth(sim, ctx);
    expect(eventKeys(ctx).filter((k) => k.startsWith('SH-0001|'))).toHaveLength(3);
    expect(truthKeys(sim).some((k) => k.startsWith('SH-0002|'))).toBe(true);
    expect(sim.shipment('SH-0001')?.SalesOrder).toBe('SO-L1-0001');
  });
});
