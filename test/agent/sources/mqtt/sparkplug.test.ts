/** Sparkplug B decoding: the record the mapping sees, golden-style, and what is refused. */
import { describe, expect, it } from 'vitest';
import { decodeSparkplug, encodeSparkplug, parseSparkplugTopic } from '../../../../agent/sources/mqtt/index.js';

const T0 = Date.UTC(2026, 0, 5, 8, 0, 0);

function decode(topic: string, payload: Uint8Array, aliases?: Record<string, string>) {
  return decodeSparkplug(topic, parseSparkplugTopic(topic)!, payload, aliases);
}

describe('Sparkplug B record', () => {
  it('gives an NBIRTH as a record of named metrics plus the alias map it defines', () => {
    const birth = encodeSparkplug({
      timestamp: T0,
      seq: 0,
      metrics: [
        { name: 'bdSeq', type: 'UInt64', value: 3 },
        { name: 'WorkOrder', alias: 1, type: 'String', value: 'WO-7' },
        { name: 'GoodCount', alias: 2, type: 'Int64', value: 12, timestamp: T0 - 5 },
        { name: 'Running', alias: 3, type: 'Boolean', value: true },
        { name: 'Speed', alias: 4, type: 'Double', value: 1.5 },
        { name: 'Big', alias: 5, type: 'UInt64', value: '18446744073709551615' },
      ],
    });
    expect(decode('spBv1.0/Plant1/NBIRTH/Edge1', birth)).toEqual({
      record: {
        topic: 'spBv1.0/Plant1/NBIRTH/Edge1',
        group: 'Plant1',
        node: 'Edge1',
        messageType: 'NBIRTH',
        seq: 0,
        timestamp: T0,
        metrics: { bdSeq: 3, WorkOrder: 'WO-7', GoodCount: 12, Running: true, Speed: 1.5, Big: '18446744073709551615' },
        metricTimestamps: { GoodCount: T0 - 5 },
        historical: false,
      },
      aliases: { '1': 'WorkOrder', '2': 'GoodCount', '3': 'Running', '4': 'Speed', '5': 'Big' },
    });
  });

  it('names DDATA metrics sent by alias, flags historical data, and keeps the device level', () => {
    const data = encodeSparkplug({
      timestamp: T0 + 1000,
      seq: 255,
      metrics: [
        { alias: 1, type: 'String', value: 'WO-8', isHistorical: true },
        { alias: 2, type: 'Int64', value: 40 },
      ],
    });
    expect(decode('spBv1.0/Plant1/DDATA/Edge1/Filler', data, { '1': 'WorkOrder', '2': 'GoodCount' })).toEqual({
      record: {
        topic: 'spBv1.0/Plant1/DDATA/Edge1/Filler',
        group: 'Plant1',
        node: 'Edge1',
        device: 'Filler',
        messageType: 'DDATA',
        seq: 255,
        timestamp: T0 + 1000,
        metrics: { WorkOrder: 'WO-8', GoodCount: 40 },
        metricTimestamps: {},
        historical: true,
      },
    });
  });

  it('adds a DBIRTH\'s aliases to the node\'s map, while an NBIRTH starts it over', () => {
    const dbirth = encodeSparkplug({ timestamp: T0, seq: 1, metrics: [{ name: 'Temp', alias: 9, type: 'Float', value: 20 }] });
    expect(decode('spBv1.0/G/DBIRTH/N/D', dbirth, { '1': 'WorkOrder' }).aliases).toEqual({ '1': 'WorkOrder', '9': 'Temp' });
    const nbirth = encodeSparkplug({ timestamp: T0, seq: 0, metrics: [{ name: 'State', alias: 2, type: 'String', value: 'x' }] });
    expect(decode('spBv1.0/G/NBIRTH/N', nbirth, { '1': 'WorkOrder' }).aliases).toEqual({ '2': 'State' });
  });

  it('refuses unknown aliases, non-protobuf payloads and topics outside the namespace shape; ignores STATE', () => {
    const data = encodeSparkplug({ timestamp: T0, seq: 1, metrics: [{ alias: 7, type: 'Int32', value: 1 }] });
    expect(() => decode('spBv1.0/G/NDATA/N', data)).toThrow('metric alias 7 cannot be resolved: no BIRTH seen for node G/N');
    expect(() => decode('spBv1.0/G/NDATA/N', data, { '1': 'A' })).toThrow('metric alias 7 is not in the BIRTH of node G/N');
    expect(() => decode('spBv1.0/G/NDATA/N', Buffer.from('{"not":"protobuf"}'))).toThrow(/^payload is not a Sparkplug B protobuf/);
    expect(parseSparkplugTopic('spBv1.0/STATE/host-app')).toBeUndefined();
    expect(() => parseSparkplugTopic('spBv1.0/G/NDATA/N/extra')).toThrow('has no device level');
    expect(() => parseSparkplugTopic('spBv1.0/G/DDATA/N')).toThrow('needs a device level');
    expect(() => parseSparkplugTopic('spBv1.0/G/HELLO/N')).toThrow('unknown message type HELLO');
    expect(() => parseSparkplugTopic('plant/G/NDATA/N')).toThrow('not in the spBv1.0 namespace');
  });
});
