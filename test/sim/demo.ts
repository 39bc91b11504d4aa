/**
 * `npm start` / `plantlink demo`: the whole product on loopback.
 *
 *   simulated plant (node-opcua server, 2 lines running work orders)
 *     -> plantlink agent (child process: OPC UA source, SQLite outbox, WebSocket uplink)
 *     -> plantlink relay (child process: ingress, SQLite inbox, Salesforce sink)
 *     -> Salesforce-compatible CRM emulator (HTTP, OAuth, upsert by external id)
 *
 *   simulated plant ERP (SOAP service, WS-Security): shipments, polled by the agent
 *   simulated MES (CSV production reports dropped in a folder): a packing cell's work orders
 *
 *   -> NetSuite-compatible ERP emulator (M2M OAuth, upsert by external id): releases,
 *      completions and shipments, chosen by routing rules on event attributes
 *
 * Prints every production milestone as it lands in the CRM, and every ERP write. Agent and relay logs go to
 * files in the demo folder, and their configs are left there to read.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetSuiteEmulator } from '../emulators/netsuite/netsuite-emulator.js';
import { ErpSimulator } from './erp/erp-simulator.js';
import { MesFileExporter } from './mes/mes-file-exporter.js';
import { SalesforceEmulator, type UpsertEvent } from '../emulators/salesforce/salesforce-emulator.js';
import { PlantSimulator } from './plant/plant-simulator.js';
import { PlantlinkProcess } from './processes.js';
import { apiGet, apiPost } from '../../relay/api/client.js';
import type { ReconcileReport, RepairResult } from '../../relay/reconcile/reconcile.js';
import { formatRepair, formatReport } from '../../relay/reconcile/report-table.js';
import { freePort, writeStackConfigs } from './stack-configs.js';

const colour = process.stdout.isTTY ? (code: number, s: string) => `\u001b[${code}m${s}\u001b[0m` : (_c: number, s: string) => s;
const MILESTONE_COLOUR: Record<string, number> = { released: 36, started: 32, 'quantity-reported': 37, held: 33, resumed: 32, completed: 35 };

export async function runDemo(options: { workOrdersPerLine?: number; dir?: string } = {}): Promise<void> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'plantlink-demo-'));
  mkdirSync(dir, { recursive: true });
  const out = (s: string) => process.stdout.write(`${s}\n`);

  out(colour(1, 'plantlink demo: plant (OPC UA, SOAP ERP, MES files) -> agent -> relay -> CRM (Salesforce emulator) and ERP (NetSuite emulator), all on loopback'));
  const lines = ['L1', 'L2'];
  const plant = await PlantSimulator.start({ lines, stepMs: 1000, quantityPerOrder: 4, holdEvery: 3, ...(options.workOrdersPerLine ? { workOrdersPerLine: options.workOrdersPerLine } : {}) });
  plant.pause(); // the lines start once the agent is subscribed, so the demo shows every milestone
  const crm = await SalesforceEmulator.start();
  // The ERP authenticates the relay with a signed JWT (NetSuite M2M): a key pair for the demo.
  const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const privateKeyFile = join(dir, 'erp-m2m-key.pem');
  writeFileSync(privateKeyFile, keys.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const erp = await NetSuiteEmulator.start({ clients: [{ clientId: 'plantlink-demo', certificateId: 'demo-cert', publicKey: keys.publicKey }] });
  // The plant's own ERP, answering SOAP: shipments for the sales orders the lines work on.
  const plantErp = await ErpSimulator.start({ users: [{ username: 'plantlink', password: 'demo-password' }] });
  // The plant's MES, exporting a packing cell's production reports as CSV files.
  const mes = new MesFileExporter(join(dir, 'mes-drop'));
  const relayPort = await freePort();
  const agentMetricsPort = await freePort();
  const { relayFile, agentFile, operatorToken } = writeStackConfigs(dir, {
    opcuaEndpoint: plant.endpointUrl,
    nodeIds: (line) => plant.nodeIdsFor(line),
    lines,
    salesforceUrl: crm.url,
    relayPort,
    erp: { url: erp.url, clientId: 'plantlink-demo', certificateId: 'demo-cert', privateKeyFile },
    soapErp: { wsdlUrl: plantErp.url, username: 'plantlink', password: 'demo-password' },
    mesDropFolder: mes.folder,
    agentMetricsPort,
  });
  out(`  plant simulator  ${plant.endpointUrl}  (lines ${lines.join(', ')})`);
  out(`  plant ERP (SOAP) ${plantErp.url}  (shipments, WS-Security)`);
  out(`  MES file drop    ${mes.folder}  (CSV production reports of cell PACK1, Windows-1252)`);
  out(`  CRM emulator     ${crm.url}   (Salesforce REST: every milestone, and each work order's status)`);
  out(`  ERP emulator     ${erp.url}   (NetSuite REST: work orders released and completed, shipments)`);
  out(`  relay            ws://127.0.0.1:${relayPort}/v1/uplink   config ${relayFile}`);
  out(`  agent            config ${agentFile}`);
  out(colour(1, `  web console      http://127.0.0.1:${relayPort}/console/   log in as "demo" with token ${operatorToken}`));
  out(`  relay metrics    http://127.0.0.1:${relayPort}/metrics   (also /healthz, /readyz)`);
  out(`  agent metrics    http://127.0.0.1:${agentMetricsPort}/metrics`);
  out(`  logs             ${join(dir, 'relay.log')}, ${join(dir, 'agent.log')}`);
  out('');

  const relay = new PlantlinkProcess('relay', relayFile, join(dir, 'relay.log'));
  const agent = new PlantlinkProcess('agent', agentFile, join(dir, 'agent.log'));
  relay.start();
  await relay.waitForLog(/relay started/);
  const subscribed = agent.waitForLog(/"msg":"subscribed to the OPC UA server"/, 60_000);
  agent.start();
  await subscribed;
  plant.resume();
  const stopShipping = plantErp.runAutomatically({ everyMs: 4000 });
  const stopExporting = mes.runAutomatically({ everyMs: 3000, onError: (e) => out(`MES export skipped: ${e instanceof Error ? e.message : String(e)}`) });

  const landed = new Set<string>();
  const landedFromFiles = new Set<string>();
  crm.on('upsert', (e: UpsertEvent) => {
    if (e.record.object === 'Shipment__c' && e.changed) {
      const f = e.record.fields;
      out(
        `${colour(90, new Date().toISOString().slice(11, 23))}  CRM  ${String(e.record.externalId).padEnd(14)} ${colour(33, `shipment ${String(f.Status__c)}`.padEnd(18))} ${String(f.Sales_Order__c ?? '').padEnd(15)} ${colour(90, `${String(f.Carrier__c ?? '')} ${String(f.Tracking_Number__c ?? '')}`)}`,
      );
      return;
    }
    if (e.record.object !== 'Production_Milestone__c' || !e.created) return;
    const f = e.record.fields;
    // Counted by external id: a record re-created by the reconciliation repair is no new milestone.
    (lines.includes(String(f.Equipment__c)) ? landed : landedFromFiles).add(String(e.record.externalId));
    const at = Date.parse(String(f.Occurred_At__c));
    const lag = Number.isFinite(at) ? `${Date.now() - at} ms after the line` : '';
    const milestone = String(f.Milestone__c);
    const qty = f.Good_Quantity__c === undefined ? '' : `good ${f.Good_Quantity__c}`;
    out(
      `${colour(90, new Date().toISOString().slice(11, 23))}  CRM  ${String(f.Work_Order__c).padEnd(14)} ${colour(MILESTONE_COLOUR[milestone] ?? 37, milestone.padEnd(18))} ${String(f.Equipment__c ?? '').padEnd(5)} ${String(f.Sales_Order__c ?? '').padEnd(10)} ${qty.padEnd(8)} ${colour(90, `${e.record.id}  ${lag}`)}`,
    );
  });

  erp.on('upsert', (e: { record: { recordType: string; externalId: string; id: string }; created: boolean }) => {
    out(`${colour(90, new Date().toISOString().slice(11, 23))}  ${colour(34, 'ERP')}  ${e.record.externalId.padEnd(14)} ${colour(34, `${e.record.recordType.replace(/^customrecord_plantlink_/, '').replace(/_/g, ' ')} ${e.created ? 'created' : 'updated'}`.padEnd(18))} ${colour(90, `${e.record.recordType} internal id ${e.record.id}`)}`);
  });

  /**
   * Someone edits the CRM behind plantlink's back: a milestone deleted, a work order's status
   * set back. Reconciliation (the same call as `plantlink relay reconcile`) finds both, the
   * repair re-sends them, and a second reconciliation finds no drift. True when it ends clean.
   */
  const reconcileDemo = async (): Promise<boolean> => {
    const milestone = crm.records('Production_Milestone__c').find((r) => lines.includes(String(r.fields.Equipment__c)));
    const order = crm.records('Production_Order__c').find((r) => r.fields.Status__c !== 'held');
    if (!milestone || !order) return false;
    const day = String(milestone.fields.Occurred_At__c).slice(0, 10);
    out('');
    out(colour(1, `reconciliation: a CRM user deletes milestone ${String(milestone.externalId)} (${String(milestone.fields.Work_Order__c)} ${String(milestone.fields.Milestone__c)}) and sets work order ${String(order.externalId)} back to "held"`));
    const client = { baseUrl: `http://127.0.0.1:${relayPort}`, token: operatorToken, timeoutMs: 60_000 };
    // The agent's ledger follows its events every few seconds (status ticks): let it catch up.
    for (let i = 0; i < 30; i++) {
      const r = await apiGet<ReconcileReport>(client, `/v1/reconcile?day=${day}&verify=false`);
      if (r.plants.every((p) => p.withoutLedger === 0)) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    crm.deleteRecord('Production_Milestone__c', String(milestone.externalId));
    crm.setFields('Production_Order__c', String(order.externalId), { Status__c: 'held' });
    out(colour(90, `$ plantlink relay reconcile --day ${day}`));
    out(formatReport(await apiGet<ReconcileReport>(client, `/v1/reconcile?day=${day}`)));
    out(colour(90, `$ plantlink relay reconcile --day ${day} --repair`));
    out(formatRepair((await apiPost<{ repair: RepairResult }>(client, '/v1/reconcile/repair', { day })).repair));
    const deadline = Date.now() + 30_000;
    for (;;) {
      await new Promise((r) => setTimeout(r, 500));
      const report = await apiGet<ReconcileReport>(client, `/v1/reconcile?day=${day}`);
      const drift = report.findings.filter((f) => f.kind !== 'pending');
      if (drift.length === 0 || Date.now() > deadline) {
        out(colour(90, `$ plantlink relay reconcile --day ${day}`));
        out(formatReport(report));
        return drift.length === 0;
      }
    }
  };

  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    out('');
    stopShipping();
    stopExporting();
    out(
      `stopping: the lines made ${plant.truth.length} milestones and the MES exported ${mes.truth.length}; ${landed.size + landedFromFiles.size} landed in the CRM (${crm.records('Production_Order__c').length} work orders, ${crm.records('Shipment__c').length} shipments).`,
    );
    await agent.stop();
    await relay.stop();
    await plantErp.stop();
    await plant.stop();
    await crm.stop();
    await erp.stop();
    out(`demo files kept in ${dir}`);
    process.exit(code);
  };
  // A part failing to stop still ends the demo, with its reason, rather than as an unhandled rejection.
  const stopOnSignal = () =>
    void stop(0).catch((e: unknown) => {
      out(`stopping failed: ${e instanceof Error ? e.message : String(e)}`);
      process.exit(1);
    });
  process.on('SIGINT', stopOnSignal);
  process.on('SIGTERM', stopOnSignal);

  if (options.workOrdersPerLine) {
    await plant.finished();
    stopExporting();
    const deadline = Date.now() + 60_000;
    const allLanded = () => landed.size === plant.truth.length && landedFromFiles.size === mes.truth.length && crm.records('Shipment__c').length > 0;
    while (!allLanded() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    if (!allLanded()) return stop(1);
    const clean = await reconcileDemo().catch((e: unknown) => {
      out(`reconciliation failed: ${(e as Error).message}`);
      return false;
    });
    await stop(clean ? 0 : 1);
  } else {
    out(colour(90, 'Ctrl-C to stop. In 45 s a CRM user edits two records behind plantlink\'s back, and reconciliation repairs them.'));
    setTimeout(() => {
      if (!stopping) reconcileDemo().catch((e: unknown) => out(`reconciliation failed: ${(e as Error).message}`));
    }, 45_000).unref();
  }
}
