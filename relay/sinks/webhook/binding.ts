/**
 * The CloudEvents HTTP protocol binding (v1.0.2), sender side, plus the header-value
 * decoding a receiver needs before handing a binary-mode request to an SDK.
 *
 * - Structured: body = the event in the JSON format, `Content-Type: application/cloudevents+json`.
 * - Batch: body = a JSON array of such events, `Content-Type: application/cloudevents-batch+json`.
 * - Binary: body = `data` (JSON), `Content-Type` = `datacontenttype` (default
 *   application/json, as the JSON format implies when it is absent); every other
 *   attribute, extensions included, in a `ce-<name>` header. Strings are
 *   percent-encoded as the binding requires (space, `"`, `%` and everything outside
 *   U+0021..U+007E, as UTF-8 bytes, upper-case hex), integers and booleans use their
 *   canonical strings. An attribute the type system cannot hold (object, array, a
 *   non-integer number) cannot be mapped: PermanentError `unmappable_attribute`.
 *
 * Header values lose their type: a receiver reading binary mode gets `plantseq` as
 * the string "42", where structured mode gives the number 42.
 */
import type { CloudEventV1 } from '../../../protocols/events/envelope.js';
import { PermanentError } from '../../../protocols/errors.js';

export type ContentMode = 'structured' | 'binary' | 'batch';

export const STRUCTURED_CONTENT_TYPE = 'application/cloudevents+json';
export const BATCH_CONTENT_TYPE = 'application/cloudevents-batch+json';
const JSON_CONTENT_TYPE = 'application/json';

/** An event as it goes on the wire: the canonical envelope plus delivery attributes (`plantstale`). */
export type WireEvent = CloudEventV1 & { plantstale?: true };

export interface HttpMessage {
  /** Lower-case names. */
  headers: Record<string, string>;
  body: string;
}

export function structuredMessage(event: WireEvent): HttpMessage {
  return { headers: { 'content-type': STRUCTURED_CONTENT_TYPE }, body: JSON.stringify(event) };
}

export function batchMessage(events: readonly WireEvent[]): HttpMessage {
  return { headers: { 'content-type': BATCH_CONTENT_TYPE }, body: JSON.stringify(events) };
}

/** Throws PermanentError `unmappable_attribute` for an attribute no header can carry. */
export function binaryMessage(event: WireEvent): HttpMessage {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(event)) {
    if (name === 'data' || name === 'datacontenttype') continue;
    // The JSON format treats null as unset; so does this mapping.
    if (value === undefined || value === null) continue;
    headers[`ce-${name}`] = headerValue(name, value);
  }
  if (event.data === undefined) return { headers, body: '' };
  headers['content-type'] = event.datacontenttype ?? JSON_CONTENT_TYPE;
  return { headers, body: JSON.stringify(event.data) };
}

/** The content mode a receiver infers from Content-Type (HTTP binding, section 3). */
export function contentModeOf(contentType: string | null | undefined): ContentMode {
  const value = (contentType ?? '').toLowerCase();
  if (value.startsWith('application/cloudevents-batch')) return 'batch';
  if (value.startsWith('application/cloudevents')) return 'structured';
  return 'binary';
}

/**
 * Percent-encodes an attribute string for a header, per the binding: each Unicode
 * character (a surrogate pair counts as one) that is a space, `"`, `%` or outside
 * printable ASCII becomes its UTF-8 bytes as `%XY`.
 */
export function encodeHeaderValue(value: string): string {
  let out = '';
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    if (code >= 0x21 && code <= 0x7e && ch !== '"' && ch !== '%') {
      out += ch;
      continue;
    }
    for (const byte of Buffer.from(ch, 'utf8')) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * Decodes a `ce-*` header value as the binding requires of receivers: undo a
 * quoted-string (older senders), then one round of percent-decoding; byte sequences
 * that are not valid UTF-8 (including overlong forms such as %C0%A0) are rejected.
 * Throws TypeError on a malformed value. The cloudevents JS SDK (10.0.0) does not do
 * this itself, so a receiver decodes before calling `HTTP.toEvent`.
 */
export function decodeHeaderValue(value: string): string {
  let raw = value;
  if (raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"')) raw = raw.slice(1, -1).replace(/\\(.)/g, '$1');
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i]!;
    if (ch === '%') {
      const hex = raw.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new TypeError(`malformed percent-encoding at offset ${i}`);
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
      continue;
    }
    const code = raw.charCodeAt(i);
    // Node hands header bytes over as latin1 characters; anything wider came from a JS caller.
    if (code <= 0xff) bytes.push(code);
    else bytes.push(...Buffer.from(raw.slice(i, i + (code >= 0xd800 && code <= 0xdbff ? 2 : 1)), 'utf8'));
    if (code >= 0xd800 && code <= 0xdbff) i++;
  }
  return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
}

function headerValue(name: string, value: unknown): string {
  if (typeof value === 'string') return encodeHeaderValue(value);
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'number' && Number.isInteger(value)) return String(value);
  throw new PermanentError(`attribute "${name}" (${Array.isArray(value) ? 'array' : typeof value}) has no CloudEvents type a ce- header can carry`, {
    code: 'unmappable_attribute',
  });
}
