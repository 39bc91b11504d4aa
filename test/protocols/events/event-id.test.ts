import { describe, expect, it } from 'vitest';
import { deriveEventId, type SourceFact } from '../../../protocols/events/event-id.js';

const fact: SourceFact = { plant: 'plant-a', source: 'line-opcua', key: 'WO-1', what: 'released', occurredAtMs: 1795000000123 };

describe('deterministic event ids', () => {
  it('are stable across versions: an upgrade must not turn re-read facts into new events', () => {
    // Golden values. If this fails, ids changed and every agent upgrade would duplicate re-read facts downstream.
    expect(deriveEventId(fact)).toBe('01a1ee56-5e7b-8315-8c93-2cfdf991ee18');
    expect(deriveEventId({ ...fact, what: 'quantity-reported', occurredAtMs: 1795000000999, discriminator: 42 })).toBe('01a1ee56-61e7-80f1-a45b-0e67e01a8ddf');
  });

  it('are the same for the same fact and differ when any part of the fact differs', () => {
    expect(deriveEventId({ ...fact })).toBe(deriveEventId(fact));
    const variants: Partial<SourceFact>[] = [{ plant: 'plant-b' }, { source: 'other' }, { key: 'WO-2' }, { what: 'started' }, { occurredAtMs: fact.occurredAtMs + 1 }, { discriminator: 1 }];
    const ids = new Set(variants.map((v) => deriveEventId({ ...fact, ...v })));
    expect(ids.size).toBe(variants.length);
    expect(ids.has(deriveEventId(fact))).toBe(false);
  });

  it('are RFC 9562 UUIDv8 with the occurred-at time first, so they sort by time', () => {
    const id = deriveEventId(fact);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(parseInt(id.replace(/-/g, '').slice(0, 12), 16)).toBe(fact.occurredAtMs);
    const later = deriveEventId({ ...fact, key: 'WO-0', occurredAtMs: fact.occurredAtMs + 1 });
    expect(later > id).toBe(true);
  });

  it('do not confuse fields that run into each other', () => {
    expect(deriveEventId({ ...fact, plant: 'ab', source: 'c' })).not.toBe(deriveEventId({ ...fact, plant: 'a', source: 'bc' }));
  });
});
