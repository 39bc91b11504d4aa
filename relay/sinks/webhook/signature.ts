/**
 * Request signatures of the webhook sink, on Stripe's scheme so receivers can reuse
 * what they know:
 *
 *   Plantlink-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + content)>
 *
 * `content` is the exact request body in structured and batch mode. In binary mode the
 * CloudEvents attributes travel in `ce-*` headers, so there the content also covers
 * them (see `signedContent`): a signature over the body alone would let whoever can
 * alter a request change the event's id, subject or type and keep a valid signature.
 *
 * Invariants:
 * - Comparison is constant-time (`timingSafeEqual`) on fixed-length digests.
 * - The signature is checked before the timestamp, so "outside tolerance" is only ever
 *   said of an authentic request (a replay or a skewed clock), never of a forgery.
 * - A header may carry several `v1=` (key rotation); unknown keys (`v0=`, `v2=`) are
 *   ignored, so a later scheme can be added without breaking today's verifiers.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'Plantlink-Signature';
/** How far a timestamp may be from the verifier's clock, either way: 5 minutes, as Stripe. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

export type SignedContent = string | Uint8Array;

/** Header value `t=<t>,v1=<hex>` for `content` signed at `timestampSeconds` (unix seconds). */
export function sign(secret: string, timestampSeconds: number, content: SignedContent): string {
  if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0) {
    throw new RangeError(`timestampSeconds must be a non-negative integer of unix seconds, got ${timestampSeconds}`);
  }
  return `t=${timestampSeconds},v1=${digest(secret, timestampSeconds, content).toString('hex')}`;
}

export type VerifyFailure = 'malformed_header' | 'no_v1_signature' | 'signature_mismatch' | 'timestamp_out_of_tolerance';

export type VerifyResult = { ok: true; timestampSeconds: number } | { ok: false; reason: VerifyFailure; message: string };

export interface VerifyOptions {
  /** Largest accepted |now - t|, in seconds. Default 300. */
  toleranceSeconds?: number;
  /** The verifier's clock in unix **seconds** (not ms). Default: now. */
  now?: number;
}

/**
 * Checks a `Plantlink-Signature` header against `content` (the body, or
 * `signedContent(headers, body)` to cover binary mode too). Accepts when any `v1`
 * matches any of the secrets (several during a key rotation).
 */
export function verify(
  secret: string | readonly string[],
  header: string | null | undefined,
  content: SignedContent,
  options: VerifyOptions = {},
): VerifyResult {
  const parsed = parseHeader(header);
  if (!parsed.ok) return parsed;
  const { timestampSeconds, signatures } = parsed;
  if (signatures.length === 0) return fail('no_v1_signature', 'the header carries no v1 signature');

  const secrets = typeof secret === 'string' ? [secret] : secret;
  const expected = secrets.map((s) => digest(s, timestampSeconds, content));
  const matched = signatures.some((candidate) => expected.some((e) => timingSafeEqual(e, candidate)));
  if (!matched) return fail('signature_mismatch', 'no v1 signature matches the content');

  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - timestampSeconds) > tolerance) {
    return fail('timestamp_out_of_tolerance', `signed at ${timestampSeconds}, ${now - timestampSeconds} s from now; tolerance is ${tolerance} s`);
  }
  return { ok: true, timestampSeconds };
}

type HeaderBag = Headers | Readonly<Record<string, string | readonly string[] | undefined>>;

/**
 * What the signature covers, for a request with these headers and body. The content
 * mode is told from Content-Type as the CloudEvents HTTP binding does:
 * - `application/cloudevents...` (structured, batch): the body, unchanged.
 * - anything else (binary): one line `name:value\n` per header named `content-type`
 *   or starting with `ce-`, names lower-cased and sorted, values exactly as sent
 *   (percent-encoded), then an empty line, then the body. Every `ce-*` header is
 *   covered because a receiver's SDK turns every one of them into an attribute.
 */
export function signedContent(headers: HeaderBag, body: SignedContent): SignedContent {
  const entries = headerEntries(headers);
  const contentType = entries.find(([name]) => name === 'content-type')?.[1] ?? '';
  if (contentType.toLowerCase().startsWith('application/cloudevents')) return body;
  const block = entries
    .filter(([name]) => name === 'content-type' || name.startsWith('ce-'))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => `${name}:${value}\n`)
    .join('');
  return typeof body === 'string' ? `${block}\n${body}` : Buffer.concat([Buffer.from(`${block}\n`, 'utf8'), body]);
}

function digest(secret: string, timestampSeconds: number, content: SignedContent): Buffer {
  return createHmac('sha256', secret).update(`${timestampSeconds}.`).update(content).digest();
}

function parseHeader(header: string | null | undefined): { ok: true; timestampSeconds: number; signatures: Buffer[] } | (VerifyResult & { ok: false }) {
  if (!header) return fail('malformed_header', 'no signature header');
  let timestampSeconds: number | undefined;
  const signatures: Buffer[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return fail('malformed_header', 'every element must be key=value');
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't') {
      if (timestampSeconds !== undefined || !/^\d{1,12}$/.test(value)) return fail('malformed_header', 't must appear once, as unix seconds');
      timestampSeconds = Number(value);
    } else if (key === 'v1') {
      if (!/^[0-9a-fA-F]{64}$/.test(value)) return fail('malformed_header', 'v1 must be 64 hex digits');
      signatures.push(Buffer.from(value, 'hex'));
    }
  }
  if (timestampSeconds === undefined) return fail('malformed_header', 'no t= timestamp');
  return { ok: true, timestampSeconds, signatures };
}

function headerEntries(headers: HeaderBag): [string, string][] {
  if (headers instanceof Headers) return [...headers.entries()];
  const out: [string, string][] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    out.push([name.toLowerCase(), typeof value === 'string' ? value : value.join(', ')]);
  }
  return out;
}

function fail(reason: VerifyFailure, message: string): { ok: false; reason: VerifyFailure; message: string } {
  return { ok: false, reason, message };
}
