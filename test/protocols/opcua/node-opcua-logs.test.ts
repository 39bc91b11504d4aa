import { describe, expect, it } from 'vitest';
import { format } from '../../../protocols/opcua/node-opcua-logs.js';

describe('node-opcua log formatting', () => {
  it('formats what node-opcua logs without throwing, including circular structures and BigInts, without colours', () => {
    const circular: Record<string, unknown> = { a: 1 };
    circular.self = circular;
    expect(format(['\u001b[31mreconnect failed\u001b[39m', new Error('ECONNREFUSED'), { code: 5 }])).toBe('reconnect failed ECONNREFUSED {"code":5}');
    expect(format(['state', circular, 10n])).toBe('state [object Object] 10');
    expect(format(['x'.repeat(5000)])).toHaveLength(2000);
  });
});
