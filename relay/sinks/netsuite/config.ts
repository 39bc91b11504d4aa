/**
 * Config of the NetSuite sink: the one source of truth for its options, their
 * defaults and their cross-field rules. Types come from the schema.
 */
import { z } from 'zod';
import { RateLimitConfig } from '../../delivery/rate-limiter.js';
import { PRODUCTION_MILESTONE_V1 } from '../../../protocols/events/production-milestone.v1.js';
import { SHIPMENT_V1 } from '../../../protocols/events/shipment.v1.js';
import { FieldPath } from '../mapping.js';

/** Record type id as the REST record service names it: `salesOrder`, `customrecord_plantlink_workorder`. */
const RecordTypeId = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9_]{0,99}$/, { message: 'must be a NetSuite record type id (letters, digits, underscores), e.g. customrecord_plantlink_workorder' });

/** Field id: `name`, `memo`, `custrecord_plk_wo_status`, `custbody_...`. */
const FieldId = z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,99}$/, { message: 'must be a NetSuite field id (letters, digits, underscores)' });

/** The URL carries the record's identity; NetSuite sets these itself. */
const URL_FIELDS = ['id', 'externalId'];

export const JWT_ALGORITHMS = ['ES256', 'PS256'] as const;

export const NetSuiteClientCredentialsAuth = z
  .object({
    flow: z.literal('client_credentials').describe('OAuth 2.0 client credentials (machine to machine): a JWT signed with the certificate\'s private key is traded for a 60-minute access token.'),
    clientId: z.string().min(1).describe('Client ID of the integration record (Setup > Integration > Manage Integrations); the JWT\'s `iss`.'),
    certificateId: z.string().min(1).describe('Certificate ID from Setup > Integration > OAuth 2.0 Client Credentials (M2M) Setup; the JWT header\'s `kid`.'),
    privateKeyFile: z.string().min(1).optional().describe('Path of the PEM file holding the certificate\'s private key. Give this or `privateKey`.'),
    privateKey: z.string().min(1).optional().describe('The certificate\'s private key as PEM text (a secret: never logged). Give this or `privateKeyFile`.'),
    algorithm: z
      .enum(JWT_ALGORITHMS)
      .default('ES256')
      .describe('JWT signing algorithm; must match the key: ES256 for an EC P-256 key, PS256 for an RSA key (2048 bits or more).'),
    scope: z
      .string()
      .regex(/^(restlets|rest_webservices|suite_analytics)(,(restlets|rest_webservices|suite_analytics))*$/, {
        message: 'must be rest_webservices, restlets, suite_analytics or several of them separated by commas',
      })
      .default('rest_webservices')
      .describe('Scopes requested in the JWT, comma-separated; the record service needs rest_webservices.'),
  })
  .strict()
  .superRefine((auth, ctx) => {
    if ((auth.privateKeyFile === undefined) === (auth.privateKey === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['privateKeyFile'], message: 'give exactly one of privateKeyFile and privateKey' });
    }
  })
  .describe('Client credentials (M2M): no user, no secret on the wire; the private key stays with the relay.');

export const NetSuiteAuth = z
  .discriminatedUnion('flow', [NetSuiteClientCredentialsAuth])
  .describe('How the sink obtains access tokens, chosen by `flow`. Only `client_credentials` (M2M) today.');
export type NetSuiteAuth = z.infer<typeof NetSuiteAuth>;

export const NetSuiteSelectField = z
  .object({
    from: FieldPath.describe('Path into the event whose value picks the list value, e.g. "data.milestone".'),
    values: z
      .record(z.string().min(1).max(256), z.string().regex(/^\d+$/, { message: 'must be the internal id of a list value, e.g. "3"' }))
      .refine((values) => Object.keys(values).length > 0, { message: 'needs at least one value' })
      .describe('Event value -> internal id of the list value in NetSuite. An event value not listed here is rejected (mapping_error).'),
  })
  .strict()
  .describe('A List/Record (select) field: NetSuite takes `{ "id": "<internal id>" }`, so event values are translated here.');
export type NetSuiteSelectField = z.infer<typeof NetSuiteSelectField>;

export const NetSuiteMapping = z
  .object({
    eventType: z.string().min(1).describe('CloudEvents `type` this mapping applies to, e.g. com.plantlink.production.milestone.v1.'),
    recordType: RecordTypeId.describe('Record type to upsert into, e.g. customrecord_plantlink_workorder.'),
    externalIdFrom: FieldPath.describe(
      'Path into the event whose value is the record\'s external ID, e.g. "data.workOrder" or "id", or a template such as "{plant}-{data.workOrder}" (a plant-qualified id, when plants share work-order numbers). NetSuite allows letters, digits, "_" and "-" in external IDs. An event without it is rejected (mapping_error).',
    ),
    apply: z
      .enum(['every', 'latest'])
      .default('every')
      .describe('"every": written for every event (one record per event, keyed by the event id). "latest": a latest-state record, skipped for stale events so an older update never overwrites a newer one.'),
    fields: z
      .record(FieldId, FieldPath)
      .default({})
      .describe('Field id -> path into the event, for text, number, date/time and check box fields. A path missing in an event leaves the field untouched in NetSuite.'),
    selects: z.record(FieldId, NetSuiteSelectField).default({}).describe('Field id -> select field translation, for List/Record fields.'),
  })
  .strict()
  .superRefine((mapping, ctx) => {
    for (const [group, names] of [
      ['fields', Object.keys(mapping.fields)],
      ['selects', Object.keys(mapping.selects)],
    ] as const) {
      for (const name of names) {
        if (URL_FIELDS.includes(name)) {
          ctx.addIssue({ code: 'custom', path: [group, name], message: `"${name}" is set from the URL of the upsert; remove it` });
        }
      }
    }
    for (const name of Object.keys(mapping.selects)) {
      if (Object.hasOwn(mapping.fields, name)) ctx.addIssue({ code: 'custom', path: ['selects', name], message: `"${name}" is mapped in both fields and selects` });
    }
  })
  .describe('One upsert by external ID per matching event.');
export type NetSuiteMapping = z.infer<typeof NetSuiteMapping>;
export type NetSuiteMappingInput = z.input<typeof NetSuiteMapping>;

const isLoopback = (host: string): boolean => host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);

export const NetSuiteSinkConfig = z
  .object({
    name: z
      .string()
      // `<sink>:<route>` names the lane of a route with its own mappings (made by the relay; see relay/router/lanes.ts).
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(:[A-Za-z0-9][A-Za-z0-9_.-]{0,63})?$/)
      .describe('Name of this sink instance, used in routes, logs and metrics (letters, digits, "_", "." and "-").'),
    kind: z.literal('netsuite').describe('Sink kind.'),
    accountId: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, { message: 'must be a NetSuite account ID, e.g. 1234567 or 1234567_SB1' })
      .describe('NetSuite account ID (Setup > Company > Company Information), e.g. 1234567 or 1234567_SB1 for a sandbox.'),
    baseUrl: z
      .url()
      .optional()
      .describe(
        'SuiteTalk REST base URL from Company Information > Company URLs, e.g. https://1234567.suitetalk.api.netsuite.com. Default: derived from accountId (lowercase, "_" -> "-"); NetSuite advises copying it from Company URLs.',
      ),
    auth: NetSuiteAuth,
    rateLimit: RateLimitConfig.optional().describe('Request pacing for this API (token bucket, adapted on 429 and quota headers).'),
    timeoutMs: z.number().int().min(100).max(300_000).default(30_000).describe('Timeout of each HTTP request (token, upsert), in ms.'),
    concurrency: z
      .number()
      .int()
      .min(1)
      .max(50)
      .default(2)
      .describe(
        'Requests in flight at once. NetSuite\'s concurrency limit is per account and shared by every integration (developer accounts: 5), so keep this small. Events with the same subject are always applied one after another, in batch order.',
      ),
    mappings: z.array(NetSuiteMapping).min(1).describe('Upserts to make per event; every mapping whose eventType matches is applied, in order.'),
  })
  .strict()
  .superRefine((config, ctx) => {
    if (config.baseUrl !== undefined) {
      const url = new URL(config.baseUrl);
      if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url.hostname))) {
        ctx.addIssue({ code: 'custom', path: ['baseUrl'], message: 'must use https (plain http only to a loopback address, for emulators): signed assertions and tokens travel on it' });
      }
      if (url.pathname !== '/' || url.search || url.hash) {
        ctx.addIssue({ code: 'custom', path: ['baseUrl'], message: 'must be the origin only, e.g. https://1234567.suitetalk.api.netsuite.com' });
      }
    }
    const seen = new Set<string>();
    config.mappings.forEach((m, i) => {
      const key = `${m.eventType} ${m.recordType} ${m.externalIdFrom}`;
      if (seen.has(key)) ctx.addIssue({ code: 'custom', path: ['mappings', i], message: `duplicate mapping of ${m.eventType} to ${m.recordType} by ${m.externalIdFrom}` });
      seen.add(key);
    });
  })
  .describe('Delivers events to NetSuite by upsert on external ID (SuiteTalk REST record service, PUT .../eid:{externalId}).');
export type NetSuiteSinkConfig = z.infer<typeof NetSuiteSinkConfig>;
export type NetSuiteSinkConfigInput = z.input<typeof NetSuiteSinkConfig>;

/** The REST origin: `baseUrl`, or `https://<account id, lowercase, "_" -> "-">.suitetalk.api.netsuite.com`. */
export function netSuiteBaseUrl(config: Pick<NetSuiteSinkConfig, 'accountId' | 'baseUrl'>): string {
  if (config.baseUrl !== undefined) return new URL(config.baseUrl).origin;
  return `https://${config.accountId.toLowerCase().replace(/_/g, '-')}.suitetalk.api.netsuite.com`;
}

const MILESTONE_STATUS_IDS = { released: '1', started: '2', 'quantity-reported': '3', completed: '4', held: '5', resumed: '6' };
const SHIPMENT_STATUS_IDS = { packed: '1', shipped: '2', delivered: '3', exception: '4' };

/**
 * plantlink's custom records (see README.md): the latest status per work order in
 * customrecord_plantlink_workorder, the latest status per shipment in
 * customrecord_plantlink_shipment, both keyed by the plant's business number. The
 * status list ids assume the list values were created in the order shown; check them
 * in the account (Customization > Lists, Records & Fields > Lists) and adjust.
 */
export const defaultNetSuiteMappings: NetSuiteMappingInput[] = [
  {
    eventType: PRODUCTION_MILESTONE_V1,
    recordType: 'customrecord_plantlink_workorder',
    externalIdFrom: 'data.workOrder',
    apply: 'latest',
    fields: {
      name: 'data.workOrder',
      custrecord_plk_wo_sales_order: 'data.salesOrder',
      custrecord_plk_wo_good_qty: 'data.goodQuantity.value',
      custrecord_plk_wo_scrap_qty: 'data.scrapQuantity.value',
      custrecord_plk_wo_planned_qty: 'data.plannedQuantity.value',
      custrecord_plk_wo_last_event_at: 'data.occurredAt',
      custrecord_plk_wo_product: 'data.product',
      custrecord_plk_wo_equipment: 'data.equipment',
      custrecord_plk_wo_plant: 'plant',
    },
    selects: { custrecord_plk_wo_status: { from: 'data.milestone', values: MILESTONE_STATUS_IDS } },
  },
  {
    eventType: SHIPMENT_V1,
    recordType: 'customrecord_plantlink_shipment',
    externalIdFrom: 'data.shipment',
    apply: 'latest',
    fields: {
      name: 'data.shipment',
      custrecord_plk_sh_sales_order: 'data.salesOrder',
      custrecord_plk_sh_carrier: 'data.carrier',
      custrecord_plk_sh_tracking: 'data.trackingNumber',
      custrecord_plk_sh_status_at: 'data.occurredAt',
    },
    selects: { custrecord_plk_sh_status: { from: 'data.status', values: SHIPMENT_STATUS_IDS } },
  },
];
