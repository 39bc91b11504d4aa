/**
 * Config of the HubSpot sink: the one source of truth for its options, their defaults
 * and their cross-field rules. Types come from the schema.
 */
import { z } from 'zod';
import { RateLimitConfig } from '../../delivery/rate-limiter.js';
import { PRODUCTION_MILESTONE_V1 } from '../../../protocols/events/production-milestone.v1.js';
import { SHIPMENT_V1 } from '../../../protocols/events/shipment.v1.js';
import { FieldPath } from '../mapping.js';

/** HubSpot's documented cap on inputs per batch request. */
export const HUBSPOT_MAX_BATCH_INPUTS = 100;

/** Internal name of a property, e.g. `plantlink_work_order`, `dealname`. */
const PropertyName = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9_]{0,99}$/, { message: 'must be a HubSpot property internal name (letters, digits, underscores)' });

/** `deals`, `0-3`, `2-1234567`, `p_plantlink_milestones`, `p12345_plantlink_milestones`. */
const ObjectType = z
  .string()
  .regex(/^(?:[A-Za-z][A-Za-z0-9_]{0,99}|\d+-\d+)$/, { message: 'must be an object type name or id, e.g. "deals", "0-3", "2-1234567" or "p_plantlink_milestones"' });

export const HubSpotMapping = z
  .object({
    eventType: z.string().min(1).describe('CloudEvents `type` this mapping applies to, e.g. com.plantlink.production.milestone.v1.'),
    objectType: ObjectType.describe('Object to upsert into: a name ("deals", "p_plantlink_milestones") or an objectTypeId ("0-3", "2-1234567").'),
    idProperty: PropertyName.describe('Property with unique values (hasUniqueValue) that identifies the record; upserts match on it. Not hs_object_id.'),
    idFrom: FieldPath.describe('Path into the event whose value is the idProperty value, e.g. "id" or "data.workOrder", or a template such as "{plant}:{data.workOrder}" (a plant-qualified id, when plants share work-order numbers). An event without it is rejected (mapping_error).'),
    apply: z
      .enum(['every', 'latest'])
      .default('every')
      .describe('"every": written for every event (one record per event). "latest": a latest-state record, skipped for stale events so an older update never overwrites a newer one.'),
    properties: z
      .record(PropertyName, FieldPath)
      .default({})
      .describe('Property internal name -> path into the event. A path missing in an event leaves the property untouched in HubSpot.'),
  })
  .strict()
  .superRefine((mapping, ctx) => {
    if (mapping.idProperty === 'hs_object_id') {
      // HubSpot refuses it: "Unable to perform update/upsert by non-unique ... property hs_object_id".
      ctx.addIssue({ code: 'custom', path: ['idProperty'], message: 'hs_object_id is not a unique property; upserts need a property with unique values' });
    }
    if (Object.hasOwn(mapping.properties, mapping.idProperty)) {
      ctx.addIssue({ code: 'custom', path: ['properties', mapping.idProperty], message: `"${mapping.idProperty}" is set from idFrom; remove it from properties` });
    }
  })
  .describe('One upsert per matching event.');
export type HubSpotMapping = z.infer<typeof HubSpotMapping>;
export type HubSpotMappingInput = z.input<typeof HubSpotMapping>;

const isLoopback = (host: string): boolean => host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);

export const HubSpotSinkConfig = z
  .object({
    name: z
      .string()
      // `<sink>:<route>` names the lane of a route with its own mappings (made by the relay; see relay/router/lanes.ts).
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(:[A-Za-z0-9][A-Za-z0-9_.-]{0,63})?$/)
      .describe('Name of this sink instance, used in routes, logs and metrics (letters, digits, "_", "." and "-").'),
    kind: z.literal('hubspot').describe('Sink kind.'),
    baseUrl: z.url().default('https://api.hubapi.com').describe('Base URL of the HubSpot API.'),
    token: z
      .string()
      .min(1)
      .describe('Access token of the HubSpot private app (sent as "Authorization: Bearer"); needs the objects\' write scopes. Never logged; write "${HUBSPOT_TOKEN}" to read it from the environment.'),
    rateLimit: RateLimitConfig.optional().describe('Request pacing for this API (token bucket, adapted on 429 and quota headers).'),
    timeoutMs: z.number().int().min(100).max(120_000).default(15_000).describe('Timeout of each HTTP request, in ms.'),
    batchSize: z
      .number()
      .int()
      .min(1)
      .max(HUBSPOT_MAX_BATCH_INPUTS)
      .default(HUBSPOT_MAX_BATCH_INPUTS)
      .describe(`Inputs per batch upsert call, at most ${HUBSPOT_MAX_BATCH_INPUTS} (HubSpot's limit). Every call counts once against the rate limits, whatever its size.`),
    mappings: z.array(HubSpotMapping).min(1).describe('Upserts to make per event; every mapping whose eventType matches is applied.'),
  })
  .strict()
  .superRefine((config, ctx) => {
    const url = new URL(config.baseUrl);
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url.hostname))) {
      ctx.addIssue({ code: 'custom', path: ['baseUrl'], message: 'must use https (plain http only to a loopback address, for emulators): the access token travels on it' });
    }
    const seen = new Set<string>();
    config.mappings.forEach((m, i) => {
      const key = `${m.eventType} ${m.objectType}.${m.idProperty}`;
      if (seen.has(key)) ctx.addIssue({ code: 'custom', path: ['mappings', i], message: `duplicate mapping of ${m.eventType} to ${m.objectType}.${m.idProperty}` });
      seen.add(key);
    });
  })
  .describe('Delivers events to HubSpot CRM by batch upsert on unique properties (CRM v3 objects API).');
export type HubSpotSinkConfig = z.infer<typeof HubSpotSinkConfig>;
export type HubSpotSinkConfigInput = z.input<typeof HubSpotSinkConfig>;

/**
 * plantlink's standard custom objects: one milestone record per milestone event, the
 * latest status per work order, the latest status per shipment.
 */
export const defaultHubSpotMappings: HubSpotMappingInput[] = [
  {
    eventType: PRODUCTION_MILESTONE_V1,
    objectType: 'p_plantlink_milestones',
    idProperty: 'plantlink_event_id',
    idFrom: 'id',
    apply: 'every',
    properties: {
      plantlink_work_order: 'data.workOrder',
      plantlink_sales_order: 'data.salesOrder',
      plantlink_milestone: 'data.milestone',
      plantlink_good_quantity: 'data.goodQuantity.value',
      plantlink_scrap_quantity: 'data.scrapQuantity.value',
      plantlink_equipment: 'data.equipment',
      plantlink_occurred_at: 'data.occurredAt',
      plantlink_plant: 'plant',
    },
  },
  {
    eventType: PRODUCTION_MILESTONE_V1,
    objectType: 'p_plantlink_work_orders',
    idProperty: 'plantlink_work_order',
    idFrom: 'data.workOrder',
    apply: 'latest',
    properties: {
      plantlink_sales_order: 'data.salesOrder',
      plantlink_status: 'data.milestone',
      plantlink_good_quantity: 'data.goodQuantity.value',
      plantlink_planned_quantity: 'data.plannedQuantity.value',
      plantlink_last_milestone_at: 'data.occurredAt',
      plantlink_plant: 'plant',
      plantlink_product: 'data.product',
    },
  },
  {
    eventType: SHIPMENT_V1,
    objectType: 'p_plantlink_shipments',
    idProperty: 'plantlink_shipment',
    idFrom: 'data.shipment',
    apply: 'latest',
    properties: {
      plantlink_sales_order: 'data.salesOrder',
      plantlink_status: 'data.status',
      plantlink_carrier: 'data.carrier',
      plantlink_tracking_number: 'data.trackingNumber',
      plantlink_status_at: 'data.occurredAt',
    },
  },
];
