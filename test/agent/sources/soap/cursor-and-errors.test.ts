import { describe, expect, it } from 'vitest';
import { advanceCursor, coerceCursor, initialCursor, MAX_RECENT } from '../../../../agent/sources/soap/cursor.js';
import { classifySoapError } from '../../../../agent/sources/soap/soap-errors.js';
import { PermanentError, TransientError } from '../../../../protocols/errors.js';

const fault11 = (faultcode: string, faultstring: string) => Object.assign(new Error(`${faultcode}: ${faultstring}`), { response: { status: 500 }, root: { Envelope: { Body: { Fault: { faultcode, faultstring } } } } });

describe('classifySoapError', () => {
  it('retries soap:Server / Receiver faults and refuses soap:Client / Sender faults', () => {
    expect(classifySoapError(fault11('soap:Server', 'Database busy'), 'calling X')).toBeInstanceOf(TransientError);
    expect(classifySoapError(fault11('soap:Client', 'Invalid changedSince'), 'calling X')).toBeInstanceOf(PermanentError);
    const v12 = Object.assign(new Error('x'), { response: { status: 401 }, root: { Envelope: { Body: { Fault: { Code: { Value: 'SOAP-ENV:Client', Subcode: { Value: 'AuthenticationFailure' } }, Reason: { Text: 'Invalid username or password' } } } } } });
    const e = classifySoapError(v12, 'calling X');
    expect(e).toBeInstanceOf(PermanentError);
    expect(e.message).toBe('calling X: SOAP Fault SOAP-ENV:Client: AuthenticationFailure: Invalid username or password');
    const receiver = Object.assign(new Error('x'), { root: { Envelope: { Body: { Fault: { Code: { Value: 'soap:Receiver' }, Reason: { Text: 'busy' } } } } } });
    expect(classifySoapError(receiver, 'calling X')).toBeInstanceOf(TransientError);
  });

  it('classifies HTTP statuses without a fault, network errors and TLS errors', () => {
    const http = (status: number, headers: Record<string, string> = {}) => Object.assign(new Error('Error http status codes'), { response: { status, headers } });
    const busy = classifySoapError(http(503, { 'retry-after': '7' }), 'calling X');
    expect(busy).toBeInstanceOf(TransientError);
    expect((busy as TransientError).retryAfterMs).toBe(7000);
    expect(classifySoapError(http(404), 'calling X')).toMatchObject({ code: 'http-404' });
    expect(classifySoapError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'x')).toBeInstanceOf(TransientError);
    expect(classifySoapError(Object.assign(new Error('timeout of 100ms exceeded'), { code: 'ECONNABORTED' }), 'x')).toBeInstanceOf(TransientError);
    expect(classifySoapError(Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }), 'x')).toMatchObject({ code: 'tls' });
    expect(classifySoapError(new Error('Invalid WSDL URL: http://x\n\n\r Code: 502'), 'reading the WSDL')).toBeInstanceOf(TransientError);
  });

  it('keeps no reference to the raw error, whose request body holds the password', () => {
    const raw = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET', config: { data: '<wsse:Password>secret</wsse:Password>' } });
    const e = classifySoapError(raw, 'x');
    expect(e.cause).not.toBe(raw);
    expect(JSON.stringify(e.cause, Object.getOwnPropertyNames(e.cause))).not.toContain('secret');
  });
});

describe('cursor', () => {
  it('moves the watermark forward only and prunes what no later poll can return', () => {
    const c0 = initialCursor('2026-01-01T00:00:00Z');
    const t = Date.parse('2026-01-02T00:00:00Z');
    const { cursor: c1 } = advanceCursor(c0, [{ key: 'a', timeMs: t - 10 }, { key: 'b', timeMs: t }], t, 0);
    expect(c1).toEqual({ v: 1, watermarkMs: t, recent: [['b', t]] });
    const { cursor: c2 } = advanceCursor(c1, [{ key: 'c', timeMs: t - 5 }], t - 5, 10);
    expect(c2.watermarkMs).toBe(t);
    expect(c2.recent).toEqual([['b', t], ['c', t - 5]]);
  });

  it('bounds the records it remembers', () => {
    const seen = Array.from({ length: MAX_RECENT + 5 }, (_, i) => ({ key: `k${i}`, timeMs: 1000 }));
    const { cursor, truncated } = advanceCursor(initialCursor('1970-01-01T00:00:00Z'), seen, 1000, 0);
    expect(cursor.recent).toHaveLength(MAX_RECENT);
    expect(truncated).toBe(true);
  });

  it('refuses a cursor it cannot read', () => {
    expect(coerceCursor({ v: 2, watermarkMs: 1, recent: [] })).toBeUndefined();
    expect(coerceCursor({ v: 1, watermarkMs: 5, recent: [['a', 5], 'junk'] })).toEqual({ v: 1, watermarkMs: 5, recent: [['a', 5]] });
  });
});
