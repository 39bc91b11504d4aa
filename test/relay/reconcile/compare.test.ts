import { describe, expect, it } from 'vitest';
import { differingFields, sameValue } from '../../../relay/reconcile/compare.js';
import { dayBounds } from '../../../relay/reconcile/reconcile.js';

describe('comparing what we wrote with what the target holds', () => {
  it('takes values by meaning: numbers as text (HubSpot), Salesforce datetimes with +0000, booleans', () => {
    expect(sameValue(12, '12')).toBe(true);
    expect(sameValue(12.5, '12.50')).toBe(true);
    expect(sameValue(12, '13')).toBe(false);
    expect(sameValue(12, '')).toBe(false);
    expect(sameValue('2026-11-23T10:00:00.000Z', '2026-11-23T10:00:00.000+0000')).toBe(true);
    expect(sameValue('2026-11-23T10:00:00.000Z', '2026-11-23T11:00:00.000+01:00')).toBe(true);
    expect(sameValue('2026-11-23T10:00:00.000Z', '2026-11-23T10:00:01.000+0000')).toBe(false);
    expect(sameValue(true, 'true')).toBe(true);
    expect(sameValue(false, true)).toBe(false);
    expect(sameValue('completed', 'started')).toBe(false);
    expect(sameValue('10', 10)).toBe(true);
    expect(sameValue('x', null)).toBe(false);
    // NetSuite: datetimes to the second, selects answered with their refName.
    expect(sameValue('2026-11-23T10:00:00.123Z', '2026-11-23T10:00:00Z')).toBe(true);
    expect(sameValue('2026-11-23T10:00:00.123Z', '2026-11-23T10:00:01Z')).toBe(false);
    expect(sameValue({ id: '7' }, { id: '7', refName: 'Released' })).toBe(true);
    expect(sameValue({ id: '7' }, { id: '8', refName: 'Held' })).toBe(false);
    expect(sameValue({ id: '7' }, '7')).toBe(false);
    // A cleared field is not zero; an empty text field comes back as null.
    expect(sameValue(0, '')).toBe(false);
    expect(sameValue(0, '  ')).toBe(false);
    expect(sameValue(0, false)).toBe(false);
    expect(sameValue(5, [5])).toBe(false);
    expect(sameValue(0, '0')).toBe(true);
    expect(sameValue('', null)).toBe(true);
    expect(sameValue('', 'x')).toBe(false);
    // The whole-second tolerance only for a target answer without a fraction.
    expect(sameValue('2026-11-23T10:00:00Z', '2026-11-23T10:00:00.999+0000')).toBe(false);
  });

  it('lists the fields that differ, a field the target left empty included', () => {
    expect(differingFields({ Status__c: 'completed', Qty__c: 40, Plant__c: 'P1' }, { Status__c: 'started', Qty__c: '40' })).toEqual([
      { field: 'Status__c', expected: 'completed', found: 'started' },
      { field: 'Plant__c', expected: 'P1', found: null },
    ]);
    expect(differingFields({ A: 1 }, { A: 1, Other__c: 'x' })).toEqual([]);
  });

  it('takes a calendar day in UTC and refuses anything else', () => {
    expect(dayBounds('2026-11-23')).toEqual({ fromMs: Date.parse('2026-11-23T00:00:00Z'), toMs: Date.parse('2026-11-24T00:00:00Z') });
    for (const bad of ['2026-02-30', '23.11.2026', '2026-11-23T00:00', '']) expect(() => dayBounds(bad)).toThrow(/YYYY-MM-DD/);
  });
});
