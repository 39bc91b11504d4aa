/**
 * Configuration of the SOAP source: the one source of truth for its options.
 * Types come from the schema; defaults live here and nowhere else.
 *
 * The source polls one "what changed since T" operation of a WSDL service. Where the
 * watermark and the page token go in the request are paths (`cursor.requestField`,
 * `cursor.pageTokenField`) rather than `${...}` placeholders, because `${NAME}` in a config
 * file already means an environment variable (protocols/config-file.ts).
 */
import { z } from 'zod';
import { RecordMapping } from '../../mapping/record-mapping.js';

export const FieldPath = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$/, 'a dotted path of element names, e.g. `shipments.Shipment`')
  .max(512)
  .describe('A dotted path of element names as the SOAP client parses them, e.g. `shipments.Shipment`.');

export const SoapCursorConfig = z
  .object({
    requestField: FieldPath.describe('Request path that receives the watermark (ISO 8601, UTC), e.g. `changedSince`.'),
    watermarkFrom: z
      .enum(['item', 'response'])
      .default('item')
      .describe(
        '`item`: the watermark is the greatest change time of the items committed (needs the service to return items in ascending change-time order across pages). `response`: it is a time the response carries (e.g. `serverTime`), taken from the first page and saved once the last page is committed.',
      ),
    watermarkField: FieldPath.describe('Path to the change time: on each item (`ChangedAt`) when watermarkFrom is `item`, in the response (`serverTime`) when it is `response`. ISO 8601 or epoch ms.'),
    initial: z.iso
      .datetime({ offset: true })
      .default('1970-01-01T00:00:00Z')
      .describe('Watermark of the very first poll, before any cursor was committed: how far back to read.'),
    overlapMs: z
      .number()
      .int()
      .min(0)
      .max(86_400_000)
      .default(0)
      .describe(
        'Ask for changes since (watermark - overlapMs), to catch rows the ERP makes visible late with an earlier change time. Items re-read in the overlap are recognised and not sent again. 0 = re-read only the boundary time itself.',
      ),
    pageTokenField: FieldPath.optional().describe('Request path that receives the page token of the next page, e.g. `pageToken`. Omit when the operation does not page.'),
    nextPageTokenPath: FieldPath.optional().describe('Response path of the next page token, e.g. `nextPageToken`; absent or empty on the last page.'),
  })
  .strict();

export const SoapAuthConfig = z
  .object({
    username: z.string().min(1).max(256).describe('WS-Security UsernameToken user name.'),
    password: z.string().min(1).max(1024).describe('WS-Security UsernameToken password (PasswordText; use HTTPS). Secret: never logged. Use `${ENV_VAR}` to keep it out of the file.'),
  })
  .strict();

export const SoapTlsConfig = z
  .object({
    caFile: z.string().min(1).optional().describe('PEM file of the CA (or the self-signed certificate) that issued the ERP\'s HTTPS certificate, for on-prem servers with a private CA.'),
    rejectUnauthorized: z.boolean().default(true).describe('Verify the server certificate. Turn off only to diagnose; the source logs a warning while it is off.'),
  })
  .strict();

export const SoapRetryConfig = z
  .object({
    baseMs: z.number().int().min(10).max(60_000).default(1000).describe('First delay after a transient failure (jittered, doubles per failure in a row).'),
    maxMs: z.number().int().min(10).max(3_600_000).default(60_000).describe('Longest delay between retries of transient failures.'),
  })
  .strict();

export const SoapSourceConfig = z
  .object({
    kind: z.literal('soap').describe('Source kind.'),
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, ".", "_" and "-", at most 64')
      .describe('Source name; goes into the event source and into every event id, so never rename a source in use.'),
    wsdlUrl: z.string().min(1).max(2048).describe('WSDL location: an http(s) URL (`https://erp.local/ws/logistics?wsdl`) or a local file path.'),
    endpoint: z.url({ protocol: /^https?$/ }).optional().describe('Service endpoint, overriding the address in the WSDL (often a host name the plant network cannot resolve).'),
    operation: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, 'an operation name from the WSDL')
      .describe('Operation to call, as named in the WSDL, e.g. `GetShipmentChanges`.'),
    request: z
      .record(z.string(), z.unknown())
      .default({})
      .describe('Static request arguments, e.g. `{ pageSize: 200 }`; the watermark and page token are written into it at `cursor.requestField` / `cursor.pageTokenField`.'),
    cursor: SoapCursorConfig.describe('How the source remembers where it is: a watermark (and page token) it sends and reads back.'),
    itemsPath: FieldPath.describe(
      'Response path to the list of changed records, e.g. `shipments.Shipment`. Every element but the last must be in every response (an empty list element is fine); a response without it is an unexpected shape, not "no changes".',
    ),
    pollIntervalMs: z.number().int().min(10).max(86_400_000).default(30_000).describe('Time between polls, counted from the end of the last one.'),
    timeoutMs: z.number().int().min(100).max(600_000).default(30_000).describe('Upper bound on fetching the WSDL and on each call.'),
    retry: SoapRetryConfig.default({ baseMs: 1000, maxMs: 60_000 }).describe('Backoff after transient failures (soap:Server faults, HTTP 5xx, timeouts, network errors).'),
    auth: SoapAuthConfig.optional().describe('WS-Security UsernameToken credentials; omit for none.'),
    tls: SoapTlsConfig.optional().describe('HTTPS trust settings.'),
    quarantineKept: z.number().int().min(0).max(1000).default(20).describe('How many of the latest quarantined (unmappable) records the source keeps for its status.'),
    map: RecordMapping.describe('How a record (one item of the list) becomes a canonical event.'),
  })
  .strict()
  .superRefine((config, ctx) => {
    const { pageTokenField, nextPageTokenPath } = config.cursor;
    if ((pageTokenField === undefined) !== (nextPageTokenPath === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['cursor', pageTokenField ? 'nextPageTokenPath' : 'pageTokenField'], message: 'pageTokenField and nextPageTokenPath go together' });
    }
    if (config.retry.baseMs > config.retry.maxMs) {
      ctx.addIssue({ code: 'custom', path: ['retry', 'baseMs'], message: 'must not exceed retry.maxMs' });
    }
    if (config.cursor.requestField === pageTokenField) {
      ctx.addIssue({ code: 'custom', path: ['cursor', 'pageTokenField'], message: 'must differ from cursor.requestField' });
    }
  });

export type SoapSourceConfig = z.infer<typeof SoapSourceConfig>;
export type SoapSourceConfigInput = z.input<typeof SoapSourceConfig>;
