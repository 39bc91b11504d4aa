import { describe, expect, it } from 'vitest';
import { AgentFrame, BatchFrame, RelayFrame, STATUS_FEATURE, StatusFrame, WelcomeFrame } from '../../../protocols/uplink/frames.js';

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
});
