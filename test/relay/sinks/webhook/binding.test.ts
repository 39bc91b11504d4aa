import { describe, expect, it } from 'vitest';
import { PermanentError } from '../../../../protocols/errors.js';
import { binaryMessage, contentModeOf, decodeHeaderValue, encodeHeaderValue, structuredMessage } from '../../../../relay/sinks/webhook/index.js';
import { milestoneEvent } from '../salesforce/fixtures.js';

describe('header value percent-encoding (CloudEvents HTTP binding 3.1.3.2)', () => {
  it('encodes the spec\'s example "Euro € 😀" as Euro%20%E2%82%AC%20%F0%9F%98%80', () => {
    expect(encodeHeaderValue('Euro € 😀')).toBe('Euro%20%E2%82%AC%20%F0%9F%98%80');
  });

  it('encodes space, double quote and percent, and leaves other printable ASCII alone', () => {
    expect(encodeHeaderValue('a "b" 100%')).toBe('a%20%22b%22%20100%25');
    expect(encodeHeaderValue("/plantlink/plants/P1/sources/line-opcua?x=1&y=[2]#'~")).toBe("/plantlink/plants/P1/sources/line-opcua?x=1&y=[2]#'~");
    expect(encodeHeaderValue('tab\there\u007f')).toBe('tab%09here%7F');
  });

  it('decodes what it encodes, accepts lower-case and needless encoding, and undoes quoted strings', () => {
    for (const value of ['Euro € 😀', 'a "b" 100%', 'plain', '']) expect(decodeHeaderValue(encodeHeaderValue(value))).toBe(value);
    expect(decodeHeaderValue('Euro%20%e2%82%ac')).toBe('Euro €');
    expect(decodeHeaderValue('%41BC')).toBe('ABC');
    expect(decodeHeaderValue('"a \\"quoted\\" value"')).toBe('a "quoted" value');
  });

  it('rejects invalid UTF-8, including the overlong %C0%A0, and malformed escapes', () => {
    expect(() => decodeHeaderValue('%C0%A0')).toThrow(TypeError);
    expect(() => decodeHeaderValue('%E2%82')).toThrow(TypeError);
    expect(() => decodeHeaderValue('100%')).toThrow(TypeError);
    expect(() => decodeHeaderValue('%zz')).toThrow(TypeError);
  });
});

describe('messages', () => {
  it('structured: the whole event as JSON, application/cloudevents+json', () => {
    const event = milestoneEvent('WO-1', 'released', 1);
    const message = structuredMessage(event);
    expect(message.headers).toEqual({ 'content-type': 'application/cloudevents+json' });
    expect(JSON.parse(message.body)).toEqual(event);
  });

  it('binary: datacontenttype becomes Content-Type, never a ce-datacontenttype header; an event without data has no body', () => {
    const event = { ...milestoneEvent('WO-1', 'released', 1), datacontenttype: 'application/json' as const };
    const message = binaryMessage(event);
    expect(message.headers['content-type']).toBe('application/json');
    expect(message.headers).not.toHaveProperty('ce-datacontenttype');
    expect(message.headers).not.toHaveProperty('ce-data');
    expect(binaryMessage({ ...event, data: undefined })).toEqual({ headers: expect.not.objectContaining({ 'content-type': expect.anything() }), body: '' });
  });

  it('binary: integers and booleans use their canonical strings; objects and fractions cannot be mapped', () => {
    const event = milestoneEvent('WO-1', 'released', 1);
    expect(binaryMessage({ ...event, plantstale: true }).headers).toMatchObject({ 'ce-plantseq': String(event.plantseq), 'ce-plantstale': 'true' });
    expect(() => binaryMessage({ ...event, ratio: 0.5 })).toThrow(PermanentError);
    expect(() => binaryMessage({ ...event, tags: ['a'] })).toThrow(/"tags" \(array\)/);
  });

  it('tells the content mode from Content-Type as a receiver does', () => {
    expect(contentModeOf('application/cloudevents+json; charset=utf-8')).toBe('structured');
    expect(contentModeOf('application/cloudevents-batch+json')).toBe('batch');
    expect(contentModeOf('application/json')).toBe('binary');
    expect(contentModeOf(undefined)).toBe('binary');
  });
});
