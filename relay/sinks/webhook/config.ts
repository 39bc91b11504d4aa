/**
 * Config of the webhook sink: the one source of truth for its options, their defaults
 * and their cross-field rules. Types come from the schema.
 */
import { z } from 'zod';
import { RateLimitConfig } from '../../delivery/rate-limiter.js';

/** RFC 9110 field name (token). */
const HeaderName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, { message: 'must be an HTTP header name' });
/** Printable US-ASCII, space and tab: what a header value may carry without encoding. */
const HeaderValue = z.string().regex(/^[\t\x20-\x7e]*$/, { message: 'must be printable US-ASCII' });

/** Headers the sink writes itself; a static header may not replace them. `ce-*` are reserved too. */
const RESERVED_HEADERS = new Set(['content-type', 'content-length', 'transfer-encoding', 'host', 'connection', 'plantlink-signature']);

export const MIN_SECRET_LENGTH = 32;

const isLoopback = (host: string): boolean => host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);

export const WebhookSinkConfig = z
  .object({
    name: z
      .string()
      // `<sink>:<route>` names the lane of a route with its own mappings (made by the relay; see relay/router/lanes.ts).
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(:[A-Za-z0-9][A-Za-z0-9_.-]{0,63})?$/)
      .describe('Name of this sink instance, used in routes, logs and metrics (letters, digits, "_", "." and "-").'),
    kind: z.literal('webhook').describe('Sink kind.'),
    url: z
      .url()
      .describe('Endpoint that receives the events by POST. https, except to a loopback address (tests, local receivers). Never logged whole: only its origin appears in logs and errors.'),
    mode: z
      .enum(['structured', 'binary', 'batch'])
      .default('structured')
      .describe(
        'CloudEvents HTTP content mode. "structured": one event per request, `Content-Type: application/cloudevents+json`. "binary": one event per request, attributes in `ce-*` headers, data as the body. "batch": up to `batchSize` events per request, `Content-Type: application/cloudevents-batch+json`; the receiver must have asked for it.',
      ),
    secret: z
      .string()
      .min(MIN_SECRET_LENGTH)
      .max(1024)
      .describe(`HMAC-SHA256 key signing every request (Plantlink-Signature header); at least ${MIN_SECRET_LENGTH} characters, e.g. \`openssl rand -hex 32\`. Never logged.`),
    headers: z
      .record(HeaderName, HeaderValue)
      .default({})
      .describe('Static headers added to every request, e.g. an Authorization the receiver also checks. Values are never logged. May not set Content-Type, Content-Length, Host, Plantlink-Signature or any ce-* header.'),
    rateLimit: RateLimitConfig.optional().describe('Request pacing for this API (token bucket, adapted on 429 and quota headers).'),
    timeoutMs: z.number().int().min(100).max(120_000).default(10_000).describe('Timeout of each request, from sending to the whole answer, in ms.'),
    concurrency: z
      .number()
      .int()
      .min(1)
      .max(64)
      .default(4)
      .describe('Requests in flight at once per batch (structured and binary mode). Events with the same subject are always sent one after another, in batch order. Batch mode sends one request at a time.'),
    batchSize: z
      .number()
      .int()
      .min(1)
      .max(1000)
      .default(100)
      .describe('Batch mode only: most events per request. The CloudEvents binding lets the receiver choose it.'),
    eventTypes: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe('If set, only events of these CloudEvents types are sent; others are acknowledged as delivered without a request. Unset: every routed event is sent.'),
  })
  .strict()
  .superRefine((config, ctx) => {
    const url = new URL(config.url);
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url.hostname))) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'must use https (plain http only to a loopback address): events and their signatures travel on it' });
    }
    if (url.username !== '' || url.password !== '') {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'must not carry credentials; put them in `headers` (e.g. Authorization), which are never logged' });
    }
    const seen = new Set<string>();
    for (const name of Object.keys(config.headers)) {
      const lower = name.toLowerCase();
      if (RESERVED_HEADERS.has(lower) || lower.startsWith('ce-')) {
        ctx.addIssue({ code: 'custom', path: ['headers', name], message: `"${name}" is written by the sink (content mode or signature); remove it` });
      }
      // Header names are case-insensitive: two spellings would be merged into one value.
      if (seen.has(lower)) ctx.addIssue({ code: 'custom', path: ['headers', name], message: `"${name}" is given twice (header names ignore case)` });
      seen.add(lower);
    }
  })
  .describe('Delivers events to any HTTP endpoint with the CloudEvents HTTP binding, each request signed with HMAC-SHA256.');
export type WebhookSinkConfig = z.infer<typeof WebhookSinkConfig>;
export type WebhookSinkConfigInput = z.input<typeof WebhookSinkConfig>;
