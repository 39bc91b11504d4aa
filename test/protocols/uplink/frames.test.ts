import { describe, expect, it } from 'vitest';
import { AgentFrame, BatchFrame, closeReason, RelayFrame, STATUS_FEATURE, StatusFrame, WelcomeFrame } from '../../../protocols/uplink/frames.js';

const welcome = { t: 'welcome', protocol: 1, agent: 'a', plant: 'p', maxFrameBytes: 1024, maxBatchEvents: 10, maxInFlight: 2 };

describe('uplink frames', () => {
  it('a welcome from an older relay (no features) still parses, and one listing the status feature keeps it', () => {
    expect(WelcomeFrame.parse(welcome).features).toBeUndefined();
    expect(RelayFrame.parse({ ...welcome, features: [STATUS_FEATURE] })).toMatchObject({ t: 'welcome', features: ['status'] });
  });

  it('an agent frame is a batch (as older agents send it) or a status report', () => {
    expect(AgentFrame.parse({ t: 'batch', batch: 3, events: [{}] })).toEqual({ t: 'batch', batch: 3, events: [{}] });
    expect(AgentFrame.parse({ t: 'status', pending: 0 })).toEqual({ t: 'status', pending: 0 });
    expect(AgentFrame.parse({ t: 'status', pending: 12, pendingBytes: 3400, oldestPendingAgeMs: 5000 })).toMatchObject({ t: 'status', pending: 12, oldestPendingAgeMs: 5000 });
  });

  it('refuses malformed status reports and unknown frame tags', () => {
    expect(StatusFrame.safeParse({ t: 'status' }).success).toBe(false);
    expect(StatusFrame.safeParse({ t: 'status', pending: -1 }).success).toBe(false);
    expect(StatusFrame.safeParse({ t: 'status', pending: 1.5 }).success).toBe(false);
    expect(StatusFrame.safeParse({ t: 'status', pending: 1, oldestPendingAgeMs: -5 }).success).toBe(false);
    expect(AgentFrame.safeParse({ t: 'hello', pending: 1 }).success).toBe(false);
    expect(BatchFrame.safeParse({ t: 'batch', batch: 0, events: [] }).success).toBe(false);
  });

  it('cuts a close reason to 120 bytes (ws throws past 123) on a character boundary', () => {
    for (const text of ['plain ascii '.repeat(20), 'é'.repeat(100), '中'.repeat(100), '😀'.repeat(100), `a${'é'.repeat(100)}`, `${'a'.repeat(117)}😀😀`]) {
      const reason = closeReason(text);
      expect(Buffer.byteLength(reason)).toBeLessThanOrEqual(120);
      expect(Buffer.byteLength(reason)).toBeGreaterThan(115);
      expect(text.startsWith(reason)).toBe(true);
      expect(reason).not.toMatch(/[\uD800-\uDBFF]$/); // never half a surrogate pair
    }
    expect(closeReason('short')).toBe('short');
    expect(closeReason(`${'a'.repeat(118)}😀`)).toBe('a'.repeat(118));
  });
});
