/**
 * Config of the Salesforce sink: the one source of truth for its options, their
 * defaults and their cross-field rules. Types come from the schema.
 */
import { z } from 'zod';
import { RateLimitConfig } from '../../delivery/rate-limiter.js';
import { PRODUCTION_MILESTONE_V1 } from '../../../protocols/events/production-milestone.v1.js';
import { SHIPMENT_V1 } from '../../../protocols/events/shipment.v1.js';
import { FieldPath } from '../mapping.js';
import { MAX_RECORDS_PER_CALL } from './rest-client.js';

/** API name of an object or field, e.g. `Production_Order__c`, `ns__Status__c`. */
const ApiName = z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,79}$/, { message: 'must be a Salesforce API name (letters, digits, underscores)' });

/** sObject Collections upsert exists from API version 46.0 on. */
const MIN_API_VERSION = 46;

const ClientCredentialsAuth = z
  .object({
    flow: z.literal('client_credentials').describe('OAuth 2.0 client credentials flow (server to server, with a run-as integration user).'),
    clientId: z.string().min(1).describe('Consumer key of the external client app (connected app).'),
    clientSecret: z.string().min(1).describe('Consumer secret of the external client app. Never logged.'),
  })
  .strict()
  .describe('Client credentials: the relay trades consumer key and secret for an access token.');

const JwtBearerAuth = z
  .object({
    flow: z.literal('jwt_bearer').describe('OAuth 2.0 JWT bearer flow (server to server, with a certificate): no secret on the wire.'),
    clientId: z.string().min(1).describe('Consumer key of the external client app (connected app) with the certificate uploaded; the JWT\'s `iss`.'),
    username: z
      .string()
      .min(1)
      .describe('Username of the integration user the relay acts as; the JWT\'s `sub`. The user must be pre-authorized for the app (admin-approved profile or permission set).'),
    privateKeyFile: z.string().min(1).optional().describe('Path of the PEM file holding the RSA private key (2048 bits or more) of the uploaded certificate. Give this or `privateKey`.'),
    privateKey: z.string().min(1).optional().describe('The RSA private key as PEM text (a secret: never logged). Give this or `privateKeyFile`.'),
    audience: z
      .url()
      .optional()
      .describe(
        'The JWT\'s `aud`: https://login.salesforce.com (production), https://test.salesforce.com (sandbox) or the My Domain / Experience Cloud site URL. Default: loginUrl. A trailing slash is dropped.',
      ),
  })
  .strict()
  .superRefine((auth, ctx) => {
    if ((auth.privateKeyFile === undefined) === (auth.privateKey === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['privateKeyFile'], message: 'give exactly one of privateKeyFile and privateKey' });
    }
  })
  .describe('JWT bearer: the relay signs a short-lived JWT (RS256) with the app certificate\'s private key and trades it for an access token.');

export const SalesforceAuth = z
  .discriminatedUnion('flow', [ClientCredentialsAuth, JwtBearerAuth])
  .describe('How the sink obtains access tokens, chosen by `flow`: `client_credentials` or `jwt_bearer`.');
export type SalesforceAuth = z.infer<typeof SalesforceAuth>;

export const SalesforceMapping = z
  .object({
    eventType: z.string().min(1).describe('CloudEvents `type` this mapping applies to, e.g. com.plantlink.production.milestone.v1.'),
    object: ApiName.describe('Object to upsert into, e.g. Production_Order__c.'),
    externalIdField: ApiName.describe('External ID field of the object that identifies the record; upserts match on it.'),
    externalId: FieldPath.describe('Path into the event whose value is the external id, e.g. "id" or "data.workOrder", or a template such as "{plant}:{data.workOrder}" (a plant-qualified id, when plants share work-order numbers). An event without it is rejected (mapping_error).'),
    apply: z
      .enum(['every', 'latest'])
      .default('every')
      .describe('"every": written for every event (one record per event). "latest": a latest-state record, skipped for stale events so an older update never overwrites a newer one.'),
    fields: z
      .record(ApiName, FieldPath)
      .default({})
      .describe('Field API name -> path into the event. A path missing in an event leaves the field untouched in Salesforce.'),
  })
  .strict()
  .superRefine((mapping, ctx) => {
    for (const name of ['Id', mapping.externalIdField]) {
      if (Object.hasOwn(mapping.fields, name)) {
        // The sink sets the external id field from `externalId`; Salesforce rejects Id in an upsert by external id.
        ctx.addIssue({ code: 'custom', path: ['fields', name], message: `"${name}" is set from externalId by the upsert; remove it from fields` });
      }
    }
  })
  .describe('One record upsert per matching event.');
export type SalesforceMapping = z.infer<typeof SalesforceMapping>;
export type SalesforceMappingInput = z.input<typeof SalesforceMapping>;

const isLoopback = (host: string): boolean => host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);

export const SalesforceSinkConfig = z
  .object({
    name: z
      .string()
      // `<sink>:<route>` names the lane of a route with its own mappings (made by the relay; see relay/router/lanes.ts).
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(:[A-Za-z0-9][A-Za-z0-9_.-]{0,63})?$/)
      .describe('Name of this sink instance, used in routes, logs and metrics (letters, digits, "_", "." and "-").'),
    kind: z.literal('salesforce').describe('Sink kind.'),
    loginUrl: z
      .url()
      .default('https://login.salesforce.com')
      .describe('Base URL of the token endpoint: https://login.salesforce.com, https://test.salesforce.com or the org\'s My Domain URL. Records are written to the `instance_url` the token response names.'),
    apiVersion: z
      .string()
      .regex(/^\d{2,3}\.0$/, { message: 'must look like "60.0"' })
      .default('60.0')
      .describe(`REST API version, e.g. "60.0"; at least ${MIN_API_VERSION}.0.`),
    auth: SalesforceAuth,
    rateLimit: RateLimitConfig.optional().describe('Request pacing for this API (token bucket, adapted on 429 and on Sforce-Limit-Info quota use).'),
    timeoutMs: z
      .number()
      .int()
      .min(100)
      .max(120_000)
      .default(15_000)
      .describe('Timeout of each HTTP request (token, or one sObject Collections call of up to maxRecordsPerCall records), in ms.'),
    concurrency: z
      .number()
      .int()
      .min(1)
      .max(25)
      .default(4)
      .describe('sObject Collections calls in flight at once per batch. Events with the same subject are always applied one after another, in batch order.'),
    maxRecordsPerCall: z
      .number()
      .int()
      .min(1)
      .max(MAX_RECORDS_PER_CALL)
      .default(MAX_RECORDS_PER_CALL)
      .describe(`Records per sObject Collections upsert call (one API call each); Salesforce takes at most ${MAX_RECORDS_PER_CALL}.`),
    mappings: z.array(SalesforceMapping).min(1).describe('Upserts to make per event; every mapping whose eventType matches is applied, in order.'),
  })
  .strict()
  .superRefine((config, ctx) => {
    const url = new URL(config.loginUrl);
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url.hostname))) {
      ctx.addIssue({ code: 'custom', path: ['loginUrl'], message: 'must use https (plain http only to a loopback address, for emulators): client secrets and tokens travel on it' });
    }
    if (Number(config.apiVersion) < MIN_API_VERSION) {
      ctx.addIssue({ code: 'custom', path: ['apiVersion'], message: `must be at least ${MIN_API_VERSION}.0: older versions have no sObject Collections upsert` });
    }
    const seen = new Set<string>();
    config.mappings.forEach((m, i) => {
      const key = `${m.eventType} ${m.object}.${m.externalIdField}`;
      if (seen.has(key)) ctx.addIssue({ code: 'custom', path: ['mappings', i], message: `duplicate mapping of ${m.eventType} to ${m.object}.${m.externalIdField}` });
      seen.add(key);
    });
  })
  .describe('Delivers events to Salesforce by upsert on external id fields (REST API, sObject Collections upsert, up to 200 records per call).');
export type SalesforceSinkConfig = z.infer<typeof SalesforceSinkConfig>;
export type SalesforceSinkConfigInput = z.input<typeof SalesforceSinkConfig>;

/**
 * plantlink's standard objects: one Production_Milestone__c per milestone event,
 * the latest status per work order in Production_Order__c, the latest status per
 * shipment in Shipment__c.
 */
export const defaultSalesforceMappings: SalesforceMappingInput[] = [
  {
    eventType: PRODUCTION_MILESTONE_V1,
    object: 'Production_Milestone__c',
    externalIdField: 'Plantlink_Event_Id__c',
    externalId: 'id',
    apply: 'every',
    fields: {
      Work_Order__c: 'data.workOrder',
      Sales_Order__c: 'data.salesOrder',
      Milestone__c: 'data.milestone',
      Good_Quantity__c: 'data.goodQuantity.value',
      Scrap_Quantity__c: 'data.scrapQuantity.value',
      Equipment__c: 'data.equipment',
      Occurred_At__c: 'data.occurredAt',
      Plant__c: 'plant',
    },
  },
  {
    eventType: PRODUCTION_MILESTONE_V1,
    object: 'Production_Order__c',
    externalIdField: 'Work_Order_Number__c',
    externalId: 'data.workOrder',
    apply: 'latest',
    fields: {
      Sales_Order__c: 'data.salesOrder',
      Status__c: 'data.milestone',
      Good_Quantity__c: 'data.goodQuantity.value',
      Planned_Quantity__c: 'data.plannedQuantity.value',
      Last_Milestone_At__c: 'data.occurredAt',
      Plant__c: 'plant',
      Product__c: 'data.product',
    },
  },
  {
    eventType: SHIPMENT_V1,
    object: 'Shipment__c',
    externalIdField: 'Shipment_Number__c',
    externalId: 'data.shipment',
    apply: 'latest',
    fields: {
      Sales_Order__c: 'data.salesOrder',
      Status__c: 'data.status',
      Carrier__c: 'data.carrier',
      Tracking_Number__c: 'data.trackingNumber',
      Status_At__c: 'data.occurredAt',
    },
  },
];
