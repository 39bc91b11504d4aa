import { describe, expect, it } from 'vitest';
import { urlForLogs } from '../../../protocols/uplink/mqtt-client.js';

describe('broker URLs in logs and status', () => {
  it('drops user and password from a URL, and leaves one without them as it is', () => {
    expect(urlForLogs('mqtts://relay-1:s3cret@broker.example.com:8883')).toBe('mqtts://broker.example.com:8883');
    expect(urlForLogs('wss://agent-a@broker.example.com/mqtt')).toBe('wss://broker.example.com/mqtt');
    expect(urlForLogs('mqtt://127.0.0.1:1883')).toBe('mqtt://127.0.0.1:1883');
    expect(urlForLogs('not a url s3cret')).not.toContain('s3cret');
  });
});
