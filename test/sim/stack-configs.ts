/**
 * Agent and relay configs for a loopback stack (the demo and the end-to-end tests):
 * a simulated plant over OPC UA -> agent -> relay -> Salesforce-compatible emulator.
 * Written as YAML files, so both run exactly as an operator would run them.
 */
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ERP_SHIPMENT_MAP } from './erp/shipment-map.js';
import { randomBytes } from 'node:crypto';
import { MES_CSV_FORMAT, MES_MILESTONE_MAP } from './mes/mes-file-exporter.js';
import { hashToken, issueToken } from '../../relay/ingress/agent-auth.js';
import { defaultNetSuiteMappings } from '../../relay/sinks/netsuite/index.js';
import { defaultSalesforceMappings } from '../../relay/sinks/salesforce/index.js';

export interface StackPorts {
  opcuaEndpoint: string;
  nodeIds: (line: string) => Record<string, string>;
  lines: string[];
  salesforceUrl: string;
  relayPort: number;
  /** The agent connects here; defaults to the relay itself (set a proxy port to cut the network). */
  uplinkPort?: number;
  /** A NetSuite-compatible ERP: when given, work-order releases and completions also go there. */
  erp?: { url: string; clientId: string; certificateId: string; privateKeyFile: string };
  /** The plant's on-prem ERP SOAP service: when given, the agent polls it for shipments. */
  soapErp?: { wsdlUrl: string; username: string; password: string };
  /** A folder the plant's MES drops CSV production reports into: when given, the agent reads it. */
  mesDropFolder?: string;
  /** When given, the agent serves Prometheus metrics on this loopback port. */
  agentMetricsPort?: number;
}

export { ERP_SHIPMENT_MAP } from './erp/shipment-map.js';

/** A port that was free a moment ago (for child processes that must know each other's ports up front). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export function writeStackConfigs(dir: string, ports: StackPorts, options: { fastRetries?: boolean; logLevel?: string } = {}) {
  const { token, tokenHash } = issueToken('demo-agent');
  // The console's (and operator API's) login for the demo: name `demo`, this token.
  const operatorToken = `plk_${randomBytes(24).toString('base64url')}`;
  const relay = {
    relay: { dataDir: join(dir, 'relay-data'), listen: { host: '127.0.0.1', port: ports.relayPort } },
    ingress: { heartbeatMs: 2000 },
    agents: [{ id: 'demo-agent', plant: 'plant-1', tokenHash }],
    sinks: [
      {
        name: 'crm',
        kind: 'salesforce',
        loginUrl: ports.salesforceUrl,
        auth: { flow: 'client_credentials', clientId: 'plantlink-client', clientSecret: 'plantlink-secret' },
        timeoutMs: 5000,
        mappings: defaultSalesforceMappings,
      },
      ...(ports.erp
        ? [
            {
              name: 'erp',
              kind: 'netsuite',
              accountId: 'TSTDRV1234567',
              baseUrl: ports.erp.url,
              auth: { flow: 'client_credentials', clientId: ports.erp.clientId, certificateId: ports.erp.certificateId, privateKeyFile: ports.erp.privateKeyFile, algorithm: 'ES256' },
              mappings: defaultNetSuiteMappings,
            },
          ]
        : []),
    ],
    routes: [
      { name: 'everything-to-crm', match: {}, sinks: ['crm'] },
      ...(ports.erp
        ? [
            { name: 'work-order-start-and-end-to-erp', match: { attributes: { 'data.milestone': ['released', 'completed'] } }, sinks: ['erp'] },
            { name: 'shipments-to-erp', match: { type: 'com.plantlink.shipment.v1' }, sinks: ['erp'] },
          ]
        : []),
    ],
    delivery: options.fastRetries ? { batchSize: 50, backoff: { initialMs: 100, maxMs: 1000 }, pollMs: 200 } : { batchSize: 50 },
    api: { tokens: [{ name: 'demo', role: 'operator', tokenHash: hashToken(operatorToken) }] },
    // Loopback only, so the figures stay open to curl and the demo test's scrape.
    metrics: { requireToken: false },
    log: { level: options.logLevel ?? 'info' },
  };
  const agent = {
    agent: { id: 'demo-agent', plant: 'plant-1', dataDir: join(dir, 'agent-data') },
    uplink: {
      kind: 'websocket',
      url: `ws://127.0.0.1:${ports.uplinkPort ?? ports.relayPort}/v1/uplink`,
      token,
      heartbeatMs: 2000,
      reconnect: options.fastRetries ? { initialDelayMs: 100, maxDelayMs: 1000 } : { initialDelayMs: 500, maxDelayMs: 5000 },
    },
    sources: [
      {
        name: 'line-opcua',
        kind: 'opcua',
        endpointUrl: ports.opcuaEndpoint,
        publishingIntervalMs: 100,
        lines: ports.lines.map((line) => ({
          equipment: line,
          unit: 'EA',
          nodes: ports.nodeIds(line),
          states: { Idle: 'idle', Released: 'released', Running: 'running', Held: 'held', Completed: 'completed' },
        })),
      },
    ],
    ...(ports.agentMetricsPort !== undefined ? { metrics: { listen: { host: '127.0.0.1', port: ports.agentMetricsPort } } } : {}),
    log: { level: options.logLevel ?? 'info' },
  };
  if (ports.soapErp) {
    agent.sources.push({
      name: 'erp-shipments',
      kind: 'soap',
      wsdlUrl: ports.soapErp.wsdlUrl,
      operation: 'GetShipmentChanges',
      request: { pageSize: 50 },
      cursor: { requestField: 'changedSince', watermarkField: 'ChangedAt', pageTokenField: 'pageToken', nextPageTokenPath: 'nextPageToken' },
      itemsPath: 'shipments.Shipment',
      pollIntervalMs: 1000,
      auth: { username: ports.soapErp.username, password: ports.soapErp.password },
      map: ERP_SHIPMENT_MAP,
    } as never);
  }
  if (ports.mesDropFolder) {
    agent.sources.push({
      name: 'mes-reports',
      kind: 'file',
      folder: ports.mesDropFolder,
      pattern: 'MES_PRODREP_*.csv',
      format: MES_CSV_FORMAT,
      encoding: 'windows-1252',
      ready: { mode: 'rename' },
      watch: { mode: 'events', pollIntervalMs: 1000 },
      map: MES_MILESTONE_MAP,
    } as never);
  }
  const relayFile = join(dir, 'relay.yaml');
  const agentFile = join(dir, 'agent.yaml');
  writeFileSync(relayFile, `# plantlink relay (generated for a loopback stack)\n${stringify(relay)}`);
  writeFileSync(agentFile, `# plantlink agent (generated for a loopback stack)\n${stringify(agent)}`, { mode: 0o600 });
  return { relayFile, agentFile, relay, agent, operatorToken };
}
