/**
 * Configuration of the OPC UA source: the one source of truth for its options.
 * Types come from the schema; defaults live here and nowhere else.
 */
import { z } from 'zod';
import { SECURITY_MODES, SECURITY_POLICIES } from '../../../protocols/opcua/security-names.js';
import { LINE_LIFECYCLES } from './line-machine.js';

const NodeRef = z
  .string()
  .min(1)
  .max(1024)
  .describe('A NodeId string (`ns=1;s=L1.State`) or a browse path from the Root folder starting with "/" (`/Objects/1:Plant/1:L1/1:State`).');

export const DEFAULT_STATES: Record<string, (typeof LINE_LIFECYCLES)[number]> = {
  Idle: 'idle',
  Released: 'released',
  Running: 'running',
  Held: 'held',
  Completed: 'completed',
};

export const OpcUaLineNodes = z
  .object({
    workOrder: NodeRef.describe('Work order id on the line (required). A new value starts a new work order.'),
    state: NodeRef.describe('Line / work-order state (required); its values are mapped with `states`.'),
    goodCount: NodeRef.optional().describe('Cumulative good count of the work order; an increase reports a quantity.'),
    scrapCount: NodeRef.optional().describe('Cumulative scrap count of the work order.'),
    salesOrder: NodeRef.optional().describe('Sales order the work order fulfils, as the CRM knows it.'),
    product: NodeRef.optional().describe('Product / SKU (ISA-95 MaterialDefinitionID).'),
    plannedQuantity: NodeRef.optional().describe('Quantity the work order was released for.'),
  })
  .strict();

export const QuantityDeadbandConfig = z
  .object({
    type: z
      .literal('absolute')
      .describe('`absolute`: `value` is in the line\'s unit. (Percent of the EURange, which needs the server\'s EURange property, may come later.)'),
    value: z
      .number()
      .min(0)
      .max(1e12)
      .describe(
        'A good or scrap count is reported (`quantity-reported`) only when it rose MORE than this above the count last reported; 0 = every increase. The OPC UA AbsoluteDeadband rule: with 10, counts going up one by one are reported at 11, 22, 33, ... A fall of more than this is a counter reset (new baseline, nothing reported). Holds and completions always carry the exact current counts.',
      ),
    onServer: z
      .boolean()
      .default(true)
      .describe(
        'Also ask the server to apply the deadband to the counter nodes (DataChangeFilter), so it sends fewer notifications. What the filter hides is read back from the server\'s history (or current value) when a milestone needs it, so the events are the same either way. A server that refuses the filter (e.g. BadFilterNotAllowed on a node that is not declared numeric) is monitored without it, logged once.',
      ),
  })
  .strict();

export const OpcUaLineConfig = z
  .object({
    equipment: z.string().min(1).max(128).describe('ISA-95 EquipmentID of the line; goes to `data.equipment` and keys the persisted line state.'),
    unit: z.string().min(1).max(32).default('EA').describe('Unit of the line\'s quantities (UN/CEFACT code or plant unit).'),
    nodes: OpcUaLineNodes.describe('Where the line\'s values live on the server.'),
    states: z
      .record(z.string().min(1), z.enum(LINE_LIFECYCLES))
      .default(DEFAULT_STATES)
      .describe('Map from the plant\'s state values (strings, or numbers written as strings) to line states: idle, released, running, held, completed. Unmapped values are logged and ignored.'),
    quantityDeadband: QuantityDeadbandConfig.default({ type: 'absolute', value: 0, onServer: true }).describe(
      'Deadband of the quantity counters (goodCount, scrapCount): `{ type: absolute, value: N }` reports a count only when it rose more than N above the one last reported. Default N = 0: every increase.',
    ),
  })
  .strict();

export const OpcUaSecurityConfig = z
  .object({
    mode: z
      .enum(SECURITY_MODES)
      .default('None')
      .describe(
        'Message security mode: `None`, `Sign` or `SignAndEncrypt`. With Sign or SignAndEncrypt the server certificate must be trusted explicitly (`plantlink agent trust`); an unknown one is refused and filed under `<pkiDir>/rejected`.',
      ),
    policy: z
      .enum(SECURITY_POLICIES)
      .optional()
      .describe('Security policy with Sign or SignAndEncrypt: `Basic256Sha256` (default), `Aes128_Sha256_RsaOaep` or `Aes256_Sha256_RsaPss`. Not allowed with `None`.'),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.mode === 'None' && s.policy !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['policy'], message: 'a policy needs mode Sign or SignAndEncrypt' });
    }
  })
  .transform((s) => (s.mode === 'None' ? { mode: s.mode } : { mode: s.mode, policy: s.policy ?? 'Basic256Sha256' }));

export const OpcUaIdentityConfig = z
  .discriminatedUnion('type', [
    z
      .object({ type: z.literal('anonymous').describe('No user: the server must allow anonymous sessions.') })
      .strict(),
    z
      .object({
        type: z.literal('username').describe('User name and password.'),
        userName: z.string().min(1).max(256).describe('User name presented to the server.'),
        password: z
          .string()
          .min(1)
          .max(1024)
          .describe('Password; write `${ENV_VAR}` to keep it out of the file. Never logged. Sent encrypted with the server certificate, so use it with Sign or SignAndEncrypt.'),
      })
      .strict(),
  ])
  .describe('User identity presented to the server: `{ type: anonymous }` or `{ type: username, userName, password }`.');

export const OpcUaOwnCertificateConfig = z
  .object({
    validityDays: z
      .number()
      .int()
      .min(30)
      .max(7300)
      .default(3650)
      .describe('Validity of the certificate the agent makes for itself (on first start, and when renewing).'),
    renewBeforeDays: z
      .number()
      .int()
      .min(1)
      .max(365)
      .default(30)
      .describe('Renew our certificate (same key, new certificate; logged as alarm `opcua_certificate_expiring`) when fewer days than this remain. Servers that trust certificates one by one must then trust the new one.'),
  })
  .strict();

export const OpcUaReconnectConfig = z
  .object({
    baseMs: z.number().int().min(10).max(60_000).default(500).describe('First delay between reconnection attempts (jittered, doubles per failure).'),
    maxMs: z.number().int().min(100).max(600_000).default(10_000).describe('Longest delay between reconnection attempts.'),
  })
  .strict();

export const OpcUaSourceConfig = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, ".", "_" and "-", at most 64')
      .describe('Source name; goes into the event source and into every event id, so never rename a source in use.'),
    kind: z.literal('opcua').describe('Source kind.'),
    endpointUrl: z
      .string()
      .regex(/^opc\.tcp:\/\/[^\s/]+/, 'an opc.tcp:// URL')
      .describe('OPC UA server endpoint, e.g. `opc.tcp://10.0.0.5:4840`.'),
    publishingIntervalMs: z.number().int().min(10).max(60_000).default(250).describe('Requested publishing interval of the subscription.'),
    maxKeepAliveCount: z
      .number()
      .int()
      .min(1)
      .max(1000)
      .default(10)
      .describe('Publishing intervals without data after which the server sends a keep-alive.'),
    stallAfterKeepAlives: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(3)
      .describe('Keep-alive periods without any notification after which the subscription counts as stalled and is recreated.'),
    samplingIntervalMs: z
      .number()
      .min(0)
      .max(60_000)
      .default(0)
      .describe('Requested sampling interval of every monitored item of the subscription; 0 = report every change (exception-based). A value above 0 lets the server sample, and changes between samples are then never seen.'),
    queueSize: z
      .number()
      .int()
      .min(1)
      .max(100_000)
      .default(100)
      .describe('Server-side queue per monitored item of the subscription, so bursts between publishes are not coalesced (when it is full, the newest value replaces the last one queued).'),
    historyCatchUp: z
      .boolean()
      .default(true)
      .describe(
        'After every (re)subscription and after an outbox pause, read the raw history (OPC UA Historical Access) of every node since the last value committed, so changes made while the agent was down or disconnected become milestones too. Nodes without history fall back to the current value.',
      ),
    sessionTimeoutMs: z
      .number()
      .int()
      .min(10_000)
      .max(3_600_000)
      .default(60_000)
      .describe('Requested session timeout: how long the server keeps the session (and queues changes) after a network drop.'),
    operationTimeoutMs: z.number().int().min(1000).max(120_000).default(10_000).describe('Upper bound on connect, create session, subscribe and read.'),
    reconnect: OpcUaReconnectConfig.default({ baseMs: 500, maxMs: 10_000 }).describe('Backoff between reconnection attempts.'),
    security: OpcUaSecurityConfig.default({ mode: 'None' }).describe('Message security.'),
    identity: OpcUaIdentityConfig.default({ type: 'anonymous' }),
    pkiDir: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Folder of the client certificate store: own/ (our certificate and key), trusted/certs/ (trusted server certificates), rejected/ (refused ones). The agent sets `<agent.dataDir>/pki` when unset.',
      ),
    ownCertificate: OpcUaOwnCertificateConfig.default({ validityDays: 3650, renewBeforeDays: 30 }).describe('Our application certificate (security Sign or SignAndEncrypt).'),
    lines: z.array(OpcUaLineConfig).min(1).max(1000).describe('Lines read from this server.'),
  })
  .strict()
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    config.lines.forEach((line, i) => {
      if (seen.has(line.equipment)) {
        ctx.addIssue({ code: 'custom', path: ['lines', i, 'equipment'], message: `equipment "${line.equipment}" appears twice` });
      }
      seen.add(line.equipment);
    });
    if (config.ownCertificate.renewBeforeDays >= config.ownCertificate.validityDays) {
      ctx.addIssue({ code: 'custom', path: ['ownCertificate', 'renewBeforeDays'], message: 'must be less than ownCertificate.validityDays' });
    }
    if (config.reconnect.baseMs > config.reconnect.maxMs) {
      ctx.addIssue({ code: 'custom', path: ['reconnect', 'baseMs'], message: 'must not exceed reconnect.maxMs' });
    }
  });

export type OpcUaSourceConfig = z.infer<typeof OpcUaSourceConfig>;
export type OpcUaSourceConfigInput = z.input<typeof OpcUaSourceConfig>;
export type OpcUaLineConfig = z.infer<typeof OpcUaLineConfig>;
export type QuantityDeadbandConfig = z.infer<typeof QuantityDeadbandConfig>;
