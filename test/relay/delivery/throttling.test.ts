/**
 * Quarter-end surge against an API with a hard request limit: a 10,000-event backlog drains
 * at the limit, and once the relay has learnt the limit from the first 429 it draws no more.
 * Real HubSpot sink, real HubSpot emulator (rolling window of 10 requests per second).
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DeliveryConfig } from '../../../relay/delivery/config.js';
import { AdaptiveRateLimiter, RateLimitConfig } from '../../../relay/delivery/rate-limiter.js';
import { SinkWorker } from '../../../relay/delivery/sink-worker.js';
import { Inbox } from '../../../relay/inbox/inbox.js';
import { HubSpotSink, defaultHubSpotMappings } from '../../../relay/sinks/hubspot/index.js';
import { HubSpotEmulator } from '../../emulators/hubspot/hubspot-emulator.js';
import { tempDir, testLogger } from '../../helpers/temp.js';
import { milestoneEvent } from '../sinks/salesforce/fixtures.js';

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

describe('throttling', () => {
  it('drains a 10,000-event backlog at a 10 requests/s limit and, once adapted, draws no further 429s', { timeout: 120_000 }, async () => {
    const { dir, cleanup } = tempDir();
    stops.push(cleanup);
    const token = 'pat-na1-0123456789abcdef';
    const api = await HubSpotEmulator.start({ tokens: [token], rateLimit: { max: 10, intervalMs: 1000 } });
    stops.push(() => api.stop());
    const inbox = new Inbox(join(dir, 'inbox.sqlite'));
    stops.push(() => inbox.close());
    // No rate configured: the relay learns it from the API.
    const limiter = new AdaptiveRateLimiter(RateLimitConfig.parse({}));
    const sink = new HubSpotSink(
      { name: 'crm', kind: 'hubspot', baseUrl: api.url, token, mappings: [defaultHubSpotMappings[0]!] },
      testLogger(),
      { gate: limiter },
    );
    await sink.start();
    stops.push(() => sink.stop());

    const events = Array.from({ length: 10_000 }, (_, i) => milestoneEvent(`WO-${i}`, 'released', 1));
    for (let i = 0; i < events.length; i += 1000) {
      inbox.store('agent-1', events.slice(i, i + 1000).map((event) => ({ event, body: JSON.stringify(event), sinks: ['crm'] })), []);
    }
    const worker = new SinkWorker(sink, inbox, DeliveryConfig.parse({ batchSize: 100, backoff: { initialMs: 100, maxMs: 2000 }, pollMs: 50 }), testLogger());
    stops.push(() => worker.stop());

    const throttledAt: number[] = [];
    let lastThrottled = 0;
    const started = Date.now();
    worker.start();
    await vi.waitFor(
      () => {
        const s = api.stats();
        if (s.rateLimited > lastThrottled) {
          lastThrottled = s.rateLimited;
          throttledAt.push(inbox.counts().delivered);
        }
        expect(inbox.counts().delivered).toBe(10_000);
      },
      { timeout: 110_000, interval: 100 },
    );
    const seconds = (Date.now() - started) / 1000;

    expect(api.records('p_plantlink_milestones')).toHaveLength(10_000);
    expect(inbox.counts().dead).toBe(0);
    // 100 calls of 100 inputs; a 10/s window allows no faster than ~9 s for them.
    expect(api.stats().status[200] ?? 0).toBeGreaterThanOrEqual(100);
    // It learnt the limit from the first 429s at the start, and drew none after.
    expect(api.stats().rateLimited).toBeGreaterThan(0);
    expect(Math.max(...throttledAt)).toBeLessThan(2_000);
    expect(limiter.status().ceilingRps).toBeLessThanOrEqual(10);
    console.log(`drained 10,000 events in ${seconds.toFixed(1)} s with ${api.stats().rateLimited} 429(s), pacing ${limiter.status().currentRps?.toFixed(1)} req/s`);
  });
});
