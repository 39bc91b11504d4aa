/**
 * `node --import tsx test/sim/erp/run-erp.ts [everyMs]`: the simulated ERP in demo mode, with a
 * SOAP source reading it and printing each shipment event it would commit. Ctrl-C stops.
 * The agent wiring uses `ErpSimulator.start()` + `runAutomatically()` the same way.
 */
import { SoapSource } from '../../../agent/sources/soap/soap-source.js';
import { MemorySourceContext } from '../../agent/sources/opcua/memory-source-context.js';
import { SHIPMENT_MAP } from '../../agent/sources/soap/soap-harness.js';
import { ErpSimulator } from './erp-simulator.js';

const everyMs = Number(process.argv[2] ?? 2000);
const sim = await ErpSimulator.start({ users: [{ username: 'plantlink', password: 'demo-only' }] });
sim.runAutomatically({ everyMs });
process.stdout.write(`ERP simulator: WSDL ${sim.url} (user plantlink / demo-only), a new shipment every ${everyMs} ms\n`);

const ctx = new MemorySourceContext('plant-demo');
const source = new SoapSource({
  kind: 'soap',
  name: 'erp-shipments',
  wsdlUrl: sim.url,
  operation: 'GetShipmentChanges',
  request: { pageSize: 100 },
  cursor: { requestField: 'changedSince', watermarkField: 'ChangedAt', pageTokenField: 'pageToken', nextPageTokenPath: 'nextPageToken' },
  itemsPath: 'shipments.Shipment',
  pollIntervalMs: 1000,
  auth: { username: 'plantlink', password: 'demo-only' },
  map: SHIPMENT_MAP,
});
let printed = 0;
source.on('poll', () => {
  for (const { id, draft } of ctx.events.slice(printed)) {
    const d = draft.data as { shipment: string; salesOrder?: string; status: string; carrier?: string };
    process.stdout.write(`  ${d.status.padEnd(9)} ${d.shipment}  ${d.salesOrder ?? ''}  ${d.carrier ?? ''}  (${id})\n`);
  }
  printed = ctx.events.length;
});
await source.start(ctx);
process.once('SIGINT', () => void source.stop().then(() => sim.stop()));
