import { describe, expect, it } from 'vitest';
import { compileMapping, MappingError, RecordMapping } from '../../../agent/mapping/record-mapping.js';
import { parseConfigText, ConfigError } from '../../../protocols/config-file.js';
import { z } from 'zod';

const src = { plant: 'plant-a', sourceName: 'erp-files' };

describe('record mapping', () => {
  const shipment = compileMapping(
    RecordMapping.parse({
      event: 'shipment',
      key: 'ShipmentNo',
      occurredAt: 'ChangedAt',
      fields: {
        salesOrder: 'SalesOrder',
        status: '$lowercase(Status)',
        carrier: 'Carrier',
        lines: "[Lines.{ 'lineNumber': $number(No), 'product': Sku, 'quantity': { 'value': $number(Qty), 'unit': 'EA' } }]",
      },
    }),
  );

  it('maps a record to a valid shipment draft with a deterministic fact', async () => {
    const record = { ShipmentNo: ' SH-1 ', ChangedAt: '2026-11-23T08:00:00Z', SalesOrder: 'SO-9', Status: 'SHIPPED', Carrier: 'DHL', Lines: [{ No: '1', Sku: 'PUMP-7', Qty: '5' }] };
    const draft = await shipment.toDraft(record, src);
    expect(draft).toMatchObject({
      type: 'com.plantlink.shipment.v1',
      subject: 'shipment/SH-1',
      fact: { plant: 'plant-a', source: 'erp-files', key: 'SH-1', what: 'shipped', occurredAtMs: Date.parse('2026-11-23T08:00:00Z') },
      data: { shipment: 'SH-1', status: 'shipped', lines: [{ lineNumber: 1, product: 'PUMP-7', quantity: { value: 5, unit: 'EA' } }] },
    });
    expect(await shipment.toDraft(record, src)).toEqual(draft);
  });

  it('refuses a record with the field at fault and why', async () => {
    await expect(shipment.toDraft({ ShipmentNo: '', ChangedAt: '2026-11-23T08:00:00Z' }, src)).rejects.toThrow(/key: is empty/);
    await expect(shipment.toDraft({ ShipmentNo: 'SH-1', ChangedAt: 'yesterday' }, src)).rejects.toThrow(/occurredAt/);
    const bad = shipment.toDraft({ ShipmentNo: 'SH-1', ChangedAt: '2026-11-23T08:00:00Z', Status: 'LOST', Lines: [] }, src);
    await expect(bad).rejects.toBeInstanceOf(MappingError);
    await expect(bad).rejects.toThrow(/status/);
  });

  it('names the field whose expression fails at run time, when several JSONata fields are evaluated together', async () => {
    const milestone = compileMapping(
      RecordMapping.parse({
        event: 'milestone',
        key: 'WorkOrder',
        occurredAt: 'At',
        fields: {
          milestone: "$lookup({ 'REL': 'released', 'QTY': 'quantity-reported' }, Step)",
          goodQuantity: "{ 'value': $number($replace(Good, ',', '.')), 'unit': 'EA' }",
          equipment: 'Line',
        },
      }),
    );
    const good = await milestone.toDraft({ WorkOrder: 'WO-1', At: '2026-11-23T08:00:00Z', Step: 'QTY', Good: '4,5', Line: 'L1' }, src);
    expect(good.data).toEqual({ workOrder: 'WO-1', occurredAt: '2026-11-23T08:00:00.000Z', milestone: 'quantity-reported', goodQuantity: { value: 4.5, unit: 'EA' }, equipment: 'L1' });
    // $number('four') throws inside JSONata: the error must point at goodQuantity, not at the mapping as a whole.
    const bad = milestone.toDraft({ WorkOrder: 'WO-1', At: '2026-11-23T08:00:00Z', Step: 'QTY', Good: 'four', Line: 'L1' }, src);
    await expect(bad).rejects.toBeInstanceOf(MappingError);
    await expect(bad).rejects.toThrow(/^fields\.goodQuantity: expression failed/);
  });

  it('reports an expression that does not compile as a config error at its line', () => {
    const Schema = z.object({ map: RecordMapping }).strict();
    const text = 'map:\n  event: milestone\n  key: WorkOrder\n  occurredAt: At\n  fields:\n    milestone: "$lowercase(State"\n';
    try {
      parseConfigText(text, Schema, 'agent.yaml');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as Error).message).toMatch(/agent\.yaml:6:\d+ map\.fields\.milestone: not a valid JSONata expression/);
    }
  });
});
