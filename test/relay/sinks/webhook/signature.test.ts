import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sign, signedContent, verify } from '../../../../relay/sinks/webhook/index.js';

const SECRET = 'test-secret-0123456789abcdef0123456789abcdef';
const T = 1_714_550_400;
const BODY = '{"specversion":"1.0","id":"e-1","data":{"workOrder":"WO-1"}}';

describe('sign', () => {
  it('is Stripe\'s scheme: t=<seconds>,v1=<hex HMAC-SHA256 over "<t>.<body>">', () => {
    const expected = createHmac('sha256', SECRET).update(`${T}.${BODY}`).digest('hex');
    expect(sign(SECRET, T, BODY)).toBe(`t=${T},v1=${expected}`);
    expect(sign(SECRET, T, Buffer.from(BODY))).toBe(sign(SECRET, T, BODY));
  });

  it('refuses a timestamp in milliseconds or with a fraction', () => {
    expect(() => sign(SECRET, 1.5, BODY)).toThrow(RangeError);
    expect(() => sign(SECRET, -1, BODY)).toThrow(RangeError);
  });
});

describe('verify', () => {
  const header = sign(SECRET, T, BODY);

  it('accepts an authentic request within the tolerance, either side of the clock', () => {
    expect(verify(SECRET, header, BODY, { now: T })).toEqual({ ok: true, timestampSeconds: T });
    expect(verify(SECRET, header, BODY, { now: T + 300 }).ok).toBe(true);
    expect(verify(SECRET, header, BODY, { now: T - 300 }).ok).toBe(true);
  });

  it('refuses an old timestamp, and a future one, beyond the tolerance', () => {
    expect(verify(SECRET, header, BODY, { now: T + 301 })).toMatchObject({ ok: false, reason: 'timestamp_out_of_tolerance' });
    expect(verify(SECRET, header, BODY, { now: T - 301 })).toMatchObject({ ok: false, reason: 'timestamp_out_of_tolerance' });
    expect(verify(SECRET, header, BODY, { now: T + 3600, toleranceSeconds: 7200 }).ok).toBe(true);
  });

  it('refuses a tampered body, another secret, and a timestamp moved to look fresh', () => {
    expect(verify(SECRET, header, BODY.replace('WO-1', 'WO-2'), { now: T })).toMatchObject({ ok: false, reason: 'signature_mismatch' });
    expect(verify('another-secret-0123456789abcdef0123456789', header, BODY, { now: T })).toMatchObject({ ok: false, reason: 'signature_mismatch' });
    const moved = header.replace(`t=${T}`, `t=${T + 1000}`);
    expect(verify(SECRET, moved, BODY, { now: T + 1000 })).toMatchObject({ ok: false, reason: 'signature_mismatch' });
  });

  it('checks the signature before the timestamp, so a forgery is never reported as merely old', () => {
    expect(verify(SECRET, header, `${BODY} `, { now: T + 10_000 })).toMatchObject({ ok: false, reason: 'signature_mismatch' });
  });

  it('accepts any matching v1 and any of several secrets (key rotation); ignores unknown schemes', () => {
    const other = sign('old-secret-0123456789abcdef0123456789abcd', T, BODY);
    const both = `${header},v1=${other.split('v1=')[1]},v0=legacy`;
    expect(verify('old-secret-0123456789abcdef0123456789abcd', both, BODY, { now: T }).ok).toBe(true);
    expect(verify(['old-secret-0123456789abcdef0123456789abcd', SECRET], header, BODY, { now: T }).ok).toBe(true);
  });

  it('refuses malformed headers', () => {
    for (const bad of [undefined, '', 'garbage', `v1=${'a'.repeat(64)}`, `t=${T},t=${T},v1=${'a'.repeat(64)}`, `t=${T}ms,v1=${'a'.repeat(64)}`, `t=${T},v1=xyz`]) {
      expect(verify(SECRET, bad, BODY, { now: T }), String(bad)).toMatchObject({ ok: false, reason: 'malformed_header' });
    }
    expect(verify(SECRET, `t=${T}`, BODY, { now: T })).toMatchObject({ ok: false, reason: 'no_v1_signature' });
  });
});

describe('signedContent', () => {
  it('is the body alone for structured and batch requests', () => {
    expect(signedContent({ 'Content-Type': 'application/cloudevents+json' }, BODY)).toBe(BODY);
    expect(signedContent(new Headers({ 'content-type': 'application/cloudevents-batch+json' }), BODY)).toBe(BODY);
  });

  it('covers content-type and every ce- header, sorted, then the body, for binary requests', () => {
    const headers = { 'ce-type': 't', 'Content-Type': 'application/json', 'ce-id': 'e-1', 'x-other': 'not covered', 'CE-Subject': 'work-order/WO%201' };
    const content = 'ce-id:e-1\nce-subject:work-order/WO%201\nce-type:t\ncontent-type:application/json\n\n{"a":1}';
    expect(signedContent(headers, '{"a":1}')).toBe(content);
    expect(Buffer.from(signedContent(headers, Buffer.from('{"a":1}'))).toString('utf8')).toBe(content);
    expect(signedContent({ ...headers, 'x-other': 'changed' }, '{"a":1}')).toBe(content);
  });
});
