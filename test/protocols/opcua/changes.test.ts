import { describe, expect, it } from 'vitest';
import { DataType, DataValue, LocalizedText, StatusCodes, Variant, VariantArrayType } from 'node-opcua';
import { sortChanges, toChange, variantToPlain } from '../../../protocols/opcua/changes.js';

describe('OPC UA value conversion', () => {
  it('turns variants into plain JSON-friendly values', () => {
    expect(variantToPlain(new Variant({ dataType: DataType.String, value: 'Running' }))).toBe('Running');
    expect(variantToPlain(new Variant({ dataType: DataType.UInt32, value: 7 }))).toBe(7);
    expect(variantToPlain(new Variant({ dataType: DataType.Int64, arrayType: VariantArrayType.Scalar, value: [1, 2] }))).toBe(2 ** 32 + 2);
    expect(variantToPlain(new Variant({ dataType: DataType.DateTime, value: new Date(0) }))).toBe('1970-01-01T00:00:00.000Z');
    expect(variantToPlain(new Variant({ dataType: DataType.LocalizedText, value: new LocalizedText({ text: 'Held' }) }))).toBe('Held');
    expect(variantToPlain(null)).toBeNull();
  });

  it('stamps a change with the source timestamp, falling back to server then receive time', () => {
    const value = new Variant({ dataType: DataType.Double, value: 1.5 });
    const both = toChange('a', 0, new DataValue({ value, sourceTimestamp: new Date(1000), serverTimestamp: new Date(2000) }), 3000);
    expect(both).toMatchObject({ item: 'a', value: 1.5, sourceTimestampMs: 1000, statusGood: true, status: 'Good' });
    expect(toChange('a', 0, new DataValue({ value, serverTimestamp: new Date(2000) }), 3000).sourceTimestampMs).toBe(2000);
    expect(toChange('a', 0, new DataValue({ value }), 3000).sourceTimestampMs).toBe(3000);
    const bad = toChange('a', 0, new DataValue({ value, statusCode: StatusCodes.BadCommunicationError, sourceTimestamp: new Date(1) }), 3000);
    expect(bad).toMatchObject({ statusGood: false, status: 'BadCommunicationError' });
    const uncertain = toChange('a', 0, new DataValue({ value, statusCode: StatusCodes.UncertainLastUsableValue }), 3000);
    expect(uncertain.statusGood).toBe(false);
  });

  it('sorts by source timestamp, then server timestamp, then item order, keeping arrival order otherwise', () => {
    const c = (item: string, order: number, source: number, server: number) =>
      ({ item, order, value: item, sourceTimestampMs: source, serverTimestampMs: server, statusGood: true, status: 'Good' });
    const sorted = sortChanges([c('d', 0, 5, 1), c('c', 2, 3, 9), c('b', 1, 3, 9), c('a', 3, 3, 1), c('e', 0, 5, 1)]);
    expect(sorted.map((x) => x.item)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(Object.keys(sorted[0]!).sort()).toEqual(['item', 'sourceTimestampMs', 'status', 'statusGood', 'value']);
  });
});
