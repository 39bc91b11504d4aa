/**
 * readHistorySince against a real node-opcua server whose variables are historized by
 * MemoryHistorian, over real sockets: what is replayed, in what order, how continuation
 * points are followed and released, and that history outlives a server restart.
 */
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  AccessLevelFlag,
  AttributeIds,
  DataType,
  DataValue,
  HistoryReadRequest,
  MessageSecurityMode,
  OPCUACertificateManager,
  OPCUAClient,
  OPCUAServer,
  ReadRawModifiedDetails,
  SecurityPolicy,
  StatusCodes,
  TimestampsToReturn,
  Variant,
  nodesets,
  type ClientSession,
  type HistoryReadResponse,
  type UAVariable,
} from 'node-opcua';
import { readHistorySince, type HistoryItem } from '../../../protocols/opcua/history.js';
import { routeNodeOpcuaLogs } from '../../../protocols/opcua/node-opcua-logs.js';
import { tempDir } from '../../helpers/temp.js';
import { MemoryHistorian } from '../../sim/plant/historian.js';

const T0 = Date.UTC(2024, 0, 1);
const ITEMS: HistoryItem[] = [
  { item: 'A', nodeId: 'ns=1;s=A' },
  { item: 'B', nodeId: 'ns=1;s=B' },
];

let pki: ReturnType<typeof tempDir>;
beforeAll(() => {
  routeNodeOpcuaLogs(); // node-opcua's console output goes nowhere
  pki = tempDir('plantlink-history-pki-');
});
afterAll(() => pki.cleanup());

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Stores {
  A: DataValue[];
  B: DataValue[];
}

interface TestServer {
  port: number;
  nodes: { A: UAVariable; B: UAVariable; Plain: UAVariable };
  stop(): Promise<void>;
}

/** A server with A (Double) and B (String) historized over `stores`, and Plain (not historized). */
async function startServer(stores: Stores, port = 0): Promise<TestServer> {
  const server = new OPCUAServer({
    port,
    host: '127.0.0.1',
    hostname: '127.0.0.1',
    resourcePath: '/UA/HistoryTest',
    nodeset_filename: [nodesets.standard],
    securityModes: [MessageSecurityMode.None],
    securityPolicies: [SecurityPolicy.None],
    allowAnonymous: true,
    disableDiscovery: true,
    serverCertificateManager: new OPCUACertificateManager({
      rootFolder: path.join(pki.dir, 'server'),
      automaticallyAcceptUnknownCertificate: true,
      disableFileWatchers: true,
    }),
    userCertificateManager: new OPCUACertificateManager({
      rootFolder: path.join(pki.dir, 'user'),
      automaticallyAcceptUnknownCertificate: true,
      disableFileWatchers: true,
    }),
  });
  await server.initialize();
  const addressSpace = server.engine.addressSpace!;
  const namespace = addressSpace.getOwnNamespace();
  const folder = namespace.addObject({ organizedBy: addressSpace.rootFolder.objects, browseName: 'Hist', nodeId: 's=Hist' });
  const add = (name: string, dataType: DataType) =>
    namespace.addVariable({ componentOf: folder, browseName: name, nodeId: `s=${name}`, dataType, minimumSamplingInterval: 0 });
  const nodes = { A: add('A', DataType.Double), B: add('B', DataType.String), Plain: add('Plain', DataType.UInt32) };
  for (const name of ['A', 'B'] as const) {
    // Like a restarted plant server: the current value is the last one, with its timestamp.
    const last = stores[name].at(-1);
    if (last) nodes[name].setValueFromSource(last.value, last.statusCode, last.sourceTimestamp!);
    addressSpace.installHistoricalDataNode(nodes[name], { historian: new MemoryHistorian(stores[name]) });
  }
  nodes.Plain.setValueFromSource({ dataType: DataType.UInt32, value: 7 }, StatusCodes.Good, new Date(T0));
  await server.start();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await server.shutdown(0);
  };
  cleanups.push(stop);
  return { port: server.endpoints[0]!.port, nodes, stop };
}

async function connect(port: number): Promise<{ session: ClientSession; close: () => Promise<void> }> {
  const client = OPCUAClient.create({
    endpointMustExist: false,
    connectionStrategy: { maxRetry: 0 },
    clientCertificateManager: new OPCUACertificateManager({
      rootFolder: path.join(pki.dir, 'client'),
      automaticallyAcceptUnknownCertificate: true,
      disableFileWatchers: true,
    }),
  });
  await client.connect(`opc.tcp://127.0.0.1:${port}/UA/HistoryTest`);
  const session = await client.createSession();
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await session.close().catch(() => undefined);
    await client.disconnect();
  };
  cleanups.push(close);
  return { session, close };
}

function write(node: UAVariable, dataType: DataType, value: number | string, atMs: number): void {
  node.setValueFromSource(new Variant({ dataType, value }), StatusCodes.Good, new Date(atMs));
}

const brief = (changes: Array<{ item: string; value: unknown; sourceTimestampMs: number }>) =>
  changes.map((c) => `${c.item}:${String(c.value)}@${c.sourceTimestampMs - T0}`);

describe('readHistorySince', () => {
  it('returns exactly the values after each item\'s since (in ms), oldest first, merged across items with ties in item order', async () => {
    // Already in history: 1 at T0+1 ms and 1.5 half a millisecond later (same ms in JS).
    const stores: Stores = {
      A: [
        new DataValue({ value: { dataType: DataType.Double, value: 1 }, sourceTimestamp: new Date(T0 + 1), statusCode: StatusCodes.Good }),
        new DataValue({
          value: { dataType: DataType.Double, value: 1.5 },
          sourceTimestamp: new Date(T0 + 1),
          sourcePicoseconds: 500_000_000,
          statusCode: StatusCodes.Good,
        }),
      ],
      B: [],
    };
    const srv = await startServer(stores);
    write(srv.nodes.B, DataType.String, 'b2', T0 + 2);
    write(srv.nodes.A, DataType.Double, 3, T0 + 3);
    write(srv.nodes.B, DataType.String, 'b3', T0 + 3);
    write(srv.nodes.A, DataType.Double, 5, T0 + 5);
    write(srv.nodes.B, DataType.String, 'b6', T0 + 6);
    write(srv.nodes.A, DataType.Double, 7, T0 + 7);
    const { session } = await connect(srv.port);

    // since = T0+1: both values of that millisecond count as committed, 1.5 included.
    const since = new Map([['A', T0 + 1], ['B', T0 + 1]]);
    const all = await readHistorySince(session, [...ITEMS, { item: 'Plain', nodeId: 'ns=1;s=Plain' }], since);
    expect(brief(all.changes)).toEqual(['B:b2@2', 'A:3@3', 'B:b3@3', 'A:5@5', 'B:b6@6', 'A:7@7']);
    expect(all.changes[0]).toEqual({ item: 'B', value: 'b2', sourceTimestampMs: T0 + 2, statusGood: true, status: 'Good' });
    expect(all.unsupported).toEqual([]); // Plain has no since: skipped, not asked
    expect(all.truncated).toEqual([]);

    const fromStart = await readHistorySince(session, ITEMS, new Map([['A', T0], ['B', T0 + 3]]));
    expect(brief(fromStart.changes)).toEqual(['A:1@1', 'A:1.5@1', 'A:3@3', 'A:5@5', 'B:b6@6', 'A:7@7']);

    const upTo = await readHistorySince(session, ITEMS, since, { until: new Date(T0 + 3) });
    expect(brief(upTo.changes)).toEqual(['B:b2@2', 'A:3@3', 'B:b3@3']);

    const nothingNew = await readHistorySince(session, ITEMS, new Map([['A', T0 + 7], ['B', T0 + 6]]));
    expect(nothingNew.changes).toEqual([]);
  });

  it('follows continuation points until every item is read, one node per request when asked to', async () => {
    const srv = await startServer({ A: [], B: [] });
    for (let i = 0; i < 30; i++) write(srv.nodes.A, DataType.Double, i, T0 + 10 + i);
    for (let j = 0; j < 12; j++) write(srv.nodes.B, DataType.String, `b${j}`, T0 + 10 + 3 * j);
    const { session } = await connect(srv.port);
    const spy = vi.spyOn(session, 'historyRead');

    const { changes, truncated } = await readHistorySince(session, ITEMS, new Map([['A', T0], ['B', T0]]), { chunkSize: 4, nodesPerRequest: 1 });

    const expected = [
      ...Array.from({ length: 30 }, (_, i) => ({ item: 'A', value: i, sourceTimestampMs: T0 + 10 + i })),
      ...Array.from({ length: 12 }, (_, j) => ({ item: 'B', value: `b${j}`, sourceTimestampMs: T0 + 10 + 3 * j })),
    ].sort((x, y) => x.sourceTimestampMs - y.sourceTimestampMs || x.item.localeCompare(y.item));
    expect(brief(changes)).toEqual(brief(expected));
    expect(truncated).toEqual([]);
    const requests = spy.mock.calls.map(([request]) => request as HistoryReadRequest);
    // A: 4+4+...+2 in 8 answers, B: 4+4+4 in 3; every request holds one node
    expect(requests).toHaveLength(11);
    expect(requests.every((r) => r.nodesToRead?.length === 1 && !r.releaseContinuationPoints)).toBe(true);
    expect(requests.filter((r) => r.nodesToRead![0]!.continuationPoint?.length).length).toBe(7 + 2);
  });

  it('stops at maxValuesPerItem, releases the open continuation point, and cuts every item at one horizon so repeated calls replay everything once', async () => {
    const srv = await startServer({ A: [], B: [] });
    for (let i = 0; i < 30; i++) write(srv.nodes.A, DataType.Double, i, T0 + 100 + i);
    for (let j = 0; j < 8; j++) write(srv.nodes.B, DataType.String, `b${j}`, T0 + 100 + 3 * j); // 8: within the bound
    const { session } = await connect(srv.port);
    const spy = vi.spyOn(session, 'historyRead');

    const since = new Map([['A', T0], ['B', T0]]);
    const first = await readHistorySince(session, ITEMS, since, { chunkSize: 4, maxValuesPerItem: 10 });
    // A read 12 (3 answers of 4), kept 10 (100..109); it may have more at 109, so all stop at 108.
    expect(first.truncated).toEqual(['A']);
    expect(brief(first.changes)).toEqual([
      'A:0@100', 'B:b0@100', 'A:1@101', 'A:2@102', 'A:3@103', 'B:b1@103', 'A:4@104', 'A:5@105', 'A:6@106', 'B:b2@106', 'A:7@107', 'A:8@108',
    ]);

    // The point A still held was released: the server no longer knows it.
    const requests = spy.mock.calls.map(([request]) => request as HistoryReadRequest);
    const release = requests.find((r) => r.releaseContinuationPoints);
    expect(release?.nodesToRead?.map((n) => n.nodeId.toString())).toEqual(['ns=1;s=A']);
    const released = release!.nodesToRead![0]!.continuationPoint!;
    const again = await session.historyRead(
      new HistoryReadRequest({
        historyReadDetails: new ReadRawModifiedDetails({ startTime: new Date(T0), endTime: new Date(), numValuesPerNode: 4 }),
        timestampsToReturn: TimestampsToReturn.Both,
        nodesToRead: [{ nodeId: 'ns=1;s=A', continuationPoint: released }],
      }),
    );
    expect(again.results?.[0]?.statusCode.name).toBe('BadContinuationPointInvalid');

    // Commit what came back and call again until nothing is truncated: every value exactly once.
    const replayed = [...first.changes];
    let result = first;
    for (let round = 0; result.truncated.length > 0 && round < 10; round++) {
      for (const c of result.changes) since.set(c.item, c.sourceTimestampMs);
      result = await readHistorySince(session, ITEMS, since, { chunkSize: 4, maxValuesPerItem: 10 });
      replayed.push(...result.changes);
    }
    expect(result.truncated).toEqual([]);
    const expected = [
      ...Array.from({ length: 30 }, (_, i) => ({ item: 'A', value: i, sourceTimestampMs: T0 + 100 + i })),
      ...Array.from({ length: 8 }, (_, j) => ({ item: 'B', value: `b${j}`, sourceTimestampMs: T0 + 100 + 3 * j })),
    ].sort((x, y) => x.sourceTimestampMs - y.sourceTimestampMs || x.item.localeCompare(y.item));
    expect(brief(replayed)).toEqual(brief(expected));
  });

  it('lists a variable without history in unsupported and still returns the others', async () => {
    const srv = await startServer({ A: [], B: [] });
    write(srv.nodes.A, DataType.Double, 1, T0 + 1);
    const { session } = await connect(srv.port);

    const result = await readHistorySince(session, [{ item: 'Plain', nodeId: 'ns=1;s=Plain' }, ...ITEMS], new Map([['Plain', T0 - 1], ['A', T0 - 1], ['B', T0 - 1]]));
    expect(result.unsupported).toEqual(['Plain']);
    expect(brief(result.changes)).toEqual(['A:1@1']);

    // Anything else is not "no history": we cannot tell what was lost, so it throws.
    await expect(readHistorySince(session, [{ item: 'Nope', nodeId: 'ns=1;s=Nope' }], new Map([['Nope', T0]]))).rejects.toThrow(
      /Nope.*BadNodeIdUnknown/,
    );
  });

  it('releases the continuation points it holds when a later HistoryRead fails', async () => {
    const srv = await startServer({ A: [], B: [] });
    for (let i = 0; i < 10; i++) write(srv.nodes.A, DataType.Double, i, T0 + 1 + i);
    const { session } = await connect(srv.port);
    const original = session.historyRead.bind(session) as (r: HistoryReadRequest) => Promise<HistoryReadResponse>;
    let calls = 0;
    const spy = vi.spyOn(session, 'historyRead').mockImplementation(((request: HistoryReadRequest) =>
      ++calls === 2 ? Promise.reject(new Error('connection lost (test)')) : original(request)) as unknown as typeof session.historyRead);

    await expect(readHistorySince(session, ITEMS, new Map([['A', T0], ['B', T0]]), { chunkSize: 4 })).rejects.toThrow(
      /reading history.*connection lost \(test\)/,
    );
    const firstAnswer = (await spy.mock.results[0]!.value) as HistoryReadResponse;
    const held = firstAnswer.results![0]!.continuationPoint;
    expect(held?.length).toBeGreaterThan(0);
    const release = spy.mock.calls.map(([r]) => r as HistoryReadRequest).find((r) => r.releaseContinuationPoints);
    expect(release?.nodesToRead?.map((n) => n.continuationPoint)).toEqual([held]);
    spy.mockRestore();
    const again = await session.historyRead(
      new HistoryReadRequest({
        historyReadDetails: new ReadRawModifiedDetails({ startTime: new Date(T0), endTime: new Date(), numValuesPerNode: 4 }),
        timestampsToReturn: TimestampsToReturn.Both,
        nodesToRead: [{ nodeId: 'ns=1;s=A', continuationPoint: held }],
      }),
    );
    expect(again.results?.[0]?.statusCode.name).toBe('BadContinuationPointInvalid');
  });

  it('installHistoricalDataNode sets Historizing and AccessLevel HistoryRead, and every value, status or source-timestamp change lands in the historian', async () => {
    const stores: Stores = { A: [], B: [] };
    const srv = await startServer(stores);
    write(srv.nodes.A, DataType.Double, 1, T0 + 1);
    write(srv.nodes.A, DataType.Double, 1, T0 + 2); // same value, new source timestamp
    write(srv.nodes.A, DataType.Double, 1, T0 + 2); // no change at all: no value_changed, nothing stored
    expect(stores.A.map((v) => [v.value.value, v.sourceTimestamp!.getTime() - T0])).toEqual([[1, 1], [1, 2]]);

    const { session } = await connect(srv.port);
    const attrs = await session.read(
      ['ns=1;s=A', 'ns=1;s=Plain'].flatMap((nodeId) => [
        { nodeId, attributeId: AttributeIds.Historizing },
        { nodeId, attributeId: AttributeIds.AccessLevel },
      ]),
    );
    const [aHistorizing, aAccess, plainHistorizing, plainAccess] = attrs.map((d) => d.value.value as boolean | number);
    expect(aHistorizing).toBe(true);
    expect((aAccess as number) & AccessLevelFlag.HistoryRead).toBe(AccessLevelFlag.HistoryRead);
    expect(plainHistorizing).toBe(false);
    expect((plainAccess as number) & AccessLevelFlag.HistoryRead).toBe(0);
  });

  it('history survives a server restart when the new server installs MemoryHistorian over the same arrays', async () => {
    const stores: Stores = { A: [], B: [] };
    const first = await startServer(stores);
    write(first.nodes.A, DataType.Double, 1, T0 + 1);
    write(first.nodes.B, DataType.String, 'b2', T0 + 2);
    write(first.nodes.A, DataType.Double, 3, T0 + 3); // overwritten before anyone looks: history only
    write(first.nodes.A, DataType.Double, 4, T0 + 4);
    const before = await connect(first.port);
    const since = new Map([['A', T0], ['B', T0]]);
    const seenBefore = await readHistorySince(before.session, ITEMS, since);
    await before.close();
    await first.stop();

    const second = await startServer(stores, first.port);
    expect(second.port).toBe(first.port);
    expect(stores.A).toHaveLength(3); // the current value the new server set was not stored twice
    write(second.nodes.B, DataType.String, 'b5', T0 + 5);
    const after = await connect(second.port);
    const seenAfter = await readHistorySince(after.session, ITEMS, since);
    expect(brief(seenBefore.changes)).toEqual(['A:1@1', 'B:b2@2', 'A:3@3', 'A:4@4']);
    expect(brief(seenAfter.changes)).toEqual(['A:1@1', 'B:b2@2', 'A:3@3', 'A:4@4', 'B:b5@5']);
  });
});
